"""The one thing the engine asks git: does the user have uncommitted work in a file we
are about to write? Git is the user's undo, so `apply` refuses to overwrite such work."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _toplevel(directory: Path) -> Path | None:
    for candidate in [directory, *directory.parents]:
        if (candidate / ".git").exists():
            return candidate
    return None


def dirty_files(files: list[Path]) -> list[Path]:
    """The files among `files` that git reports as modified, staged or untracked."""
    by_repo: dict[Path, list[Path]] = {}
    for file in files:
        top = _toplevel(file.parent if not file.is_dir() else file)
        if top is not None:
            by_repo.setdefault(top, []).append(file)
    dirty = []
    for top, members in by_repo.items():
        try:
            completed = subprocess.run(
                ["git", "-C", str(top), "status", "--porcelain=v1", "-z", "--untracked-files=all", "--",
                 *[str(f.relative_to(top)) for f in members]],
                capture_output=True, timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue  # no usable git: nothing to protect with it
        if completed.returncode != 0:
            continue
        reported = set()
        for entry in completed.stdout.decode("utf-8", "surrogateescape").split("\0"):
            if len(entry) > 3:
                reported.add((top / entry[3:]).resolve())
        dirty.extend(f for f in members if f.resolve() in reported)
    return dirty
