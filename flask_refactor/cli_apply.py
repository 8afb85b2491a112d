"""The two step-by-step ways of `apply`: `--interactive` (review each change) and
`--verify CMD` (each codemod checked by the project's tests, rolled back if it breaks them).
Kept apart from cli.py so the plain `apply` path stays as it is."""

from __future__ import annotations

import json
import sys

import click
from rich.text import Text

from . import pipeline, report, review, verify
from .cli import EXIT_ERROR, EXIT_OK, EXIT_PENDING, RunOptions, _dirty, _exit_code, fail, prepare
from .codemod import Severity

EXIT_INTERRUPTED = 130


def _refuse_dirty(result: pipeline.RunResult) -> None:
    dirty = _dirty(result)
    if dirty:
        names = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        fail(f"uncommitted changes in {names}: commit or stash them first (git is your undo), or pass --allow-dirty")


# -- apply --interactive -------------------------------------------------------------

def _need_terminal(opts: RunOptions) -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        fail("--interactive needs a terminal (stdin and stdout); review with `diff`, then run `apply`")
    if opts.fmt == "json":
        fail("--interactive shows changes to a person: it cannot be combined with --format json")


def run_interactive(opts: RunOptions, allow_dirty: bool) -> int:
    _need_terminal(opts)
    paths, codemods, settings = prepare(opts)
    excludes, jobs = [*settings.exclude, *opts.exclude], opts.jobs or settings.jobs
    if not allow_dirty:  # refuse before the user spends time reviewing, not after
        _refuse_dirty(pipeline.run(paths, codemods, excludes=excludes, jobs=jobs))
    out, err = report.consoles(opts.no_color)
    try:
        outcome = review.review(paths, codemods, review.TerminalAsk(out), excludes=excludes, jobs=jobs)
    except KeyboardInterrupt:
        err.print("interrupted: nothing written", markup=False)
        return EXIT_INTERRUPTED
    result = outcome.result
    applied = False
    if result.outcomes:
        if not allow_dirty:
            _refuse_dirty(result)
        pipeline.apply(result)
        applied = True
    report.print_findings_and_errors(result, err)
    decided = len(outcome.accepted) + len(outcome.rejected)
    err.print(f"{len(outcome.accepted)} of {decided} change{'s' * (decided != 1)} accepted"
              + ("; stopped with q, the rest was not applied" if outcome.quit else ""), markup=False)
    err.print(report.summary_line(result, applied), soft_wrap=True, markup=False)
    return _exit_code(result, pending=False)


# -- apply --verify ------------------------------------------------------------------

def run_verified(opts: RunOptions, allow_dirty: bool, command: str, timeout: float, interactive: bool = False) -> int:
    """Each codemod a step: (reviewed, with --interactive,) written, verified, kept or rolled back."""
    if interactive:
        _need_terminal(opts)
    paths, codemods, settings = prepare(opts)
    excludes = [*settings.exclude, *opts.exclude]
    jobs = opts.jobs or settings.jobs
    out, err = report.consoles(opts.no_color)
    text = opts.fmt == "text"
    if not allow_dirty:
        # The whole chain once, written nowhere: the same files `apply` would refuse.
        _refuse_dirty(pipeline.run(paths, codemods, excludes=excludes, jobs=jobs))
    chooser = review.StepChooser(review.TerminalAsk(out)) if interactive else None
    try:
        steps = verify.apply_in_steps(
            paths, codemods, command=command, timeout=timeout, excludes=excludes, jobs=jobs,
            on_baseline=(lambda run: _show_baseline(run, err)) if text else None,
            choose=chooser, after_step=(lambda step: _show_step(step, err)) if text else None,
        )
    except KeyboardInterrupt:
        err.print("interrupted: the steps already verified stay written; the one under way was undone",
                  markup=False)
        return EXIT_INTERRUPTED
    code = _steps_exit_code(steps)
    if not text:
        click.echo(json.dumps({"version": report.JSON_SCHEMA_VERSION, "command": "apply",
                               "codemods": [c.name for c in codemods], "verify": steps.as_dict(),
                               "files": sorted({p for s in steps.steps for p in s.kept}), "exit_code": code},
                              indent=2))
        return code
    kept = sorted({p for s in steps.steps for p in s.kept})
    undone = [s.codemod for s in steps.rolled_back]
    findings = len(steps.findings)
    summary = f"{len(kept)} file{'s' * (len(kept) != 1)} changed, {findings} finding{'s' * (findings != 1)}"
    if undone:
        summary += f"; rolled back: {', '.join(undone)}"
    if steps.baseline is not None and not steps.verifying:
        summary += "; NOT verified (the baseline was failing)"
    err.print(f"{summary} (codemods: {', '.join(c.name for c in codemods)})", soft_wrap=True, markup=False)
    return code


def _show_baseline(run: verify.CommandRun, err) -> None:
    if run.passed:
        err.print(f"baseline: `{run.command}` {run.describe()}", soft_wrap=True, markup=False)
        return
    err.print(Text(f"baseline: `{run.command}` {run.describe()}: verification skipped, "
                   "the codemods are applied unverified", style="yellow"), soft_wrap=True)
    _show_tail(run, err)


def _show_step(step: verify.Step, err) -> None:
    report.print_findings_and_errors(step.result, err)
    if not step.written:
        err.print(f"{step.codemod}: nothing written", markup=False)
        return
    files = ", ".join(step.written)
    if step.rolled_back:
        err.print(Text(f"{step.codemod}: `{step.verify.command}` {step.verify.describe()} after it: "
                       f"rolled back {files}", style="bold red"), soft_wrap=True)
        _show_tail(step.verify, err)
    elif step.verify:
        err.print(f"{step.codemod}: changed {files}; `{step.verify.command}` {step.verify.describe()}",
                  soft_wrap=True, markup=False)
    else:
        err.print(f"{step.codemod}: changed {files} (not verified)", soft_wrap=True, markup=False)


def _show_tail(run: verify.CommandRun, err) -> None:
    for line in run.tail.splitlines():
        err.print(Text(f"    {line}", style="dim"), soft_wrap=True)


def _steps_exit_code(steps: verify.Steps) -> int:
    if any(len(s.result.errors) for s in steps.steps):
        return EXIT_ERROR
    if steps.rolled_back or (steps.baseline is not None and not steps.verifying):
        return EXIT_PENDING
    if any(f.severity.rank >= Severity.WARNING.rank for f in steps.findings):
        return EXIT_PENDING
    return EXIT_OK
