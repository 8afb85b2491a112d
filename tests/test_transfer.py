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
