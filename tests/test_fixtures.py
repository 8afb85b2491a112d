"""Every fixture pair under fixtures/<codemod>/<case>/: exact output, the expected
findings, idempotency, every output compiles, and (where the case has a request script)
identical responses from the before and after apps."""

from __future__ import annotations

import pytest

from flask_refactor import forking, pipeline
from helpers import Case, all_cases, all_work_forked, copy_tree, finding_matches, read_tree, record_forks, run_codemods, serve_requests

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_output_matches_after_tree(case: Case, tmp_path):
    tree = copy_tree(case.before, tmp_path / "tree")
    result = run_codemods(tree, case.codemods, case.options)
    assert not len(result.errors), list(result.errors)
    assert read_tree(tree) == read_tree(case.after)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_findings_are_exactly_the_expected_ones(case: Case, tmp_path):
    tree = copy_tree(case.before, tmp_path / "tree")
    result = run_codemods(tree, case.codemods, case.options, apply=False)
    unmatched = list(result.findings)
    for expected in case.findings:
        hit = next((f for f in unmatched if finding_matches(f, expected)), None)
        assert hit is not None, f"expected finding {expected} not reported; got {result.findings}"
        unmatched.remove(hit)
    assert not unmatched, f"unexpected findings: {unmatched}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_second_run_changes_nothing(case: Case, tmp_path):
    tree = copy_tree(case.after, tmp_path / "tree")
    result = run_codemods(tree, case.codemods, case.options, apply=False)
    assert [o.path for o in result.outcomes] == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_output_file_compiles(case: Case):
    for path in sorted(case.after.rglob("*.py")):
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)  # bytes: honours coding cookies


BEHAVIOUR = [c for c in CASES if c.behaviour]


@pytest.mark.parametrize("case", BEHAVIOUR, ids=[c.id for c in BEHAVIOUR])
def test_before_and_after_apps_answer_alike(case: Case, tmp_path):
    spec = case.behaviour
    root = spec.get("root", ".")  # the directory of the tree the app is run from
    before = serve_requests(copy_tree(case.before, tmp_path / "before") / root, spec["app"], spec["requests"])
    after = serve_requests(copy_tree(case.after, tmp_path / "after") / root, spec.get("after_app", spec["app"]),
                           spec["requests"])
    assert len(before) == len(spec["requests"])
    assert after == before


@pytest.mark.skipif(not forking.can_fork(2), reason="work goes to forked workers only where processes fork")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_work_done_in_forked_workers_gives_the_same_output(case: Case, tmp_path, monkeypatch):
    """Every per-module map (parses, app-factory's modules, each codemod's rewrites,
    validation) sent to workers: the same files, findings and errors as in one process."""
    all_work_forked(monkeypatch)  # nothing to judge the pace by: all forked
    mapped = []
    real_map = pipeline.run_here_then_fork
    monkeypatch.setattr(pipeline, "run_here_then_fork", lambda items, *args, **kwargs: mapped.append(len(items)) or
                        real_map(items, *args, **kwargs))
    forked = record_forks(monkeypatch)
    tree = copy_tree(case.before, tmp_path / "tree")
    result = run_codemods(tree, case.codemods, case.options, jobs=2)
    assert len(forked) == len([n for n in mapped if n])  # every map went to workers
    assert not len(result.errors), list(result.errors)
    assert read_tree(tree) == read_tree(case.after)
    serial = run_codemods(copy_tree(case.before, tmp_path / "serial"), case.codemods, case.options, apply=False)
    assert [f.as_dict() for f in result.findings] == [f.as_dict() for f in serial.findings]
