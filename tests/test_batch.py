"""`batch` over real git repositories, through the real CLI: one legacy app that migrates
cleanly, one whose suite already fails, one with a dirty tree, one the codemods cannot
migrate, and one whose suite the test-only `break-tests` codemod breaks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flask_refactor import batch, registry
from plugins.legacy_apps import PLUGINS, VERIFY, environment, git, init_repo, make_app, read_files
from plugins.terminal import Terminal

BRANCH = "modernise"


def run_batch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask_refactor", "batch", *args], cwd=cwd, env=environment(),
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Five repositories, a manifest, and the first and second (resumed) batch runs."""
    root = tmp_path_factory.mktemp("fleet")
    repos = root / "repos"
    init_repo(make_app(repos / "shop"))
    init_repo(make_app(repos / "ledger", failing_baseline=True))
    notes = init_repo(make_app(repos / "notes"))
    init_repo(make_app(repos / "inventory", unmigratable=True))
    init_repo(make_app(repos / "billing", breakable=True))
    (notes / "app.py").write_text((notes / "app.py").read_text() + "# half-done work\n")
    manifest = root / "fleet.toml"
    manifest.write_text(
        f'verify = "{VERIFY}"\n\n'
        '[[repo]]\npath = "repos/shop"\n\n'
        '[[repo]]\npath = "repos/ledger"\n\n'
        '[[repo]]\npath = "repos/notes"\n\n'
        '[[repo]]\npath = "repos/inventory"\n\n'
        f'[[repo]]\npath = "repos/billing"\nverify = "{VERIFY} tests"\n')
    snapshots = {"notes": read_files(notes)}
    args = [str(manifest), "-c", "teardown,break-tests", "--branch", BRANCH, "--commit", "--jobs", "2"]
    first = run_batch(*args, "--report", "first.json", cwd=root)
    heads = {name: git(repos / name, "rev-parse", "HEAD") for name in ("shop", "ledger", "billing", "inventory")}
    second = run_batch(*args, "--report", "second.json", cwd=root)
    return {"root": root, "repos": repos, "first": first, "second": second, "heads": heads, "snapshots": snapshots,
            "report": json.loads((root / "first.json").read_text()),
            "rerun": json.loads((root / "second.json").read_text())}


def repo_report(document: dict, name: str) -> dict:
    return next(r for r in document["repos"] if r["name"] == name)


def commits(repo: Path) -> list[str]:
    return git(repo, "log", "--format=%s", "main..HEAD").splitlines()


def test_exit_code_and_terminal_summary(fleet):
    first = fleet["first"]
    assert first.returncode == 2, first.stderr  # the dirty repository was refused
    for line in ("shop: migrated", "billing: partial", "ledger: migrated", "notes: refused", "inventory: unchanged"):
        assert line in first.stdout
    assert "5 repositories:" in first.stdout
    # Off a terminal, progress is plain lines on stderr.
    assert "billing: verifying (break-tests broke the tests: rolled back)" in first.stderr


def test_a_clean_app_is_migrated_on_its_branch_one_commit_per_codemod(fleet):
    shop = fleet["repos"] / "shop"
    assert git(shop, "branch", "--show-current") == BRANCH
    assert commits(shop) == ["flask-refactor: teardown"]
    message = git(shop, "log", "-1", "--format=%B")
    assert "Why: A `scoped_session` keeps one session per thread" in message and "M app.py" in message
    assert "passed" in message  # verified, says the commit
    assert git(shop, "status", "--porcelain") == ""
    assert "@app.teardown_appcontext" in (shop / "app.py").read_text()
    report = repo_report(fleet["report"], "shop")
    assert report["codemods_applied"] == ["teardown"] and report["files_changed"] == ["app.py"]
    assert report["verify"]["verified"] and [s["passed"] for s in report["verify"]["steps"]] == [True]
    assert report["commits"][0]["sha"] == git(shop, "rev-parse", "HEAD")


