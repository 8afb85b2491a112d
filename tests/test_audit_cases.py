"""Every audit rule on small realistic projects: tests/audit_cases/<case>/ is a project
tree plus case.toml listing exactly the findings expected (rule selection optional).
Negative cases are the code in the same trees that must NOT be reported."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from flask_refactor import audit

CASES = Path(__file__).resolve().parent / "audit_cases"


def case_dirs() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if (p / "case.toml").is_file())


def run_case(directory: Path, select: list[str] | None = None) -> audit.AuditResult:
    rules = audit.select_rules(audit.load_rules(), select or [])
    cwd = Path.cwd()
    os.chdir(directory)
    try:
        return audit.run(["."], rules)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("directory", case_dirs(), ids=lambda p: p.name)
def test_case(directory: Path) -> None:
    case = tomllib.loads((directory / "case.toml").read_text())
    before = {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    result = run_case(directory, case.get("select"))
    assert not len(result.errors), list(result.errors)
    got = sorted((f.rule, f.path, f.line, f.severity.value) for f in result.findings)
    wanted = case.get("findings", [])
    default_rule = (case.get("select") or [""])[0]
    expected = sorted((w.get("rule", default_rule), w["path"], w["line"], w["severity"]) for w in wanted)
    messages = "\n".join(f"{f.path}:{f.line} {f.rule} {f.severity.value} {f.message}" for f in result.findings)
    assert got == expected, messages
    for want in wanted:
        if "contains" in want:
            match = [f for f in result.findings if f.path == want["path"] and f.line == want["line"]]
            assert any(want["contains"] in f.message for f in match), (want, messages)
    assert result.suppressed == case.get("suppressed", 0)
    # auditing never writes: not even the codemods it runs
    after = {p: p.read_bytes() for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert after == {p: b for p, b in before.items() if "__pycache__" not in p.parts}
