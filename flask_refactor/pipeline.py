"""Running a chain of codemods over a project and turning the result into writes.

Order of work: discover files, build the project (nothing parsed yet); answer from the
result cache if the same run was made on the same files; else run the codemods in order
(each sees the previous ones' output), then validate every changed file. Files are
indexed as codemods ask, in worker processes, from the index cache. Consecutive
`FileCodemod`s form one stage that runs in worker processes: each worker parses a file
once and applies the whole stage to it. Project-wide codemods run here, in the
coordinator, on lazily parsed modules; the per-module work they hand to `Project.map`,
and the validation, are shared with workers forked from the coordinator when that pays
(`forking`). Only the coordinator writes.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import itertools
import multiprocessing
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import libcst as cst

from . import memo, transfer
from .codemod import ChangeSet, Codemod, FileCodemod, FileContext, Finding, Severity, render_changes
from .diffs import unified_diff
from .discovery import Discovery, discover
from .forking import can_fork, reap_exited, run_here_then_fork, where_raised
from .index import IndexCache, default_cache, scan_item
from .positions import forget_rendered
from .project import ErrorLog, Project, describe_syntax_error, position_lookup
from .results import ResultCache, run_key
from .writer import PendingWrite, validate, write_all

transfer.install()  # the file stages' pools send libcst trees back through its faster pickling

Progress = Callable[[str, int, int], None]  # (label, done, total)
PARALLEL_THRESHOLD = 16  # below this many files a process pool costs more than it saves
DEFAULT_CACHE = object()  # `run(index_cache=...)`: the user's cache directory


@dataclass
class FileOutcome:
    path: str
    old: str | None  # None for a created file
    new: str
    created: bool
    codemods: list[str]
    reasons: list[str]
    diff: str = ""


@dataclass
class RunResult:
    codemods: list[str]
    outcomes: list[FileOutcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    errors: ErrorLog = field(default_factory=ErrorLog)
    files_scanned: int = 0
    skipped_generated: list[str] = field(default_factory=list)
    changesets: list[ChangeSet] = field(default_factory=list)
    # codemod -> the codemods after it that its changes count on (kept when replayed from
    # the cache, where the change sets are not)
    relies_on: dict[str, set[str]] = field(default_factory=dict)
    project: Project | None = None
    written: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.outcomes)


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run(
    paths: Iterable[str],
    codemods: list[Codemod],
    *,
    excludes: Iterable[str] = (),
    jobs: int | None = None,
    cwd: Path | None = None,
    progress: Progress | None = None,
    index_cache: IndexCache | None | object = DEFAULT_CACHE,
    then: Sequence[str] = (),
) -> RunResult:
    """`index_cache`: where index entries and whole-run results persist (None: nowhere,
    as `--no-cache`). A run over exactly the same files as a cached one is not redone.
    `then`: the names of the codemods later runs will apply after these (one step per
    codemod: `--verify`, review), which a codemod may leave work to."""
    found: Discovery = discover(list(paths), list(excludes), cwd)
    project = Project(found.files, found.errors)
    project.index_cache = default_cache() if index_cache is DEFAULT_CACHE else index_cache
    results = key = stored = stamps = None
    if project.index_cache is not None:
        results = ResultCache(project.index_cache.root)
        stamps = _stamps(project, [f.path for f in project.files()])
        key = _run_key(project, codemods, cwd, found, then)
        stored = results.load(key)
    if stored is not None:
        result = _from_payload(project, codemods, stored)
    else:
        result = run_on_project(project, codemods, jobs=jobs, progress=progress, then=then)
        # The run reads files again after the key was made (searches keep no bytes): a
        # file edited meanwhile may have given a result that is not the key's.
        if results is not None and _stamps(project, list(stamps)) == stamps:
            results.store(key, _payload(result))
    result.skipped_generated = found.skipped_generated
    return result


def _stamps(project: Project, paths: Iterable[str]) -> dict[str, tuple[int, int] | None]:
    """Size and modification time of each file on disk (None: gone or unreadable)."""
    stamps = {}
    for path in paths:
        real = project.file(path).real
        try:
            info = os.stat(real) if real is not None else None
        except OSError:
            info = None
        stamps[path] = None if info is None else (info.st_size, info.st_mtime_ns)
    return stamps


def _run_key(project: Project, codemods: list[Codemod], cwd: Path | None, found: Discovery,
             then: Sequence[str]) -> str:
    files = ((f.path, f.python, project.bytes(f.path)) for f in project.files())  # one file's bytes at a time
    return run_key(files, codemods, Path(os.path.abspath(cwd or Path.cwd())),
                   [sorted(found.errors), found.skipped_generated, tuple(then)])


def _payload(result: RunResult) -> dict:
    return {
        "outcomes": [dataclasses.asdict(o) for o in result.outcomes],
        "findings": [dataclasses.asdict(f) for f in result.findings],
        "errors": list(result.errors),
        "probes": result.project.disk_probes,
        "relies_on": {name: sorted(names) for name, names in result.relies_on.items()},
    }


def _from_payload(project: Project, codemods: list[Codemod], payload: dict) -> RunResult:
    """The stored run, replayed onto the project: final texts as they were computed."""
    result = RunResult([c.name for c in codemods], errors=project.errors, project=project)
    result.files_scanned = len(project.paths())
    result.outcomes = [FileOutcome(**o) for o in payload["outcomes"]]
    result.findings = [Finding(**{**f, "severity": Severity(f["severity"])}) for f in payload["findings"]]
    for path, message in payload["errors"]:
        project.errors.add(path, message)
    result.relies_on = {name: set(names) for name, names in payload["relies_on"].items()}
    for outcome in result.outcomes:
        project.update(outcome.path, outcome.new, created=outcome.created)
    return result


# How many allocations a run lets pass between collections of the young generations
# (Python's default is 700; see `run_on_project`).
YOUNG_COLLECTION_ALLOCATIONS = 10_000


def run_on_project(
    project: Project,
    codemods: list[Codemod],
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
    then: Sequence[str] = (),
) -> RunResult:
    """Run the codemods, in stages, on the project (`then`: as in `run`)."""
    jobs = jobs or default_jobs()
    result = RunResult([c.name for c in codemods], errors=project.errors, project=project)
    result.files_scanned = len(project.paths())
    touched: dict[str, list[tuple[str, str]]] = {}
    units: list[set[str]] = []
    if any(c.uses_index for c in codemods):
        use_index_workers(project, jobs, progress)
    use_module_workers(project, jobs)
    project.freeze_parsed = True  # (the `finally` below unfreezes)
    thresholds = gc.get_threshold()
    # Young collections every 10,000 allocations, not 700: analyses make short-lived
    # containers by the hundred thousand. On the benchmark's big app, this process's
    # young collections took 0.12-0.16 s with the default, 0.06-0.08 s so (Python 3.11).
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, *thresholds[1:])
    try:
        stages = _stages(codemods)
        for number, stage in enumerate(stages, 1):
            project.later_codemods = (*(codemod.name for later in stages[number:] for codemod in later), *then)
            if isinstance(stage[0], FileCodemod):
                changesets = _run_file_stage(project, stage, jobs, progress)
            else:
                changesets = [_run_project_codemod(project, stage[0], progress)]
            for changes in changesets:
                _record(project, changes, touched, result)
                if changes.unit and len(changes.changes) > 1:
                    units.append(set(changes.changes))
            memo.prune(project.trees())
            if number < len(stages):  # (after the last, what is left is freed when the run ends)
                _settle_heap()
        result.findings.sort(key=Finding.sort_key)
        result.outcomes = collect_outcomes(project, touched, units, jobs)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        project.freeze_parsed = False
        project.later_codemods = ()
        forget_rendered()
        memo.clear()
        reap_exited()  # the last round's workers, gone by now: none outlives the run
    return result


def _settle_heap() -> None:
    """Between codemods: collect once, then have the collector leave what survived
    (mostly the trees, which are kept for the run) out of later collections. Else each
    full collection walks the whole, growing heap again: a tenth of a run on a large
    app. Trees hold no cycles, so those replaced later are still freed; `run_on_project`
    unfreezes the rest when it ends. (Forked workers also copy less of a frozen heap.)"""
    gc.collect()
    gc.freeze()


def use_index_workers(project: Project, jobs: int, progress: Progress | None = None) -> None:
    """Have the project index files in `jobs` forked workers when that pays, judged as
    for any other work (`run_here_then_fork`; cached entries are read first): a batch of
    34 large modules, under a fixed count of files, had been scanned here alone."""
    def scan_many(items: list) -> list:
        if progress:
            progress("index", 0, len(items))
        return run_here_then_fork(items, scan_item, scan_item, jobs, [len(data) for data, _ in items])

    project.index_scanner = scan_many


def use_module_workers(project: Project, jobs: int) -> None:
    """Have `Project.map` run its calls in `jobs` forked processes, which start with every
    fact the codemod computed (only what the calls return is pickled), when they are many
    enough to pay for it (`run_here_then_fork`)."""
    if not can_fork(jobs):
        return

    def here(function: Callable[[Any], Any], item: Any) -> tuple:
        result = function(item)
        render_changes(result)  # while the workers work too
        return result, (), (), (), {}

    def run_mapped(items: list, function: Callable[[Any], Any], sizes: list[int] | None = None) -> list:
        results = []
        for result, errors, failed, parses, probes in run_here_then_fork(
                items, functools.partial(here, function), lambda item: _in_worker(project, function, item),
                jobs, sizes, shared=project.trees):
            results.append(result)
            for path, message in errors:
                project.errors.add(path, message)
            for path in failed:
                project.mark_failed(path)
            project.parse_counts.update(parses)
            for path, answer in probes.items():
                project.disk_probes.setdefault(path, answer)
        return results

    project.map_runner = run_mapped


def _in_worker(project: Project, function: Callable[[Any], Any],
               item: Any) -> tuple[Any, list[tuple[str, str]], list[str], Counter, dict[str, bool]]:
    """In a forked worker: `function(item)`, with what the project learnt meanwhile that
    the coordinator must know too (errors logged, files that could not be read or parsed,
    parses made, and the disk questions asked, which key cached results)."""
    project.on_parse = project.map_runner = project.index_scanner = None  # no progress or forks from in here
    errors_before, probes_before = set(project.errors.entries), set(project.disk_probes)
    parses_before = project.parse_counts.copy()
    result = function(item)
    errors = [(path, message) for path, message in project.errors.entries.items() if path not in errors_before]
    failed = [path for path, _ in errors if project.exists(path) and project.file(path).failed]
    probes = {path: answer for path, answer in project.disk_probes.items() if path not in probes_before}
    return result, errors, failed, project.parse_counts - parses_before, probes


def _pool_context():
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _stages(codemods: list[Codemod]) -> list[list[Codemod]]:
    stages: list[list[Codemod]] = []
    for codemod in codemods:
        if isinstance(codemod, FileCodemod) and stages and isinstance(stages[-1][0], FileCodemod):
            stages[-1].append(codemod)
        else:
            stages.append([codemod])
    return stages


def _run_project_codemod(project: Project, codemod: Codemod, progress: Progress | None) -> ChangeSet:
    if progress:
        # A project-wide codemod parses lazily; its prefilter's candidates are the likely
        # work, so progress counts parses against them.
        total = len(project.candidates(codemod.needles))
        count = itertools.count(1)

        def parsed_one(path: str) -> None:
            progress(codemod.name, min(next(count), total), total)

        project.on_parse = parsed_one
    try:
        return codemod.run(project)
    except Exception as exc:  # one codemod's bug must not lose the others' work
        project.errors.add(f"<{codemod.name}>", _crash_message(codemod.name, exc))
        return codemod.new_changeset()
    finally:
        project.on_parse = None


def _crash_message(name: str, exc: BaseException) -> str:
    where = where_raised(exc)
    where = f" ({where})" if where else ""
    return f"codemod {name} failed: {type(exc).__name__}: {exc}{where}; its changes were dropped"


def _record(project: Project, changes: ChangeSet, touched: dict, result: RunResult) -> None:
    result.changesets.append(changes)
    result.findings.extend(changes.findings)
    if changes.relies_on:
        result.relies_on.setdefault(changes.codemod, set()).update(changes.relies_on)
    for path, change in sorted(changes.changes.items()):
        if change.created and not project.exists(path) and project.on_disk(path):
            project.errors.add(path, f"{changes.codemod} would create this file, but it exists and is not part of the run; not written")
            continue
        if project.exists(path) and project.file(path).failed:
            continue
        project.update(path, change.new, created=change.created, text=change.rendered)
        touched.setdefault(path, []).append((changes.codemod, change.reason))


def collect_outcomes(project: Project, touched: dict[str, list[tuple[str, str]]],
                     units: list[set[str]] = (), jobs: int = 1) -> list[FileOutcome]:
    """Validate every changed file (in `jobs` processes) and diff it against the original.

    A file that fails validation is not written; neither is any file of a unit change
    set (files that only make sense together) that it belongs to."""
    invalid = set()
    changed = [_Output(path, None if file.created else file.original_text, file.text, file.python,
                       "\ufeff" if file.encoding.bom else "")
               for path in sorted(touched) if (file := project.file(path)).changed]
    # compiling and diffing grow with the text; their workers read only texts (`light`)
    checked = run_here_then_fork(changed, _checked, _checked, jobs, [len(output.new) for output in changed],
                                 light=True)
    diffs = {}
    for output, (problem, diff) in zip(changed, checked):
        diffs[output.path] = diff
        if problem:
            project.errors.add(output.path, problem)
            invalid.add(output.path)
    for unit in units:
        broken = sorted(unit & invalid)
        if not broken:
            continue
        for path in sorted(unit - invalid):
            if path in touched and project.file(path).changed:
                project.errors.add(path, f"not written: it belongs with {broken[0]}, whose new version is invalid")
                invalid.add(path)
    outcomes = []
    for path in sorted(touched):
        file = project.file(path)
        if not file.changed or path in invalid:
            continue  # unchanged (a later codemod undid an earlier one's change) or held back
        old = None if file.created else file.original_text
        outcome = FileOutcome(path, old, file.text, file.created,
                              [name for name, _ in touched[path]], [reason for _, reason in touched[path]])
        outcome.diff = diffs[path]
        outcomes.append(outcome)
    return outcomes


@dataclass(frozen=True)
class _Output:
    """A changed file's text to validate and diff against the original (None: created)."""

    path: str
    old: str | None
    new: str
    python: bool
    bom: str  # the diff is of the bytes on disk: a BOM is part of the first line


