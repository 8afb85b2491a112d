"""The read-only walker must see exactly what libcst's own visit sees, in the same order:
every analysis moved onto it relies on that."""

from __future__ import annotations

import dataclasses
import typing

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, ParentNodeProvider

from flask_refactor import walk
from flask_refactor.walk import ReadOnlyVisitor, TargetedTransformer, children, iter_nodes, parent_map, path_to
from helpers import CORNER_SYNTAX, installed_package_sources


class _LibcstOrder(cst.CSTVisitor):
    def __init__(self) -> None:
        self.seen: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.seen.append(node)
        return True


def _assert_same_order(module: cst.Module, where: str) -> None:
    expected = _LibcstOrder()
    module.visit(expected)
    walked = list(iter_nodes(module))
    assert len(walked) == len(expected.seen), where
    mismatch = next((i for i, (a, b) in enumerate(zip(walked, expected.seen)) if a is not b), None)
    assert mismatch is None, f"{where}: node {mismatch} is {type(walked[mismatch]).__name__}, " \
                             f"libcst visits {type(expected.seen[mismatch]).__name__}"


def test_corner_syntax_is_walked_like_libcst_visits_it():
    _assert_same_order(cst.parse_module(CORNER_SYNTAX), "corners")


def test_real_packages_are_walked_like_libcst_visits_them():
    files = installed_package_sources()
    assert len(files) > 50
    for path in files:
        _assert_same_order(cst.parse_module(path.read_bytes()), str(path))


def test_a_field_visited_only_when_set_is_not_missed(monkeypatch):
    # FormattedStringExpression visits format_spec only when present: a layout recorded
    # on a node without one must not hide the spec of the next node.
    monkeypatch.setattr(walk, "_LAYOUT", {})  # record layouts afresh, on these nodes
    module = cst.parse_module('a = f"{x}"\nb = f"{y:{width}}"\n')
    names = [n.value for n in iter_nodes(module) if isinstance(n, cst.Name)]
    assert names == ["a", "x", "b", "y", "width"]


def test_only_fields_that_may_hold_nodes_are_looked_at_on_every_node(monkeypatch):
    # `Arg.star` is a Literal of strings: looking at it on every argument found nothing,
    # while `format_spec`, visited only when set, must be looked at
    monkeypatch.setattr(walk, "_LAYOUT", {})
    assert walk._layout(cst.Arg(cst.Name("x")))[1] == ()
    assert walk._layout(cst.FormattedStringExpression(cst.Name("x")))[1] == ("format_spec",)


def test_a_whitespace_field_is_left_out_of_code_walks_unread():
    # libcst keeps the first version of each node class (before `add_slots` made it
    # anew) among its bases' subclasses: counted as a class `whitespace_after_func` may
    # hold, it made the field seem to admit code, so its value was read on every call
    assert walk._concrete_classes(cst.BaseParenthesizableWhitespace) == {cst.SimpleWhitespace,
                                                                         cst.ParenthesizedWhitespace}
    assert walk._only_whitespace(walk.field_hints(cst.Call)["whitespace_after_func"])


def test_parent_map_matches_libcsts_parent_provider():
    module = cst.parse_module(CORNER_SYNTAX)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(ParentNodeProvider)
    assert parent_map(module) == dict(expected)


def _expected_layout(module: cst.Module) -> tuple[dict, dict]:
    """libcst's parents of the module's code, and each code node's top-level statement."""
    parents = MetadataWrapper(module, unsafe_skip_copy=True).resolve(ParentNodeProvider)
    code_parents = {node: parent for node, parent in parents.items() if node.__class__ not in walk.WHITESPACE}
    owners: dict[cst.CSTNode, int] = {}
    for index, statement in enumerate(module.body):
        for node in iter_nodes(statement, skip=walk.WHITESPACE):
            owners[node] = index if owners.get(node, index) == index else walk.SHARED
    return code_parents, owners


def _owners(layout: walk.ModuleLayout, module: cst.Module) -> dict:
    """What the layout says of every node of the module's code."""
    return {node: layout.owner(node) for node in iter_nodes(module, skip=walk.WHITESPACE) if node is not module}


