"""Answers kept per top-level statement (`flask_refactor.memo`): reused for the statements
a new version of a module still holds, dropped with the statements no tree holds."""

from __future__ import annotations

import libcst as cst

from flask_refactor import memo
from flask_refactor.codemods.extract_services import _functions, _functions_in
from flask_refactor.codemods.support.calls import call_survey
from flask_refactor.codemods.support.context import _module_level_calls
from flask_refactor.codemods.support.names import _NamesAndQuotes, names_used, preferred_quote
from flask_refactor.codemods.support.routes import _registrations_in, registrations
from helpers import sample_modules


def test_a_statement_is_asked_once_while_it_is_in_a_tree():
    asked = []
    names = memo.per_statement(lambda statement: asked.append(statement) or type(statement).__name__)
    module = cst.parse_module("import os\n\ndef f():\n    return 1\n")
    assert [names(s) for s in module.body] == ["SimpleStatementLine", "FunctionDef"]
    new = module.with_changes(body=[module.body[0], cst.parse_statement("x = 1\n")])
    assert [names(s) for s in new.body] == ["SimpleStatementLine", "SimpleStatementLine"]
    assert len(asked) == 3  # the import line was asked once, for both versions
    memo.prune([new])  # the old `def f` is in no tree now
    assert names(module.body[1]) == "FunctionDef" and len(asked) == 4
    memo.clear()
    assert names(new.body[0]) == "SimpleStatementLine" and len(asked) == 5
    memo.clear()


def test_module_answers_made_of_statement_answers_are_the_whole_walks():
    """Each module answer, put together from its statements' answers, is what a walk of
    the whole module gives (in order)."""
    for where, module in sample_modules(("flask", "werkzeug", "click")):
        whole = _NamesAndQuotes()
        whole.walk(module)
        assert names_used(module) == frozenset(whole.names), where
        assert registrations(module) == _registrations_in(module), where
        assert _module_level_calls(module) == call_survey(module).outside_functions, where
        assert _functions(module) == _functions_in(module), where
        assert preferred_quote(module) == ("'" if whole.quotes["'"] > whole.quotes['"'] else '"'), where
    memo.clear()


def test_a_run_keeps_no_answers_after_it_ends(tmp_path, monkeypatch):
    from flask_refactor import pipeline, registry

    (tmp_path / "app.py").write_text("from flask import Flask, g\napp = Flask(__name__)\nuser = None\n\n"
                                     "@app.before_request\ndef load():\n    global user\n    user = 1\n\n"
                                     "@app.route('/')\ndef index():\n    return str(user)\n")
    kept, pruned = [], []
    clear, prune = memo.clear, memo.prune
    monkeypatch.setattr(memo, "clear", lambda: kept.append(sum(map(len, memo._ANSWERS))) or clear())
    monkeypatch.setattr(memo, "prune", lambda trees: pruned.append(1) or prune(trees))
    codemods = [cls() for cls in registry.all_codemods().values()]
    result = pipeline.run([str(tmp_path)], codemods, jobs=1, index_cache=None)
    assert len(pruned) == len(pipeline._stages(codemods))  # after each codemod: what no tree holds goes
    assert result.outcomes and kept and kept[0] > 0  # answers were kept during the run ...
    assert all(answers == {} for answers in memo._ANSWERS)  # ... and none after it
