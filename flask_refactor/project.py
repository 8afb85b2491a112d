"""The project a run works on: its files, parsed at most once, shared by every codemod.

Files are keyed by their display path (relative to the working directory where
possible, POSIX separators), which is also what diffs and findings show.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator

import libcst as cst

from . import index as project_index
from .codemod import ChangeSet
from .index import FileIndex, IndexCache
from .parsing import unchecked
from .positions import code_of, code_ranges
from .source import Encoding, SourceError, decode


@dataclass
class ProjectFile:
    path: str  # display path, the key
    real: Path | None  # where it lives on disk; None for a file a codemod created
    data: bytes | None = None  # original bytes; None until read, or for created files
    python: bool = True
    # current state: original text until a codemod changes it
    text: str | None = None
    encoding: Encoding = field(default_factory=Encoding)
    original_text: str | None = None
    tree: cst.Module | None = None
    failed: bool = False  # unreadable, undecodable or unparseable: never touched

    @property
    def created(self) -> bool:
        return self.real is None

    @property
    def as_on_disk(self) -> bool:
        """Its text is still the original (its bytes answer any question about it)."""
        return self.text is None or self.text is self.original_text

    @property
    def changed(self) -> bool:
        return self.text is not None and self.text != self.original_text


class ErrorLog:
    """Per-file problems: one line each, collected and shown at the end of the run."""

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def add(self, path: str, message: str) -> None:
        self.entries.setdefault(path, message)

    def __iter__(self):
        return iter(sorted(self.entries.items()))

    def __len__(self) -> int:
        return len(self.entries)


def looks_like_python2(text: str) -> bool:
    markers = ("print \"", "print '", "except Exception, ", "print >>", "ur\"", "exec \"")
    return any(marker in text for marker in markers)


def describe_syntax_error(exc: Exception, text: str) -> str:
    if isinstance(exc, cst.ParserSyntaxError):
        where, message = f"{exc.raw_line}:{exc.raw_column + 1}", exc.message
    else:
        where, message = "1:1", str(exc)
    hint = " (looks like Python 2; flask-refactor reads Python 3 only)" if looks_like_python2(text) else ""
    return f"syntax error at {where}: {message.splitlines()[0] if message else 'invalid syntax'}{hint}"


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a while (as it was before, after): for bursts
    that allocate trees by the hundred thousand, which hold no cycles, and whose timing
    must not include a collection of the whole heap."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class Project:
    def __init__(self, files: Iterable[ProjectFile], errors: ErrorLog | None = None) -> None:
        self._files: dict[str, ProjectFile] = {f.path: f for f in files}
        self.errors = errors if errors is not None else ErrorLog()
        self.revision = 0
        self._facts: dict[str, tuple[int, Any]] = {}
        self.on_parse: Callable[[str], None] | None = None  # progress reporting: called per parse
        # libcst parses per path, in this process or in workers: what the speed tests
        # count (a file nothing needs must never be parsed; a file at most once per text)
        self.parse_counts: Counter[str] = Counter()
        self.index_cache: IndexCache | None = None  # set by the engine: where index entries persist
        # set by the engine: scans a batch of (bytes, python) items, in worker processes
        self.index_scanner: Callable[[list], list] | None = None
        # set by the engine: runs `map`'s calls, some in worker processes
        self.map_runner: Callable[..., list] | None = None
        # set by the engine for a run (which unfreezes when it ends): `parse_many` has the
        # collector leave its trees out of full collections (`gc.freeze`)
        self.freeze_parsed = False
        # set by the engine: the names of the codemods the run applies after the one
        # running, which a codemod may leave work to (thread-context gives the threads
        # app-factory leaves without an app theirs)
        self.later_codemods: tuple[str, ...] = ()
        self._index: dict[str, FileIndex] = {}  # path -> index of the original text
        self._changed_index: dict[str, tuple[str, FileIndex]] = {}  # path -> (current text, its index)
        self.layout = 0  # bumped when files appear or go (module names may then resolve elsewhere)
        self._byte_hits: dict[tuple, set[str]] = {}  # (needle,) or (needles,) -> files whose bytes hold it
        self._pattern_hits: dict[tuple[str, ...], set[str]] = {}  # (pattern, *needles) -> files matching
        # files given a new text (`update`), the only ones not as on disk -> the revision
        # that gave it (the version of the text that `_select`'s answers are kept for)
        self._rewritten: dict[str, int] = {}
        # a question (`_select`) -> {rewritten file: (the version of its text asked, its answer)}
        self._text_hits: dict[tuple, dict[str, tuple[int, bool]]] = {}
        # a question (`_select`) -> ((revision, failures) it was answered at, the files)
        self._selected: dict[tuple, tuple[tuple[int, int], tuple[str, ...]]] = {}
        self._failures = 0  # files marked failed so far: a failed file leaves every answer
        self._memo: dict[Any, Any] = {}
        # every question put to the disk beyond the files of the run (is there an
        # __init__.py, would a new file clobber one), with its answer: a cached result
        # holds only while the answers stay the same
        self.disk_probes: dict[str, bool] = {}
        # top-most package directory -> whether imports start inside it (`_starts_imports`);
        # decided once per run, from the files as on disk
        self._import_starts: dict[str, bool] = {}

    # -- building ------------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: dict[str, str]) -> "Project":
        """An in-memory project, for tests and tools: {path: source}."""
        files = []
        for path, text in texts.items():
            files.append(ProjectFile(path, Path(path), text.encode(), python=path.endswith(".py")))
        return cls(files)

    # -- what codemods ask ---------------------------------------------------------
    def paths(self) -> list[str]:
        """Every Python file of the project (not failed ones), sorted."""
        return sorted(p for p, f in self._files.items() if f.python and not f.failed)

    def other_paths(self, suffixes: tuple[str, ...] = ()) -> list[str]:
        """Non-Python files (templates, Procfiles, ...), optionally by suffix or name."""
        return sorted(
            p for p, f in self._files.items()
            if not f.python and not f.failed
            and (not suffixes or p.endswith(suffixes) or PurePosixPath(p).name in suffixes)
        )

    def exists(self, path: str) -> bool:
        return path in self._files

    def candidates(self, needles: Iterable[str]) -> list[str]:
        """Python files whose text contains any needle: the cheap test before parsing."""
        needles = tuple(needles)
        if not needles:
            return self.paths()
        return self._select(self._files_holding(needles), ("in", *needles), lambda text: any(n in text for n in needles))

    def candidates_each(self, needles: Iterable[str]) -> dict[str, list[str]]:
        """`candidates((needle,))` for each needle, searched in one pass over the tree."""
        needles = tuple(needles)
        self._files_holding(needles)
        return {needle: self.candidates((needle,)) for needle in needles}

    def matching(self, pattern: str, needles: tuple[str, ...]) -> list[str]:
        """Python files whose text the regular expression matches somewhere: `candidates`
        for when a plain substring would match too much. Every match must contain one of
        the `needles`: only files holding one are searched with the pattern (rewritten
        files too: a pattern that fails scans the whole text, 40 us for an app's module)."""
        key = (pattern, *needles)
        on_disk = self._pattern_hits.get(key)
        if on_disk is None:
            compiled = re.compile(pattern.encode())
            on_disk = self._pattern_hits[key] = {
                path for path in self._files_holding(needles)
                if (data := self._peek(self._files[path])) is not None and compiled.search(data)}
        return self._select(on_disk, ("re", *key), lambda text: any(needle in text for needle in needles)
                            and re.search(pattern, text) is not None)

    def _select(self, on_disk: set[str], key: tuple, in_text: Callable[[str], bool]) -> list[str]:
        """Python files, sorted: those still as on disk if they are among the `on_disk`
        hits, the others (rewritten or created by a codemod) if `in_text` says so. (Only
        the hits and the rewritten files are looked at: asked again after every codemod,
        a pass over every file of a library tree added up.) `in_text`'s answer is kept
        per question (`key`) and version of a text: codemods ask the same ones many times,
        and the whole answer while no file has changed (extract-services asks each views
        module's question, the same one, of all the rewritten files of a large app)."""
        state = (self.revision, self._failures)
        known = self._selected.get(key)
        if known is not None and known[0] == state:
            return list(known[1])
        found = [path for path in on_disk if (file := self._files.get(path)) is not None and file.as_on_disk]
        answers = self._text_hits.setdefault(key, {})
        for path, version in self._rewritten.items():
            file = self._files.get(path)
            if file is None or file.as_on_disk:
                continue
            known = answers.get(path)
            if known is None or known[0] != version:
                known = answers[path] = (version, in_text(file.text))
            if known[1]:
                found.append(path)
        found = sorted(path for path in found if (file := self._files[path]).python and not file.failed)
        self._selected[key] = (state, tuple(found))
        return found

    def mentions(self, path: str, needles: Iterable[str]) -> bool:
        """Whether one file's current text contains a needle (any file, if no needles):
        `candidates` for a few files, without searching the whole project."""
        needles = tuple(needles)
        file = self._files.get(path)
        if file is None or file.failed or not needles:
            return file is not None and not file.failed
        if file.as_on_disk:
            data = self._read(file)
            return data is not None and any(n.encode() in data for n in needles)
        return any(n in file.text for n in needles)

    def _files_holding(self, needles: tuple[str, ...]) -> set[str]:
        """Files whose original bytes hold a needle. Those bytes never change, and codemods
        ask the same needles again and again, alone or with others: searched once per
        needle (per set of needles, for many: one regular expression beats many
        substring searches per file)."""
        if len(needles) > 8:
            pattern = re.compile(b"|".join(re.escape(n.encode()) for n in needles))
            return self._files_matching_bytes((needles,), pattern.search)
        self._search_bytes([needle for needle in needles if (needle,) not in self._byte_hits])
        return set().union(*(self._byte_hits[(needle,)] for needle in needles))

    def _search_bytes(self, needles: list[str]) -> None:
        """The files holding each needle, in one pass: all the needles are looked for in a
        file while it is in the processor's cache (1.7x faster for five needles than a
        pass per needle over a tree of libraries)."""
        if not needles:
            return
        encoded = [(needle, needle.encode()) for needle in needles]
        hits: dict[str, set[str]] = {needle: set() for needle in needles}
        for path in self.paths():
            data = self._peek(self._files[path])
            if data is not None:
                for needle, search in encoded:
                    if search in data:
                        hits[needle].add(path)
        for needle in needles:
            self._byte_hits[(needle,)] = hits[needle]

    def _files_matching_bytes(self, key: tuple, holds: Callable[[bytes], Any]) -> set[str]:
        hits = self._byte_hits.get(key)
        if hits is None:
            hits = self._byte_hits[key] = {path for path in self.paths()
                                           if (data := self._peek(self._files[path])) is not None and holds(data)}
        return hits

    def text(self, path: str) -> str | None:
        """Current text of a file (after earlier codemods), or None if it cannot be read."""
        file = self._files[path]
        if file.text is None and not file.failed:
            data = self._read(file)
            if data is None and file.failed:
                return None
            try:
                file.text, file.encoding = decode(data or b"", python=file.python)
                file.original_text = file.text
            except SourceError as exc:
                self._fail(file, str(exc))
        return file.text

    def parse(self, path: str) -> cst.Module | None:
        """The file's libcst module, parsed once; None (and an error logged) if it cannot be."""
        file = self._files[path]
        if file.tree is None and not file.failed:
            text = self.text(path)
            if text is None:
                return None
            self._keep_parse(path, *self._parsed(path))
        return file.tree

    def parse_many(self, paths: Iterable[str]) -> None:
        """`parse` each of these files, which a codemod is about to ask for: done through
        `map`, so many first parses may go to workers (a tree comes back faster than it
        is parsed again). Counted, reported and failing as `parse` would."""
        pending = [path for path in dict.fromkeys(paths)
                   if (file := self._files[path]).tree is None and not file.failed and self.text(path) is not None]
        if len(pending) < 2:
            return
        # (no collection while parsing would find anything; nothing here builds a node by hand)
        with collection_paused(), unchecked():
            # Shared with workers like any work, this process parsing its share: a tree
            # parsed here holds an object per whitespace leaf where a loaded one shares
            # them, so the peak is higher than with this process only loading the trees,
            # but the parses are done sooner (alternating runs, two or three each, of real
            # apps: buku 16%, calibreweb 10%, changedetection.io and indico 5%, OctoPrint
            # 2% faster, at 13 to 19% more peak memory; the benchmark's big app no slower).
            # What had doubled calibreweb's peak, a 326 KB module of data, is no longer
            # parsed at all (`may_define_or_call`).
            parsed = self.map(pending, self._parsed, [len(self._files[path].text) for path in pending])
            for path, (tree, problem) in zip(pending, parsed):
                self._keep_parse(path, tree, problem)
            if self.freeze_parsed:
                # The trees live as long as the project and hold no cycles: the collector
                # is told to leave them (and what came before) out of its full collections,
                # each of which would walk them all again (a tenth of a second on a large
                # app). Refcounting still frees a tree that is dropped. Frozen before the
                # collector is back on, or its first young collection walks them all.
                gc.freeze()

    def _parsed(self, path: str) -> tuple[cst.Module | None, str | None]:
        """(tree, None), or (None, why not) for a file whose text has been read."""
        text = self._files[path].text
        try:
            return cst.parse_module(text), None
        except (cst.ParserSyntaxError, SyntaxError, ValueError) as exc:
            return None, describe_syntax_error(exc, text)

    def _keep_parse(self, path: str, tree: cst.Module | None, problem: str | None) -> None:
        self.parse_counts[path] += 1
        if tree is not None:
            self._files[path].tree = tree
        else:
            self._fail(self._files[path], problem)
        if self.on_parse:
            self.on_parse(path)

    def modules(self, needles: Iterable[str] = ()) -> Iterable[tuple[str, cst.Module]]:
        """(path, module) for every parseable candidate file (see `parsed`)."""
        return self.parsed(self.candidates(needles))

    def parsed(self, paths: Iterable[str]) -> Iterable[tuple[str, cst.Module]]:
        """(path, module) for each of these files that parses, in their order: all parsed
        first, through `parse_many` (so in workers when they are many), which is why
        it is to be read to the end, not searched."""
        paths = list(paths)  # read twice: a generator would be spent by the first
        self.parse_many(paths)
        for path in paths:
            module = self.parse(path)
            if module is not None:
                yield path, module

    def map(self, items: list, function: Callable[[Any], Any], sizes: list[int] | None = None) -> list:
        """`[function(item) for item in items]`, where each call is independent work (one
        module to analyse and rewrite): the engine may run some in worker processes forked
        from this one (its `map_runner`), which start with everything computed so far.
        `sizes`, when the work grows with them (a text's length), let it judge the pace.

        So `function` may read anything of the project, and compute what it needs, but
        must return what it produced (picklable): anything else it changes (its codemod's
        state, objects shared between items) is lost when it runs in a worker. Compute
        the facts every item needs before calling this, or each worker computes them."""
        if self.map_runner is None:
            return [function(item) for item in items]
        return self.map_runner(items, function, sizes)

    def per_module(self, items: list, work: Callable[[Any, ChangeSet], None], changes: ChangeSet,
                   sizes: list[int] | None = None) -> None:
        """`work(item, changes)` for each item, as if run one after another in `items`'
        order: `map` with each item writing its own change set, merged into `changes`."""
        def one(item: Any) -> ChangeSet:
            part = ChangeSet(changes.codemod)
            work(item, part)
            return part

        for part in self.map(items, one, sizes):
            changes.changes.update(part.changes)
            changes.findings.extend(part.findings)

    def sizes(self, paths: Iterable[str]) -> list[int]:
        """The length of each file's current text: what the work on a module grows with
        (`map`'s `sizes`)."""
        return [len(self.text(path) or "") for path in paths]

    def on_disk(self, path: str) -> bool:
        """Whether a file exists on disk at this (display) path, part of the run or not."""
        if path not in self.disk_probes:
            self.disk_probes[path] = Path(path).exists()
        return self.disk_probes[path]

    def module_name(self, path: str) -> str | None:
        """Dotted import name, found by walking up while directories are packages, up to
        a directory where the code's own imports start (`_starts_imports`)."""
        file = self._files.get(path)
        if file is None or not path.endswith(".py"):
            return None
        # asked tens of thousands of times a run, and each answer asks the disk
        return self.memo(("module-name", path, self.layout),
                         lambda: _module_name(path, self._is_package, self._starts_imports))

    def path_of_module(self, dotted: str) -> str | None:
        return self._module_index().get(dotted)

    def position_lookup(self, path: str) -> Callable[[cst.CSTNode], tuple[int, int]]:
        """A function giving (line, column) of a node of the file's current module."""
        module = self.parse(path)
        return (lambda node: (1, 0)) if module is None else position_lookup(module, path)

    def trees(self) -> list[cst.Module]:
        """The trees parsed or produced so far (current versions)."""
        return [file.tree for file in self._files.values() if file.tree is not None]

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """A value kept for the whole run: `key` must name everything the value depends
        on (a file's index entry, `layout`, ...), since nothing here invalidates it."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def fact(self, key: str, compute: Callable[["Project"], Any],
             still_holds: Callable[["Project", Any], bool] | None = None,
             update: Callable[["Project", Any], Any] | None = None) -> Any:
        """A fact about the project, computed once until a codemod changes something.
        `still_holds(project, fact)`: asked, when something changed, whether the fact
        computed before is still right (checking costs less than computing it again).
        `update(project, fact)`: when it is not, the new fact made from the one before
        (which may keep what the change left alone) instead of `compute(project)`."""
        cached = self._facts.get(key)
        if cached is None or cached[0] != self.revision:
            if cached is not None and still_holds is not None and still_holds(self, cached[1]):
                cached = (self.revision, cached[1])
            elif cached is not None and update is not None:
                cached = (self.revision, update(self, cached[1]))
            else:
                cached = (self.revision, compute(self))
            self._facts[key] = cached
        return cached[1]

    def index(self, path: str) -> FileIndex | None:
        """The cheap `ast` facts of a Python file's current text (imports, dotted names
        in strings); None for a file that cannot be read. No libcst parse."""
        file = self._files.get(path)
        if file is None or not file.python:
            return None
        if file.created or file.changed:
            text = self.text(path)
            memo = self._changed_index.get(path)
            if memo is None or memo[0] != text:
                # a codemod's output, whose tree is at hand: read off it, not parsed again
                entry = project_index.scan_text(text) if file.tree is None else project_index.scan_tree(file.tree, text)
                memo = (text, entry)
                self._changed_index[path] = memo
            return memo[1]
        if path not in self._index:
            self.index_many([path])
        return self._index.get(path)

    def may_define_or_call(self, path: str) -> bool:
        """Whether a Python file may define a function or lambda or call anything, as its
        index tells (True when it cannot): one that does none of these only binds names to
        data, and has no function, call or change of state for an analysis to find, which
        is known before its parse (a generated table of translations can cost more to
        parse than the rest of its app: calibre-web's 326 KB iso_language_names.py, 0.6 s)."""
        entry = self.index(path)
        return entry is None or entry.error is not None or entry.defines_or_calls

    def index_many(self, paths: Iterable[str]) -> None:
        """Index these files in one batch (a codemod about to ask for many): entries come
        from the cache, the rest are scanned by the engine's `index_scanner`. Files that
        cannot be scanned are then parsed so that the usual one-line error is logged.
        Only what codemods ask for is indexed: in a tree of libraries, most files never.
        Entries are of the files' original bytes (`index` answers for rewritten ones)."""
        items = []
        for path in dict.fromkeys(paths):
            file = self._files.get(path)
            if file is None or not file.python or path in self._index:
                continue
            data = self._read(file)
            if data is not None:
                items.append((path, data, True))
        if not items:
            return
        found = project_index.build(items, self.index_cache, self.index_scanner or (lambda batch: [
            project_index.scan_item(item) for item in batch]))
        self._index.update(found)
        for path, entry in sorted(found.items()):
            if entry.error:
                self.parse(path)

    def bytes(self, path: str) -> bytes | None:
        """A file's bytes as they are on disk; None if it cannot be read (not logged:
        that is for the codemod that needs its text). Not kept (`_peek`)."""
        return self._peek(self._files[path], log=False)

    def _read(self, file: ProjectFile, log: bool = True) -> bytes | None:
        """A file's bytes, kept from now on: for the files whose text is read (which the
        run may write, and `verify` restore from these bytes) or indexed."""
        if file.data is None:
            file.data = self._peek(file, log)
        return None if file.failed else file.data

    def _peek(self, file: ProjectFile, log: bool = True) -> bytes | None:
        """A file's bytes for a search over the tree, not kept unless they were: then
        the run's memory grows with the files it works on, not with the tree. (Read again
        from the page cache, a tree of a thousand library files costs 3 ms a search.)"""
        if file.data is not None or file.real is None or file.failed:
            return None if file.failed else file.data
        try:
            return file.real.read_bytes()
        except OSError as exc:
            if log:
                self._fail(file, f"cannot read: {exc.strerror or exc}")
            return None

    # -- what the engine does -----------------------------------------------------
    def file(self, path: str) -> ProjectFile:
        return self._files[path]

    def files(self) -> list[ProjectFile]:
        return [self._files[p] for p in sorted(self._files)]

    def update(self, path: str, new: cst.Module | str, *, created: bool = False, text: str | None = None) -> None:
        """Record a codemod's output as the file's current state (no re-parse needed);
        `text`: the module's, when it was rendered already."""
        file = self._files.get(path)
        if file is None:
            file = ProjectFile(path, None, python=path.endswith(".py"), original_text=None)
            self._files[path] = file
            self._module_index.cache_clear()
            self.layout += 1
        elif file.text is None:
            self.text(path)
        if isinstance(new, cst.Module):
            file.tree, file.text = new, code_of(new, path) if text is None else text
        else:
            file.tree, file.text = None, new
        self.revision += 1
        self._rewritten[path] = self.revision

    def forget_created(self, path: str) -> None:
        """Drop a file a codemod created, as if it never had (e.g. a change the user rejected)."""
        file = self._files.get(path)
        if file is not None and file.created:
            del self._files[path]
            self._rewritten.pop(path, None)
            self._module_index.cache_clear()
            self.layout += 1
            self.revision += 1

    def mark_failed(self, path: str) -> None:
        """A file a worker process could not read or parse (its error is logged with the
        worker's others): so it is not tried again here."""
        file = self._files[path]
        file.failed, file.tree = True, None
        self._failures += 1

    def _fail(self, file: ProjectFile, message: str) -> None:
        self.mark_failed(file.path)
        self.errors.add(file.path, message)

    def _is_package(self, directory: str) -> bool:
        # Display paths are relative to the working directory, so the disk can be asked
        # directly: the marker may have been excluded from the run.
        init = f"{directory}/__init__.py"
        return init in self._files or self.on_disk(init)

    def _starts_imports(self, directory: str) -> bool:
        """Whether imports start inside this package directory rather than at it: it is a
        top-most package directory (its parent is not one), no file in it imports it by
        its name, and some file imports one of its own modules or packages by that
        module's name. So is a repository whose root holds a stray `__init__.py` while
        its code says `from app.database import ...`, or calibreweb, whose `__init__.py`
        puts its own directory on `sys.path` for `from cps.constants import ...`: named
        from above it, a module would be imported a second time under another name.
        (Decided from the bytes on disk, which a run does not change, with a search of
        the import statements' first names: no parse, and a package that imports itself
        by name, as most do, is settled at the first file that does.)"""
        known = self._import_starts.get(directory)
        if known is None:
            parent, _ = _split(directory)
            top_most = _split(parent)[1] in ("", "..", ".") or not self._is_package(parent)
            known = top_most and self._imports_own_modules_only(directory)
            self._import_starts[directory] = known
        return known

    def _imports_own_modules_only(self, directory: str) -> bool:
        """Some file under `directory` imports a module or package directly in it by that
        one's name, and none imports the directory's own name (see `_starts_imports`)."""
        prefix, name = f"{directory}/", _split(directory)[1].encode()
        paths = [path for path, file in self._files.items()
                 if path.startswith(prefix) and path.endswith(".py") and file.real is not None]  # (not created)
        own = set()
        for path in paths:
            first, slash, _ = path[len(prefix):].partition("/")
            if not slash:
                own.add(first[:-3])
            elif self._is_package(prefix + first):
                own.add(first)
        # a name the standard library has is its module in any absolute import
        own = {module.encode() for module in own - set(sys.stdlib_module_names) - {"__init__"}}
        if not own:
            return False
        heads: set[bytes] = set()
        for path in paths:
            data = self._peek(self._files[path], log=False)
            found = _import_heads(data) if data is not None else set()
            if name in found:
                return False
            heads |= found
        return bool(heads & own)

    @functools.lru_cache(maxsize=1)
    def _module_index(self) -> dict[str, str]:
        index = {}
        for path in self._files:
            if path.endswith(".py"):
                name = _module_name(path, self._is_package, self._starts_imports)
                if name:
                    index.setdefault(name, path)
        return index


# After `from` or `import`, the first name of an absolute module (`from a.b import c`,
# `import a.b`: `a`; relative ones do not match). Each pattern starts with its literal,
# which `re` scans for quickly: one pattern anchored at line starts took five times as long.
_IMPORT_HEADS = (re.compile(rb"from[ \t]+([A-Za-z_][A-Za-z0-9_]*)"),
                 re.compile(rb"import[ \t]+([A-Za-z_][A-Za-z0-9_]*)"))


def _import_heads(data: bytes) -> set[bytes]:
    """The first names of the modules a file's import statements name absolutely (a
    keyword counts where only indentation comes before it on its line)."""
    heads = set()
    for pattern in _IMPORT_HEADS:
        for match in pattern.finditer(data):
            start = match.start()
            if not data[data.rfind(b"\n", 0, start) + 1:start].strip(b" \t"):
                heads.add(match.group(1))
    return heads


def _module_name(path: str, is_package: Callable[[str], bool],
                 starts_imports: Callable[[str], bool] = lambda directory: False) -> str | None:
    """`a/pkg/sub/mod.py` -> `pkg.sub.mod` when `pkg/` and `sub/` are packages and imports
    do not start inside `pkg/` (`starts_imports`; then it is `sub.mod`). (On the path's
    string, with the parts `PurePosixPath` would give: asked for every file of the tree,
    pathlib's objects were most of the cost.)"""
    if "//" in path or "/./" in path or path.startswith("./") or path.endswith(("/", "/.")):
        path = str(PurePosixPath(path))  # the same path, written the one way the rest assumes
    directory, filename = _split(path)
    dot = filename.rfind(".")
    stem = filename[:dot] if 0 < dot < len(filename) - 1 else filename
    name = [stem]
    if stem == "__init__":
        directory, package = _split(directory)
        name = [package]
    while True:
        parent, part = _split(directory)
        if part in ("", "..", ".") or not is_package(directory) or starts_imports(directory):
            break
        name.insert(0, part)
        directory = parent
    return ".".join(name) if name and all(part.isidentifier() for part in name) else None


def _split(path: str) -> tuple[str, str]:
    """(parent, name), as `PurePosixPath(path)` has them, of a path written as it writes them."""
    if path in ("", ".", "/"):
        return path or ".", ""
    head, slash, tail = path.rpartition("/")
    return (head or "/", tail) if slash else (".", path)


def position_lookup(module: cst.Module, path: str | None = None) -> Callable[[cst.CSTNode], tuple[int, int]]:
    """(line, column) of nodes of `module` (a version of the file at `path`), resolved
    lazily on first use."""
    def lookup(node: cst.CSTNode) -> tuple[int, int]:
        return code_ranges(module, path).start(node) or (1, 0)

    return lookup
