"""The command line as users run it: a real `flask-refactor` process for exit codes,
streams, colour and git; click's runner where only the logic matters."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flask_refactor.cli import main
from helpers import FIXTURES, copy_tree, read_tree

APP = FIXTURES / "teardown" / "alias-import"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask_refactor", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV, **(env or {})}, timeout=120)


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


@pytest.fixture()
def app_dir(tmp_path) -> Path:
    return copy_tree(APP / "before", tmp_path / "app")


def test_list_and_explain():
    runner = CliRunner()
    listing = runner.invoke(main, ["list"])
    assert listing.exit_code == 0
    assert listing.output.splitlines()[0].split()[0] in {"app-factory", "globals-to-g", "teardown"}
    assert any(line.startswith("teardown ") for line in listing.output.splitlines())
    explained = runner.invoke(main, ["explain", "teardown"])
    assert explained.exit_code == 0
    assert "Before" in explained.output and "@app.teardown_appcontext" in explained.output
    unknown = runner.invoke(main, ["explain", "nope"])
    assert unknown.exit_code == 2 and "unknown codemod 'nope'" in unknown.output


def test_diff_exits_1_prints_a_patch_and_writes_nothing(app_dir):
    before = read_tree(app_dir)
    done = cli("diff", "--codemod", "teardown", cwd=app_dir)
    assert done.returncode == 1
    assert done.stdout.startswith("diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n")
    assert "+@app.teardown_appcontext\n" in done.stdout
    assert "1 file would be changed" in done.stderr
    assert read_tree(app_dir) == before


def test_piped_diff_applies_with_git_to_exactly_what_apply_writes(app_dir, tmp_path):
    patched = copy_tree(app_dir, tmp_path / "patched")
    patch = cli("diff", "-c", "teardown", cwd=app_dir).stdout
    subprocess.run(["git", "apply"], input=patch, text=True, cwd=patched, check=True)
    assert cli("apply", "-c", "teardown", cwd=app_dir).returncode == 0
    assert read_tree(patched) == read_tree(app_dir)


def test_apply_then_check_is_clean(app_dir):
    assert cli("check", "-c", "teardown", cwd=app_dir).returncode == 1
    applied = cli("apply", "-c", "teardown", cwd=app_dir)
    assert applied.returncode == 0, applied.stderr
    assert "1 file changed" in applied.stderr
    again = cli("check", "-c", "teardown", cwd=app_dir)
    assert again.returncode == 0
    assert "0 files would be changed" in again.stderr


def test_dry_run_equals_diff(app_dir):
    assert cli("apply", "--dry-run", "-c", "teardown", cwd=app_dir).stdout == cli("diff", "-c", "teardown", cwd=app_dir).stdout


def test_json_output_schema(app_dir):
    done = cli("diff", "-c", "teardown", "--format", "json", cwd=app_dir)
    document = json.loads(done.stdout)
    assert done.returncode == 1 and document["exit_code"] == 1
    assert set(document) == {"version", "command", "codemods", "applied", "files", "findings", "errors", "totals", "exit_code"}
    [file] = document["files"]
    assert file["path"] == "app.py" and file["status"] == "modified" and file["written"] is False
    assert file["diff"].startswith("diff --git a/app.py b/app.py")
    assert document["totals"] == {"files_scanned": 2, "files_changed": 1, "files_created": 0, "findings": 0, "errors": 0}


def test_findings_make_the_run_exit_1_and_are_in_json(tmp_path):
    tree = copy_tree(FIXTURES / "teardown" / "no-app" / "before", tmp_path / "t")
    done = cli("apply", "-c", "teardown", "--format", "json", cwd=tree)
    assert done.returncode == 1
    [finding] = json.loads(done.stdout)["findings"]
    assert finding["path"] == "database.py" and finding["line"] == 3 and finding["severity"] == "warning"


def _run_in_pty(args: list[str], cwd: Path, env: dict) -> str:
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "flask_refactor", *args], cwd=cwd, stdin=follower,
                               stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_and_never_with_no_color(app_dir):
    env = {k: v for k, v in os.environ.items() if k not in {"NO_COLOR", "FORCE_COLOR"}}
    env["TERM"] = "xterm-256color"
    coloured = _run_in_pty(["diff", "-c", "teardown"], app_dir, env)
    assert "\x1b[" in coloured
    plain = _run_in_pty(["diff", "-c", "teardown"], app_dir, {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in plain and "+@app.teardown_appcontext" in plain
    flag = _run_in_pty(["diff", "-c", "teardown", "--no-color"], app_dir, env)
    assert "\x1b[" not in flag


def test_long_runs_show_progress_on_a_terminal_only(tmp_path):
    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(60):
        (tree / f"db{i}.py").write_text("from sqlalchemy.orm import scoped_session, sessionmaker\n"
                                        f"Session{i} = scoped_session(sessionmaker())\n")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    shown = _run_in_pty(["diff", "-c", "teardown"], tree, {**env, "TERM": "xterm-256color"})
    assert "60/60" in shown
    piped = cli("diff", "-c", "teardown", cwd=tree)
    assert "60/60" not in piped.stderr and "\x1b[" not in piped.stderr


def test_apply_refuses_a_dirty_file_unless_allowed(app_dir):
    git("init", "-q", cwd=app_dir)
    git("add", ".", cwd=app_dir)
    git("commit", "-qm", "legacy", cwd=app_dir)
    (app_dir / "app.py").write_text((app_dir / "app.py").read_text() + "# local edit\n")
    before = read_tree(app_dir)
    refused = cli("apply", "-c", "teardown", cwd=app_dir)
    assert refused.returncode == 2
    assert "uncommitted changes in app.py" in refused.stderr and "--allow-dirty" in refused.stderr
    assert read_tree(app_dir) == before
    allowed = cli("apply", "-c", "teardown", "--allow-dirty", cwd=app_dir)
    assert allowed.returncode == 0
    assert "@app.teardown_appcontext" in (app_dir / "app.py").read_text()


def test_clean_git_tree_is_applied(app_dir):
    git("init", "-q", cwd=app_dir)
    git("add", ".", cwd=app_dir)
    git("commit", "-qm", "legacy", cwd=app_dir)
    (app_dir / "database.py").write_text((app_dir / "database.py").read_text() + "# unrelated edit\n")
    # a dirty file the run does not touch does not block it
    assert cli("apply", "-c", "teardown", cwd=app_dir).returncode == 0


def test_pyproject_selects_codemods_and_excludes(app_dir):
    (app_dir / "legacy").mkdir()
    shutil.copy(app_dir / "app.py", app_dir / "legacy" / "app.py")
    (app_dir / "pyproject.toml").write_text('[tool.flask-refactor]\ncodemods = ["teardown"]\nexclude = ["legacy/"]\n')
    done = cli("diff", cwd=app_dir)
    assert done.returncode == 1
    assert "a/app.py" in done.stdout and "legacy" not in done.stdout
    # the flag adds to the configured excludes
    assert cli("diff", "--exclude", "app.py", cwd=app_dir).stdout == ""


@pytest.mark.parametrize("config, message", [
    ('[tool.flask-refactor]\ncodemods = 3\n', "expected a list of strings"),
    ('[tool.flask-refactor]\ncolour = "always"\n', "unknown key"),
    ('[tool.flask-refactor\n', "cannot read configuration"),
    ('[tool.flask-refactor.teardown]\nnope = 1\n', "teardown: unknown option 'nope'"),
    ('[tool.flask-refactor]\njobs = 0\n', "expected a positive integer"),
])
def test_bad_configuration_is_one_line_and_exit_2(app_dir, config, message):
    (app_dir / "pyproject.toml").write_text(config)
    before = read_tree(app_dir)
    done = cli("apply", "-c", "teardown", cwd=app_dir)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert read_tree(app_dir) == before


@pytest.mark.parametrize("args, message", [
    (["diff"], "no codemod selected"),
    (["diff", "-c", "nope"], "unknown codemod 'nope'"),
    (["diff", "-c", "teardown", "--all"], "either --codemod or --all"),
    (["diff", "-c", "teardown", "-o", "teardown"], "expected CODEMOD.KEY=VALUE"),
    (["diff", "-c", "teardown", "-o", "nope.x=1"], "unknown codemod 'nope'"),
    (["diff", "-c", "teardown", "--jobs", "0"], "Invalid value for '--jobs'"),
    (["diff", "-c", "teardown", "--format", "xml"], "Invalid value for '--format'"),
])
def test_usage_errors_exit_2(app_dir, args, message):
    done = cli(*args, cwd=app_dir)
    assert done.returncode == 2
    assert message in done.stderr


def test_version_and_module_entry_point(app_dir):
    done = cli("--version", cwd=app_dir)
    assert done.returncode == 0 and done.stdout.startswith("flask-refactor, version ")
    script = shutil.which("flask-refactor", path=str(Path(sys.executable).parent))
    assert script, "the console script is installed"
    assert subprocess.run([script, "list"], capture_output=True, text=True).returncode == 0



def test_the_command_imports_with_the_collector_off_and_runs_with_it_on(tmp_path):
    """The launcher imports the command line with the collector off and freezes what the
    imports made; the command itself runs with the collector on (analyses make cycles).
    The command line is replaced by a module that records both."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import gc, sys, importlib.abc, importlib.util\n"
        "class Loader(importlib.abc.Loader):\n"
        "    def create_module(self, spec):\n"
        "        return None\n"
        "    def exec_module(self, module):\n"
        "        imported_collecting = gc.isenabled()\n"
        "        module.entry = lambda: print(imported_collecting, gc.isenabled(), gc.get_freeze_count() > 0)\n"
        "class Finder(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'flask_refactor.cli':\n"
        "            return importlib.util.spec_from_loader(name, Loader())\n"
        "        return None\n"
        "sys.meta_path.insert(0, Finder())\n"
        "from flask_refactor.__main__ import main\n"
        "main()\n")
    done = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True"]
