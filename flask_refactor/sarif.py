"""SARIF 2.1.0 for code scanning (GitHub and others): one run, the rules with their help
text, one result per finding with a region.

Paths are made relative to `root` (the repository root, where code scanning resolves
them) and marked with `uriBaseId` `%SRCROOT%`. Columns are 1-based in SARIF.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Any

from . import __version__
from .audit import AuditResult, Rule
from .codemod import Finding, Severity

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://pypi.org/project/flask-refactor/"
LEVELS = {Severity.INFO: "note", Severity.WARNING: "warning", Severity.ERROR: "error"}
# GitHub orders alerts by `security-severity` only for security rules; `problem.severity`
# (error / warning / recommendation) is its plain severity.
PROBLEM_SEVERITY = {Severity.INFO: "recommendation", Severity.WARNING: "warning", Severity.ERROR: "error"}


def document(result: AuditResult, root: Path | None = None) -> dict[str, Any]:
    root = (root or Path.cwd()).resolve()
    rules = sorted(result.rules, key=lambda r: r.id)
    index = {rule.id: i for i, rule in enumerate(rules)}
    run: dict[str, Any] = {
        "tool": {"driver": {
            "name": "flask-refactor",
            "version": __version__,
            "semanticVersion": __version__,
            "informationUri": INFORMATION_URI,
            "rules": [_rule(rule) for rule in rules],
        }},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": root.as_uri() + "/"}},
        "results": [_result(f, index, root) for f in result.findings if f.rule in index],
        "columnKind": "unicodeCodePoints",
    }
    if len(result.errors):
        run["invocations"] = [{
            "executionSuccessful": False,
            "toolExecutionNotifications": [
                {"level": "error", "message": {"text": f"{path}: {message}"}} for path, message in result.errors
            ],
        }]
    else:
        run["invocations"] = [{"executionSuccessful": True}]
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _rule(rule: Rule) -> dict[str, Any]:
    explain = rule.explain.strip()
    fix = f"\n\nFix: `flask-refactor apply --codemod {rule.fix}`." if rule.fix else ""
    return {
        "id": rule.id,
        "name": _pascal(rule.name),
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": explain.split("\n\n")[0].replace("\n", " ")},
        "help": {"text": explain + fix, "markdown": explain + fix},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {"tags": ["flask", "maintainability"], "problem.severity": PROBLEM_SEVERITY[rule.severity]},
    }


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-") if part)


def _result(finding: Finding, index: dict[str, int], root: Path) -> dict[str, Any]:
    uri = _relative_uri(finding.path, root)
    artifact = {"uri": uri} if uri.startswith("file:") else {"uri": uri, "uriBaseId": "%SRCROOT%"}
    return {
        "ruleId": finding.rule,
        "ruleIndex": index[finding.rule],
        "level": LEVELS[finding.severity],
        "message": {"text": finding.message},
        "locations": [{"physicalLocation": {
            "artifactLocation": artifact,
            "region": {"startLine": max(1, finding.line), "startColumn": finding.column + 1},
        }}],
        # stable across runs while the message stays: lets code scanning track an alert
        "partialFingerprints": {"flaskRefactor/v1": hashlib.sha256(
            f"{finding.rule}\0{uri}\0{finding.message}".encode()).hexdigest()[:32]},
    }


def _relative_uri(path: str, root: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(root)
    except ValueError:
        return absolute.as_uri()
    return "/".join(PurePosixPath(relative.as_posix()).parts)
