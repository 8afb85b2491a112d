"""Throughput of flask-refactor against libcst's own codemod runner, on the same files.

    python benchmarks/run.py [--jobs N] [--flask-share 0.05] [--keep DIR]

Builds a corpus from real Python code (the installed site-packages of the test extra's
dependencies), adds generated Flask modules until `--flask-share` of the files mention
Flask, then times (wall clock, best of --repeat):

* flask-refactor, a chain of three no-op codemods (each parses what mentions Flask);
* flask-refactor, the `teardown` codemod (dry run, so the corpus stays as it is);
* flask-refactor, a no-op codemod without prefilter (every file parsed: the raw pipeline);
* `python -m libcst.tool codemod noop.NOOPCommand` (libcst parses every file).

It prints lines per second for each and the ratio. Nothing here is asserted: speed is
reported, not tested.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE_PACKAGES = ["sqlalchemy", "werkzeug", "jinja2", "click", "rich", "pygments", "_pytest", "libcst"]
HERE = Path(__file__).resolve().parent

FLASK_MODULE = '''\
"""Generated Flask module {n} for the benchmark."""
from flask import Flask, jsonify, request
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

engine = create_engine("sqlite://")
Session = scoped_session(sessionmaker(bind=engine))
app = Flask(__name__)


@app.route("/items/<int:item_id>")
def item_{n}(item_id):
    # look the item up and answer
    row = Session.execute("SELECT {n}").scalar()
    if row is None:
        return jsonify({{"error": "missing"}}), 404
    return jsonify(id=item_id, value=row, q=request.args.get("q"))
'''


def build_corpus(target: Path, flask_share: float) -> tuple[int, int, int]:
    files = []
    for package in SOURCE_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            data = path.read_bytes()
            if b"flask" in data or b"Flask" in data or b"@generated" in data:
                continue  # keep the Flask share exact
            files.append((f"{package}/{path.relative_to(root)}", data))
    for rel, data in files:
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    flask_files = max(1, round(len(files) * flask_share / (1 - flask_share)))
    for n in range(flask_files):
        out = target / "flaskapps" / f"app_{n}" / "app.py"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(FLASK_MODULE.format(n=n))
    lines = sum(p.read_bytes().count(b"\n") for p in target.rglob("*.py"))
    return len(files) + flask_files, flask_files, lines


def timed(command: list[str], cwd: Path, env: dict, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        failed_libcst = "libcst.tool" in command and "Failed to codemod 0 files" not in done.stderr
        if done.returncode not in (0, 1) or ": error: " in done.stderr or failed_libcst:
            sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
        best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--flask-share", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="build the corpus here and keep it")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="flask-refactor-bench-"))
    corpus = workdir / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    corpus.mkdir(parents=True)
    count, flask_count, lines = build_corpus(corpus, args.flask_share)
    print(f"corpus: {count} files, {lines} lines, {flask_count} mention Flask "
          f"({flask_count / count:.1%}); jobs={args.jobs}")

    env = {**os.environ, "FLASK_REFACTOR_PLUGINS": "bench_noop", "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    # -P: the corpus holds copies of real packages; they must not shadow the installed ones
    ours = [sys.executable, "-P", "-m", "flask_refactor", "diff", "--jobs", str(args.jobs), "--format", "json", "."]
    subprocess.run([sys.executable, "-P", "-m", "libcst.tool", "initialize", "."], cwd=corpus, check=True, capture_output=True)
    runs = {
        "flask-refactor: 3 chained no-op codemods": ours + ["-c", "bench-noop-a", "-c", "bench-noop-b", "-c", "bench-noop-c"],
        "flask-refactor: teardown": ours + ["-c", "teardown"],
        "flask-refactor: no-op, no prefilter": ours + ["-c", "bench-noop-every-file"],
        "libcst.tool codemod noop.NOOPCommand": [sys.executable, "-P", "-m", "libcst.tool", "codemod", "noop.NOOPCommand",
                                                  "-j", str(args.jobs), "--no-format", "--hide-progress", "-u", "0", "."],
    }
    results = {name: timed(command, corpus, env, args.repeat) for name, command in runs.items()}
    baseline = results["libcst.tool codemod noop.NOOPCommand"]
    for name, seconds in results.items():
        print(f"{name:45s} {seconds:7.2f} s  {lines / seconds:10,.0f} lines/s  {baseline / seconds:5.1f}x libcst")
    if not args.keep:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
