"""Throughput of flask-refactor against libcst's own codemod runner, on the same trees.

    python benchmarks/run.py [--jobs N] [--shapes a,b,c,m] [--repeat N] [--app DIR ...] [--keep DIR] [--markdown]

Three trees, shaped like users' code, and one test of memory:

(a) library: the source of real installed packages (libcst, click, rich, pygments,
    pytest, jinja2, ...) plus one multi-module Flask shop (the app, models, a
    scoped_session module, helpers, and view modules importing the app) sized so that 5%
    of the files are Flask files. Every codemod acts on every view module.
(b) big app: one Flask app of ~300 small modules (views, models and services importing
    each other, the app in the package's __init__): every file is Flask code.
(c) cache: (a) with an empty cache, then warm, then with one file edited.
(m) memory: `--all` on (a) and on (a) with its library code three times over (the same
    app): the peak RSS must follow the Flask code, not the size of the tree.
(r) real apps, with `--app DIR` (any number): a copy of each directory, `--all` and
    libcst's no-op only (a real app need not give every codemod work, and may hold
    files that do not parse: those are counted, not fatal).

For (a) and (b), `flask-refactor check --no-cache` (everything computed: nothing read
from the cache) with `--all` and with each codemod alone; for (c), `--all` with an empty
cache, again on the same tree (answered from the cache), and after one library file was
edited (computed again, the other files' index entries read from the cache). Each shape
also runs `python -m libcst.tool codemod noop.NOOPCommand`, all at the same `--jobs`. It
prints wall-clock seconds, lines per second, the speed ratio to libcst's no-op and the peak RSS
of the largest process. Runs are checked to have done their work (each codemod alone
must change something on (a) and (b)). Nothing is asserted on time: speed is reported,
never tested.

The runs of (b) and (r) take seconds, where this shared machine's drift from one run to
the next (10-20%) is as large as what is measured: each of their rows is the median of
`--repeat` runs (3 by default), made in passes that run every row once, so that ours and
libcst's alternate. So are (c)'s rows of ours (a warm run takes a third of a second,
where one run can take half as long again as the next); its no-op runs once, as do
(a) and (m): libcst's no-op takes half a minute on (a).
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import build_big_app, build_library_tree  # noqa: E402

CODEMODS = ["app-factory", "globals-to-g", "teardown", "thread-context", "error-handling", "extract-services"]
BASELINE = "libcst noop"


@dataclass
class Timing:
    seconds: float
    peak_rss_mb: float
    changed: int | None  # files the run would change (None for libcst)


def measure(command: list[str], cwd: Path, env: dict, errors_allowed: bool = False) -> Timing:
    """Run `command` from a fresh Python process so that its peak RSS is its own."""
    probe = (
        "import json, subprocess, sys, time, resource\n"
        "cmd, cwd = json.loads(sys.argv[1]), sys.argv[2]\n"
        "start = time.perf_counter()\n"
        "done = subprocess.run(cmd, cwd=cwd, capture_output=True)\n"
        "seconds = time.perf_counter() - start\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "sys.stdout.buffer.write(json.dumps({'seconds': seconds, 'peak': peak, 'code': done.returncode,"
        " 'stdout': done.stdout.decode(errors='replace'), 'stderr': done.stderr.decode(errors='replace')}).encode())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, json.dumps(command), str(cwd)], env=env,
                          capture_output=True, check=True)
    result = json.loads(done.stdout)
    is_libcst = "libcst.tool" in command
    failed = is_libcst and "Failed to codemod 0 files" not in result["stderr"]
    if result["code"] not in ((0, 1, 2) if errors_allowed else (0, 1)) or (failed and not errors_allowed):
        sys.exit(f"failed ({result['code']}): {' '.join(command)}\n{result['stderr'][-3000:]}")
    changed = None
    if not is_libcst:
        report = json.loads(result["stdout"])
        if report.get("errors") and not errors_allowed:
            sys.exit(f"errors in {' '.join(command)}: {report['errors'][:3]}")
        changed = len(report["files"])
    return Timing(result["seconds"], result["peak"], changed)


def check_command(args, *options: str) -> list[str]:
    return [sys.executable, "-P", "-m", "flask_refactor", "check", "--jobs", str(args.jobs), "--format", "json",
            *options]


def noop_command(args) -> list[str]:
    """libcst's own runner with its no-op codemod, at the same `--jobs`."""
    return [sys.executable, "-P", "-m", "libcst.tool", "codemod", "noop.NOOPCommand", "-j", str(args.jobs),
            "--no-format", "--hide-progress", "-u", "0", "."]


def initialize_libcst(tree: Path) -> None:
    """libcst's runner wants its config file in the tree."""
    subprocess.run([sys.executable, "-P", "-m", "libcst.tool", "initialize", "."], cwd=tree, check=True,
                   capture_output=True)


