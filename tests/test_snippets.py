"""Generated code is copied from a pickle once a text is asked for again (`flask_refactor.snippets`):
each caller gets a tree of its own, equal to a parse, sharing no node with another."""

from __future__ import annotations

from collections import OrderedDict

import libcst as cst

from flask_refactor import snippets
from flask_refactor.walk import iter_nodes

HELPER = '''\
def total(rows, tax=20):
    """Sum the rows' amounts, tax added."""
    subtotal = sum(row.amount for row in rows)

    @functools.cache
    def rate():
        return tax / 100

    return subtotal + subtotal * rate()
'''


def test_a_text_asked_for_again_is_copied_and_each_caller_gets_its_own_equal_tree(monkeypatch):
    """Parsed the first two times (most texts are asked for once: their trees are not
    pickled), copied from the second parse's pickle after that."""
    monkeypatch.setattr(snippets, "_PARSED", OrderedDict())
    parsed, pickled = [], []
    real, real_dumps = cst.parse_statement, snippets.transfer.dumps
    monkeypatch.setattr(cst, "parse_statement", lambda code, config: parsed.append(code) or real(code, config))
    monkeypatch.setattr(snippets.transfer, "dumps", lambda tree: pickled.append(tree) or real_dumps(tree))

    first = snippets.parse_statement(HELPER)
    assert parsed == [HELPER] and not pickled
    second, third, fourth = (snippets.parse_statement(HELPER) for _ in range(3))
    assert parsed == [HELPER, HELPER] and pickled == [second]
    trees = (first, second, third, fourth)
    assert all(tree.deep_equals(real(HELPER)) for tree in trees)
    # no node object in two trees: analyses keyed by node (parents, positions) tell them apart
    seen = [{id(node) for node in iter_nodes(tree)} for tree in trees]
    assert all(not seen[i] & seen[j] for i in range(4) for j in range(i + 1, 4))
    assert cst.Module(body=[fourth]).code == HELPER


def test_the_parser_settings_are_part_of_the_text(monkeypatch):
    """A module indented with tabs, or with Windows line ends, gets its own parse (as
    libcst is given them)."""
    monkeypatch.setattr(snippets, "_PARSED", OrderedDict())
    tabs = cst.parse_module("if x:\n\tpass\n").config_for_parsing
    spaces = snippets.parse_statement("if y:\n    pass\n")
    tabbed = snippets.parse_statement("if y:\n    pass\n", tabs)
    assert len(snippets._PARSED) == 2
    assert tabbed.deep_equals(cst.parse_statement("if y:\n    pass\n", tabs))
    assert spaces.deep_equals(cst.parse_statement("if y:\n    pass\n"))


def test_what_is_kept_is_bounded(monkeypatch):
    monkeypatch.setattr(snippets, "_PARSED", OrderedDict())
    monkeypatch.setattr(snippets, "_KEPT", 3)
    for number in range(5):
        snippets.parse_statement(f"x = {number}\n")
    assert [code for code, _ in snippets._PARSED] == ["x = 2\n", "x = 3\n", "x = 4\n"]


def test_a_modules_parsing_config_is_libcsts_made_once_per_settings():
    spaces = cst.parse_module("if x:\n    pass\n")
    again = cst.parse_module("y = 1\n")
    tabs = cst.parse_module("if x:\n\tpass\n")
    windows = cst.parse_module("if x:\r\n    pass\r\n")
    assert snippets.parsing_config(spaces) is snippets.parsing_config(again)
    for module in (spaces, tabs, windows):
        assert snippets.parsing_config(module) == module.config_for_parsing
    assert len({id(snippets.parsing_config(m)) for m in (spaces, tabs, windows)}) == 3
