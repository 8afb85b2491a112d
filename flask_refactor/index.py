"""The project index: what is cheap to know about every Python file, without libcst.

Codemods need a few facts about files they will never rewrite: which modules each file
imports (to follow an app across its modules, or to know who imports a module) and which
dotted names its strings spell (`mock.patch("pkg.views.x")`). A libcst parse costs about
13 times an `ast` parse, so these facts come from `ast` and a regular expression, are
computed in worker processes, and are cached on disk keyed by a hash of the file's
bytes, so that an unchanged file is never scanned twice.

The index knows Python, not Flask: it records imports, strings, and whether the code
defines or calls anything at all, nothing else.

The cache is a directory of small JSON files, one per content hash, under a
version-stamped folder (the index format and the Python grammar both change what a scan
yields). Entries are written atomically (a temporary file renamed into place), so
concurrent runs at worst compute the same entry twice; an entry that cannot be read or
does not have the expected shape is ignored and recomputed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from .memo import per_statement
from .source import SourceError, decode
from .walk import WHITESPACE, iter_nodes

INDEX_VERSION = 5  # bump when FileIndex or the scan changes
CACHE_ENV = "FLASK_REFACTOR_CACHE_DIR"
NO_CACHE_ENV = "FLASK_REFACTOR_NO_CACHE"  # set by `--no-cache`; batch and verify workers inherit it


@dataclass(frozen=True)
class ImportRecord:
    """One imported name: `import a.b as c` is (0, None, "a.b", "c"); `from ..x import y`
    is (2, "x", "y", None); a star import has name "*"."""

    level: int
    module: str | None  # the `from` part, None for `import a.b` and `from . import x`
    name: str
    asname: str | None
    line: int
    module_level: bool  # executed at import time: at top level or inside if/try/with there

    def as_list(self) -> list:
        return [self.level, self.module, self.name, self.asname, self.line, self.module_level]


@dataclass(frozen=True)
class FileIndex:
    imports: tuple[ImportRecord, ...] = ()
    # Dotted names that open a quoted string (`"pkg.mod.attr"`, `"pkg.mod.x y"`), as tools
    # name things without importing them (`monkeypatch.setattr("pkg.mod.x", ...)`). Found
    # by a regular expression over the text: it only says which files deserve a closer look.
    dotted_strings: tuple[str, ...] = ()
    error: str | None = None  # the file could not be scanned (the engine reports it its own way)
    # Whether the code defines a function or lambda or calls anything, anywhere. A file
    # that does none of these only binds names to literals, imports and classes of
    # plain attributes (a generated table of translations, say): there is no call to
    # follow in it, which whole-app analyses can know before parsing it with libcst.
    defines_or_calls: bool = True

    def as_json(self) -> dict:
        return {"imports": [r.as_list() for r in self.imports], "dotted_strings": list(self.dotted_strings),
                "error": self.error, "defines_or_calls": self.defines_or_calls}

    @classmethod
    def from_json(cls, data: dict) -> "FileIndex":
        return cls(tuple(ImportRecord(int(a), b, str(c), d, int(e), bool(f)) for a, b, c, d, e, f in data["imports"]),
                   tuple(str(s) for s in data["dotted_strings"]), data["error"], bool(data["defines_or_calls"]))


def scan_text(text: str) -> FileIndex:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as exc:
        return FileIndex(error=f"{type(exc).__name__}: {exc}")
    imports: list[ImportRecord] = []
    _collect_imports(tree.body, imports, module_level=True)
    return FileIndex(tuple(imports), _dotted_strings(text), defines_or_calls=_defines_or_calls(tree))


# (`ast.walk` goes breadth first: in code, a top-level `def` or a call in a top-level
# assignment ends the search among the first nodes; only data is walked whole.)
_CODE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.Call)
_TREE_CODE_NODES = (cst.FunctionDef, cst.Lambda, cst.Call)


def _defines_or_calls(tree: ast.Module) -> bool:
    return any(isinstance(node, _CODE_NODES) for node in ast.walk(tree))


def _dotted_strings(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(match[2] for match in _DOTTED_STRING.finditer(text)))


_DOTTED_STRING = re.compile(r"""(["'])([A-Za-z_][\w.]*\.[A-Za-z_]\w*)""")


def scan_tree(module: cst.Module, text: str) -> FileIndex:
    """`scan_text(text)` for a text rendered from `module`, read off the tree instead of
    parsing the text again: a codemod's new version of a file is indexed this way. Only
    statements are walked for imports, never expressions, which is a fraction of an `ast`
    parse; the walk for a definition or a call stops at the first, among the first
    statements of code. The import records carry no line (0): nothing asks where an
    import of rewritten code is.
    Each top-level statement's answers are kept while it is in a tree: the next version
    of the file, which a codemod made by replacing a few, has only those walked."""
    imports = [record for statement in module.body for record in _statement_imports(statement)]
    defines_or_calls = any(_statement_defines_or_calls(statement) for statement in module.body)
    return FileIndex(tuple(imports), _dotted_strings(text), defines_or_calls=defines_or_calls)


@per_statement
def _statement_defines_or_calls(statement: cst.CSTNode) -> bool:
    if isinstance(statement, cst.FunctionDef):
        return True
    if isinstance(statement, cst.SimpleStatementLine) and all(
            isinstance(small, (cst.Import, cst.ImportFrom)) for small in statement.body):
        return False  # (most of a module's first lines: nothing in them can call)
    return any(isinstance(node, _TREE_CODE_NODES) for node in iter_nodes(statement, skip=WHITESPACE))


@per_statement
def _statement_imports(statement: cst.CSTNode) -> tuple[ImportRecord, ...]:
    imports: list[ImportRecord] = []
    _collect_tree_imports([statement], imports, module_level=True)
    return tuple(imports)


def _collect_tree_imports(body, out: list[ImportRecord], module_level: bool) -> None:
    """`_collect_imports` on libcst statements: the same records, in the same order."""
    for stmt in body:
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            for small in stmt.body:
                out.extend(records_of(small, module_level))
        elif isinstance(stmt, cst.BaseCompoundStatement):
            inner = module_level and isinstance(stmt, _TREE_MODULE_LEVEL_BLOCKS)
            for block in _tree_blocks(stmt):
                _collect_tree_imports(block, out, inner)


# `_MODULE_LEVEL_BLOCKS` in libcst's classes (`With` is both `with` and `async with`;
# an `elif` is an `If` in the `orelse` of another)
_TREE_MODULE_LEVEL_BLOCKS = (cst.If, cst.Try, cst.With)


def _tree_blocks(stmt: cst.BaseCompoundStatement) -> list:
    """The statement lists nested in a compound statement, in `_blocks`' order: body,
    handlers, orelse, finalbody, cases (a one-line body is a list of small statements)."""
    blocks = [_suite(stmt.body)] if isinstance(getattr(stmt, "body", None), cst.BaseSuite) else []
    blocks += [_suite(handler.body) for handler in getattr(stmt, "handlers", ())]
    orelse = getattr(stmt, "orelse", None)
    if isinstance(orelse, cst.If):
        blocks.append([orelse])
    elif orelse is not None:
        blocks.append(_suite(orelse.body))
    finalbody = getattr(stmt, "finalbody", None)
    if finalbody is not None:
        blocks.append(_suite(finalbody.body))
    blocks += [_suite(case.body) for case in getattr(stmt, "cases", ())]
    return blocks


def _suite(suite: cst.BaseSuite) -> list:
    return list(suite.body) if isinstance(suite, cst.IndentedBlock) else [suite]


def records_of(small: cst.CSTNode, module_level: bool) -> list[ImportRecord]:
    """The import records of one small statement of a libcst tree (none if it imports
    nothing), without a line (0)."""
    if isinstance(small, cst.Import):
        return [ImportRecord(0, None, get_full_name_for_node(alias.name), alias.asname.name.value if alias.asname else None, 0,
                             module_level) for alias in small.names]
    if isinstance(small, cst.ImportFrom):
        source = get_full_name_for_node(small.module) if small.module else None
        if isinstance(small.names, cst.ImportStar):
            return [ImportRecord(len(small.relative), source, "*", None, 0, module_level)]
        return [ImportRecord(len(small.relative), source, get_full_name_for_node(alias.name),
                             alias.asname.name.value if alias.asname else None, 0, module_level)
                for alias in small.names]
    return []


def scan_bytes(data: bytes, python: bool = True) -> FileIndex:
    try:
        text, _ = decode(data, python=python)
    except SourceError as exc:
        return FileIndex(error=str(exc))
    return scan_text(text)


# Statements whose blocks run at import time when they stand at module level. This is
# the walk of `codemods.support.imports.module_level_statements`, done on `ast` (TryStar
# is left out there too).
_MODULE_LEVEL_BLOCKS = (ast.If, ast.Try, ast.With, ast.AsyncWith)


def _collect_imports(body: list[ast.stmt], out: list[ImportRecord], module_level: bool) -> None:
    for stmt in body:
        if isinstance(stmt, ast.Import):
            out.extend(ImportRecord(0, None, a.name, a.asname, stmt.lineno, module_level) for a in stmt.names)
        elif isinstance(stmt, ast.ImportFrom):
            out.extend(ImportRecord(stmt.level, stmt.module, a.name, a.asname, stmt.lineno, module_level)
                       for a in stmt.names)
        else:
            inner = module_level and isinstance(stmt, _MODULE_LEVEL_BLOCKS)
            for block in _blocks(stmt):
                _collect_imports(block, out, inner)


def _blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists nested in a statement, in source order."""
    blocks = []
    for name in ("body", "handlers", "orelse", "finalbody", "cases"):
        value = getattr(stmt, name, None)
        if not value:
            continue
        if name in ("handlers", "cases"):
            blocks.extend(item.body for item in value)
        else:
            blocks.append(value)
    return blocks


# -- the cache ---------------------------------------------------------------------------------

def content_key(data: bytes, python: bool = True) -> str:
    return hashlib.blake2b(data + (b"\0py" if python else b"\0txt"), digest_size=20).hexdigest()


def default_cache() -> "IndexCache | None":
    """The user's index cache, or None when caching is switched off."""
    if os.environ.get(NO_CACHE_ENV):
        return None
    return IndexCache(default_cache_dir())


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "flask-refactor"


class IndexCache:
    """Index entries on disk, one JSON file per content hash."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / f"index-v{INDEX_VERSION}-py{sys.version_info[0]}{sys.version_info[1]}"
        self.writable = True

    def get(self, key: str) -> FileIndex | None:
        try:
            with open(self.dir / key[:2] / f"{key}.json", encoding="utf-8") as handle:
                return FileIndex.from_json(json.load(handle))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or corrupt: computed again and rewritten

    def put(self, key: str, entry: FileIndex) -> None:
        if not self.writable:
            return
        folder = self.dir / key[:2]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry.as_json(), handle, separators=(",", ":"))
            os.replace(temp, folder / f"{key}.json")
        except OSError:
            self.writable = False  # a read-only or full cache disk must not fail the run


def build(items: Iterable[tuple[str, bytes, bool]], cache: IndexCache | None,
          scan_many) -> dict[str, FileIndex]:
    """Index every (path, bytes, python) item: cached entries are read, the rest scanned
    by `scan_many(list of (bytes, python)) -> list of FileIndex` (the engine shares them
    with forked workers when that pays) and written to the cache."""
    found: dict[str, FileIndex] = {}
    missing: list[tuple[str, str, bytes, bool]] = []
    for path, data, python in items:
        key = content_key(data, python)
        entry = cache.get(key) if cache else None
        if entry is None:
            missing.append((path, key, data, python))
        else:
            found[path] = entry
    scanned = scan_many([(data, python) for _, _, data, python in missing]) if missing else []
    for (path, key, _, _), entry in zip(missing, scanned):
        found[path] = entry
        if cache is not None:
            cache.put(key, entry)
    return found


def scan_item(item: tuple[bytes, bool]) -> FileIndex:
    return scan_bytes(*item)
