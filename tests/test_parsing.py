"""Batches of parses run without libcst's checks of each node (`flask_refactor.parsing`)."""

from __future__ import annotations

import libcst as cst
import pytest

from flask_refactor import forking, parsing, pipeline
from flask_refactor.project import Project
from helpers import CORNER_SYNTAX, all_work_forked, installed_package_sources


def test_parses_without_the_checks_are_the_parses_with_them():
    sources = [("corners", CORNER_SYNTAX)] + [(str(path), path.read_bytes()) for path in
                                             installed_package_sources(("flask", "click"))]
    for where, source in sources:
        checked = cst.parse_module(source)
        with parsing.unchecked():
            unchecked = cst.parse_module(source)
        assert unchecked.deep_equals(checked) and unchecked.code == checked.code, where


def test_the_checks_are_off_within_only():
    with parsing.unchecked():
        cst.Name("not a name")  # a check would refuse it
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")
    with pytest.raises(cst.ParserSyntaxError), parsing.unchecked():
        cst.parse_module("def (:\n")
    with pytest.raises(cst.CSTValidationError):  # back after a parse that failed
        cst.Name("not a name")


def test_a_post_init_that_does_more_than_check_is_left_on(monkeypatch):
    def post_init_with_more(self):
        self._validate()
        object.__setattr__(self, "seen", True)

    assert parsing.does_only_checks(cst.CSTNode.__post_init__)
    assert not parsing.does_only_checks(post_init_with_more)
    monkeypatch.setattr(parsing, "_ONLY_CHECKS", False)
    with parsing.unchecked(), pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")


@pytest.mark.parametrize("jobs", [1, 2] if forking.can_fork(2) else [1])
def test_first_parses_of_a_project_run_without_the_checks(monkeypatch, jobs):
    all_work_forked(monkeypatch)  # with 2 jobs, in workers forked within the batch
    texts = {f"m{i}.py": f"x{i} = f({i})\n" for i in range(6)}
    project = Project.from_texts(texts)
    pipeline.use_module_workers(project, jobs)

    def refused(self):  # a check that fails whatever the name: seen in any process, as a failed parse
        raise cst.CSTValidationError(f"checked {self.value}")

    monkeypatch.setattr(cst.Name, "_validate", refused)
    project.parse_many(sorted(texts))
    assert all(project.parse(path).code == text for path, text in texts.items())
    assert not list(project.errors)
    with pytest.raises(cst.CSTValidationError, match="checked built_by_hand"):
        cst.Name("built_by_hand")