def test_a_module_layout_gives_libcsts_parents_and_each_nodes_statement():
    from helpers import sample_modules

    for where, module in sample_modules(("flask", "click")):
        layout = walk.code_layout(module)
        expected_parents, expected_owners = _expected_layout(module)
        assert layout.parents == expected_parents, where
        assert _owners(layout, module) == expected_owners, where
        assert parent_map(module, walk.WHITESPACE) is layout.parents  # one walk for both questions
        space = next(node for node in iter_nodes(module) if node.__class__ in walk.WHITESPACE)
        assert layout.owner(module) is None and layout.owner(space) is None  # not code of the module


def test_a_node_held_by_two_statements_is_marked_shared_in_the_layout():
    from helpers import module_sharing_nodes

    module, shared = module_sharing_nodes()
    layout = walk.code_layout(module)
    assert layout.owner(shared) == walk.SHARED
    assert layout.owner(module.body[2]) == walk.SHARED  # the function, held twice
    assert layout.owner(module.body[2].body.body[0]) == walk.SHARED  # and what it holds
    assert layout.owner(module.body[0].body[0]) == 0
    # libcst's provider gives a node met twice its last parent; parent_map gives the
    # first statement's, as its stack takes statements last to first
    assert layout.parents[shared] is module.body[0].body[0]
    assert layout.parents == parent_map(module, frozenset(walk.WHITESPACE))
    assert _owners(layout, module) == _expected_layout(module)[1]


def test_the_layout_of_a_new_version_reuses_its_kept_statements_and_is_right(monkeypatch):
    """A codemod replaces a statement, moves others and keeps the rest as the same
    objects: the new version's layout walks only the new statement, and says of every
    node what a walk of the whole version would."""
    module = cst.parse_module("import os\n\ndef f(a):\n    return g(a)\n\nx = [f(1), f(2)]\n")
    walk.code_layout(module).parents  # noqa: B018 (made for the first version)
    walked = []
    monkeypatch.setattr(walk, "_note_parents", lambda root, *rest, _walk=walk._note_parents:
                        walked.append(root) or _walk(root, *rest))
    replaced = cst.parse_statement("x = {f(3): None}\n")
    version = module.with_changes(body=[replaced, module.body[1], module.body[0]])
    layout = walk.code_layout(version)
    assert (layout.parents, _owners(layout, version)) == _expected_layout(version)
    assert walked == [replaced]
    shared = version.with_changes(body=[*version.body, module.body[1]])  # the function twice now
    assert _owners(walk.code_layout(shared), shared) == _expected_layout(shared)[1]
    assert walk.code_layout(shared).owner(module.body[1]) == walk.SHARED


