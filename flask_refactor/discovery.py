"""Which files a run looks at.

Directories are walked honouring `.gitignore` files (via pathspec, the same matcher
black and others use), skipping virtualenvs, VCS and build directories, hidden
directories, `node_modules` and `migrations/`. Symlinked directories are followed once
(loops are cut by device/inode). Files named explicitly are always taken.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .project import ErrorLog, ProjectFile

if TYPE_CHECKING:
    import pathspec

SKIPPED_DIRS = frozenset({
    "node_modules", "__pycache__", "build", "dist", "site-packages", "migrations",
    "venv", "env", "htmlcov", "__pypackages__",
})
GENERATED_MARKER = b"@" + b"generated"  # split so this file is not itself "generated"


@dataclass
class Discovery:
    files: list[ProjectFile] = field(default_factory=list)
    errors: ErrorLog = field(default_factory=ErrorLog)
    skipped_generated: list[str] = field(default_factory=list)


def display_path(path: Path, cwd: Path) -> str:
    """Relative to the working directory when inside it, else absolute; POSIX separators."""
    # string operations: called for every file and directory, where pathlib's are slow
    absolute, base = os.path.abspath(path), str(cwd).rstrip(os.sep)
    if absolute == base:
        return "."
    if absolute.startswith(base + os.sep):
        return absolute[len(base) + 1:].replace(os.sep, "/")
    return Path(absolute).as_posix()


class _Ignores:
    """The .gitignore rules in force for a directory, each anchored where it was found."""

    def __init__(self, specs: tuple[tuple[Path, pathspec.PathSpec], ...] = ()) -> None:
        self.specs = specs

    def with_dir(self, directory: Path) -> "_Ignores":
        spec = _load_spec(directory / ".gitignore")
        return _Ignores(self.specs + ((directory, spec),)) if spec else self

    def ignored(self, path: Path, is_dir: bool) -> bool:
        for anchor, spec in self.specs:
            try:
                rel = path.relative_to(anchor).as_posix()
            except ValueError:
                continue
            if spec.match_file(rel + "/" if is_dir else rel):
                return True
        return False


def _load_spec(path: Path) -> pathspec.PathSpec | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return _gitignore_spec(lines) if lines else None


def _gitignore_spec(lines: list[str]) -> pathspec.PathSpec:
    import pathspec  # imported when a tree has ignore rules (10 ms of a run's start otherwise)

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _initial_ignores(start: Path) -> _Ignores:
    """The .gitignore files between the repository root and `start`, plus info/exclude."""
    start = start.resolve()
    chain = [start, *start.parents]
    root = next((d for d in chain if (d / ".git").exists()), None)
    if root is None:
        return _Ignores()
    ignores = _Ignores()
    exclude = _load_spec(root / ".git" / "info" / "exclude")
    if exclude:
        ignores = _Ignores(((root, exclude),))
    for directory in reversed(chain[: chain.index(root) + 1]):
        if directory != start:
            ignores = ignores.with_dir(directory)
    return ignores


def _is_virtualenv(directory: Path) -> bool:
    return (directory / "pyvenv.cfg").exists() or (directory / "conda-meta").is_dir()


def discover(paths: list[str], excludes: list[str] = (), cwd: Path | None = None) -> Discovery:
    cwd = Path(os.path.abspath(cwd or Path.cwd()))
    result = Discovery()
    exclude_spec = _gitignore_spec(list(excludes)) if excludes else None
    seen_files: set[tuple[int, int]] = set()

    def excluded(display: str, is_dir: bool) -> bool:
        return bool(exclude_spec and exclude_spec.match_file(display + "/" if is_dir else display))

    def add_file(path: Path, explicit: bool) -> None:
        display = display_path(path, cwd)
        if not explicit and excluded(display, False):
            return
        try:
            info = path.stat()
        except OSError as exc:
            result.errors.add(display, f"cannot read: {exc.strerror or exc}")
            return
        if not stat.S_ISREG(info.st_mode):
            if explicit:
                result.errors.add(display, "not a regular file")
            return
        key = (info.st_dev, info.st_ino)
        if key in seen_files:
            return  # the same file reached twice through a symlink
        seen_files.add(key)
        is_python = path.suffix == ".py"
        if not is_python:
            result.files.append(ProjectFile(display, path.resolve(), python=False))
            return
        try:
            with open(path, "rb") as handle:  # the rest is read when needed, and kept only then
                head = handle.read(4096)
        except OSError as exc:
            result.errors.add(display, f"cannot read: {exc.strerror or exc}")
            return
        if GENERATED_MARKER in head and not explicit:
            result.skipped_generated.append(display)
            return
        result.files.append(ProjectFile(display, path.resolve(), python=True))

    def walk(directory: Path, ignores: _Ignores, seen_dirs: set[tuple[int, int]]) -> None:
        try:
            info = directory.stat()
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            result.errors.add(display_path(directory, cwd), f"cannot read directory: {exc.strerror or exc}")
            return
        key = (info.st_dev, info.st_ino)
        if key in seen_dirs:
            return  # symlink loop
        seen_dirs = seen_dirs | {key}
        ignores = ignores.with_dir(directory)
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks; a dangling link is neither
            except OSError:
                continue
            if is_dir:
                if (entry.name.startswith(".") or entry.name in SKIPPED_DIRS
                        or entry.name.endswith(".egg-info") or _is_virtualenv(path)
                        or ignores.ignored(path, True) or excluded(display_path(path, cwd), True)):
                    continue
                walk(path, ignores, seen_dirs)
            elif not ignores.ignored(path, False):
                add_file(path, explicit=False)

    for raw in paths:
        path = Path(raw)
        if not os.path.lexists(path):
            result.errors.add(raw, "no such file or directory")
        elif path.is_dir():
            walk(path, _initial_ignores(path), set())
        elif path.exists():
            add_file(path, explicit=True)  # says so if it is not a regular file
        else:
            result.errors.add(raw, "broken symbolic link")
    return result
