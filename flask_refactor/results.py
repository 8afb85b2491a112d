"""Whole-run results on disk: a run over a tree that has not changed is answered from
the cache, without parsing anything.

A project-wide codemod's output depends on every file of the run, so results are kept
per run, keyed by all a run depends on: this program's code and versions, the codemods
and their options, the working directory, and the path and bytes of every file of the
run (templates and other non-Python files too). What a run learnt from the disk beyond
those files (`Project.disk_probes`: is there an `__init__.py`, does a file exist where a
codemod would create one) is stored with the result and asked again before the result
is used: a different answer means the result is not used.

Entries sit beside the index cache; writes are atomic and a corrupt entry is ignored.
Only the newest `KEEP` entries are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

RESULTS_VERSION = 1
KEEP = 32


def run_key(files: Iterable[tuple[str, bool, bytes | None]], codemods: Iterable[Any], cwd: Path,
            discovery: Iterable[Any]) -> str:
    """`files`: (path, python, bytes) of every file of the run; `codemods`: the chain;
    `discovery`: what discovery found besides files (errors, skipped files)."""
    digest = hashlib.blake2b(digest_size=20)

    def feed(*parts: Any) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else repr(part).encode()
            digest.update(len(data).to_bytes(8, "little") + data)

    feed(RESULTS_VERSION, sys.version, _version("libcst"), str(cwd), *_code_fingerprint(codemods))
    for codemod in codemods:
        feed(type(codemod).__module__, type(codemod).__qualname__, codemod.name, sorted(codemod.config.items()))
    feed(*discovery)
    for path, python, data in files:
        feed(path, python, b"\0unreadable" if data is None else hashlib.blake2b(data, digest_size=20).digest())
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def _code_fingerprint(codemods: Iterable[Any]) -> list[tuple]:
    """Every loaded module of this program and of the codemods' packages, by file size and
    modification time: editing the code (an editable install, a plugin) misses the cache."""
    prefixes = ("flask_refactor", *{type(c).__module__.split(".")[0] for c in codemods})
    found = []
    for name, module in sorted(sys.modules.items()):
        source = getattr(module, "__file__", None)
        if source and name.split(".")[0] in prefixes:
            try:
                info = os.stat(source)
            except OSError:
                continue
            found.append((name, info.st_size, info.st_mtime_ns))
    return found


class ResultCache:
    def __init__(self, root: Path) -> None:
        self.dir = root / f"results-v{RESULTS_VERSION}"

    def load(self, key: str) -> dict | None:
        """The stored run, if there is one and the disk still answers as it did."""
        try:
            with open(self.dir / f"{key}.json", encoding="utf-8") as handle:
                payload = json.load(handle)
            probes = payload["probes"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if any(Path(path).exists() != bool(answer) for path, answer in probes.items()):
            return None
        return payload

    def store(self, key: str, payload: dict) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, separators=(",", ":"))
            os.replace(temp, self.dir / f"{key}.json")
            self._prune()
        except OSError:
            pass  # a read-only or full cache disk must not fail the run

    def _prune(self) -> None:
        entries = sorted(self.dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in entries[KEEP:]:
            stale.unlink(missing_ok=True)
