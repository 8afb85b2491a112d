"""Scope maps must be libcst's ScopeProvider's: globals-to-g and extract-services decide
what a name refers to from them."""

from __future__ import annotations

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, ScopeProvider

from flask_refactor.scopes import _DirectWalk, scopes_of
from flask_refactor.walk import WHITESPACE, iter_nodes
from helpers import sample_modules


def _describe(mapping, module: cst.Module):
    """What a scope map says about the module's own nodes, independent of the order in
    which libcst's sets iterate (by hash) and of the nodes libcst parses out of string
    annotations afresh on every resolution. Whitespace and comments are left out: the
    direct walk does not go through them (and nothing asks for their scope)."""
    tree = {id(node) for node in iter_nodes(module) if node.__class__ not in WHITESPACE}

    def key(node):
        return id(node) if id(node) in tree else "parsed"

    first: dict[int, int] = {}  # a scope is named by the first tree node (by id) in it
    for node, scope in mapping.items():
        if scope is not None and id(node) in tree:
            first[id(scope)] = min(first.get(id(scope), id(node)), id(node))

    def name(scope):
        return None if scope is None else (type(scope).__name__, first.get(id(scope)))

    per_node = {id(node): name(scope) for node, scope in mapping.items() if id(node) in tree}
    per_scope = set()
    for scope in {id(s): s for s in mapping.values() if s is not None}.values():
        assignments = sorted((a.name, key(a.node)) for a in scope.assignments if hasattr(a, "node"))
        accesses = sorted(repr((key(a.node), a.is_annotation, a.is_type_hint,
                                sorted(repr(key(r.node)) if hasattr(r, "node") else f"builtin:{r.name}"
                                       for r in a.referents))) for a in scope.accesses)
        parent = "itself" if scope.parent is scope else name(scope.parent)
        per_scope.add(repr((name(scope), parent, assignments, accesses)))
    return per_node, sorted(per_scope)


def _assert_same_scopes(module: cst.Module, where: str) -> None:
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(ScopeProvider)
    assert _describe(scopes_of(module), module) == _describe(expected, module), where


def test_corner_syntax_and_real_packages_have_libcsts_scopes():
    for where, module in sample_modules(("flask", "click")):  # libcst's own resolution is the slow side
        _assert_same_scopes(module, where)


def test_assignment_targets_of_every_kind_have_libcsts_scopes():
    # the targets the scope walk marks as stores itself, and the Names near them that
    # are loaded (attribute and subscript bases, comprehension sources, string annotations)
    module = cst.parse_module(
        "a, *b = c, [d.e, f[g]] = h\n"
        "i.j: int = k\n"
        "l[m] += n\n"
        "for (o, p), q.r in s:\n"
        "    with t as (u, v.w), x as y[z]:\n"
        "        pass\n"
        "aa = [bb for bb, cc in dd for ee in bb if (ff := ee)]\n"
        "gg = {hh: ii for hh in jj}\n"
        "try:\n"
        "    pass\n"
        "except kk as ll:\n"
        "    del mm, nn.oo\n"
        "def pp(qq: 'rr.ss', tt=(uu := 1)) -> 'vv':\n"
        "    nonlocal_ = lambda ww=xx: ww\n"
        "    (yy := zz)[0] = 1\n"
        "    return [(v := w) for w in v]\n")
    _assert_same_scopes(module, "targets")


@pytest.mark.parametrize("source", [
    # no name with "typing" in it: a string argument is a string, never an annotation
    "def f(x):\n    return cast('List[x]', g['y'])\n",
    # typing met before, after and under other names
    "late = cast('Late', v)\nfrom typing import cast, Literal\nnow = cast('Now', v)\nk: Literal['a'] = 'a'\n",
    "import typing as t\nfrom typing_extensions import Literal as L\nT = t.TypeVar('T', bound='Bound')\n"
    "U = t.NewType('U', 'int')\nx = t.cast('t.List[T]', [])\ny: L['a', 'b'] = 'a'\nz = t.Dict['K', 'V']\n",
    "from typing import cast as c\n\ndef f(v):\n    return c('Dict[str, v]', v)\n",
    # a class and a module-level name called typing make qualified names that start so
    "class typing:\n    Literal = 1\n\n    def m(self, v):\n        return typing.cast('Q', v), Literal['x']\n",
    "typing = object()\nw = typing.cast('W', 1)\nv = typing.Literal['v']\n",
])
def test_typing_calls_and_subscripts_have_libcsts_scopes(source):
    _assert_same_scopes(cst.parse_module(source), source)


def test_a_global_rebound_in_a_function_is_a_module_name():
    module = cst.parse_module("count = 0\n\ndef bump():\n    global count\n    count += 1\n    return count\n")
    scopes = scopes_of(module)
    global_scope = scopes[module]
    assert sorted(a.name for a in global_scope.assignments) == ["bump", "count", "count"]  # `global` rebinds it
    returned = module.body[1].body.body[-1].body[0].value
    function_scope = scopes[returned]
    assert type(function_scope).__name__ == "FunctionScope" and function_scope.parent is global_scope


def test_the_direct_walk_makes_libcsts_calls_field_hooks_included():
    # ScopeVisitor counts class bases out of annotations with a field hook
    # (visit_ClassDef_bases): the direct walk must make every call libcst's walk makes
    class Recorder(cst.CSTVisitor):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def visit_Name(self, node: cst.Name) -> None:
            self.calls.append(f"visit {node.value}")

        def leave_Name(self, node: cst.Name) -> None:
            self.calls.append(f"leave {node.value}")

        def visit_ClassDef_bases(self, node: cst.ClassDef) -> None:
            self.calls.append("bases of " + node.name.value)

        def leave_ClassDef_bases(self, node: cst.ClassDef) -> None:
            self.calls.append("end of bases")

        def visit_Call(self, node: cst.Call) -> bool:
            node.func.visit(self)  # a hook walking a child itself, as ScopeVisitor's do
            return False

    class Direct(Recorder, _DirectWalk):
        pass

    module = cst.parse_module("class A(B, metaclass=M):\n    x = f(y)\n")
    expected, ours = Recorder(), Direct()
    module.visit(expected)
    ours.walk(module)
    assert ours.calls == expected.calls and "bases of A" in ours.calls