def count_lines(tree: Path) -> tuple[int, int]:
    files = [p for p in tree.rglob("*.py") if ".git" not in p.parts]
    return len(files), sum(p.read_bytes().count(b"\n") for p in files)


def measure_rows(commands: list[tuple[str, list[str]]], tree: Path, env: dict, passes: int,
                 errors_allowed: bool = False) -> list[tuple[str, Timing]]:
    """Each (label, command) timed `passes` times: every command once per pass, so that
    ours and libcst's alternate and share the machine's drift. A row is the median of its
    runs (the peak RSS their largest); a command whose output changes between runs is
    a bug, not noise."""
    runs: dict[str, list[Timing]] = {label: [] for label, _ in commands}
    for _ in range(passes):
        for label, command in commands:
            runs[label].append(measure(command, tree, env, errors_allowed))
    return [(label, median_row(label, timings, tree)) for label, timings in runs.items()]


def median_row(label: str, timings: list[Timing], tree: Path) -> Timing:
    """One row from runs of the same command: the median time, the largest peak RSS."""
    if len({timing.changed for timing in timings}) > 1:
        sys.exit(f"`{label}` changed {[timing.changed for timing in timings]} files in its runs on {tree}")
    return Timing(statistics.median(timing.seconds for timing in timings),
                  max(timing.peak_rss_mb for timing in timings), timings[0].changed)


def bench_tree(name: str, tree: Path, args, env: dict, cache: Path, cold_warm: bool,
               passes: int = 1) -> list[tuple[str, Timing]]:
    ours = check_command(args)
    initialize_libcst(tree)
    if cold_warm:
        return cache_rows(tree, ours + ["--all", "."], env, cache, passes)
    # computed, not answered from the cache: these time the work itself
    commands = [("--all", ours + ["--no-cache", "--all", "."])]
    commands += [(codemod, ours + ["--no-cache", "-c", codemod, "."]) for codemod in CODEMODS]
    commands.append((BASELINE, noop_command(args)))
    rows = measure_rows(commands, tree, env, passes)
    for label, timing in rows:
        if timing.changed == 0:
            sys.exit(f"{name}: `{label}` changed nothing: the tree does not exercise it")
    return rows


def cache_rows(tree: Path, command: list[str], env: dict, cache: Path, passes: int) -> list[tuple[str, Timing]]:
    """(c): `command` with an empty cache, again on the same tree (answered from the
    cache), and after one library file was edited (the everyday case: computed again,
    every other file's index entry read from the cache). Each row is the median of
    `passes` runs, made in passes that run the three in turn: a warm run takes a third
    of a second, most of it start-up, where one run can be half as long again as the next."""
    edited = next(p for p in sorted(tree.rglob("*.py")) if p.parts[len(tree.parts)] != "shop")
    original = edited.read_bytes()
    cold, warm, after_edit = [], [], []
    try:
        for _ in range(passes):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(measure(command, tree, env))
            warm.append(measure(command, tree, env))
            edited.write_bytes(original + b"\n# edited by the benchmark\n")
            after_edit.append(measure(command, tree, env))
            edited.write_bytes(original)
    finally:
        edited.write_bytes(original)
    rows = {"--all, cold cache": cold, "--all, warm cache": warm, "--all, one file edited": after_edit}
    return [(label, median_row(label, timings, tree)) for label, timings in rows.items()]


def bench_app(source: Path, workdir: Path, args, env: dict) -> None:
    """(r): `--all` and libcst's no-op on a copy of a real app."""
    tree = workdir / "apps" / source.name
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns(".git", "__pycache__", ".libcst.codemod.yaml"))
    initialize_libcst(tree)
    rows = measure_rows([("--all", check_command(args, "--no-cache", "--all", ".")), (BASELINE, noop_command(args))],
                        tree, env, args.repeat, errors_allowed=True)
    files, lines = count_lines(tree)
    report(f"(r) {source.name}", rows, files, lines, rows[1][1].seconds, args.markdown)
    shutil.rmtree(tree)


def report(title: str, rows: list[tuple[str, Timing]], files: int, lines: int, baseline: float, markdown: bool) -> None:
    print(f"\n{title}: {files} files, {lines:,} lines")
    if markdown:
        print("\n| run | seconds | lines/s | vs libcst no-op | peak RSS |\n|---|---|---|---|---|")
    for label, timing in rows:
        ratio = baseline / timing.seconds
        ratio_text = f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2f}x"
        if markdown:
            print(f"| {label} | {timing.seconds:.2f} | {lines / timing.seconds:,.0f} | {ratio_text} | "
                  f"{timing.peak_rss_mb:.0f} MB |")
        else:
            print(f"  {label:24s} {timing.seconds:7.2f} s {lines / timing.seconds:11,.0f} lines/s "
                  f"{ratio_text:>7s} libcst  {timing.peak_rss_mb:6.0f} MB"
                  + (f"  ({timing.changed} files changed)" if timing.changed is not None else ""))


