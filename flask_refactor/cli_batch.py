"""`flask-refactor batch`: migrate many repositories, one branch and one commit per codemod each.

Exit codes: 0 every repository migrated, unchanged or already done; 1 something needs a
human (a step rolled back, findings, an unverified change); 2 a repository was refused
or failed, or the arguments are wrong.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from . import batch, report as _report
from .cli import EXIT_ERROR, EXIT_OK, EXIT_PENDING, _codemods_or_fail, fail, main
from .codemod import Severity
from .pipeline import default_jobs
from .verify import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from rich.table import Table
# rich's live display and tables are imported where a batch draws them: importing them
# with this module (which `cli` loads for every command) took 9 ms of each run's start.

STATE_STYLE = {batch.MIGRATED: "green", batch.PARTIAL: "yellow", batch.UNCHANGED: "blue",
               batch.SKIPPED: "dim", batch.REFUSED: "red", batch.FAILED: "bold red"}


@main.command("batch")
@click.argument("targets", nargs=-1, required=True, metavar="MANIFEST|DIR...")
@click.option("--codemod", "-c", "codemods", multiple=True, metavar="NAME",
              help="Codemod to run (repeatable, or comma-separated).")
@click.option("--all", "all_codemods", is_flag=True, help="Run every codemod, in their sensible order.")
@click.option("--branch", default=batch.DEFAULT_BRANCH, show_default=True,
              help="Branch to create (or resume) in each repository.")
@click.option("--commit", is_flag=True,
              help="Commit each codemod's changes separately (else they stay uncommitted on the branch).")
@click.option("--verify", "verify_command", metavar="CMD",
              help="Test command, run in each repository before and after each codemod; a codemod that breaks it "
                   "is rolled back. A manifest entry's own command wins.")
@click.option("--verify-timeout", type=click.FloatRange(min=1), default=DEFAULT_TIMEOUT, show_default=True,
              metavar="SECONDS", help="Give up on a verify run after this long (counts as a failure).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Repositories migrated at once [default: the machine's cores].")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a JSON report here (per repository: codemods, files, findings, verify results, commits).")
@click.option("--no-color", is_flag=True, help="No colour (NO_COLOR is honoured too).")
def batch_command(targets, codemods, all_codemods, branch, commit, verify_command, verify_timeout, jobs,
                  report_path, no_color) -> None:
    """Migrate many repositories: a manifest (TOML `[[repo]] path=..., verify=...`, or one path
    per line with an optional `| verify command`) or directories of git checkouts.

    Each repository: a dirty tree is refused, the branch is created (or resumed), each codemod is
    applied, verified and committed on its own, and a pull-request description is written to
    `.git/flask-refactor/BRANCH.md`. A rerun skips repositories already done on their branch.
    """
    names = _selection(codemods, all_codemods)
    if _git_branch_invalid(branch):
        fail(f"--branch {branch!r} is not a valid branch name")
    try:
        specs = batch.targets(list(targets))
    except batch.BatchError as exc:
        fail(str(exc))
    if not specs:
        fail("no repositories to migrate")
    options = batch.BatchOptions(tuple(names), branch, commit, verify_command, verify_timeout)
    out, err = _report.consoles(no_color)
    reports = _run(specs, options, jobs or default_jobs(), err)
    if report_path is not None:
        try:
            report_path.write_text(json.dumps(batch.report_document(reports, options), indent=2) + "\n",
                                   encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write the report {report_path}: {exc.strerror or exc}")
    _summary(reports, out)
    raise click.exceptions.Exit(_exit_code(reports))


def _selection(codemods: tuple[str, ...], all_codemods: bool) -> list[str]:
    known = _codemods_or_fail()
    names = [n.strip() for raw in codemods for n in raw.split(",") if n.strip()]
    if all_codemods and names:
        fail("pass either --codemod or --all, not both")
    if all_codemods:
        return list(known)
    if not names:
        fail("no codemod selected: pass --codemod NAME (see `flask-refactor list`) or --all")
    for name in names:
        if name not in known:
            fail(f"unknown codemod {name!r} (known: {', '.join(known)})")
    return sorted(dict.fromkeys(names), key=list(known).index)


def _git_branch_invalid(branch: str) -> bool:
    try:
        completed = subprocess.run(["git", "check-ref-format", "--branch", branch], capture_output=True)
    except OSError:
        fail("git is not installed: batch needs it")
    return completed.returncode != 0


def _run(specs: list[batch.RepoSpec], options: batch.BatchOptions, jobs: int, err: Console) -> list[dict]:
    states = {spec.name: ("queued", "") for spec in specs}
    if not err.is_terminal:
        def plain(name: str, state: str, detail: str) -> None:
            states[name] = (state, detail)
            err.print(f"{name}: {state}{f' ({detail})' if detail else ''}", soft_wrap=True, markup=False,
                      highlight=False)

        return batch.run_all(specs, options, jobs, plain)
    from rich.live import Live

    with Live(_table(states), console=err, refresh_per_second=8, transient=True) as live:
        def update(name: str, state: str, detail: str) -> None:
            states[name] = (state, detail)
            live.update(_table(states), refresh=True)  # every state is seen, however brief

        return batch.run_all(specs, options, jobs, update)


def _table(states: dict[str, tuple[str, str]]) -> Table:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("repository", style="bold")
    table.add_column("state")
    table.add_column("detail", overflow="fold")
    for name, (state, detail) in states.items():
        table.add_row(name, f"[{STATE_STYLE.get(state, 'cyan')}]{state}[/]", detail)
    return table


def _summary(reports: list[dict], out: Console) -> None:
    if out.is_terminal:
        from rich.table import Table

        table = Table(title="flask-refactor batch", title_justify="left")
        for column in ("repository", "result", "codemods applied", "files", "findings", "verify", "detail"):
            table.add_column(column, overflow="fold")
        for report in reports:
            table.add_row(report["name"], f"[{STATE_STYLE.get(report['status'], '')}]{report['status']}[/]",
                          ", ".join(report.get("codemods_applied") or []) or "-",
                          str(len(report.get("files_changed") or [])), str(len(report.get("findings") or [])),
                          _verify_cell(report), report.get("detail", ""))
        out.print(table)
    else:
        for report in reports:
            out.print(f"{report['name']}: {report['status']}: {report.get('detail', '')}", soft_wrap=True,
                      markup=False, highlight=False)
    for report in reports:
        if report.get("pr_description") and report["status"] != batch.SKIPPED:
            out.print(f"{report['name']}: pull-request description in {report['pr_description']}", soft_wrap=True,
                      markup=False, highlight=False)
    counts: dict[str, int] = {}
    for report in reports:
        counts[report["status"]] = counts.get(report["status"], 0) + 1
    out.print(f"{len(reports)} repositor{'y' if len(reports) == 1 else 'ies'}: "
              + ", ".join(f"{n} {state}" for state, n in counts.items()), markup=False, highlight=False)


def _verify_cell(report: dict) -> str:
    info = report.get("verify")
    if not info:
        return "-"
    if not info["verified"]:
        return "baseline failing"
    broken = [s["codemod"] for s in info["steps"] if s["rolled_back"]]
    return f"broken by {', '.join(broken)}" if broken else "passed"


def _exit_code(reports: list[dict]) -> int:
    if any(r["status"] in (batch.REFUSED, batch.FAILED) for r in reports):
        return EXIT_ERROR
    for r in reports:
        if r["status"] == batch.SKIPPED:
            continue  # reported by the run that did it
        if r["status"] == batch.PARTIAL or r.get("errors"):
            return EXIT_PENDING
        if any(f["severity"] != Severity.INFO.value for f in r.get("findings") or []):
            return EXIT_PENDING
        if r.get("verify") and not r["verify"]["verified"]:
            return EXIT_PENDING
    return EXIT_OK