def test_visitor_protocol_skips_children_and_leaves_in_order():
    module = cst.parse_module("def f(a):\n    return g(a)\n\nclass C:\n    h(1)\n")
    events: list[str] = []

    class Visitor(ReadOnlyVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            events.append(f"def {node.name.value}")

        def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
            events.append(f"end {original_node.name.value}")

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            events.append("class")
            return False  # nothing inside the class is seen

        def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
            events.append("end class")

        def visit_Call(self, node: cst.Call) -> None:
            events.append(f"call {cst.Module([]).code_for_node(node.func)}")

    Visitor().walk(module)
    assert events == ["def f", "call g", "end f", "class", "end class"]


def test_on_visit_can_be_overridden():
    module = cst.parse_module("x = [1, [2, [3]]]\n")

    class Outer(ReadOnlyVisitor):
        def __init__(self) -> None:
            self.lists = 0

        def on_visit(self, node: cst.CSTNode) -> bool:
            if isinstance(node, cst.List):
                self.lists += 1
                return self.lists < 2  # stop below the second list
            return True

    visitor = Outer()
    visitor.walk(module)
    assert visitor.lists == 2


def test_children_of_a_leaf_is_empty():
    assert children(cst.Name("x")) == []


def _recording_visitor(base: type, record: list, visited: tuple[str, ...], left: tuple[str, ...] = ()) -> type:
    """A visitor class of `base` that records the nodes of the `visited` classes as it
    visits them, and of the `left` classes as it leaves them."""
    hooks = {f"visit_{name}": lambda self, node: record.append(node) for name in visited}
    hooks.update({f"leave_{name}": lambda self, node: record.append(node) for name in left})
    return type("Recording", (base,), hooks)


def test_hooks_see_what_libcst_visitors_see_with_or_without_whitespace_hooks():
    # A visitor without whitespace hooks is not walked through whitespace; one with a
    # hook for comments still sees every comment, even inside parenthesized whitespace.
    by_libcst, ours, ours_without_comments = [], [], []
    libcst_visitor = _recording_visitor(cst.CSTVisitor, by_libcst, ("Name", "Call", "Comment"), ("FunctionDef",))
    our_visitor = _recording_visitor(ReadOnlyVisitor, ours, ("Name", "Call", "Comment"), ("FunctionDef",))
    no_comments = _recording_visitor(ReadOnlyVisitor, ours_without_comments, ("Name", "Call"), ("FunctionDef",))
    assert not our_visitor._skips_whitespace and no_comments._skips_whitespace

    source = CORNER_SYNTAX + "x = call(  # a comment inside parentheses\n    1)\n"
    modules = [cst.parse_module(source)] + [cst.parse_module(path.read_bytes())
                                            for path in installed_package_sources(("flask",))]
    for module in modules:
        module.visit(libcst_visitor())
        our_visitor().walk(module)
        no_comments().walk(module)
    assert ours == by_libcst and any(isinstance(node, cst.Comment) for node in ours)
    assert ours_without_comments == [node for node in by_libcst if not isinstance(node, cst.Comment)]


def test_code_children_are_the_children_without_whitespace_in_the_same_order():
    modules = [cst.parse_module(CORNER_SYNTAX)] + [cst.parse_module(path.read_bytes())
                                                   for path in installed_package_sources(("flask", "click"))]
    whitespace_dropped = 0
    for module in modules:
        for node in iter_nodes(module):
            expected = [child for child in children(node) if child.__class__ not in walk.WHITESPACE]
            found = walk.code_children(node)
            assert len(found) == len(expected) and all(a is b for a, b in zip(found, expected)), type(node).__name__
            whitespace_dropped += len(children(node)) - len(found)
    assert whitespace_dropped > 0


@pytest.mark.parametrize("hooked", [("Call",), ("Assign", "FunctionDef"), ("SimpleString",), ("Lambda", "Yield"),
                                    ("Comment",), ("Decorator", "Param")])
def test_a_visitor_not_entering_what_holds_none_of_its_classes_sees_what_libcst_visitors_see(hooked):
    # The classes a walk does not enter come from libcst's field annotations: were one
    # wrong, a node of a hooked class under it would be missed here.
    by_libcst: list[cst.CSTNode] = []
    ours: list[cst.CSTNode] = []
    libcst_visitor = _recording_visitor(cst.CSTVisitor, by_libcst, hooked)
    our_visitor = _recording_visitor(ReadOnlyVisitor, ours, hooked)
    for path in [None, *installed_package_sources(("flask", "click"))]:
        module = cst.parse_module(CORNER_SYNTAX if path is None else path.read_bytes())
        module.visit(libcst_visitor())
        our_visitor().walk(module)
    assert ours and len(ours) == len(by_libcst) and all(a is b for a, b in zip(ours, by_libcst))


def test_a_visitor_does_not_enter_nodes_that_cannot_hold_its_classes(monkeypatch):
    class Assignments(ReadOnlyVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            pass

    class Calls(ReadOnlyVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            pass

    # an assignment is a statement: no expression can hold one, a function can
    assert {cst.Call, cst.Name, cst.BinaryOperation} <= walk.unhooked_classes(Assignments)
    assert not {cst.FunctionDef, cst.If, cst.IndentedBlock} & walk.unhooked_classes(Assignments)
    # a call can be under an attribute (`a().b`) but not under a name or a string
    assert {cst.Name, cst.SimpleString, cst.Comma} <= walk.unhooked_classes(Calls)
    assert not {cst.Attribute, cst.Call, cst.Lambda} & walk.unhooked_classes(Calls)

    entered: list[type] = []
    real = walk.code_children
    monkeypatch.setattr(walk, "code_children", lambda node: entered.append(type(node)) or real(node))
    Assignments().walk(cst.parse_module("def f():\n    x = g(a + b)\n"))
    assert cst.Assign in entered and cst.Call not in entered and cst.Name not in entered


def test_a_hook_for_a_class_libcst_does_not_have_means_everything_is_entered():
    class Odd(ReadOnlyVisitor):
        def visit_NotALibcstNode(self, node: cst.CSTNode) -> None:
            pass

    assert walk.unhooked_classes(Odd) == frozenset()


def test_a_field_whose_annotation_does_not_say_may_hold_any_node():
    @dataclasses.dataclass(frozen=True)
    class Loose:
        anything: typing.Any
        name: cst.Name

    assert walk._held_classes(Loose) is None
    assert walk._held_classes(cst.Name) == {cst.LeftParen, cst.RightParen}


def test_a_targeted_transform_writes_what_a_full_one_does_and_enters_only_the_path():
    module = cst.parse_module(CORNER_SYNTAX)
    targets = {id(node) for node in iter_nodes(module) if isinstance(node, cst.Name) and node.value == "key"}
    entered: list[cst.CSTNode] = []

    def rename(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        return updated_node.with_changes(value="renamed") if id(original_node) in targets else updated_node

    class Full(cst.CSTTransformer):
        leave_Name = rename

    class Targeted(TargetedTransformer):
        leave_Name = rename

        def visit_Param(self, node: cst.Param) -> None:
            entered.append(node)

    assert targets
    expected = module.visit(Full()).code
    assert "renamed" in expected and module.visit(Targeted(module, targets)).code == expected
    # only `method(self, *, key)` holds a target Param: no other parameter list is entered
    assert [param.name.value for param in entered] == ["key"]


def test_iter_nodes_lists_but_does_not_enter_what_descend_refuses():
    module = cst.parse_module("def f():\n    x = 1\n\ny = 2\n")
    nodes = list(iter_nodes(module, descend=lambda node: not isinstance(node, cst.FunctionDef)))
    names = [n.value for n in nodes if isinstance(n, cst.Name)]
    assert names == ["y"] and any(isinstance(n, cst.FunctionDef) for n in nodes)
    assert [n.value for n in iter_nodes(module) if isinstance(n, cst.Name)] == ["f", "x", "y"]


def test_a_comment_is_reached_too_though_whitespace_is_searched_last():
    module = cst.parse_module("import os\n\n# about f\ndef f():\n    return 1  # one\n")
    comments = [node for node in iter_nodes(module) if isinstance(node, cst.Comment)]
    returned = next(node for node in iter_nodes(module) if isinstance(node, cst.Return))
    assert len(comments) == 2
    for target in (*comments, returned):
        on_path = path_to(module, [id(target)])
        assert id(target) in on_path and id(module) in on_path, target

    class Upper(TargetedTransformer):
        def leave_Comment(self, original_node: cst.Comment, updated_node: cst.Comment) -> cst.Comment:
            return updated_node.with_changes(value=updated_node.value.upper())

    assert module.visit(Upper(module, [id(comments[1])])).code.endswith("return 1  # ONE\n")


def test_nodes_a_leave_hook_rebuilds_unchanged_stay_the_same_objects():
    """A hook rebuilding every block it is given (`with_changes(body=...)`) hands back
    the blocks it did not change as they were: later renderings and transfers of the
    tree count on unchanged parts being the same objects."""
    module = cst.parse_module("def f():\n    a = 1\n    return a\n\ndef g():\n    b = 2\n    return b\n")
    target = next(node for node in iter_nodes(module) if isinstance(node, cst.Name) and node.value == "b")

    class Rename(TargetedTransformer):
        def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
            return updated_node.with_changes(value="c") if original_node is target else updated_node

        def leave_IndentedBlock(self, original_node, updated_node):
            return updated_node.with_changes(body=[statement for statement in updated_node.body])

        def leave_SimpleStatementLine(self, original_node, updated_node):
            return updated_node.with_changes(body=list(updated_node.body))

    new = module.visit(Rename(module, [id(target)]))
    assert new.code == module.code.replace("b = 2", "c = 2")
    assert new.body[0] is module.body[0]  # f: nothing in it changed
    assert new.body[1] is not module.body[1] and new.body[1].body.body[1] is module.body[1].body.body[1]


def test_a_node_finder_lists_its_nodes_in_order_without_entering_where_it_stops():
    from flask_refactor.walk import node_finder

    module = cst.parse_module("f(g(1))\n\ndef h():\n    k()\n\nclass C:\n    m()\n")
    calls = node_finder(cst.Call, stop_at=(cst.FunctionDef,))
    names = [call.func.value for call in calls(module)]
    assert names == ["f", "g", "m"]  # not k(), in h
    assert [call.func.value for call in node_finder(cst.Call)(module)] == ["f", "g", "k", "m"]
    assert node_finder(cst.Call, stop_at=(cst.FunctionDef,))(module.body[1]) == ()  # the root itself stops


def test_a_targeted_transform_given_the_code_parents_builds_no_map_of_its_own(monkeypatch):
    from flask_refactor import walk

    module = cst.parse_module("def f():\n    return a + b\n")
    target = next(node for node in iter_nodes(module) if isinstance(node, cst.Name) and node.value == "b")
    parents = parent_map(module, walk.WHITESPACE)
    built = []
    monkeypatch.setattr(walk, "parent_map", lambda *args: built.append(args) or parent_map(*args))

    class Rename(TargetedTransformer):
        def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
            return updated_node.with_changes(value="c") if original_node is target else updated_node

    assert module.visit(Rename(module, [id(target)], parents)).code == "def f():\n    return a + c\n"
    assert built == []
    assert module.visit(Rename(module, [id(target)])).code == "def f():\n    return a + c\n" and len(built) == 1


def _check_source_order(module: cst.Module, where: str) -> int:
    """`SourceOrder` against positions on one module: starts in the same order, and a
    node that ends before another's start by rank ends before it by position, and only
    then. Returns how many nodes were compared."""
    from bisect import bisect_right

    from flask_refactor.positions import code_ranges_of

    ranges = code_ranges_of(module)
    order = walk.SourceOrder.of(module)
    assert order is not None, where
    nodes = [node for node in ranges if type(node) not in (cst.LeftParen, cst.RightParen)]
    nodes.sort(key=order.start)
    starts = [(ranges[node].start.line, ranges[node].start.column) for node in nodes]
    assert starts == sorted(starts), where
    keys = [order.start(node) for node in nodes]
    later_starts = starts[:]  # the earliest start among the nodes from index i on
    for index in range(len(nodes) - 2, -1, -1):
        later_starts[index] = min(later_starts[index], later_starts[index + 1])
    statements = [node for node in nodes if isinstance(node, cst.BaseStatement)]
    for node in nodes:
        end = (ranges[node].end.line, ranges[node].end.column)
        after = bisect_right(keys, order.end(node))
        assert after == len(nodes) or later_starts[after] >= end, f"{where}: {type(node).__name__}"
        for statement in statements if len(statements) < 60 else ():
            by_rank = order.end(node) < order.start(statement)
            by_position = end <= (ranges[statement].start.line, ranges[statement].start.column)
            inside = order.start(statement) <= order.start(node) <= order.end(statement)
            assert inside or by_rank == by_position, f"{where}: {type(node).__name__} {type(statement).__name__}"
    return len(nodes)


def test_source_order_is_the_order_of_positions_without_rendering():
    decorated = cst.parse_module("@(x := deco)\nclass C:\n    @d(y := 1)\n    def f(self, z=(w := 2)):\n"
                                 "        return (v := [a for a in (b, c)])\n")
    compared = _check_source_order(decorated, "decorated")
    compared += _check_source_order(cst.parse_module(CORNER_SYNTAX), "corners")
    for path in installed_package_sources(("flask", "click")):
        compared += _check_source_order(cst.parse_module(path.read_bytes()), str(path))
    assert compared > 50_000


def test_source_order_refuses_a_tree_holding_a_node_twice():
    from helpers import module_sharing_nodes

    module, _ = module_sharing_nodes()
    assert walk.SourceOrder.of(module) is None
    assert walk.SourceOrder.of(module.body[2]) is not None  # one statement: each node once
