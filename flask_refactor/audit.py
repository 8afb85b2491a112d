"""Auditing a project: rules that only point at problems, linter style.

Generic: a rule is an object with an id, a name, a severity, an explanation and a
`check(project)` that yields `Finding`s; this module selects rules, runs them over one
`Project` (parsed once, shared with every rule), drops findings silenced by
`# flask-refactor: ignore[ID]` comments and decides the exit code. What the rules know
lives with the codemods (`flask_refactor.codemods.support.audit_rules`).
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

from . import forking, pipeline
from .codemod import Codemod, Finding, Severity
from .discovery import discover
from .index import default_cache
from .project import ErrorLog, Project

RULES_MODULE = "flask_refactor.codemods.support.audit_rules"
AUDIT_SOURCE = "audit"  # `Finding.codemod` of findings made by rules rather than codemods

# `# flask-refactor: ignore[FR101, debug-mode]` on the finding's line or alone on the
# line above; a bare `# flask-refactor: ignore` silences every rule there.
IGNORE_COMMENT = re.compile(r"flask-refactor:\s*ignore(?:\[([^\]]*)\])?")


class Rule:
    """One audit rule. Subclasses set the class attributes and implement `check`."""

    id: ClassVar[str]  # stable: FR101
    name: ClassVar[str]  # stable, kebab-case: debug-mode
    severity: ClassVar[Severity] = Severity.WARNING  # default; a finding may differ
    summary: ClassVar[str]  # one line
    explain: ClassVar[str]  # a paragraph, a bad and a good example
    fix: ClassVar[str | None] = None  # the codemod that fixes it, if one does

    def check(self, project: Project) -> Iterable[Finding]:
        raise NotImplementedError

    def finding(self, path: str, line: int, message: str, severity: Severity | None = None,
                column: int = 0) -> Finding:
        return Finding(path, line, column, AUDIT_SOURCE, message, severity or self.severity, self.id)


class CodemodRule(Rule):
    """A codemod run without writing: its findings, and every file it would rewrite,
    reported under one stable rule id."""

    def __init__(self, codemod: type[Codemod], rule_id: str, severity: Severity) -> None:
        self.codemod = codemod
        self.options: dict[str, Any] = {}  # the codemod's options, from [tool.flask-refactor.<name>]
        self.id = rule_id
        self.name = codemod.name
        self.severity = severity
        self.summary = codemod.summary
        self.explain = codemod.explain
        self.fix = codemod.name

    def check(self, project: Project) -> Iterable[Finding]:
        changes = self.codemod(**self.options).run(project)
        # what to review: this codemod, with those it counts on running after it
        review = ",".join([self.codemod.name, *sorted(changes.relies_on)])
        for finding in changes.findings:
            yield Finding(finding.path, finding.line, finding.column, self.codemod.name, finding.message,
                          finding.severity, self.id)
        # The rewrites themselves are findings too, at the file where the problem is:
        # files it creates, tests and templates it adapts are consequences, not causes.
        ordered = [c for _, c in sorted(changes.changes.items())]
        edited = [c for c in ordered if not c.created]
        causes = [c for c in edited if c.path.endswith(".py") and not _is_test(c.path)] or edited[:1] or ordered[:1]
        for change in causes:
            line = 1 if change.created else changed_line(project.text(change.path) or "", change.text)
            yield Finding(change.path, line, 0, self.codemod.name,
                          f"fixable by {self.codemod.name}: {change.reason} (review with "
                          f"`flask-refactor diff --codemod {review}`)", self.severity, self.id)


def _is_test(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return "/tests/" in f"/{path}" or name.startswith("test_") or name == "conftest.py"


def changed_line(old: str, new: str) -> int:
    """The first line of `old` that a rewrite changes, preferring code over import lines."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    first = None
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        line = min(i1 + 1, max(len(old_lines), 1))
        first = first or line
        touched = [text.strip() for text in old_lines[i1:i2] + new_lines[j1:j2]]
        if any(text and not text.startswith(("import ", "from ", "#")) for text in touched):
            return line
    return first or 1


# -- loading and selecting ---------------------------------------------------------------

class RuleError(Exception):
    pass


def load_rules(module: str = RULES_MODULE) -> list[Rule]:
    """The rules a module offers through its `rules()` function, checked for clashes."""
    try:
        rules = list(importlib.import_module(module).rules())
    except ImportError as exc:
        raise RuleError(f"cannot load audit rules from {module}: {exc}") from None
    seen: dict[str, Rule] = {}
    for rule in rules:
        for key in (rule.id, rule.name):
            if key in seen and seen[key] is not rule:
                raise RuleError(f"two audit rules use {key!r}: {seen[key].id} and {rule.id}")
            seen[key] = rule
    return sorted(rules, key=lambda r: r.id)


