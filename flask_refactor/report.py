"""Showing a run to the user: diffs on stdout (plain bytes when piped, so `git apply`
reproduces exactly what `apply` writes), findings, errors and a summary on stderr, or
one JSON document on stdout with `--format json`."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from .codemod import Severity
from .pipeline import RunResult

JSON_SCHEMA_VERSION = 1
SEVERITY_STYLE = {Severity.INFO: "blue", Severity.WARNING: "yellow", Severity.ERROR: "red"}


def consoles(no_color: bool) -> tuple[Console, Console]:
    """(stdout, stderr) consoles. Rich disables colour off a TTY and honours NO_COLOR."""
    kwargs: dict[str, Any] = {"no_color": True} if no_color else {}
    return Console(highlight=False, **kwargs), Console(stderr=True, highlight=False, **kwargs)


def print_diffs(result: RunResult, out: Console) -> None:
    if not out.is_terminal or out.no_color:
        # Bytes in each file's own encoding: the patch then applies to the file as it is.
        for outcome in result.outcomes:
            encoding = result.project.file(outcome.path).encoding
            sys.stdout.buffer.write(outcome.diff.encode(encoding.name, "surrogateescape"))
        sys.stdout.buffer.flush()
        return
    for outcome in result.outcomes:
        for line in outcome.diff.splitlines():
            style = ("bold" if line.startswith(("diff --git", "---", "+++", "new file"))
                     else "cyan" if line.startswith("@@")
                     else "green" if line.startswith("+")
                     else "red" if line.startswith("-") else "")
            out.print(Text(line, style=style), soft_wrap=True)


def print_findings_and_errors(result: RunResult, err: Console) -> None:
    for finding in result.findings:
        text = Text()
        text.append(f"{finding.path}:{finding.line}:{finding.column + 1}: ", style="bold")
        text.append(f"{finding.severity.value}", style=SEVERITY_STYLE[finding.severity])
        text.append(f" [{finding.codemod}] {finding.message}")
        err.print(text, soft_wrap=True)
    for path, message in result.errors:
        text = Text()
        text.append(f"{path}: ", style="bold")
        text.append("error: ", style="bold red")
        text.append(message)
        err.print(text, soft_wrap=True)


def summary_line(result: RunResult, dry_run: bool) -> str:
    modified = sum(1 for o in result.outcomes if not o.created)
    created = sum(1 for o in result.outcomes if o.created)
    if not dry_run:  # what was written, not what was planned
        modified = sum(1 for o in result.outcomes if not o.created and o.path in result.written)
        created = sum(1 for o in result.outcomes if o.created and o.path in result.written)
    verb = "would be changed" if dry_run else "changed"
    parts = [f"{modified} file{'s' * (modified != 1)} {verb}"]
    if created:
        parts.append(f"{created} {'would be created' if dry_run else 'created'}")
    parts.append(f"{len(result.findings)} finding{'s' * (len(result.findings) != 1)}")
    if len(result.errors):
        parts.append(f"{len(result.errors)} error{'s' * (len(result.errors) != 1)}")
    return f"{', '.join(parts)} ({result.files_scanned} Python files scanned; codemods: {', '.join(result.codemods)})"


def as_json(result: RunResult, command: str, applied: bool, exit_code: int) -> str:
    written = set(result.written)
    document = {
        "version": JSON_SCHEMA_VERSION,
        "command": command,
        "codemods": result.codemods,
        "applied": applied,
        "files": [
            {
                "path": o.path,
                "status": "created" if o.created else "modified",
                "codemods": o.codemods,
                "reasons": o.reasons,
                "written": o.path in written,
                "diff": o.diff,
            }
            for o in result.outcomes
        ],
        "findings": [f.as_dict() for f in result.findings],
        "errors": [{"path": path, "message": message} for path, message in result.errors],
        "totals": {
            "files_scanned": result.files_scanned,
            "files_changed": sum(1 for o in result.outcomes if not o.created),
            "files_created": sum(1 for o in result.outcomes if o.created),
            "findings": len(result.findings),
            "errors": len(result.errors),
        },
        "exit_code": exit_code,
    }
    return json.dumps(document, indent=2)