def _checked(output: _Output) -> tuple[str | None, str]:
    """Why the output must not be written (or None), and its diff: both made where the
    work is shared out, in workers for a large app."""
    problem = validate(output.path, output.new, output.python)
    old = None if output.old is None else output.bom + output.old
    return problem, unified_diff(output.path, old, output.bom + output.new)


def apply(result: RunResult) -> None:
    """Write every outcome of a run (already validated). Failures go to the error log."""
    project = result.project
    pending = []
    for outcome in result.outcomes:
        file = project.file(outcome.path)
        target = file.real if file.real is not None else Path(outcome.path).resolve()
        pending.append(PendingWrite(outcome.path, target, file.encoding.encode(outcome.new), outcome.created))
    failures = write_all(pending)
    for path, message in failures.items():
        result.errors.add(path, message)
    result.written = [o.path for o in result.outcomes if o.path not in failures]


def write_problems(result: RunResult) -> None:
    """For dry runs: say which files `apply` would be unable to write."""
    from .writer import read_only_reason

    for outcome in result.outcomes:
        file = result.project.file(outcome.path)
        if file.real is not None:
            reason = read_only_reason(file.real)
            if reason:
                result.errors.add(outcome.path, reason.replace("not written", "apply could not write it"))


# -- the parallel file stage ---------------------------------------------------------

