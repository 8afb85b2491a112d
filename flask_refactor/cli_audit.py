"""`flask-refactor audit`: report what the codemods cannot fix, linter style.

Exit codes: 0 clean (nothing at or above --fail-on), 1 findings at or above --fail-on,
2 usage, configuration or input errors (a file that cannot be parsed, a rule that crashed).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from . import audit, config, registry, report, sarif
from .cli import EXIT_ERROR, fail, main
from .codemod import Severity

FAIL_ON = ("info", "warning", "error", "never")
AUDIT_KEYS = {"select", "ignore", "fail-on"}


@main.command("audit")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True)
@click.option("--select", multiple=True, metavar="ID",
              help="Only these rules: id (FR101), id prefix (FR1) or name; repeatable or comma-separated "
                   "(replaces `select` from pyproject.toml).")
@click.option("--ignore", multiple=True, metavar="ID", help="Leave these rules out (same forms as --select).")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default=None,
              help="Exit 1 when a finding of this severity or worse remains [default: warning].")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip paths matching this gitignore-style pattern.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes for the codemods the rules run [default: `jobs` from pyproject.toml, "
                   "else the machine's cores].")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to this file instead of stdout.")
@click.option("--list-rules", is_flag=True, help="List the rules and exit.")
@click.option("--explain", "explain_rule", metavar="ID", default=None, help="Explain one rule and exit.")
@click.option("--no-color", is_flag=True, help="No colour (NO_COLOR is honoured too).")
def audit_command(paths: tuple[str, ...], fmt: str, select: tuple[str, ...], ignore: tuple[str, ...],
                  fail_on: str | None, exclude: tuple[str, ...], jobs: int | None, output: Path | None,
                  list_rules: bool, explain_rule: str | None, no_color: bool) -> None:
    """Report production pitfalls (debug mode, secret keys, writes on GET, blocking calls,
    removed APIs, ...) and what each codemod would fix, with file:line.

    Silence one finding with `# flask-refactor: ignore[FR101]` on its line. Defaults for
    --select, --ignore and --fail-on come from [tool.flask-refactor] in pyproject.toml.
    """
    paths = paths or (".",)
    try:
        known = registry.all_codemods()
        settings = config.load(Path(paths[0]), set(known), extra_keys=AUDIT_KEYS)
        all_rules = audit.load_rules()
        if list_rules or explain_rule:
            raise click.exceptions.Exit(_describe(all_rules, explain_rule))
        # like ruff: --select replaces the configured selection, --ignore adds to it
        rules = audit.select_rules(all_rules, list(select) or _as_list(settings.extra.get("select")),
                                   [*_as_list(settings.extra.get("ignore")), *ignore])
    except (registry.RegistryError, config.ConfigError, audit.RuleError) as exc:
        fail(str(exc))
    for rule in rules:
        if isinstance(rule, audit.CodemodRule):
            rule.options = settings.codemod_options.get(rule.name, {})
    threshold = _threshold(fail_on or settings.extra.get("fail-on", "warning"))
    result = audit.run(paths, rules, excludes=[*settings.exclude, *exclude], jobs=jobs or settings.jobs)
    code = result.exit_code(threshold)
    out, err = report.consoles(no_color)
    if output is not None:
        try:
            out = Console(file=output.open("w", encoding="utf-8"), no_color=True, highlight=False, width=120)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
    if fmt == "json":
        out.file.write(json.dumps(audit.as_json(result, code), indent=2) + "\n")
    elif fmt == "sarif":
        out.file.write(json.dumps(sarif.document(result, _repository_root()), indent=2) + "\n")
    else:
        print_text(result, out)
    if fmt != "text" or output is not None:
        _print_errors(result, err)
    if output is not None:
        out.file.close()
    raise click.exceptions.Exit(code)


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    fail(f"[tool.flask-refactor] select/ignore: expected a list of rule ids or names, got {value!r}")


def _threshold(value) -> Severity | None:
    if value not in FAIL_ON:
        fail(f"[tool.flask-refactor] fail-on: expected one of {', '.join(FAIL_ON)}, got {value!r}")
    return None if value == "never" else Severity(value)


def _repository_root() -> Path:
    cwd = Path.cwd().resolve()
    return next((d for d in [cwd, *cwd.parents] if (d / ".git").exists()), cwd)


def _describe(rules: list[audit.Rule], wanted: str | None) -> int:
    if wanted is None:
        for rule in rules:
            fix = f" (fix: {rule.fix})" if rule.fix else ""
            click.echo(f"{rule.id}  {rule.name:<28} {rule.severity.value:<8} {rule.summary}{fix}")
        return 0
    matches = [r for r in rules if wanted in (r.id, r.name)]
    if not matches:
        fail(f"unknown rule {wanted!r} (see `flask-refactor audit --list-rules`)")
    rule = matches[0]
    click.echo(f"{rule.id} {rule.name} ({rule.severity.value}): {rule.summary}")
    if rule.fix:
        click.echo(f"Fix: flask-refactor apply --codemod {rule.fix}")
    click.echo("")
    click.echo(rule.explain.rstrip())
    return 0


def print_text(result: audit.AuditResult, out: Console) -> None:
    """Findings grouped by file, most severe first within a line; errors; a summary."""
    by_file: dict[str, list] = defaultdict(list)
    for finding in result.findings:
        by_file[finding.path].append(finding)
    for path, findings in by_file.items():
        out.print(Text(path, style="bold underline"), soft_wrap=True)
        for finding in findings:
            rule = result.rule(finding.rule)
            line = Text("  ")
            line.append(f"{finding.line}:{finding.column + 1}".ljust(8), style="dim")
            line.append(finding.severity.value.ljust(8), style=report.SEVERITY_STYLE[finding.severity])
            line.append(finding.rule, style="bold")
            line.append(f" {rule.name if rule else ''}".rstrip() + "  ")
            line.append(finding.message)
            out.print(line, soft_wrap=True)
        out.print("")
    _print_errors(result, out)
    counts = {s: sum(1 for f in result.findings if f.severity is s) for s in Severity}
    parts = [f"{len(result.findings)} finding{'s' * (len(result.findings) != 1)}"]
    detail = ", ".join(f"{n} {s.value}" for s, n in reversed(counts.items()) if n)
    if detail:
        parts[0] += f" ({detail})"
    if result.suppressed:
        parts.append(f"{result.suppressed} silenced by ignore comments")
    if len(result.errors):
        parts.append(f"{len(result.errors)} error{'s' * (len(result.errors) != 1)}")
    out.print(f"{'; '.join(parts)} ({result.files_scanned} Python files, {len(result.rules)} rule{'s' * (len(result.rules) != 1)})",
              soft_wrap=True, markup=False, highlight=False)


def _print_errors(result: audit.AuditResult, console: Console) -> None:
    for path, message in result.errors:
        text = Text()
        text.append(f"{path}: ", style="bold")
        text.append("error: ", style="bold red")
        text.append(message)
        console.print(text, soft_wrap=True)


__all__ = ["audit_command", "EXIT_ERROR"]