def select_rules(rules: list[Rule], select: Iterable[str] = (), ignore: Iterable[str] = ()) -> list[Rule]:
    """Rules picked by id, id prefix (`FR1`) or name; `select` empty means all."""
    select, ignore = _split(select), _split(ignore)
    for wanted in [*select, *ignore]:
        if not any(_matches(rule, wanted) for rule in rules):
            known = ", ".join(f"{r.id} ({r.name})" for r in rules)
            raise RuleError(f"unknown rule {wanted!r} (known: {known})")
    chosen = [r for r in rules if not select or any(_matches(r, w) for w in select)]
    return [r for r in chosen if not any(_matches(r, w) for w in ignore)]


def _split(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


def _matches(rule: Rule, wanted: str) -> bool:
    return wanted == rule.name or rule.id.upper().startswith(wanted.upper())


# -- running -----------------------------------------------------------------------------

@dataclass
class AuditResult:
    rules: list[Rule]
    findings: list[Finding] = field(default_factory=list)
    errors: ErrorLog = field(default_factory=ErrorLog)
    files_scanned: int = 0
    suppressed: int = 0

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def exit_code(self, fail_on: Severity | None) -> int:
        """2 when something could not be read or a rule crashed; 1 when a finding at or
        above `fail_on` remains (None: never); else 0."""
        if len(self.errors):
            return 2
        if fail_on is not None and any(f.severity.rank >= fail_on.rank for f in self.findings):
            return 1
        return 0


def run(paths: Iterable[str], rules: list[Rule], *, excludes: Iterable[str] = (), cwd: Path | None = None,
        jobs: int | None = None) -> AuditResult:
    found = discover(list(paths), list(excludes), cwd)
    project = Project(found.files, found.errors)
    project.index_cache = default_cache()
    jobs = jobs or pipeline.default_jobs()
    pipeline.use_index_workers(project, jobs)  # the rules ask the index too
    pipeline.use_module_workers(project, jobs)  # and the codemods they run map their modules
    return run_on_project(project, rules)


def run_on_project(project: Project, rules: list[Rule]) -> AuditResult:
    result = AuditResult(rules, errors=project.errors)
    findings: list[Finding] = []
    # each codemod is judged as `--all` would run it: before those after it in `--all` order
    codemods = [rule.codemod for rule in rules if isinstance(rule, CodemodRule)]
    in_order = [codemod.name for codemod in sorted(codemods, key=lambda codemod: (codemod.order, codemod.name))]
    for rule in rules:
        project.later_codemods = tuple(in_order[in_order.index(rule.name) + 1:]) if rule.name in in_order else ()
        try:
            findings.extend(rule.check(project))
        except Exception as exc:  # one rule's bug must not hide the others' findings
            where = forking.where_raised(exc)
            where = f" ({where})" if where else ""
            project.errors.add(f"<{rule.id}>", f"rule {rule.id} ({rule.name}) failed: {type(exc).__name__}: {exc}{where}")
    names = {r.id: r.name for r in rules}
    kept = []
    for finding in dict.fromkeys(findings):  # same finding twice (e.g. two routes to one view): once
        if _ignored(project, finding, names.get(finding.rule, "")):
            result.suppressed += 1
        else:
            kept.append(finding)
    result.findings = sorted(kept, key=lambda f: (f.path, f.line, f.column, f.rule, f.message))
    project.later_codemods = ()
    result.files_scanned = len(project.paths())
    forking.reap_exited()  # none of the rules' workers outlives the audit
    return result


def _ignored(project: Project, finding: Finding, rule_name: str) -> bool:
    if not project.exists(finding.path):
        return False
    lines = (project.text(finding.path) or "").splitlines()
    candidates = []
    if 0 < finding.line <= len(lines):
        candidates.append(lines[finding.line - 1])
    if 1 < finding.line <= len(lines) + 1 and lines[finding.line - 2].lstrip().startswith(("#", "{#")):
        candidates.append(lines[finding.line - 2])
    for line in candidates:
        for match in IGNORE_COMMENT.finditer(line):
            if match.group(1) is None:
                return True
            wanted = {part.strip() for part in re.split(r"[,\s]+", match.group(1)) if part.strip()}
            if finding.rule in wanted or rule_name in wanted:
                return True
    return False


# -- documents ---------------------------------------------------------------------------

def rule_dict(rule: Rule) -> dict[str, Any]:
    return {"id": rule.id, "name": rule.name, "severity": rule.severity.value, "summary": rule.summary,
            "fix": rule.fix, "explain": rule.explain.strip()}


def as_json(result: AuditResult, exit_code: int) -> dict[str, Any]:
    used = sorted({f.rule for f in result.findings})
    return {
        "version": 1,
        "command": "audit",
        "rules": [rule_dict(r) for r in result.rules if r.id in used],
        "findings": [{**f.as_dict(), "name": getattr(result.rule(f.rule), "name", f.rule)} for f in result.findings],
        "errors": [{"path": path, "message": message} for path, message in result.errors],
        "totals": {
            "files_scanned": result.files_scanned,
            "rules_run": len(result.rules),
            "findings": len(result.findings),
            "suppressed": result.suppressed,
            "by_severity": {s.value: sum(1 for f in result.findings if f.severity is s) for s in Severity},
            "errors": len(result.errors),
        },
        "exit_code": exit_code,
    }