def test_a_breaking_codemod_is_rolled_back_and_the_others_kept(fleet):
    billing = fleet["repos"] / "billing"
    assert commits(billing) == ["flask-refactor: teardown"]
    assert git(billing, "status", "--porcelain") == ""  # the rollback left nothing behind
    assert not (billing / "sabotage").exists()
    assert "PRICE_FACTOR = 1  #" in (billing / "app.py").read_text()
    report = repo_report(fleet["report"], "billing")
    assert report["status"] == batch.PARTIAL
    assert report["codemods_applied"] == ["teardown"] and report["codemods_rolled_back"] == ["break-tests"]
    broken = report["verify"]["steps"][-1]
    assert broken["codemod"] == "break-tests" and broken["rolled_back"] and not broken["passed"]
    assert "AssertionError" in broken["tail"]
    assert report["verify"]["command"].endswith(" tests")  # its manifest entry's own command
    # The migrated suite passes on the branch.
    suite = subprocess.run(VERIFY, shell=True, cwd=billing, capture_output=True, env=environment(), timeout=120)
    assert suite.returncode == 0, suite.stdout


def test_a_failing_baseline_is_reported_and_the_migration_left_unverified(fleet):
    ledger = fleet["repos"] / "ledger"
    assert commits(ledger) == ["flask-refactor: teardown"]
    report = repo_report(fleet["report"], "ledger")
    assert report["verify"]["baseline"]["passed"] is False and report["verify"]["verified"] is False
    assert report["verify"]["steps"] == [] and "not verified" in report["detail"]
    assert "failed before any change (exit 1)" in Path(report["pr_description"]).read_text()


def test_a_dirty_tree_is_refused_and_left_alone(fleet):
    notes = fleet["repos"] / "notes"
    assert read_files(notes) == fleet["snapshots"]["notes"]
    assert git(notes, "branch", "--list", BRANCH) == "" and git(notes, "branch", "--show-current") == "main"
    report = repo_report(fleet["report"], "notes")
    assert report["status"] == batch.REFUSED and "app.py" in report["detail"]


def test_what_cannot_be_migrated_is_reported_without_a_branch(fleet):
    inventory = fleet["repos"] / "inventory"
    assert git(inventory, "branch", "--list", BRANCH) == "" and git(inventory, "branch", "--show-current") == "main"
    report = repo_report(fleet["report"], "inventory")
    assert report["status"] == batch.UNCHANGED and report["files_changed"] == [] and report["commits"] == []
    assert report["verify"] is None  # nothing changed: the suite was not even run
    assert [f["path"] for f in report["findings"]] == ["database.py"]
    assert "sessionmaker" in report["findings"][0]["message"]


def test_report_is_complete_for_every_repository(fleet):
    document = fleet["report"]
    assert document["branch"] == BRANCH and document["codemods"] == ["teardown", "break-tests"]
    assert sorted(r["name"] for r in document["repos"]) == ["billing", "inventory", "ledger", "notes", "shop"]
    keys = {"status", "codemods_applied", "files_changed", "findings", "verify", "commits", "pr_description"}
    for report in document["repos"]:
        assert keys <= set(report), report["name"]
    assert document["totals"] == {"migrated": 2, "partial": 1, "refused": 1, "unchanged": 1}


def test_pull_request_description_says_what_why_and_what_needs_a_human(fleet):
    report = repo_report(fleet["report"], "billing")
    path = Path(report["pr_description"])
    assert path.parent.parent.name == ".git"  # never in the work tree
    text = path.read_text()
    assert text == report["pr_body"]
    for heading in ("## What changed", "## Why", "## Verification", "## Needs a human"):
        assert heading in text
    assert "**teardown**" in text and "`app.py`" in text and report["commits"][0]["sha"][:10] in text
    assert "**break-tests** broke" in text and "AssertionError" in text


def test_a_rerun_does_nothing(fleet):
    second = fleet["second"]
    assert second.returncode == 2  # the dirty repository is still refused, and still untouched
    rerun = fleet["rerun"]
    assert {r["name"]: r["status"] for r in rerun["repos"]} == {
        "shop": "skipped", "ledger": "skipped", "billing": "skipped", "inventory": "skipped", "notes": "refused"}
    assert repo_report(rerun, "billing")["previous_status"] == batch.PARTIAL
    for name, head in fleet["heads"].items():
        assert git(fleet["repos"] / name, "rev-parse", "HEAD") == head
    assert "verifying" not in second.stderr  # no test suite was run again


# -- manifests ------------------------------------------------------------------------

