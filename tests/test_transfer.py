"""Trees sent back by forked workers (`flask_refactor.transfer`) come back whole."""

from __future__ import annotations

import pickle
import subprocess
import sys

import libcst as cst
from multiprocessing.reduction import ForkingPickler

from flask_refactor import transfer
from helpers import sample_modules


def send(obj):
    transfer.install()
    return pickle.loads(bytes(ForkingPickler.dumps(obj, pickle.HIGHEST_PROTOCOL)))


def test_trees_of_installed_packages_come_back_equal():
    for where, module in sample_modules(("flask", "click", "werkzeug", "jinja2")):
        back = send(module)
        assert back.deep_equals(module) and back.code == module.code, where


def test_a_node_class_without_fields_comes_back():
    """`ImportStar`, the `*` of `from m import *`, has no field: a real app's star import
    once made every worker sending it back fail."""
    module = cst.parse_module("from os.path import *\n")
    back = send(module)
    assert back.deep_equals(module) and back.code == module.code


def test_a_node_pickles_through_its_constructor_not_libcst_state():
    transfer.install()
    data = bytes(ForkingPickler.dumps(cst.parse_module("x = f(1)\n"), pickle.HIGHEST_PROTOCOL))
    assert b"new_Module" in data and b"__setstate__" not in data
    assert len(data) < len(pickle.dumps(cst.parse_module("x = f(1)\n"), pickle.HIGHEST_PROTOCOL))


def test_a_fresh_process_loads_what_this_one_sent():
    """The constructors are found by name: a process that never pickled a tree (the
    coordinator, loading a worker's result) writes them out when asked."""
    transfer.install()
    source = "async def f(a, /, *b, **c):\n    return [x async for x in a]\n"
    data = bytes(ForkingPickler.dumps(cst.parse_module(source), pickle.HIGHEST_PROTOCOL))
    assert b"new_FunctionDef" in data
    code = "import pickle, sys; print(pickle.loads(sys.stdin.buffer.read()).code, end='')"
    done = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True)
    assert done.stdout.decode() == source


class Custom(cst.Name):
    """A node class of a plugin's own."""


def test_node_classes_libcst_does_not_export_keep_its_own_pickling():
    back = send(Custom("x"))
    assert type(back) is Custom and back.value == "x"


def test_within_sharing_the_statements_of_known_trees_are_sent_by_reference():
    module = cst.parse_module("import os\n\n@app.route('/')\ndef f(a, b):\n    x = 1\n    return x\n\ny = 2\n")
    function = module.body[1]
    block = function.body
    changed = module.with_changes(body=[module.body[0], function.with_changes(
        body=block.with_changes(body=[cst.parse_statement("x = 2\n"), block.body[1]])), module.body[2]])
    copied = send(changed)
    with transfer.sharing([module]):
        data = transfer.dumps(changed)
        back = transfer.loads(data)
    assert back.code == changed.code and copied.code == changed.code
    assert back.body[0] is module.body[0] and back.body[2] is module.body[2]
    assert back.body[1].body.body[1] is block.body[1]  # a statement of a rebuilt block
    assert back.body[1].decorators[0] is function.decorators[0] and back.body[1].params is function.params
    assert back.body[1].body.body[0] is not changed.body[1].body.body[0]  # what is new is copied
    assert copied.body[0] is not module.body[0]  # (outside `sharing`, everything is)
    assert len(data) < len(bytes(ForkingPickler.dumps(changed, pickle.HIGHEST_PROTOCOL))) / 2


def test_the_table_of_shared_statements_is_every_statement_of_the_trees_kept_or_new():
    """The table is made of each top-level statement's list, kept while the statement is
    in a tree (`memo.per_statement`): a new version of a module gets only its new
    statements walked, and the table holds the same nodes as a walk of every tree."""
    from flask_refactor import memo
    from flask_refactor.walk import iter_nodes

    def walked(trees):  # what `sharing` is to hold: the trees and their statement-level nodes
        return {id(node) for tree in trees for node in [tree, *transfer._statements(tree)]}

    def table(trees):
        with transfer.sharing(trees):
            return set(transfer._SHARED), list(transfer._SHARED_NODES)

    trees = [module for _, module in sample_modules(("flask",))]
    ids, nodes = table(trees)
    assert ids == walked(trees) and {id(node) for node in nodes} == ids
    first = trees[1]
    kept, replaced = first.body[0], first.body[-1]
    trees[1] = first.with_changes(body=[*first.body[:-1], cst.parse_statement("def late():\n    return 1\n")])
    ids, _ = table(trees)
    assert ids == walked(trees)
    assert id(kept) in ids and id(replaced) not in ids and id(trees[1].body[-1].body) in ids
    memo.clear()
    assert table(trees)[0] == walked(trees)
    # nothing inside a line of small statements, nor inside expressions
    assert not any(isinstance(node, (cst.Assign, cst.Call)) for node in iter_nodes(trees[0]) if id(node) in ids)


def test_sharing_ends_with_its_block():
    module = cst.parse_module("x = 1\n")
    with transfer.sharing([module]):
        pass
    assert transfer.loads(transfer.dumps(module)).body[0] is not module.body[0]


def test_whitespace_leaves_come_back_as_one_object_per_value_and_code_as_its_own():
    from flask_refactor.walk import iter_nodes

    module = cst.parse_module("x = f(a, b)\ny = [1, 2]\n\ndef g(c = 1):\n    return c\n")
    back = send(module)
    assert back.code == module.code and back.deep_equals(module)
    leaves: dict[tuple[type, object], set[int]] = {}
    for node in iter_nodes(back):
        if type(node) in (cst.SimpleWhitespace, cst.Newline):
            leaves.setdefault((type(node), node.value), set()).add(id(node))
    assert leaves[cst.SimpleWhitespace, " "] and all(len(ids) == 1 for ids in leaves.values())
    code = [node for node in iter_nodes(back) if isinstance(node, (cst.Name, cst.Integer, cst.Comma))]
    assert len({id(node) for node in code}) == len(code)  # what analyses key by object is never merged
