"""Interactive review (`apply --interactive`): every change shown and decided on its own.

The codemods run one at a time on the project in memory, each on the state the user has
accepted so far, so a rejected change never leaves a later codemod building on it. A
change is one file of one codemod, or, for a change set marked `unit`, all of its files
at once (they only make sense together). Nothing is written until the review ends; then
the accepted state goes through the same validation and atomic writes as `apply`.

Keys, as in `git add -p`: y accept, n reject, a accept this and the rest of this file,
d reject this and the rest of this file, A accept this and the rest of this codemod,
q reject this and everything after it (what was accepted is still written; later
codemods are not run), ? help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from . import pipeline
from .codemod import Codemod, Finding
from .diffs import unified_diff
from .discovery import discover
from .index import default_cache
from .project import Project

KEYS = "y,n,a,d,A,q,?"
HELP = """\
y - accept this change
n - reject this change
a - accept this change and every later change to this file
d - reject this change and every later change to this file
A - accept this change and every later change of this codemod
q - quit: reject this change and all the rest (what you accepted is still written)
? - print help"""


@dataclass
class Change:
    """One decision: a file of a codemod, or every file of a unit change set."""

    codemod: str
    summary: str
    paths: list[str]
    reasons: list[str]
    diff: str
    unit: bool
    index: int = 0  # 1-based position within its codemod
    total: int = 0  # changes of its codemod
    relies_on: tuple[str, ...] = ()  # codemods reviewed after it that it counts on (`ChangeSet.relies_on`)


Ask = Callable[[Change], str]  # shows a change, returns one of the keys


@dataclass
class Review:
    result: pipeline.RunResult  # accepted state only: ready for `pipeline.apply`
    accepted: list[Change] = field(default_factory=list)
    rejected: list[Change] = field(default_factory=list)
    quit: bool = False


class _Decisions:
    """The standing answers (a, d, A, q) that decide later changes without asking."""

    def __init__(self) -> None:
        self.accept_files: set[str] = set()
        self.reject_files: set[str] = set()
        self.accept_codemods: set[str] = set()
        self.quit = False

    def standing(self, change: Change) -> bool | None:
        if self.quit:
            return False
        if change.codemod in self.accept_codemods:
            return True
        if all(p in self.accept_files for p in change.paths):
            return True
        if any(p in self.reject_files for p in change.paths):
            return False
        return None

    def record(self, change: Change, key: str) -> bool:
        if key == "a":
            self.accept_files.update(change.paths)
        elif key == "d":
            self.reject_files.update(change.paths)
        elif key == "A":
            self.accept_codemods.add(change.codemod)
        elif key == "q":
            self.quit = True
        return key in ("y", "a", "A")


def review(paths: Iterable[str], codemods: list[Codemod], ask: Ask, *, excludes: Iterable[str] = (),
           jobs: int | None = None) -> Review:
    """Run the codemods one by one, asking about each change; returns the accepted state."""
    found = discover(list(paths), list(excludes))
    project = Project(found.files, found.errors)
    project.index_cache = default_cache()
    decisions = _Decisions()
    outcome = Review(pipeline.RunResult([c.name for c in codemods], errors=project.errors, project=project))
    touched: dict[str, list[tuple[str, str]]] = {}
    findings: list[Finding] = []
    for number, codemod in enumerate(codemods, 1):
        before = _snapshot(project)
        step = pipeline.run_on_project(project, [codemod], jobs=jobs, then=[later.name for later in codemods[number:]])
        findings.extend(step.findings)
        kept: set[str] = set()
        for change in _changes(codemod, step, project, before):
            accepted = decisions.standing(change)
            if accepted is None:
                accepted = decisions.record(change, ask(change))
            if accepted:
                outcome.accepted.append(change)
                kept.update(change.paths)
                for path, reason in zip(change.paths, change.reasons):
                    touched.setdefault(path, []).append((codemod.name, reason))
            else:
                outcome.rejected.append(change)
                for path in change.paths:
                    _revert(project, path, before.get(path))
        _revert_unoffered(project, step, before, kept)
        if decisions.quit:
            break  # later codemods would build on changes nobody will see
    outcome.quit = decisions.quit
    result = outcome.result
    result.files_scanned = len(project.paths())
    result.skipped_generated = found.skipped_generated
    result.findings = sorted(findings, key=Finding.sort_key)
    result.outcomes = pipeline.collect_outcomes(project, touched)
    return outcome


def _snapshot(project: Project) -> dict[str, str | None]:
    """Each file's text before a step (None: created by it; unread files are read now)."""
    return {file.path: project.text(file.path) for file in project.files() if not file.failed}