_STAGE: list[tuple[FileCodemod, Any]] = []


def _init_worker(stage: list[tuple[FileCodemod, Any]]) -> None:
    global _STAGE
    _STAGE = stage


def _transform_one(task: tuple[str, str, str | None]) -> tuple[str, str | None, list[str], list[Finding], str | None]:
    """Parse one file once and apply every codemod of the stage to it.

    Returns (path, new text or None, codemods that changed it, findings, error)."""
    path, text, module_name = task
    try:
        current = cst.parse_module(text)
    except (cst.ParserSyntaxError, SyntaxError, ValueError) as exc:
        return path, None, [], [], describe_syntax_error(exc, text)
    findings: list[Finding] = []
    changed_by: list[str] = []
    source = text  # the needles are matched against the current code, regenerated only after a change
    for codemod, facts in _STAGE:
        if codemod.needles and not any(n in source for n in codemod.needles):
            continue
        ctx = FileContext(path, module_name, facts, codemod.name, _positions=position_lookup(current))
        try:
            new = codemod.transform(current, ctx)
        except Exception as exc:
            return path, None, [], [], _crash_message(codemod.name, exc)
        findings.extend(ctx.findings)
        if new is not current:
            changed_by.append(codemod.name)
            source = new.code
        current = new
    new_text = source
    if new_text == text:
        return path, None, [], findings, None
    return path, new_text, changed_by, findings, None