def test_plain_manifest_lines_with_optional_verify(tmp_path):
    manifest = tmp_path / "repos.txt"
    manifest.write_text("# our services\nservices/a\n\n/abs/b | make test | tee log\n")
    specs = batch.read_manifest(manifest)
    assert specs == [batch.RepoSpec((tmp_path / "services/a").resolve(), None),
                     batch.RepoSpec(Path("/abs/b"), "make test | tee log")]


def test_toml_manifest_errors_are_clear(tmp_path):
    manifest = tmp_path / "repos.toml"
    manifest.write_text('[[repo]]\nverify = "pytest"\n')
    with pytest.raises(batch.BatchError, match="needs a `path`"):
        batch.read_manifest(manifest)


def test_a_directory_of_checkouts(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name / ".git").mkdir(parents=True)
    (tmp_path / "not-a-repo").mkdir()
    assert [s.name for s in batch.targets([str(tmp_path)])] == ["one", "two"]
    assert [s.name for s in batch.targets([str(tmp_path / "one")])] == ["one"]
    with pytest.raises(batch.BatchError, match="holds none"):
        batch.targets([str(tmp_path / "not-a-repo")])


# -- one repository, in-process ----------------------------------------------------------

@pytest.fixture()
def plugin_env(monkeypatch):
    """This process as the CLI subprocesses see it: git identity and the test-only codemod."""
    for key, value in environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(PLUGINS))
    registry.all_codemods.cache_clear()
    yield
    registry.all_codemods.cache_clear()  # later tests must not see the test-only codemod


def test_without_commit_the_changes_wait_on_the_branch(tmp_path, plugin_env):
    repo = init_repo(make_app(tmp_path / "shop"))
    options = batch.BatchOptions(("teardown",), BRANCH, commit=False)
    report = batch.migrate(batch.RepoSpec(repo), options)
    assert report["status"] == batch.MIGRATED and report["uncommitted"] and report["commits"] == []
    assert git(repo, "branch", "--show-current") == BRANCH
    assert git(repo, "status", "--porcelain") == "M app.py"
    assert "are not committed" in report["pr_body"] and "No test command checked" in report["pr_body"]
    assert batch.migrate(batch.RepoSpec(repo), options)["status"] == batch.SKIPPED


def test_a_rerun_with_another_codemod_resumes_the_branch(tmp_path, plugin_env):
    repo = init_repo(make_app(tmp_path / "billing", breakable=True))
    spec = batch.RepoSpec(repo)
    first = batch.migrate(spec, batch.BatchOptions(("teardown",), BRANCH, commit=True))
    assert first["status"] == batch.MIGRATED and len(first["commits"]) == 1
    second = batch.migrate(spec, batch.BatchOptions(("teardown", "break-tests"), BRANCH, commit=True))
    assert second["resumed"] and second["status"] == batch.MIGRATED
    # teardown is idempotent: nothing more from it; only the new codemod is committed.
    assert [c["codemod"] for c in second["commits"]] == ["break-tests"]
    assert commits(repo) == ["flask-refactor: break-tests", "flask-refactor: teardown"]
    assert git(repo, "status", "--porcelain") == ""


def test_committing_without_a_git_identity_is_refused_up_front(tmp_path, plugin_env, monkeypatch):
    repo = init_repo(make_app(tmp_path / "shop"))
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.gitconfig either
    monkeypatch.setenv("EMAIL", "")
    git(repo, "config", "user.useConfigOnly", "true")  # no guessing from the host name
    report = batch.migrate(batch.RepoSpec(repo), batch.BatchOptions(("teardown",), BRANCH, commit=True))
    assert report["status"] == batch.REFUSED and "identity" in report["detail"]
    assert git(repo, "branch", "--show-current") == "main" and git(repo, "status", "--porcelain") == ""


def test_on_a_terminal_a_live_table_and_a_summary_table(tmp_path):
    repo = init_repo(make_app(tmp_path / "shop"))
    terminal = Terminal(["batch", str(repo), "-c", "teardown", "--commit", "--branch", BRANCH, "-j", "1"], tmp_path)
    code, output = terminal.finish()
    assert code == 0, output
    assert b"\x1b[" in output  # colour
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode())
    assert "checking" in text and "shop: checking" not in text  # states in the table, not as lines
    assert "flask-refactor batch" in text and "┃ repository" in text
    assert commits(repo) == ["flask-refactor: teardown"]
