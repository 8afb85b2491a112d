"""Test helpers: running codemods over fixture trees, and the behaviour harness that
serves a fixture app through Flask's test client in a fresh interpreter."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from flask_refactor import forking, pipeline, registry

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
RUNNER = Path(__file__).resolve().parent / "harness_runner.py"


def record_forks(monkeypatch) -> list[int]:
    """Have `forking.work_with_forks` still fork, noting how many items each call shares."""
    forks: list[int] = []
    real = forking.work_with_forks
    monkeypatch.setattr(forking, "work_with_forks", lambda *args: forks.append(len(args[2])) or real(*args))
    return forks


def take_turns(monkeypatch) -> dict[object, list[int]]:
    """Have work shared with forked workers taken in turns, whatever the timing: this
    process takes its first item at once and its next once a worker took one; a worker
    takes its first once this process took one (when it takes any). Returns, per shared
    piece of work (its claims), the items taken here."""
    taken_here: dict[object, list[int]] = {}
    take_front, take_back = forking._Claims.take_front, forking._Claims.take_back

    def here_then_after_a_worker(claims):
        while claims.front == 1 and claims.back == claims.count:
            time.sleep(0.001)
        index = take_front(claims)
        if index is not None:
            taken_here.setdefault(claims, []).append(index)  # (the claims kept: no id is reused)
        return index

    def after_the_first_here(claims):
        while claims.here_too and claims.front == 0:
            time.sleep(0.001)
        return take_back(claims)

    monkeypatch.setattr(forking._Claims, "take_front", here_then_after_a_worker)
    monkeypatch.setattr(forking._Claims, "take_back", after_the_first_here)
    return taken_here


def all_work_forked(monkeypatch) -> None:
    """Have every item of forkable work done in a forked worker: none before the fork
    (nothing to judge the pace by, so it forks), and none by the coordinator after."""
    monkeypatch.setattr(forking, "RUN_HERE_FIRST_SECONDS", 0)
    monkeypatch.setattr(forking, "COORDINATOR_WORKS", False)


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file below `root` by POSIX relative path (bytecode caches left out)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
    }


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def make_codemods(names: list[str], options: dict[str, dict] | None = None):
    options = options or {}
    return [registry.get(name)(**options.get(name, {})) for name in names]


def run_codemods(tree: Path, names: list[str], options: dict | None = None, apply: bool = True,
                 jobs: int = 1) -> pipeline.RunResult:
    """Run codemods over `tree` as the CLI would (paths relative to it), optionally writing."""
    cwd = Path.cwd()
    os.chdir(tree)
    try:
        result = pipeline.run(["."], make_codemods(names, options), jobs=jobs)
        if apply:
            pipeline.apply(result)
    finally:
        os.chdir(cwd)
    return result


@dataclass
class Case:
    """fixtures/<codemod>/<case>/: before/, optional after/ (absent: no change), case.toml."""

    directory: Path
    codemods: list[str]
    options: dict = field(default_factory=dict)
    findings: list[dict] = field(default_factory=list)
    behaviour: dict | None = None

    @property
    def id(self) -> str:
        return f"{self.directory.parent.name}/{self.directory.name}"

    @property
    def before(self) -> Path:
        return self.directory / "before"

    @property
    def after(self) -> Path:
        after = self.directory / "after"
        return after if after.exists() else self.before

    @classmethod
    def load(cls, directory: Path) -> "Case":
        config_path = directory / "case.toml"
        config = tomllib.loads(config_path.read_text()) if config_path.exists() else {}
        return cls(
            directory,
            config.get("codemods", [directory.parent.name]),
            config.get("options", {}),
            config.get("findings", []),
            config.get("behaviour"),
        )


def all_cases() -> list[Case]:
    return [Case.load(d) for d in sorted(FIXTURES.glob("*/*")) if (d / "before").is_dir()]


def finding_matches(finding, expected: dict) -> bool:
    return (finding.path == expected["path"]
            and finding.line == expected.get("line", finding.line)
            and expected.get("contains", "") in finding.message
            and finding.severity.value == expected.get("severity", finding.severity.value))


# -- behaviour harness --------------------------------------------------------------

def serve_requests(app_dir: Path, target: str, requests: list[dict], env: dict | None = None,
                   timeout: float = 120) -> list[dict]:
    """Import `target` ("module:attr" or "module:factory()") from `app_dir` in a fresh
    interpreter, send `requests` through its test client, return the responses."""
    app_dir = Path(app_dir).resolve()  # it goes on sys.path of a process that runs inside it
    completed = subprocess.run(
        [sys.executable, str(RUNNER), str(app_dir), target],
        input=json.dumps(requests), capture_output=True, text=True, timeout=timeout,
        cwd=app_dir, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", **(env or {})},
    )
    if completed.returncode != 0:
        raise AssertionError(f"harness failed for {app_dir} ({target}):\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.splitlines()[-1])


def run_app_suite(tree: Path, python: str = sys.executable, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a fixture app's own pytest suite (its `tests/`) in a fresh interpreter."""
    return subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "tests"],
        cwd=tree, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
    )