def _run_file_stage(project: Project, stage: list[Codemod], jobs: int, progress: Progress | None) -> list[ChangeSet]:
    prepared = []
    for codemod in stage:
        try:
            prepared.append((codemod, codemod.prepare(project)))
        except Exception as exc:
            project.errors.add(f"<{codemod.name}>", _crash_message(codemod.name, exc))
    changes = ChangeSet(" + ".join(c.name for c, _ in prepared) or stage[0].name)
    if not prepared:
        return [changes]
    needles: set[str] = set()
    if all(c.needles for c, _ in prepared):
        for codemod, _ in prepared:
            needles.update(codemod.needles)
    paths = project.candidates(sorted(needles))
    tasks = [(p, project.text(p), project.module_name(p)) for p in paths]
    tasks = [t for t in tasks if t[1] is not None]
    project.parse_counts.update(t[0] for t in tasks)  # each task is one parse, in a worker
    results = _map(tasks, prepared, jobs, progress, label=changes.codemod)
    summaries = {c.name: c.summary for c, _ in prepared}
    for path, new_text, changed_by, findings, error in results:
        if error:
            project.errors.add(path, error)
            continue
        changes.findings.extend(findings)
        if new_text is not None:
            changes.modify(path, new_text, "; ".join(summaries[name] for name in changed_by))
    return [changes]


def _map(tasks, prepared, jobs: int, progress: Progress | None, label: str):
    total = len(tasks)
    if jobs <= 1 or total < PARALLEL_THRESHOLD:
        _init_worker(prepared)
        out = []
        for done, task in enumerate(tasks, 1):
            out.append(_transform_one(task))
            if progress:
                progress(label, done, total)
        return out
    from concurrent.futures import ProcessPoolExecutor  # (and logging: 4 ms a run that never needs them)

    chunk = max(1, total // (jobs * 8))
    out = []
    with ProcessPoolExecutor(jobs, mp_context=_pool_context(), initializer=_init_worker, initargs=(prepared,)) as pool:
        for done, item in enumerate(pool.map(_transform_one, tasks, chunksize=chunk), 1):
            out.append(item)
            if progress:
                progress(label, done, total)
    return out