def _changes(codemod: Codemod, step: pipeline.RunResult, project: Project,
             before: dict[str, str | None]) -> list[Change]:
    """The step's changes to decide on: valid output only, units kept whole."""
    valid = {o.path for o in step.outcomes if project.text(o.path) != before.get(o.path)}
    return _group(codemod, step, valid,
                  lambda path: unified_diff(path, before.get(path), project.text(path)))


def _group(codemod: Codemod, step: pipeline.RunResult, valid: set[str], diff_of: Callable[[str], str]) -> list[Change]:
    """One change per file, or per unit change set; a unit with an invalid file is not offered."""
    changes = []
    for changeset in step.changesets:
        files = [(path, change.reason) for path, change in sorted(changeset.changes.items()) if path in valid]
        if changeset.unit and len(files) < len(changeset.changes):
            continue  # part of a unit failed validation (an error says which): the rest is meaningless
        groups = [files] if changeset.unit and files else [[item] for item in files]
        for group in groups:
            changes.append(Change(codemod.name, codemod.summary, [p for p, _ in group], [r for _, r in group],
                                  "".join(diff_of(path) for path, _ in group), changeset.unit and len(group) > 1,
                                  relies_on=tuple(sorted(changeset.relies_on))))
    for index, change in enumerate(changes, 1):
        change.index, change.total = index, len(changes)
    return changes


class StepChooser:
    """Review for `apply --interactive --verify`, where each codemod is its own step on disk:
    before a step is written, drop the changes the user rejects. Returns False after `q`."""

    def __init__(self, ask: Ask) -> None:
        self.ask = ask
        self.decisions = _Decisions()
        self.accepted: list[Change] = []
        self.rejected: list[Change] = []

    def __call__(self, codemod: Codemod, step: pipeline.RunResult) -> bool:
        diffs = {o.path: o.diff for o in step.outcomes}  # invalid output is not among them
        keep: set[str] = set()
        for change in _group(codemod, step, set(diffs), diffs.__getitem__):
            accepted = self.decisions.standing(change)
            if accepted is None:
                accepted = self.decisions.record(change, self.ask(change))
            (self.accepted if accepted else self.rejected).append(change)
            if accepted:
                keep.update(change.paths)
        step.outcomes = [o for o in step.outcomes if o.path in keep]
        return not self.decisions.quit


def _revert(project: Project, path: str, text: str | None) -> None:
    if not project.exists(path):
        return
    if text is None:
        project.forget_created(path)
    elif project.text(path) != text:
        project.update(path, text)


def _revert_unoffered(project: Project, step: pipeline.RunResult, before: dict[str, str | None],
                      accepted: set[str]) -> None:
    """What was never offered (invalid output, the rest of its unit) must not stay for later
    codemods to build on."""
    for changeset in step.changesets:
        for path in changeset.changes:
            if path not in accepted:
                _revert(project, path, before.get(path))


# -- the terminal side ----------------------------------------------------------------

class TerminalAsk:
    """Shows each change on a rich console and reads the answer from stdin, a line at a time."""

    def __init__(self, console, read: Callable[[str], str] = input) -> None:
        self.console = console
        self.read = read

    def __call__(self, change: Change) -> str:
        from rich.text import Text

        self.show(change)
        while True:
            try:
                answer = self.read(f"({change.index}/{change.total}) Accept this {change.codemod} change [{KEYS}]? ")
            except EOFError:
                self.console.print("")
                return "q"
            answer = answer.strip()
            if answer in ("y", "n", "a", "d", "A", "q"):
                return answer
            self.console.print(Text(HELP, style="red" if answer not in ("", "?") else ""))

    def show(self, change: Change) -> None:
        from rich.text import Text

        console = self.console
        title = Text()
        title.append(f"{change.codemod}", style="bold magenta")
        title.append(f" ({change.index}/{change.total})  ")
        title.append(", ".join(change.paths), style="bold")
        if change.unit:
            title.append("  [one unit: accept or reject together]", style="yellow")
        console.print(title, soft_wrap=True)
        console.print(Text(change.summary, style="dim"), soft_wrap=True)
        for path, reason in zip(change.paths, change.reasons):
            if reason and reason != change.summary:
                where = f" ({path})" if len(change.paths) > 1 else ""
                console.print(Text(f"why{where}: {reason}", style="dim"), soft_wrap=True)
        if change.relies_on:
            console.print(Text(f"counts on {', '.join(change.relies_on)}, reviewed after it: accept its changes too",
                               style="yellow"), soft_wrap=True)
        for line in change.diff.splitlines():
            style = ("bold" if line.startswith(("diff --git", "---", "+++", "new file"))
                     else "cyan" if line.startswith("@@")
                     else "green" if line.startswith("+")
                     else "red" if line.startswith("-") else "")
            console.print(Text(line, style=style), soft_wrap=True)
