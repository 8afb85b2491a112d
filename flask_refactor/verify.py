"""Applying codemods one step at a time, checked by the project's own test command.

The command runs once before the first write (the baseline; not at all when no codemod
changes anything), then after each codemod that changed something. A step that turns a
passing baseline into a failure is undone: exactly the files it wrote get their previous
bytes back and the files it created are removed. Later codemods then run on the tree as
it is, so one bad step never costs the others. A failing baseline proves nothing about
the codemods: it is reported and the steps are applied unverified.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from . import pipeline
from .codemod import Codemod, Finding, Severity
from .writer import PendingWrite, write_all

DEFAULT_TIMEOUT = 600.0
TAIL_LINES = 40


@dataclass
class CommandRun:
    command: str
    returncode: int | None  # None when it timed out or could not start
    duration: float
    tail: str  # the last lines of its combined output
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return f"timed out after {self.duration:.0f}s"
        if self.returncode is None:
            return "could not start"
        return f"{'passed' if self.passed else f'failed (exit {self.returncode})'} in {self.duration:.1f}s"

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "passed": self.passed, "returncode": self.returncode,
                "timed_out": self.timed_out, "duration": round(self.duration, 2), "tail": self.tail}


def run_command(command: str, cwd: Path, timeout: float = DEFAULT_TIMEOUT) -> CommandRun:
    """Run a shell command in its own process group; on timeout the whole group is killed."""
    started = time.monotonic()
    try:
        process = subprocess.Popen(command, shell=True, cwd=cwd, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        return CommandRun(command, None, 0.0, f"cannot run: {exc}")
    try:
        output, _ = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(process)
        output, _ = process.communicate()
        timed_out = True
    except BaseException:  # Ctrl-C: its own session did not get the signal, so end it here
        _kill_group(process)
        process.wait()
        raise
    duration = time.monotonic() - started
    return CommandRun(command, None if timed_out else process.returncode, duration, _tail(output), timed_out)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(output: bytes, lines: int = TAIL_LINES) -> str:
    text = output.decode("utf-8", "replace").rstrip()
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Step:
    """One codemod applied on its own."""

    codemod: str
    summary: str
    result: pipeline.RunResult
    written: list[str] = field(default_factory=list)  # display paths
    created: list[str] = field(default_factory=list)
    verify: CommandRun | None = None
    rolled_back: bool = False
    made_dirs: list[Path] = field(default_factory=list)  # directories its new files needed

    @property
    def findings(self) -> list[Finding]:
        return self.result.findings

    @property
    def kept(self) -> list[str]:
        return [] if self.rolled_back else self.written

    def as_dict(self) -> dict[str, Any]:
        return {
            "codemod": self.codemod,
            "files": self.written,
            "created": self.created,
            "rolled_back": self.rolled_back,
            "verify": self.verify.as_dict() if self.verify else None,
            "findings": [f.as_dict() for f in self.findings],
            "errors": [{"path": path, "message": message} for path, message in self.result.errors],
        }


@dataclass
class Steps:
    command: str | None
    baseline: CommandRun | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def verifying(self) -> bool:
        return self.baseline is not None and self.baseline.passed

    @property
    def rolled_back(self) -> list[Step]:
        return [s for s in self.steps if s.rolled_back]

    @property
    def findings(self) -> list[Finding]:
        return [f for s in self.steps for f in s.findings]

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "baseline": self.baseline.as_dict() if self.baseline else None,
                "verified": self.verifying, "steps": [s.as_dict() for s in self.steps]}


StepHook = Callable[[Step], None]


def apply_in_steps(
    paths: list[str],
    codemods: list[Codemod],
    *,
    command: str | None,
    timeout: float = DEFAULT_TIMEOUT,
    cwd: Path | None = None,
    excludes: Iterable[str] = (),
    jobs: int | None = None,
    on_baseline: Callable[[CommandRun], None] | None = None,
    before_step: Callable[[Codemod], None] | None = None,
    choose: Callable[[Codemod, pipeline.RunResult], bool] | None = None,
    after_step: StepHook | None = None,
) -> Steps:
    """Apply each codemod as its own step, verifying each with `command` when given.

    `choose` may drop outcomes from a step before it is written (interactive review) and
    returns False to stop after that step. `after_step` sees every step once its fate is
    settled (kept or rolled back): batch commits the kept ones there. Paths are relative to the current directory, as in
    `pipeline.run`; `cwd` is where the command runs (default: the current directory).
    """
    cwd = cwd or Path.cwd()
    outcome = Steps(command)
    for number, codemod in enumerate(codemods, 1):
        if before_step:
            before_step(codemod)
        result = pipeline.run(paths, [codemod], excludes=excludes, jobs=jobs,
                              then=[later.name for later in codemods[number:]])
        step = Step(codemod.name, codemod.summary, result)
        outcome.steps.append(step)
        go_on = choose(codemod, result) if choose and result.outcomes else True
        if result.outcomes:
            if command and outcome.baseline is None:  # lazily: a run that changes nothing needs none
                outcome.baseline = run_command(command, cwd, timeout)
                if on_baseline:
                    on_baseline(outcome.baseline)
            _apply_step(step)
            if outcome.verifying and step.written:
                try:
                    step.verify = run_command(command, cwd, timeout)
                except KeyboardInterrupt:
                    rollback(step)  # never leave an unverified step behind
                    raise
                if not step.verify.passed:
                    failures = rollback(step)
                    for path, message in failures.items():
                        result.errors.add(path, f"rollback failed: {message}")
                    _report_broken_reliance(outcome.steps, step)
        if after_step:
            after_step(step)
        if not go_on:
            break
    return outcome


def _report_broken_reliance(steps: list[Step], undone: Step) -> None:
    """An earlier step, kept, whose changes count on the codemod of a step just rolled
    back (`ChangeSet.relies_on`) is not right without it: say so, as an error finding."""
    for earlier in steps:
        relied = undone.codemod in earlier.result.relies_on.get(earlier.codemod, ())
        if earlier.kept and relied:  # (the undone step itself kept nothing)
            undone.result.findings.append(Finding(
                earlier.kept[0], 1, 0, earlier.codemod,
                f"{earlier.codemod}'s changes, kept, count on {undone.codemod}, just rolled back: they are not right "
                f"without it (fix what broke the command, then apply {undone.codemod}; or undo {earlier.codemod})",
                Severity.ERROR))


def _apply_step(step: Step) -> None:
    for outcome in step.result.outcomes:
        if outcome.created:
            parent = Path(outcome.path).resolve().parent
            missing = [d for d in [parent, *parent.parents] if not d.exists()]
            step.made_dirs.extend(d for d in missing if d not in step.made_dirs)
    pipeline.apply(step.result)
    step.written = list(step.result.written)
    created = {o.path for o in step.result.outcomes if o.created}
    step.created = [p for p in step.written if p in created]


def rollback(step: Step) -> dict[str, str]:
    """Give back exactly the files a step wrote: old bytes restored, created files removed."""
    project = step.result.project
    restore, failures = [], {}
    for path in step.written:
        file = project.file(path)
        if file.created:
            target = Path(path).resolve()
            try:
                target.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                failures[path] = f"cannot remove: {exc.strerror or exc}"
            continue
        restore.append(PendingWrite(path, file.real, file.data, created=False))
    failures.update(write_all(restore))
    for directory in sorted(step.made_dirs, key=lambda d: len(d.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only if empty: never anything the step did not make
    step.rolled_back = True
    return failures
