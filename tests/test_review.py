"""Interactive review (`apply --interactive`): the decisions in-process with scripted
answers, then the real command driven through a pseudo-terminal."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from flask_refactor import pipeline, registry, review, verify
from plugins.breaker_codemod import CREATED, BreakTests
from plugins.legacy_apps import environment, init_repo, make_app, read_files
from plugins.terminal import Terminal

TEARDOWN_LINE = "@app.teardown_appcontext"


@pytest.fixture()
def billing(tmp_path, monkeypatch) -> Path:
    """A legacy app that both `teardown` and the test-only `break-tests` change."""
    root = make_app(tmp_path / "billing", breakable=True)
    monkeypatch.chdir(root)
    return root


def scripted(*answers: str):
    """An `ask` that answers in order and records what it was asked."""
    asked: list[review.Change] = []
    queue = list(answers)

    def ask(change: review.Change) -> str:
        asked.append(change)
        return queue.pop(0)

    return ask, asked


def run_review(ask, unit: bool = False) -> review.Review:
    codemods = [registry.get("teardown")(), BreakTests(unit=unit)]
    outcome = review.review(["."], codemods, ask, jobs=1)
    pipeline.apply(outcome.result)
    return outcome


def test_each_change_is_asked_and_only_accepted_ones_are_written(billing):
    before = read_files(billing)
    ask, asked = scripted("y", "n", "y")
    outcome = run_review(ask)
    assert [(c.codemod, c.paths) for c in asked] == [
        ("teardown", ["app.py"]), ("break-tests", ["app.py"]), ("break-tests", [CREATED])]
    assert asked[0].summary == registry.get("teardown").summary
    assert "+@app.teardown_appcontext" in asked[0].diff
    # The second codemod's diff is against the accepted state: only its own change shows.
    assert "teardown_appcontext" not in asked[1].diff and "+PRICE_FACTOR = 2" in asked[1].diff
    app = (billing / "app.py").read_text()
    assert TEARDOWN_LINE in app and "PRICE_FACTOR = 1  #" in app
    assert (billing / CREATED).read_text() == "created by break-tests\n"
    assert read_files(billing)["database.py"] == before["database.py"]
    assert len(outcome.accepted) == 2 and len(outcome.rejected) == 1


def test_rejecting_everything_writes_nothing(billing):
    before = read_files(billing)
    ask, asked = scripted("n", "n", "n")
    outcome = run_review(ask)
    assert len(asked) == 3 and outcome.result.outcomes == []
    assert read_files(billing) == before


def test_accept_rest_of_file_answers_later_changes_to_it(billing):
    ask, asked = scripted("a", "n")
    run_review(ask)
    # break-tests' change to app.py was accepted by `a`: only the new file was asked.
    assert [c.paths for c in asked] == [["app.py"], [CREATED]]
    assert "PRICE_FACTOR = 2  #" in (billing / "app.py").read_text()
    assert not (billing / "sabotage").exists()


def test_reject_rest_of_file_and_accept_all_of_a_codemod(billing):
    ask, asked = scripted("d", "A")
    run_review(ask)
    assert [c.paths for c in asked] == [["app.py"], [CREATED]]
    assert "PRICE_FACTOR = 1  #" in (billing / "app.py").read_text()
    assert TEARDOWN_LINE not in (billing / "app.py").read_text()
    assert (billing / CREATED).exists()


def test_quit_keeps_what_was_accepted_and_rejects_the_rest(billing):
    ask, asked = scripted("y", "q")
    outcome = run_review(ask)
    assert len(asked) == 2 and outcome.quit
    assert TEARDOWN_LINE in (billing / "app.py").read_text()
    assert "PRICE_FACTOR = 1  #" in (billing / "app.py").read_text()
    assert not (billing / "sabotage").exists()


def test_quit_stops_before_later_codemods(billing):
    before = read_files(billing)
    ask, asked = scripted("q")
    outcome = run_review(ask)
    assert [c.codemod for c in asked] == ["teardown"] and outcome.rejected == asked
    assert read_files(billing) == before


def test_a_unit_change_set_is_one_decision(billing):
    ask, asked = scripted("y", "n")
    run_review(ask, unit=True)
    unit = asked[1]
    assert unit.unit and unit.paths == ["app.py", CREATED]
    assert "a/app.py" in unit.diff and "b/sabotage/NOTES.txt" in unit.diff
    assert "PRICE_FACTOR = 1  #" in (billing / "app.py").read_text()
    assert not (billing / "sabotage").exists()


def test_accept_rest_of_file_does_not_split_a_unit(billing):
    # `a` on app.py alone must not accept a unit that also creates another file.
    ask, asked = scripted("a", "n")
    run_review(ask, unit=True)
    assert len(asked) == 2 and asked[1].unit
    assert "PRICE_FACTOR = 1  #" in (billing / "app.py").read_text()


def test_a_unit_with_invalid_output_is_not_offered_at_all(billing):
    before = read_files(billing)
    ask, asked = scripted("n")
    codemods = [registry.get("teardown")(), BreakTests(unit=True, invalid=True)]
    outcome = review.review(["."], codemods, ask, jobs=1)
    pipeline.apply(outcome.result)
    assert [c.codemod for c in asked] == ["teardown"]
    assert "does not parse" in dict(outcome.result.errors)["sabotage/broken.py"]
    assert read_files(billing) == before


def test_without_units_only_the_invalid_file_is_held_back(billing):
    ask, asked = scripted("n", "y", "y")
    codemods = [registry.get("teardown")(), BreakTests(invalid=True)]
    review.review(["."], codemods, ask, jobs=1)
    assert [c.paths for c in asked] == [["app.py"], ["app.py"], [CREATED]]


# -- a real terminal -------------------------------------------------------------------

PROMPT = re.compile(rb"Accept this [\w-]+ change \[y,n,a,d,A,q,\?\]\? ")


def test_interactive_review_in_a_pseudo_terminal(tmp_path):
    repo = init_repo(make_app(tmp_path / "billing", breakable=True))
    terminal = Terminal(["apply", "--interactive", "-c", "teardown,break-tests"], repo)
    first = terminal.expect(PROMPT)
    assert b"teardown" in first and b"app.py" in first and b"db_session.remove()" in first
    assert b"remove scoped sessions at the end of each app context" in first  # the reason
    assert b"\x1b[" in first  # a real terminal gets colour
    terminal.answer("?")
    assert b"accept this change and every later change to this file" in terminal.expect(PROMPT)
    terminal.answer("y")
    assert b"PRICE_FACTOR = 2" in terminal.expect(PROMPT)
    terminal.answer("n")
    assert b"sabotage/NOTES.txt" in terminal.expect(PROMPT)
    terminal.answer("n")
    code, rest = terminal.finish()
    assert b"1 of 3 changes accepted" in rest
    assert code == 0
    app = (repo / "app.py").read_text()
    assert TEARDOWN_LINE in app and "PRICE_FACTOR = 1  #" in app
    assert not (repo / "sabotage").exists()


def test_without_a_terminal_it_refuses_in_one_line(tmp_path):
    repo = init_repo(make_app(tmp_path / "billing", breakable=True))
    before = read_files(repo)
    completed = subprocess.run([sys.executable, "-m", "flask_refactor", "apply", "-i", "-c", "teardown"],
                               cwd=repo, env=environment(), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                               timeout=60)
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and "needs a terminal" in completed.stderr
    assert read_files(repo) == before


# -- --interactive with --verify: each codemod reviewed, then written and verified ----------

NOTE_ABSENT = f"test ! -e {CREATED}"  # a stand-in suite that break-tests' new file breaks


def test_reviewed_steps_are_verified_and_a_breaking_one_rolled_back(billing):
    ask, asked = scripted("y", "n", "y")
    chooser = review.StepChooser(ask)
    outcome = verify.apply_in_steps(["."], [registry.get("teardown")(), BreakTests()], command=NOTE_ABSENT,
                                    choose=chooser, jobs=1)
    teardown, breaker = outcome.steps
    assert [c.paths for c in asked] == [["app.py"], ["app.py"], [CREATED]]
    assert teardown.verify.passed and teardown.written == ["app.py"]
    # Only the accepted file was written, and it broke the stand-in suite: undone.
    assert breaker.written == [CREATED] and breaker.rolled_back
    assert not (billing / "sabotage").exists() and "PRICE_FACTOR = 1  #" in (billing / "app.py").read_text()
    assert len(chooser.accepted) == 2 and len(chooser.rejected) == 1


def test_quit_during_a_verified_review_stops_the_steps(billing):
    ask, asked = scripted("q")
    outcome = verify.apply_in_steps(["."], [registry.get("teardown")(), BreakTests()], command="touch ran",
                                    choose=review.StepChooser(ask), jobs=1)
    assert len(asked) == 1 and len(outcome.steps) == 1 and outcome.steps[0].written == []
    assert not (billing / "ran").exists()  # nothing written, so no baseline was needed


def test_interactive_verify_in_a_pseudo_terminal(tmp_path):
    repo = init_repo(make_app(tmp_path / "billing", breakable=True))
    terminal = Terminal(["apply", "-i", "--verify", NOTE_ABSENT, "-c", "teardown,break-tests"], repo)
    terminal.expect(PROMPT)
    terminal.answer("y")
    assert b"passed" in terminal.expect(PROMPT)  # teardown verified before break-tests is shown
    terminal.answer("A")
    code, rest = terminal.finish()
    assert code == 1  # a rollback needs a human
    assert b"rolled back app.py, sabotage/NOTES.txt" in rest
    assert "@app.teardown_appcontext" in (repo / "app.py").read_text() and not (repo / "sabotage").exists()


def test_ctrl_c_during_review_writes_nothing(tmp_path):
    repo = init_repo(make_app(tmp_path / "billing", breakable=True))
    before = read_files(repo)
    terminal = Terminal(["apply", "--interactive", "-c", "teardown,break-tests"], repo)
    terminal.expect(PROMPT)
    terminal.answer("y")
    terminal.expect(PROMPT)
    terminal.interrupt()  # Ctrl-C, as the terminal delivers it
    code, rest = terminal.finish()
    assert code == 130 and b"nothing written" in rest
    assert read_files(repo) == before


def test_a_dirty_file_is_refused_before_the_review_starts(tmp_path):
    repo = init_repo(make_app(tmp_path / "billing", breakable=True))
    (repo / "app.py").write_text((repo / "app.py").read_text() + "# work in progress\n")
    terminal = Terminal(["apply", "--interactive", "-c", "teardown"], repo)
    code, output = terminal.finish()
    assert code == 2 and b"uncommitted changes in app.py" in output and not PROMPT.search(output)


def test_app_factory_is_told_that_thread_context_is_reviewed_after_it(tmp_path, monkeypatch):
    """A thread started in a request that uses the app: app-factory alone refuses it, but
    in a review that goes on to thread-context, app-factory migrates and thread-context
    wraps the target."""
    (tmp_path / "app.py").write_text(
        "import threading\n\nfrom flask import Flask\n\napp = Flask(__name__)\n\n"
        "def send(n):\n    app.logger.info(n)\n\n"
        "@app.route('/<int:n>')\ndef index(n):\n    threading.Thread(target=send, args=(n,)).start()\n    return ''\n")
    monkeypatch.chdir(tmp_path)
    ask, asked = scripted("y", "y")
    outcome = review.review(["."], [registry.get("app-factory")(), registry.get("thread-context")()], ask, jobs=1)
    pipeline.apply(outcome.result)
    assert [(change.codemod, change.relies_on) for change in asked] == [("app-factory", ("thread-context",)),
                                                                         ("thread-context", ())]
    assert "target=_with_app_context(send)" in (tmp_path / "app.py").read_text()
    console = Console(record=True, width=200)
    review.TerminalAsk(console).show(asked[0])
    assert "counts on thread-context, reviewed after it: accept its changes too" in console.export_text()
