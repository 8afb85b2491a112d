"""`--verify CMD`: each codemod applied as its own step, checked by the project's tests,
and rolled back (exactly its files) when it breaks a passing baseline."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from flask_refactor import registry, verify
from plugins.breaker_codemod import CREATED, BreakTests
from plugins.legacy_apps import VERIFY, environment, init_repo, make_app, read_files

# Cheap stand-in for a test suite: fails once break-tests has left its note.
NOTE_ABSENT = f"test ! -e {CREATED}"


@pytest.fixture()
def billing(tmp_path, monkeypatch) -> Path:
    root = make_app(tmp_path / "billing", breakable=True)
    monkeypatch.chdir(root)
    return root


def steps(command: str | None, timeout: float = 60) -> verify.Steps:
    return verify.apply_in_steps(["."], [registry.get("teardown")(), BreakTests()], command=command,
                                 timeout=timeout, jobs=1)


def test_a_breaking_step_is_rolled_back_exactly(billing):
    # Odd bytes that a careless restore would normalise: CRLF and no final newline.
    app = billing / "app.py"
    app.write_bytes(app.read_bytes().replace(b"\n", b"\r\n").rstrip(b"\r\n"))
    original = app.read_bytes()
    outcome = steps(NOTE_ABSENT)
    teardown, breaker = outcome.steps
    assert outcome.verifying and teardown.verify.passed and not teardown.rolled_back
    after_teardown = app.read_bytes()
    assert after_teardown != original and b"@app.teardown_appcontext\r\n" in after_teardown
    assert breaker.rolled_back and not breaker.verify.passed
    assert sorted(breaker.written) == ["app.py", CREATED] and breaker.created == [CREATED]
    # Back to the bytes teardown left, the new file and its new directory gone.
    assert app.read_bytes() == after_teardown
    assert not (billing / "sabotage").exists()


def test_a_passing_step_is_kept(billing):
    outcome = steps("true")
    assert [s.rolled_back for s in outcome.steps] == [False, False]
    assert "PRICE_FACTOR = 2" in (billing / "app.py").read_text() and (billing / CREATED).exists()


def test_a_failing_baseline_skips_verification_but_applies(billing):
    outcome = steps("false")
    assert outcome.baseline is not None and not outcome.baseline.passed and not outcome.verifying
    assert all(s.verify is None and not s.rolled_back for s in outcome.steps)
    assert (billing / CREATED).exists()


def test_nothing_to_change_runs_no_command(tmp_path, monkeypatch):
    root = make_app(tmp_path / "inventory", unmigratable=True)
    monkeypatch.chdir(root)
    before = read_files(root)
    outcome = steps("touch ran")
    assert outcome.baseline is None and not (root / "ran").exists()
    assert read_files(root) == before
    assert any("sessionmaker" in f.message for f in outcome.findings)


def test_a_command_that_hangs_is_killed_at_the_timeout(tmp_path):
    started = time.monotonic()
    run = verify.run_command("echo started; sleep 30", tmp_path, timeout=1)
    assert run.timed_out and not run.passed and "timed out" in run.describe()
    assert "started" in run.tail
    assert time.monotonic() - started < 10


def test_the_output_tail_is_bounded(tmp_path):
    run = verify.run_command("seq 1 500; exit 3", tmp_path)
    assert run.returncode == 3 and run.tail.splitlines() == [str(n) for n in range(461, 501)]


def test_apply_verify_from_the_command_line(tmp_path):
    """The real CLI with a real pytest suite: teardown kept, break-tests rolled back."""
    repo = init_repo(make_app(tmp_path / "billing", breakable=True))
    completed = subprocess.run(
        [sys.executable, "-m", "flask_refactor", "apply", "-c", "teardown,break-tests", "--verify", VERIFY],
        cwd=repo, env=environment(), capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1, completed.stderr  # something needs a human: the rollback
    err = completed.stderr
    assert "baseline:" in err and "passed" in err
    assert "break-tests:" in err and "rolled back app.py, sabotage/NOTES.txt" in err
    assert "AssertionError" in err  # the output tail of the failing suite
    assert "rolled back: break-tests" in err
    app = (repo / "app.py").read_text()
    assert "@app.teardown_appcontext" in app and "PRICE_FACTOR = 1  #" in app
    assert not (repo / "sabotage").exists()
    suite = subprocess.run(VERIFY, shell=True, cwd=repo, capture_output=True, env=environment(), timeout=120)
    assert suite.returncode == 0


def test_apply_verify_refuses_a_dirty_file_before_running_anything(tmp_path):
    repo = init_repo(make_app(tmp_path / "billing", breakable=True))
    (repo / "app.py").write_text((repo / "app.py").read_text() + "# work in progress\n")
    before = read_files(repo)
    completed = subprocess.run(
        [sys.executable, "-m", "flask_refactor", "apply", "-c", "teardown", "--verify", "touch ran"],
        cwd=repo, env=environment(), capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2 and "uncommitted changes in app.py" in completed.stderr
    assert read_files(repo) == before and not (repo / "ran").exists()


def test_a_unit_with_invalid_output_is_held_back_whole(billing):
    before = read_files(billing)
    outcome = verify.apply_in_steps(["."], [BreakTests(unit=True, invalid=True)], command=None, jobs=1)
    errors = dict(outcome.steps[0].result.errors)
    assert "does not parse" in errors["sabotage/broken.py"] and "belongs with sabotage/broken.py" in errors["app.py"]
    assert outcome.steps[0].written == [] and read_files(billing) == before