# Syntax that real packages may not all use: conditional fields (an f-string format spec),
# match, decorators, async, walrus, star-expressions, type hints, comments everywhere.
CORNER_SYNTAX = textwrap.dedent('''\
    # leading comment
    import os, sys as system
    from . import sibling
    from ..pkg import (a as b, c,)

    @decorator(arg=1)
    @other
    async def handler(x: int, /, y=2, *args, z: "str" = 'q', **kw) -> list[int]:
        """Docstring."""
        async with lock as held, other():
            async for item in stream:
                yield item
        value = f"{x!r:>{width}} and {y=} {z:{fill}^10}"
        if (n := len(args)) > 1 and not kw:
            return [i ** 2 for i in range(n) if i % 2]
        elif n:
            raise ValueError("n") from None
        else:
            del value
        return {k: v for k, v in kw.items()} | {**kw}

    class Thing(Base, metaclass=Meta):
        attr: int = 0

        def method(self, *, key) -> None:
            global counter
            nonlocal_value = lambda a, *b, **c: (a, *b)
            match key:
                case {"k": [1, 2, *rest]} | Point(x=0) as matched if matched:
                    pass
                case _:
                    counter += 1
            try:
                pass
            except* (OSError, ValueError) as error:
                print(error, sep="", end="\\n"); return
            finally:
                x = y = z[1:2, ::3]
            while False:
                break
            else:
                continue_ = ...
    ''')


def installed_package_sources(packages: tuple[str, ...] = ("flask", "werkzeug", "click", "jinja2")) -> list[Path]:
    """Real code nobody here wrote: the sources of packages installed next to the tests."""
    files: list[Path] = []
    for package in packages:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin, package
        files.extend(sorted(Path(spec.origin).parent.rglob("*.py")))
    return files


def sample_modules(packages: tuple[str, ...]) -> list[tuple[str, cst.Module]]:
    """(where, module) for the corner-syntax module and every source file of `packages`:
    what the tests comparing our tree readers with libcst's run over."""
    return [("corners", cst.parse_module(CORNER_SYNTAX))] + [
        (str(path), cst.parse_module(path.read_bytes())) for path in installed_package_sources(packages)]


def module_sharing_nodes() -> tuple[cst.Module, cst.Name]:
    """A tree holding one node object in two places, as a codemod may build one: a Name
    in the first two statements, and a function twice. (The Name is returned too.)"""
    module = cst.parse_module("x = 1\ny = 2\n\ndef f():\n    return 3\n")
    shared = cst.Name("g")
    first, second, function = module.body
    module = module.with_changes(body=[
        first.with_changes(body=[first.body[0].with_changes(value=shared)]),
        second.with_changes(body=[second.body[0].with_changes(value=shared)]),
        function, function])
    return module, shared


def rendered_for_positions(monkeypatch) -> list:
    """The trees rendered for positions from now on (the whole module, one of its
    top-level statements, or such a statement up to where it starts), in order."""
    from flask_refactor import positions

    rendered = []
    whole, statement, until_start = positions.code_ranges_of, positions._render_statement, positions._render_until_start
    monkeypatch.setattr(positions, "code_ranges_of", lambda module: rendered.append(module) or whole(module))
    monkeypatch.setattr(positions, "_render_statement",
                        lambda module, *rest: rendered.append(module) or statement(module, *rest))
    monkeypatch.setattr(positions, "_render_until_start",
                        lambda module, *rest: rendered.append(module) or until_start(module, *rest))
    positions.code_ranges.cache_clear()
    return rendered
