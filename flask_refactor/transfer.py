"""Faster pickling of libcst trees, for the results forked workers send back.

libcst's nodes are frozen dataclasses with slots, pickled through a `__getstate__` and
`__setstate__` written in Python: each dump calls `dataclasses.fields` and `hasattr` for
every node, each load sets the fields one by one through a loop. On the views modules of
the benchmark's big app, sending a rewritten tree back cost about as much as the work
that forking shared out. Here a node pickles as a call to a constructor written out for
its class (`new_<Class>`, found by pickle as an attribute of this module, so in any
process) with the tuple of its field values, read by one `operator.attrgetter`. On 60
views modules and 10 werkzeug modules: dump 186 -> 40 ms, load 62 -> 36 ms, half the
bytes. tests/test_transfer.py checks round trips on the sources of installed packages.

Whitespace leaves (`SimpleWhitespace(" ")`, `Newline()`), two fifths of the nodes sent,
are written as one object per value (`_with_one_object_per_leaf`): pickle then writes
each value once per dump, and a loaded tree holds one object per value where the sent
one held thousands. On the big app's 299 modules: load 139 -> 81 ms, a quarter fewer
bytes. So a received tree shares its whitespace leaves between places; nothing keys
whitespace by object (parent maps, positions and statement ids leave it out).

Only `multiprocessing`'s pickler (what process pools and `dumps` send results with) is
taught this (`install`); pickles written to disk are never of trees.

A worker forked from the coordinator mostly sends back trees that are the coordinator's
own with a few statements replaced: a codemod rebuilds only the path to what it changes.
Within `sharing(trees)`, `dumps` writes a statement of those trees as its number in a
table of them instead of its content, and `loads` takes the coordinator's object of that
number: a forked worker inherits the table, and holds the same objects at the same
addresses (which is how `dumps` recognises them; the table keeps each alive in both, so
no other object can take its address).
The result then shares its unchanged statements with the coordinator's tree, as when the
work runs in the coordinator itself, and is sent in a fraction of the bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import operator
import pickle
import typing
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.reduction import ForkingPickler
from typing import Any

import libcst as cst

from .memo import per_statement
from .walk import children, field_hints, field_names, libcst_node_classes, subclass_test

_PREFIX = "new_"
# node class -> (its constructor, the reader of its field values as a tuple, the indexes of
# the fields that may hold a whitespace leaf)
_REDUCERS: dict[type, tuple[Callable[..., cst.CSTNode], Callable[[cst.CSTNode], tuple], tuple[int, ...]]] = {}
_installed = False


def install() -> None:
    """Have `multiprocessing` pickle every node class libcst exports this way (once)."""
    global _installed
    if _installed:
        return
    for cls in libcst_node_classes().values():
        ForkingPickler.register(cls, _reduce)
    _installed = True


def _reduce(node: cst.CSTNode) -> tuple[Callable[..., cst.CSTNode], tuple]:
    if _SHARED:
        index = _SHARED.get(id(node))
        if index is not None and _SHARED_NODES[index] is node:
            return _shared, (index,)
    cls = type(node)
    reducer = _REDUCERS.get(cls)
    if reducer is None:
        names = field_names(cls)
        read = _values_reader(names)
        hints = field_hints(cls)
        leaf_fields = tuple(index for index, name in enumerate(names) if name in hints and _admits_leaf(hints[name]))
        reducer = _REDUCERS[cls] = (__getattr__(_PREFIX + cls.__name__), read, leaf_fields)
    constructor, read, leaf_fields = reducer
    return constructor, _with_one_object_per_leaf(read(node), leaf_fields) if leaf_fields else read(node)


def _values_reader(names: tuple[str, ...]) -> Callable[[cst.CSTNode], tuple]:
    """A function giving a node's values of these fields as a tuple. (`attrgetter` gives
    a bare value for one name, and needs one: `ImportStar`, the `*` of `from m import *`,
    has no field.)"""
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        return lambda node, name=names[0]: (getattr(node, name),)
    return lambda node: ()


# Each parent is written holding this process's one object for each whitespace leaf value
# (see the module's docstring); libcst's nodes never change, so sharing them is safe.
_LEAF_CLASSES = (cst.SimpleWhitespace, cst.Newline)
_LEAVES: dict[tuple[type, str | None], cst.CSTNode] = {}  # (class, value) -> the object written for it
_MAX_LEAVES = 4096  # distinct values kept (odd alignment runs are many): past that, start afresh


def _with_one_object_per_leaf(values: tuple, leaf_fields: tuple[int, ...]) -> tuple:
    values = list(values)
    for index in leaf_fields:
        value = values[index]
        leaf_class = value.__class__
        if leaf_class in _LEAF_CLASSES:
            key = (leaf_class, value.value)
            leaf = _LEAVES.get(key)
            if leaf is None:
                if len(_LEAVES) >= _MAX_LEAVES:
                    _LEAVES.clear()
                leaf = _LEAVES[key] = value
            values[index] = leaf
    return tuple(values)


def _admits_leaf(hint: Any) -> bool:
    """Whether a field so annotated may hold a whitespace leaf itself (not in a sequence)."""
    if isinstance(hint, type):
        return any(issubclass(leaf, hint) for leaf in _LEAF_CLASSES)
    return typing.get_origin(hint) is typing.Union and any(_admits_leaf(item) for item in typing.get_args(hint))


def __getattr__(name: str) -> Any:
    """`new_<Class>`: written out when first asked for, by `_reduce` here or by pickle
    loading a result in another process."""
    cls = getattr(cst, name[len(_PREFIX):], None) if name.startswith(_PREFIX) else None
    if not (isinstance(cls, type) and issubclass(cls, cst.CSTNode) and dataclasses.is_dataclass(cls)):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    names = field_names(cls)
    values = [f"v{index}" for index in range(len(names))]
    lines = [f"def {name}({', '.join(values)}):", "    node = new(cls)"]
    lines += [f"    put(node, {field!r}, {value})" for field, value in zip(names, values)]
    lines.append("    return node")
    namespace = {"new": object.__new__, "put": object.__setattr__, "cls": cls}  # frozen: as libcst's __setstate__
    exec("\n".join(lines), namespace)  # generated from libcst's field names only
    constructor = namespace[name]
    constructor.__module__, constructor.__qualname__ = __name__, name
    globals()[name] = constructor
    return constructor


# the statements of the trees given to `sharing`, while it lasts, each sent as its index
_SHARED_NODES: list[cst.CSTNode] = []
_SHARED: dict[int, int] = {}  # address -> index in _SHARED_NODES
# statements, suites and the clauses holding suites: what `sharing` descends through
_statement_level = subclass_test((cst.BaseStatement, cst.BaseSuite, cst.Else, cst.ExceptHandler,
                                  cst.ExceptStarHandler, cst.Finally, cst.MatchCase))


@contextlib.contextmanager
def sharing(trees: Iterable[cst.Module]) -> Iterator[None]:
    """Have `dumps` and `loads` refer to the statements of these trees by number (to be
    entered before workers are forked, and left after their results are loaded)."""
    for tree in trees:
        _SHARED_NODES.append(tree)
        for child in children(tree):
            _SHARED_NODES.extend(_shared_under(child))
    # one table for the round, made at C speed: entered before each fork, while no worker runs
    _SHARED.update(zip(map(id, _SHARED_NODES), range(len(_SHARED_NODES))))
    try:
        yield
    finally:
        _SHARED.clear()
        _SHARED_NODES.clear()


@per_statement
def _shared_under(statement: cst.CSTNode) -> tuple[cst.CSTNode, ...]:
    """A top-level statement and what of it is shared (`_statements`): kept per statement,
    so that each round's table walks only the statements codemods have made since the
    last (the walks of every tree took 6-9 ms before each fork on the benchmark's big app)."""
    if _statement_level(type(statement)) and type(statement) is not cst.SimpleStatementLine:
        return (statement, *_statements(statement))
    return (statement,)


def _statements(tree: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The statement-level nodes of a tree at any depth, and the parts of each compound
    statement (decorators, parameters, ...): what a rewritten statement keeps. Not the
    small statements of a line, nor anything inside expressions."""
    stack = [tree]
    while stack:
        for child in children(stack.pop()):
            yield child
            if _statement_level(type(child)) and type(child) is not cst.SimpleStatementLine:
                stack.append(child)


def _shared(index: int) -> cst.CSTNode:
    """A shared statement, loaded: this process's own (`_reduce` wrote its index).
    (Through the node reducer, not a pickler's `persistent_id`, which pickle asks about
    every object, strings and tuples included: dumps took twice as long.)"""
    return _SHARED_NODES[index]


def dumps(obj: Any) -> bytes:
    """`obj` pickled (trees as `install` has them), the shared statements by number."""
    buffer = io.BytesIO()
    ForkingPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    return pickle.loads(data)
