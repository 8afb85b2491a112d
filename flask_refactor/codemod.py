"""The contract between the engine and a codemod.

A codemod receives a `Project` and returns a `ChangeSet`: new contents for existing
files, new files, and findings for what it could not (or should not) change. It never
touches the file system, the terminal or git; the engine validates and writes.

Two shapes:

* `Codemod.run(project)`: project-wide, runs once in the coordinating process.
* `FileCodemod.transform(module, ctx)`: one module at a time with facts prepared once
  from the whole project; the engine runs these in worker processes.

A codemod may leave work to those that run after it in the same run
(`Project.later_codemods`), naming them in `ChangeSet.relies_on`; run alone, it must
still write only code that works.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import libcst as cst

from .positions import code_of, keep_rendered, rendered_lengths

if TYPE_CHECKING:
    from .project import Project


class Severity(str, enum.Enum):
    """How much a finding needs a human. `warning` and `error` make a run exit 1."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return ("info", "warning", "error").index(self.value)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    column: int
    codemod: str
    message: str
    severity: Severity = Severity.WARNING
    rule: str = ""  # stable id for audit/SARIF; defaults to the codemod's name

    def sort_key(self) -> tuple:
        return (self.path, self.line, self.column, self.codemod, self.message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "codemod": self.codemod,
            "rule": self.rule or self.codemod,
            "severity": self.severity.value,
            "message": self.message,
        }


@dataclass
class FileChange:
    """New contents for one file: a libcst Module for Python, text for anything else."""

    path: str
    new: cst.Module | str
    reason: str
    created: bool = False
    # The module's text, once rendered beside the work that made the change: in a worker,
    # as the change is pickled to be sent back (`__getstate__`); in the coordinator, by
    # `render_changes` when it did an item of shared work itself.
    rendered: str | None = field(default=None, compare=False, repr=False)
    # and the length of each top-level statement's text in it (`positions.keep_rendered`)
    rendered_lengths: tuple[int, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def text(self) -> str:
        if self.rendered is not None:
            return self.rendered
        return code_of(self.new, self.path) if isinstance(self.new, cst.Module) else self.new

    def render(self) -> None:
        if isinstance(self.new, cst.Module) and self.rendered is None:
            self.rendered = code_of(self.new, self.path)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if isinstance(self.new, cst.Module) and self.rendered is None:
            state["rendered"] = code_of(self.new, self.path)
            state["rendered_lengths"] = rendered_lengths(self.new, self.path)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.rendered_lengths is not None:  # back from a worker: keep its statement texts here too
            keep_rendered(self.new, self.path, self.rendered, self.rendered_lengths)


@dataclass
class ChangeSet:
    """What one codemod wants done. `unit=True` marks changes that only make sense together."""

    codemod: str
    changes: dict[str, FileChange] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    unit: bool = False
    # the codemods after this one in the run (`Project.later_codemods`) that its changes
    # count on: without them, they would not be right
    relies_on: set[str] = field(default_factory=set)

    def modify(self, path: str, new: cst.Module | str, reason: str) -> None:
        self.changes[path] = FileChange(path, new, reason)

    def create(self, path: str, new: cst.Module | str, reason: str) -> None:
        self.changes[path] = FileChange(path, new, reason, created=True)

    def report(
        self,
        path: str,
        line: int,
        message: str,
        severity: Severity = Severity.WARNING,
        column: int = 0,
        rule: str = "",
    ) -> None:
        self.findings.append(Finding(path, line, column, self.codemod, message, severity, rule))


def render_changes(result: Any) -> None:
    """Render now the modules of the changes in a result of per-module work (a change
    set, a change, or lists, tuples and dicts holding them, as `Project.map` functions
    return): beside the work, as a worker's are when pickled, rather than afterwards in
    the coordinator alone."""
    if isinstance(result, FileChange):
        result.render()
    elif isinstance(result, ChangeSet):
        for change in result.changes.values():
            change.render()
    elif isinstance(result, (list, tuple)):
        for part in result:
            render_changes(part)
    elif isinstance(result, dict):
        for part in result.values():
            render_changes(part)


@dataclass(frozen=True)
class Option:
    """A typed codemod option, settable from pyproject.toml or `--option NAME.KEY=VALUE`."""

    name: str
    type: type
    default: Any
    help: str

    def parse(self, raw: Any) -> Any:
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"expected true or false, got {raw!r}")
        if self.type is list:
            if isinstance(raw, list):
                return [str(item) for item in raw]
            return [part.strip() for part in str(raw).split(",") if part.strip()]
        if isinstance(raw, bool) and self.type is not bool:
            raise ValueError(f"expected {self.type.__name__}, got {raw!r}")
        try:
            return self.type(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected {self.type.__name__}, got {raw!r}") from None


class Codemod:
    """Base class. Subclasses set the class attributes and override `run`."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line, for `list`
    explain: ClassVar[str]  # what it does, what it leaves alone, a before/after example
    options: ClassVar[tuple[Option, ...]] = ()
    safety: ClassVar[str] = "safe"  # "safe": behaviour kept; "unsafe": review the diff
    order: ClassVar[int] = 100  # position in `--all`
    # Cheap prefilter: a file is worth parsing for this codemod only if its text
    # contains one of these strings. Empty means every Python file.
    needles: ClassVar[tuple[str, ...]] = ()
    # Whether it asks `Project.index` about files it does not rewrite (imports, names):
    # the engine then indexes every file up front, in worker processes, from the cache.
    uses_index: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        known = {opt.name: opt for opt in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"{self.name}: unknown option {unknown[0]!r}")
        self.config = {name: opt.default for name, opt in known.items()}
        for key, raw in options.items():
            try:
                self.config[key] = known[key].parse(raw)
            except ValueError as exc:
                raise ValueError(f"{self.name}: option {key!r}: {exc}") from None

    def new_changeset(self) -> ChangeSet:
        return ChangeSet(self.name)

    def run(self, project: Project) -> ChangeSet:
        raise NotImplementedError


@dataclass
class FileContext:
    """What a `FileCodemod.transform` sees besides the module."""

    path: str
    module_name: str | None
    facts: Any
    codemod: str
    findings: list[Finding] = field(default_factory=list)
    _positions: Callable[[cst.CSTNode], tuple[int, int]] | None = None

    def report(self, node: cst.CSTNode | int, message: str, severity: Severity = Severity.WARNING) -> None:
        """Report at a node of the module passed to `transform` (or at a line number)."""
        if isinstance(node, int):
            line, column = node, 0
        else:
            line, column = self._positions(node) if self._positions else (1, 0)
        self.findings.append(Finding(self.path, line, column, self.codemod, message, severity))


class FileCodemod(Codemod):
    """A codemod that rewrites modules one at a time; the engine may run it in parallel.

    `prepare` runs once in the coordinator and returns picklable facts about the whole
    project; `transform` then sees one module and those facts.
    """

    def prepare(self, project: Project) -> Any:
        return None

    def transform(self, module: cst.Module, ctx: FileContext) -> cst.Module:
        raise NotImplementedError

    def run(self, project: Project) -> ChangeSet:
        """Serial fallback, also used by tests: same result as the parallel engine."""
        facts = self.prepare(project)
        changes = self.new_changeset()
        for path in project.candidates(self.needles):
            module = project.parse(path)
            if module is None:
                continue
            ctx = FileContext(path, project.module_name(path), facts, self.name,
                              _positions=project.position_lookup(path))
            new = self.transform(module, ctx)
            changes.findings.extend(ctx.findings)
            if new is not module and new.code != module.code:
                changes.modify(path, new, self.summary)
        return changes
