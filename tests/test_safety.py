"""Bad input: one clear line per problem, the run goes on for the other files, exit 2 at
the end, and nothing the user had is changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import FIXTURES, copy_tree, read_tree

APP = FIXTURES / "teardown" / "alias-import" / "before"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask_refactor", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture()
def app_dir(tmp_path) -> Path:
    return copy_tree(APP, tmp_path / "app")


# Each bad file mentions scoped_session, so the prefilter sends it to the parser.
BAD_FILES = {
    "syntax": ("broken.py", b"from sqlalchemy.orm import scoped_session\ndef f(:\n", "broken.py: error: syntax error at 2:"),
    "python2": ("legacy2.py", b"from sqlalchemy.orm import scoped_session\nprint 'hello'\n", "looks like Python 2"),
    "undecodable": ("latin.py", b"# scoped_session\nname = '\xe9t\xe9'\n", "latin.py: error: cannot decode as utf-8 (byte 0xe9"),
    "binary": ("blob.py", b"scoped_session\x00\x01\x02", "blob.py: error: binary file"),
    "bad-cookie": ("cookie.py", b"# -*- coding: klingon -*-\nscoped_session = 1\n", "cookie.py: error: bad encoding declaration"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_is_one_line_and_the_rest_is_still_migrated(app_dir, kind):
    name, content, message = BAD_FILES[kind]
    (app_dir / name).write_bytes(content)
    done = cli("apply", "-c", "teardown", cwd=app_dir)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert (app_dir / name).read_bytes() == content
    assert "@app.teardown_appcontext" in (app_dir / "app.py").read_text()  # the run went on


def test_missing_path_is_reported_and_the_others_run(app_dir):
    done = cli("apply", "-c", "teardown", "does-not-exist", ".", cwd=app_dir)
    assert done.returncode == 2
    assert "does-not-exist: error: no such file or directory" in done.stderr
    assert "@app.teardown_appcontext" in (app_dir / "app.py").read_text()


def test_read_only_file_is_not_written(app_dir):
    target = app_dir / "app.py"
    os.chmod(target, 0o444)
    before = read_tree(app_dir)
    try:
        done = cli("apply", "-c", "teardown", cwd=app_dir)
        dry = cli("diff", "-c", "teardown", cwd=app_dir)
    finally:
        os.chmod(target, 0o644)
    assert done.returncode == 2
    assert "app.py: error: read-only file, not written" in done.stderr
    assert read_tree(app_dir) == before
    assert dry.returncode == 2 and "apply could not write it" in dry.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its mode")
def test_unreadable_file_is_reported(app_dir):
    target = app_dir / "secret.py"
    target.write_text("from sqlalchemy.orm import scoped_session\n")
    os.chmod(target, 0)
    try:
        done = cli("apply", "-c", "teardown", cwd=app_dir)
    finally:
        os.chmod(target, 0o644)
    assert done.returncode == 2 and "secret.py: error: cannot read" in done.stderr


def test_fifo_named_explicitly_is_not_read(app_dir):
    os.mkfifo(app_dir / "pipe.py")
    done = cli("apply", "-c", "teardown", "pipe.py", "app.py", "database.py", cwd=app_dir)
    assert done.returncode == 2 and "pipe.py: error: not a regular file" in done.stderr


def test_symlink_loop_does_not_hang(app_dir):
    os.symlink(app_dir, app_dir / "again")
    done = cli("apply", "-c", "teardown", cwd=app_dir)
    assert done.returncode == 0, done.stderr
    assert "@app.teardown_appcontext" in (app_dir / "app.py").read_text()


def test_no_temporary_files_are_left_behind(app_dir):
    assert cli("apply", "-c", "teardown", cwd=app_dir).returncode == 0
    assert not [p for p in app_dir.rglob("*") if ".flask-refactor" in p.name]
