"""Validating output and writing it so that nothing is lost.

Every Python file is re-parsed, by Python's own compiler, before anything is written.
Writes go to a temporary file beside the target (same file system, mode copied) and are
then renamed over it. All temporary files are written first; the renames follow with
Ctrl-C held back, so an interrupted run leaves every file wholly old or wholly new.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .project import describe_syntax_error


def validate(path: str, text: str, python: bool) -> str | None:
    """Why this output must not be written, or None if it is sound."""
    if not python:
        return None
    # `compile` is the judge of what Python runs, and stricter than a parse (it rejects a
    # `return` outside a function, a misplaced `nonlocal`). A libcst parse as well cost
    # 12x the compile (most of validating a large app) and could only add a rejection of
    # code Python accepts: the output is libcst's rendering of a tree, and every fixture
    # output is parsed again by the idempotency tests.
    try:
        compile(text, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return f"codemod output does not parse, not written: {describe_syntax_error(exc, text)}"
    return None


@dataclass
class PendingWrite:
    path: str  # display path
    target: Path
    data: bytes
    created: bool


def read_only_reason(target: Path) -> str | None:
    """Why an existing file cannot be replaced (checked by mode bits too: root ignores them)."""
    try:
        info = target.stat()
    except FileNotFoundError:
        return None
    if not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(target, os.W_OK):
        return "read-only file, not written"
    if not os.access(target.parent, os.W_OK | os.X_OK):
        return "its directory is not writable, not written"
    return None


@contextlib.contextmanager
def _sigint_deferred():
    received = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def write_all(pending: list[PendingWrite]) -> dict[str, str]:
    """Write every file or none of the ones that failed; returns {path: error} for failures."""
    errors: dict[str, str] = {}
    staged: list[tuple[PendingWrite, str]] = []
    made_dirs: list[Path] = []
    try:
        for item in pending:
            reason = read_only_reason(item.target)
            if reason:
                errors[item.path] = reason
                continue
            try:
                staged.append((item, _stage(item, made_dirs)))
            except OSError as exc:
                errors[item.path] = f"cannot write: {exc.strerror or exc}"
        with _sigint_deferred():
            for item, temp in staged:
                try:
                    os.replace(temp, item.target)
                except OSError as exc:
                    errors[item.path] = f"cannot write: {exc.strerror or exc}"
                    _remove(temp)
            staged = []
    finally:
        for _, temp in staged:  # interrupted before the renames: drop every temporary file
            _remove(temp)
        if staged:
            for directory in reversed(made_dirs):
                with contextlib.suppress(OSError):
                    directory.rmdir()
    return errors


def _stage(item: PendingWrite, made_dirs: list[Path]) -> str:
    parent = item.target.parent
    if not parent.exists():
        missing = [p for p in [parent, *parent.parents] if not p.exists()]
        parent.mkdir(parents=True, exist_ok=True)
        made_dirs.extend(reversed(missing))
    fd, temp = tempfile.mkstemp(dir=parent, prefix=f".{item.target.name}.", suffix=".flask-refactor")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(item.data)
            handle.flush()
            os.fsync(handle.fileno())
        if item.created:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)
        else:
            info = item.target.stat()
            os.chmod(temp, stat.S_IMODE(info.st_mode))
            with contextlib.suppress(OSError):
                os.chown(temp, info.st_uid, info.st_gid)
    except BaseException:
        _remove(temp)
        raise
    return temp


def _remove(temp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(temp)