def report_memory(workdir: Path, library: Path, args, env: dict) -> None:
    """`--all` on the library tree and on a copy holding its library code three times
    (the same app): time and peak RSS side by side."""
    tripled = workdir / "library-x3"
    shutil.rmtree(tripled, ignore_errors=True)
    shutil.copytree(library, tripled)
    for copy in ("copy2", "copy3"):
        for package in sorted(p for p in library.iterdir() if p.is_dir() and p.name != "shop"):
            shutil.copytree(package, tripled / copy / package.name)
    command = check_command(args, "--no-cache", "--all", ".")
    print("\n(m) peak memory against the size of the tree (the same app in both)")
    if args.markdown:
        print("\n| tree | files | lines | seconds | peak RSS |\n|---|---|---|---|---|")
    for label, tree in (("(a)", library), ("(a), library code three times over", tripled)):
        files, lines = count_lines(tree)
        timing = measure(command, tree, env)
        if args.markdown:
            print(f"| {label} | {files} | {lines:,} | {timing.seconds:.2f} | {timing.peak_rss_mb:.0f} MB |")
        else:
            print(f"  {label:36s} {files:6d} files {lines:10,} lines {timing.seconds:7.2f} s {timing.peak_rss_mb:6.0f} MB")
    shutil.rmtree(tripled)


def compile_installed_code() -> None:
    """Write flask-refactor's bytecode before timing anything, as `pip install` does: from
    an editable checkout, or with PYTHONDONTWRITEBYTECODE set, every run would otherwise
    compile the whole tool from source (about 0.1 s, a fifth of a warm-cache run)."""
    import flask_refactor
    import flask_refactor.codemods

    for package in (flask_refactor, flask_refactor.codemods):
        for folder in package.__path__:
            compileall.compile_dir(folder, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--shapes", default="a,b,c,m",
                        help="which trees: a, b, c, m (comma-separated; none: only the --app ones)")
    parser.add_argument("--flask-share", type=float, default=0.05)
    parser.add_argument("--big-app-modules", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="build the trees here and keep them")
    parser.add_argument("--markdown", action="store_true", help="tables for the README")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each row of (b), (r) and ours of (c), whose runs take seconds: "
                             "the median is reported")
    parser.add_argument("--app", type=Path, action="append", default=[],
                        help="also time `--all` on a copy of this app's directory (repeatable)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    shapes = set(args.shapes.split(","))

    compile_installed_code()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="flask-refactor-bench-"))
    cache = workdir / "index-cache"
    env = {**os.environ, "FLASK_REFACTOR_CACHE_DIR": str(cache), "NO_COLOR": "1"}
    env.pop("FLASK_REFACTOR_NO_CACHE", None)
    print(f"jobs={args.jobs}, Python {sys.version.split()[0]}, libcst {importlib.metadata.version('libcst')}")

    library = workdir / "library"
    if shapes & {"a", "c", "m"}:
        shutil.rmtree(library, ignore_errors=True)
        flask_files = build_library_tree(library, args.flask_share)
        files, lines = count_lines(library)
        print(f"(a) library tree: {files} files, {lines:,} lines, {flask_files} Flask files "
              f"({flask_files / files:.1%})")
    if "a" in shapes:
        rows = bench_tree("a", library, args, env, cache, cold_warm=False)
        report("(a) real library code, 5% Flask files", rows, files, lines, dict(rows)[BASELINE].seconds, args.markdown)
    if "c" in shapes:
        baseline = measure(noop_command(args), library, env)
        rows = bench_tree("c", library, args, env, cache, cold_warm=True, passes=args.repeat)
        report("(c) the library tree: empty cache, warm cache, one file edited", rows + [(BASELINE, baseline)], files, lines,
               baseline.seconds, args.markdown)
    if "m" in shapes:
        report_memory(workdir, library, args, env)
    if "b" in shapes:
        big = workdir / "bigapp"
        shutil.rmtree(big, ignore_errors=True)
        build_big_app(big, args.big_app_modules)
        files, lines = count_lines(big)
        rows = bench_tree("b", big, args, env, cache, cold_warm=False, passes=args.repeat)
        report(f"(b) one Flask app of {files} modules", rows, files, lines, dict(rows)[BASELINE].seconds, args.markdown)
    for app in args.app:
        bench_app(app.resolve(), workdir, args, env)
    if not args.keep:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
