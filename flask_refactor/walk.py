"""Read-only traversal of libcst trees, several times faster than `node.visit(visitor)`.

libcst's `visit` rebuilds every node it passes through, even for a `CSTVisitor` that
changes nothing: each node's `_visit_and_replace_children` constructs and validates a
copy, which is then thrown away. Analyses that only look (most of a codemod's work) pay
for a full rebuild of the tree on every pass. Here children are read straight off the
node's fields instead: on 400 files of installed packages, listing every node took 1.5 s
against libcst's 6.3 s, and a visitor with one hook 1.1 s (it is not walked through
whitespace and comments it has no hook for). tests/test_walk.py checks the order and
the hooks against libcst's on the sources of installed packages.

The order is libcst's own: the first time a node class is met, its
`_visit_and_replace_children` is run once with a recorder that names the fields in the
order libcst visits them (and descends nowhere), and a reader for the class is written
out from those names and the fields' annotations (`_reader`). A few classes skip a field
when it is None (`FormattedStringExpression.format_spec`); a node whose unrecorded field
holds nodes is recorded again on its own, so nothing is ever missed.

`ReadOnlyVisitor` keeps libcst's visitor protocol: `visit_<Class>(node)` returning False
skips the children, `leave_<Class>(node)` runs after them, and `on_visit` / `on_leave`
can be overridden. A visitor with hooks only is not walked into nodes that can hold no
node of a class it has a hook for, as libcst's annotations of the fields say
(`unhooked_classes`): the hooks see the same nodes, in the same order (tests/test_walk.py
checks them against libcst's visit on installed packages). Nothing here may change a
tree: transforms stay with libcst.
"""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import functools
import sys
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import libcst as cst
from libcst import CSTNode

from . import memo


class _FieldRecorder(cst.CSTVisitor):
    """Names the fields of one node in visiting order, without descending into them."""

    def __init__(self, target: CSTNode) -> None:
        self.target = target
        self.names: list[str] = []

    def on_visit(self, node: CSTNode) -> bool:
        return False

    def on_leave(self, original_node: CSTNode) -> None:
        return None

    def on_visit_attribute(self, node: CSTNode, attribute: str) -> None:
        if node is self.target and attribute not in self.names:
            self.names.append(attribute)

    def on_leave_attribute(self, original_node: CSTNode, attribute: str) -> None:
        return None


def visited_fields(node: CSTNode) -> tuple[str, ...]:
    """The names of the node's fields that libcst visits, in its order."""
    recorder = _FieldRecorder(node)
    node._visit_and_replace_children(recorder)
    return tuple(recorder.names)


# value class -> NODE, SEQUENCE or OTHER. `isinstance(value, CSTNode)` goes through the ABC
# machinery on every call; a dictionary keyed by class answers the same in a lookup.
NODE, SEQUENCE, OTHER = 1, 2, 0
_KIND: dict[type, int] = {}


def _kind(value_class: type) -> int:
    kind = _KIND.get(value_class)
    if kind is None:
        kind = _KIND[value_class] = (NODE if issubclass(value_class, CSTNode)
                                     else SEQUENCE if issubclass(value_class, (tuple, list)) else OTHER)
    return kind


def subclass_test(bases: type | tuple[type, ...]) -> Callable[[type], bool]:
    """`issubclass(cls, bases)`, answered once per class. libcst's node classes are ABCs:
    an `isinstance` against them that fails costs about 130 ns, which adds up on a test
    made for every node of a tree."""
    answers: dict[type, bool] = {}

    def test(cls: type) -> bool:
        answer = answers.get(cls)
        if answer is None:
            answer = answers[cls] = issubclass(cls, bases)
        return answer

    return test


# class -> (reader of its children, in libcst's order; its other fields that may hold nodes)
_LAYOUT: dict[type, tuple[Callable[[CSTNode], list[CSTNode]], tuple[str, ...]]] = {}


def _layout(node: CSTNode) -> tuple[Callable[[CSTNode], list[CSTNode]], tuple[str, ...]]:
    layout = _LAYOUT.get(type(node))
    if layout is None:
        visited, others = _fields_of(node)
        layout = _LAYOUT[type(node)] = (_reader(type(node), visited), others)
    return layout


def _fields_of(node: CSTNode) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the fields libcst visits on this node, in its order; the node class's other
    fields that may hold nodes)."""
    visited = visited_fields(node)
    others = tuple(f.name for f in dataclasses.fields(node) if f.name not in visited and _may_hold_nodes(type(node), f.name))
    return visited, others


def _reader(cls: type, names: tuple[str, ...], code_only: bool = False) -> Callable[[CSTNode], list[CSTNode]]:
    """A function listing the nodes held by the named fields of a `cls` node, written out
    field by field: `children` is the hottest function of a run. A field annotated as a
    node, or a sequence of nodes, is taken as it is (libcst's own visit takes it so too);
    any other field's value is looked at. `code_only`: whitespace and comments are left
    out where a field's annotation admits them."""
    hints = field_hints(cls)  # a field without an evaluable annotation: its value is looked at
    lines = ["def read(node):", "    found = []"]
    code = " and item.__class__ not in WHITESPACE" if code_only else ""
    for name in names:
        kind = _field_kind(hints[name]) if name in hints else OTHER
        checked = code_only and _admits_whitespace(hints.get(name))
        if kind == NODE and not checked:
            lines.append(f"    found.append(node.{name})")
        elif kind == SEQUENCE and not checked:
            lines.append(f"    found += node.{name}")
        elif kind == SEQUENCE:
            lines.append(f"    found += [item for item in node.{name} if item.__class__ not in WHITESPACE]")
        else:
            lines += [f"    value = node.{name}",
                      "    kind = KINDS.get(value.__class__)",
                      "    if kind is None:",
                      "        kind = kind_of(value.__class__)",
                      "    if kind == NODE" + (" and value.__class__ not in WHITESPACE" if code_only else "") + ":",
                      "        found.append(value)",
                      "    elif kind == SEQUENCE:",
                      f"        found += [item for item in value if kind_of(item.__class__) == NODE{code}]"]
    lines.append("    return found")
    namespace = {"KINDS": _KIND, "kind_of": _kind, "NODE": NODE, "SEQUENCE": SEQUENCE, "WHITESPACE": WHITESPACE}
    exec("\n".join(lines), namespace)  # generated from libcst's field names only
    return namespace["read"]


# class -> (reader of its code children, in libcst's order; its other fields that may hold nodes)
_CODE_LAYOUT: dict[type, tuple[Callable[[CSTNode], list[CSTNode]], tuple[str, ...]]] = {}


def _code_layout(node: CSTNode) -> tuple[Callable[[CSTNode], list[CSTNode]], tuple[str, ...]]:
    cls = type(node)
    layout = _CODE_LAYOUT.get(cls)
    if layout is None:
        visited, others = _fields_of(node)
        hints = field_hints(cls)
        code = tuple(name for name in visited if not _only_whitespace(hints.get(name)))
        layout = _CODE_LAYOUT[cls] = (_reader(cls, code, code_only=True), others)
    return layout


def _only_whitespace(hint: Any) -> bool:
    """Whether a field so annotated (None: not annotated) holds no node but whitespace and
    comments: `Sequence[EmptyLine]`, `BaseParenthesizableWhitespace`, `Optional[Comment]`."""
    admitted = None if hint is None else _admitted_classes(hint)
    return admitted is not None and admitted <= WHITESPACE


def _admits_whitespace(hint: Any) -> bool:
    """Whether a field so annotated (None: not annotated) may hold whitespace or a comment."""
    admitted = None if hint is None else _admitted_classes(hint)
    return admitted is None or bool(admitted & WHITESPACE)


@functools.cache  # node classes: asked for every field of every class
def _concrete_classes(cls: type) -> frozenset[type]:
    """The node classes a value annotated `cls` may be: it and its subclasses, abstract
    ones and replaced ones (`_replaced`) left out."""
    found, stack = set(), [cls]
    while stack:
        current = stack.pop()
        stack.extend(current.__subclasses__())
        if not getattr(current, "__abstractmethods__", None) and not _replaced(current):
            found.add(current)
    return frozenset(found)


def _replaced(cls: type) -> bool:
    """Whether `cls` is a first version of a class its module replaced. libcst's
    `add_slots` makes each node class anew, and the first one stays among its bases'
    subclasses (its methods' `super()` refers to it), though no node is ever made of it:
    counted, `Call.whitespace_after_func` would seem to admit more than whitespace."""
    module = sys.modules.get(cls.__module__)
    current = getattr(module, cls.__qualname__, cls) if "." not in cls.__qualname__ else cls
    return current is not cls and isinstance(current, type) and current.__name__ == cls.__name__


def _field_kind(hint: Any) -> int:
    """NODE for a field annotated as one node class, SEQUENCE for a sequence of nodes,
    OTHER when the value must be looked at (optional, a sentinel, not a node)."""
    if isinstance(hint, type):
        return NODE if issubclass(hint, CSTNode) else OTHER
    if typing.get_origin(hint) in (collections.abc.Sequence, list, tuple):
        items = [item for item in typing.get_args(hint) if item is not Ellipsis]
        if items and all(_only_nodes(item) for item in items):
            return SEQUENCE
    return OTHER


def _only_nodes(hint: Any) -> bool:
    if isinstance(hint, type):
        return issubclass(hint, CSTNode)
    return typing.get_origin(hint) is typing.Union and all(_only_nodes(item) for item in typing.get_args(hint))


def _may_hold_nodes(cls: type, field: str) -> bool:
    """False when the field's annotation admits no CSTNode (`value: str`), so that it
    need not be looked at on every node; True when in doubt."""
    hints = field_hints(cls)
    return field not in hints or _admits_node(hints[field])  # not evaluable: look every time


@functools.lru_cache(maxsize=None)  # node classes: a few hundred at most
def field_hints(cls: type) -> dict[str, Any]:
    """The evaluated annotations of a node class; empty if they cannot be evaluated."""
    try:
        return typing.get_type_hints(cls)
    except Exception:
        return {}


def _admits_node(hint: Any) -> bool:
    admitted = _admitted_classes(hint)
    return admitted is None or bool(admitted)


def _holds_nodes(value: Any) -> bool:
    kind = _kind(value.__class__)
    return kind == NODE or (kind == SEQUENCE and any(_kind(item.__class__) == NODE for item in value))


def children(node: CSTNode) -> list[CSTNode]:
    """The node's direct children, in the order libcst visits them."""
    read, others = _LAYOUT.get(node.__class__) or _layout(node)
    if others and any(_holds_nodes(getattr(node, name)) for name in others):
        read = _reader(node.__class__, visited_fields(node))  # a field visited only when set: this node's own order
    return read(node)


def code_children(node: CSTNode) -> list[CSTNode]:
    """`children` without whitespace and comments (`WHITESPACE`): what walks of code look
    at. Nearly half the children of a code node are whitespace; a reader of the code
    fields alone (`_code_layout`) does not list them only to have them dropped."""
    read, others = _CODE_LAYOUT.get(node.__class__) or _code_layout(node)
    if others and any(_holds_nodes(getattr(node, name)) for name in others):
        return [child for child in children(node) if child.__class__ not in WHITESPACE]
    return read(node)


def iter_nodes(root: CSTNode, descend: Callable[[CSTNode], bool] | None = None,
               skip: frozenset[type] = frozenset()) -> Iterator[CSTNode]:
    """Every node under `root` (itself first), in libcst's visiting order; with `descend`,
    the children only of the nodes it accepts (the nodes themselves are still listed).
    Nodes of the `skip` classes are left out, with what they hold (as in `parent_map`)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if descend is None or descend(node):
            if skip is WHITESPACE:
                stack.extend(reversed(code_children(node)))
            elif skip:
                stack.extend(child for child in reversed(children(node)) if child.__class__ not in skip)
            else:
                stack.extend(reversed(children(node)))


def parent_map(root: CSTNode, skip: frozenset[type] = frozenset()) -> dict[CSTNode, CSTNode]:
    """Each node under `root` mapped to its parent: what libcst's ParentNodeProvider
    gives, without the metadata machinery. Nodes of the `skip` classes are left out,
    with what they hold. The parents of a module's code (`skip` is `WHITESPACE`) are
    its `code_layout`'s, shared: not to be changed."""
    if skip is WHITESPACE and root.__class__ is cst.Module:
        return code_layout(root).parents
    parents: dict[CSTNode, CSTNode] = {}
    _note_parents(root, skip, parents)
    return parents


def _note_parents(root: CSTNode, skip: frozenset[type], parents: dict[CSTNode, CSTNode]) -> None:
    """Map each node under `root` to its parent in `parents` (not the nodes of the `skip`
    classes, nor what they hold)."""
    listed = code_children if skip is WHITESPACE else children
    stack = [root]
    while stack:
        node = stack.pop()
        for child in listed(node):
            if child.__class__ not in skip:
                parents[child] = node
                stack.append(child)


SHARED = -1  # `ModuleLayout.owner`: a node held by more than one top-level statement


class ModuleLayout:
    """Where each node of a module's code (not whitespace or comments) sits: its parent
    (`parents`), and the top-level statement holding it (`owner`). Analyses ask both of
    the same tree (a transform's path to its targets, the positions of what it
    reports). (Keyed by the nodes, not their ids: an id is an int object more per node.)

    Made of each top-level statement's parents (`_statement_parents`), kept across the
    module's versions: a codemod replaces a few statements, and the next asks the layout
    of the new version. (On the benchmark's big app, 396 layouts of 5,015 statements,
    each walked, were 0.16 s of a 2.7 s run with one job.)"""

    def __init__(self, module: cst.Module) -> None:
        self._module = module

    @functools.cached_property
    def parents(self) -> dict[CSTNode, CSTNode]:
        """Equal to `parent_map(module, WHITESPACE)` as that walk makes it: the statements
        are walked last to first, as its stack takes them, so a node met twice keeps the
        parent it would get there."""
        parents: dict[CSTNode, CSTNode] = dict.fromkeys(self._module.body, self._module)
        for statement in reversed(self._module.body):
            parents.update(_statement_parents(statement))
        return parents

    def owner(self, node: CSTNode) -> int | None:
        """The index of the top-level statement holding `node` (SHARED when a tree reuses
        one node object in several), or None if it is not code of the module. A node
        held by one statement has only ancestors held by it, so its parents lead there."""
        parents = self.parents
        if node not in parents:
            return None
        if node in self._shared:
            return SHARED
        while (parent := parents[node]) is not self._module:
            node = parent
        return self._indexes[node]

    @functools.cached_property
    def _indexes(self) -> dict[CSTNode, int]:
        return {statement: index for index, statement in enumerate(self._module.body)}

    @functools.cached_property
    def _shared(self) -> frozenset[CSTNode]:
        """The nodes held by more than one top-level statement: usually none, which the
        size of `parents` tells (it would hold each statement's nodes once each)."""
        body = self._module.body
        if len(self.parents) == len(body) + sum(len(_statement_parents(statement)) for statement in body):
            return frozenset()
        holders: collections.Counter[CSTNode] = collections.Counter(body)
        for statement in body:
            holders.update(_statement_parents(statement).keys())
        return frozenset(node for node, count in holders.items() if count > 1)


@functools.lru_cache(maxsize=16)  # only the trees in use (they hash by identity)
def code_layout(module: cst.Module) -> ModuleLayout:
    """The module's `ModuleLayout`, once per tree."""
    return ModuleLayout(module)


@memo.per_statement
def _statement_parents(statement: CSTNode) -> dict[CSTNode, CSTNode]:
    """The parent of each code node under one top-level statement (its own children
    included). Shared by the layouts of every version holding the statement: not to be
    changed."""
    parents: dict[CSTNode, CSTNode] = {}
    _note_parents(statement, WHITESPACE, parents)
    return parents


class SourceOrder:
    """Where the code nodes under a root start and end, relative to each other, as
    positions would tell (`positions.code_ranges_of`), without rendering anything: ranks
    in libcst's visiting order, which is the order it renders in. Keyed by identity:
    asked while the root lives.

    `start(a) < start(b)` when `a` starts before `b`; `end(a) < start(b)` when `a` ends
    where `b` starts or before. A function or class starts at its `async`, `def` or
    `class`, after its decorators, and an indented block where its first statement does,
    as their ranges do. Parentheses and brackets (which render before the syntactic start
    of what they enclose) and whitespace are not ordered. `of` gives None for a root that
    holds one node object twice: positions give such a node the range of one of its
    places, by rules this does not follow."""

    def __init__(self, starts: dict[int, float], ends: dict[int, int]) -> None:
        self._starts, self._ends = starts, ends

    @classmethod
    def of(cls, root: CSTNode) -> "SourceOrder | None":
        starts: dict[int, float] = {}
        ends: dict[int, int] = {}
        later: list[CSTNode] = []  # functions, classes and blocks: they start later than their rank
        rank = 0
        stack: list[tuple[CSTNode, bool]] = [(root, False)]
        while stack:
            node, left = stack.pop()
            if left:
                ends[id(node)] = rank - 1  # the last rank in its subtree
                continue
            if id(node) in starts:
                return None
            starts[id(node)] = rank
            rank += 1
            if node.__class__ in _STARTS_LATER:
                later.append(node)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(code_children(node)))
        for node in later:
            if node.__class__ is not cst.IndentedBlock:  # after its decorators, at its `async`, `def` or `class`
                first = getattr(node, "asynchronous", None) or node.name
                starts[id(node)] = starts[id(first)] - 0.5
        for node in later:
            if node.__class__ is cst.IndentedBlock and node.body:
                starts[id(node)] = starts[id(node.body[0])]  # libcst's range of a block is its statements'
        return cls(starts, ends)

    def start(self, node: CSTNode) -> float | None:
        return self._starts.get(id(node))

    def end(self, node: CSTNode) -> int | None:
        return self._ends.get(id(node))


_STARTS_LATER = frozenset({cst.FunctionDef, cst.ClassDef, cst.IndentedBlock})


_Hook = Callable[[Any, CSTNode], Any] | None

# Whitespace and comments: half the nodes of a typical tree, and a closed family (their
# children are only each other). A visitor with no hook for any of them is not walked
# through them.
WHITESPACE = frozenset({cst.SimpleWhitespace, cst.ParenthesizedWhitespace, cst.TrailingWhitespace, cst.EmptyLine,
                        cst.Newline, cst.Comment})  # concrete classes: compared by identity


class ReadOnlyVisitor:
    """libcst's `CSTVisitor` protocol over `children`: `visitor.walk(node)` instead of
    `node.visit(visitor)`."""

    # per subclass (set in __init_subclass__, so a class defined inside a function takes
    # its cache with it): node class -> (visit_<Class>, leave_<Class>)
    _hook_cache: dict[type, tuple[_Hook, _Hook]] = {}
    _hooks_only = True  # on_visit / on_leave not overridden: hooks are called directly
    _skips_whitespace = True
    # node classes whose nodes neither have a hook nor may hold one that has, at any
    # depth: not entered (`unhooked_classes`; computed at the first walk)
    _unhooked: frozenset[type] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._hook_cache = {}
        cls._hooks_only = cls.on_visit is ReadOnlyVisitor.on_visit and cls.on_leave is ReadOnlyVisitor.on_leave
        cls._skips_whitespace = cls._hooks_only and not any(
            hasattr(cls, f"{kind}_{node_class.__name__}") for kind in ("visit", "leave") for node_class in WHITESPACE)
        cls._unhooked = None

    def walk(self, node: CSTNode) -> None:
        if self._hooks_only:
            cls = type(self)
            if cls._unhooked is None:
                cls._unhooked = unhooked_classes(cls)
            self._walk_hooks(node)
            return
        if self.on_visit(node):
            for child in children(node):
                self.walk(child)
        self.on_leave(node)

    def _walk_hooks(self, node: CSTNode) -> None:
        """`walk` for the usual visitor, with only visit_/leave_ hooks: the same calls,
        fewer frames, and no walk through whitespace, nor through any node that can hold
        nothing it has a hook for (a `Name` for a visitor of calls, an expression for one
        of assignments)."""
        visit, leave = self._hook_cache.get(node.__class__) or self._hooks(node.__class__)
        if visit is None or visit(self, node) is not False:
            unhooked = self._unhooked
            for child in code_children(node) if self._skips_whitespace else children(node):
                if child.__class__ not in unhooked:
                    self._walk_hooks(child)
        if leave is not None:
            leave(self, node)

    def on_visit(self, node: CSTNode) -> bool:
        visit = self._hooks(type(node))[0]
        return visit is None or visit(self, node) is not False

    def on_leave(self, original_node: CSTNode) -> None:
        leave = self._hooks(type(original_node))[1]
        if leave is not None:
            leave(self, original_node)

    def _hooks(self, node_class: type) -> tuple[_Hook, _Hook]:
        hooks = self._hook_cache.get(node_class)
        if hooks is None:
            name = node_class.__name__
            hooks = self._hook_cache[node_class] = (getattr(type(self), f"visit_{name}", None),
                                                    getattr(type(self), f"leave_{name}", None))
        return hooks


def unhooked_classes(visitor: type) -> frozenset[type]:
    """The node classes a walk of this visitor class need not enter: no hook of its is for
    them, nor for any class their nodes may hold at any depth, as libcst's annotations
    of the fields say (`_holders`). Only libcst's own classes are left out: a node of any
    other class is entered. Empty (enter everything) when a hook is named for a class
    that is not libcst's."""
    hooked = set()
    for name in dir(visitor):
        kind, _, class_name = name.partition("_")
        if kind in ("visit", "leave") and class_name[:1].isupper():
            node_class = libcst_node_classes().get(class_name)
            if node_class is None:
                return frozenset()
            hooked.add(node_class)
    holders = _holders()
    reached, pending = set(hooked), list(hooked)
    while pending:
        for holder in holders.get(pending.pop(), ()):
            if holder not in reached:
                reached.add(holder)
                pending.append(holder)
    return frozenset(cls for cls in libcst_node_classes().values() if cls not in reached)


@functools.cache
def libcst_node_classes() -> dict[str, type]:
    """libcst's concrete node classes by name, as it exports them (`libcst.<Name>`): what
    parsed trees are made of."""
    return {cls.__name__: cls for cls in _concrete_classes(CSTNode)
            if getattr(cst, cls.__name__, None) is cls and dataclasses.is_dataclass(cls)}


@functools.cache
def _holders() -> dict[type, frozenset[type]]:
    """Node class -> the node classes whose fields may hold a node of it directly, by the
    fields' annotations. A class with a field whose annotation does not say (none, or
    `Any`) may hold any node."""
    classes = list(libcst_node_classes().values())
    holders: dict[type, set[type]] = {cls: set() for cls in classes}
    for holder in classes:
        held = _held_classes(holder)
        for cls in classes if held is None else held:
            holders.setdefault(cls, set()).add(holder)
    return {cls: frozenset(found) for cls, found in holders.items()}


def _held_classes(cls: type) -> frozenset[type] | None:
    """The node classes a `cls` node's fields may hold directly; None: any."""
    hints = field_hints(cls)
    found: set[type] = set()
    for field in dataclasses.fields(cls):
        if field.name not in hints:
            if _may_hold_nodes(cls, field.name):
                return None
            continue
        admitted = _admitted_classes(hints[field.name])
        if admitted is None:
            return None
        found |= admitted
    return frozenset(found)


def _admitted_classes(hint: Any) -> frozenset[type] | None:
    """The node classes a value so annotated may be, or hold in a sequence; None: any."""
    if hint is typing.Any:  # (a class since Python 3.11)
        return None
    if isinstance(hint, type):
        if issubclass(hint, CSTNode):
            return _concrete_classes(hint)
        return None if hint in (object, tuple, list) else frozenset()
    if typing.get_origin(hint) is typing.Literal:
        return frozenset()
    arguments = [item for item in typing.get_args(hint) if item is not Ellipsis]
    if not arguments:
        return None  # `Any`, or what cannot be read
    found: set[type] = set()
    for argument in arguments:
        admitted = _admitted_classes(argument)
        if admitted is None:
            return None
        found |= admitted
    return frozenset(found)


def node_finder(wanted: type, stop_at: tuple[type, ...] = ()) -> Callable[[CSTNode], tuple[CSTNode, ...]]:
    """A function listing the `wanted` nodes under a node (itself included), in libcst's
    order, without entering `stop_at` nodes. Its visitor class is made here, once:
    making one per call costs more than walking a function body."""
    def found(self: ReadOnlyVisitor, node: CSTNode) -> None:
        self.found.append(node)

    def stop(self: ReadOnlyVisitor, node: CSTNode) -> bool:
        return False

    hooks: dict[str, Any] = {f"visit_{cls.__name__}": stop for cls in stop_at}
    hooks[f"visit_{wanted.__name__}"] = found
    finder = type(f"_Find{wanted.__name__}", (ReadOnlyVisitor,), hooks)

    def find(root: CSTNode) -> tuple[CSTNode, ...]:
        visitor = finder()
        visitor.found = []
        visitor.walk(root)
        return tuple(visitor.found)

    return find


all_calls = node_finder(cst.Call)  # every call under a node (itself included), in source order


def path_to(root: CSTNode, target_ids: Iterable[int],
            code_parents: dict[CSTNode, CSTNode] | None = None) -> set[int]:
    """Ids of the nodes under `root` whose id is a target, and of every node above them:
    where a transform that changes only those nodes needs to go (`TargetedTransformer`).
    Ids, because that is how transforms key the nodes they change. `code_parents`:
    `parent_map(root, WHITESPACE)`, when the caller has it already."""
    wanted = set(target_ids)
    # Targets are code: whitespace and comments, half of a tree, are searched only if
    # some target was not found in the rest.
    on_path = _path_to(root, wanted, code_parents or parent_map(root, WHITESPACE))
    return on_path if wanted <= on_path else _path_to(root, wanted, parent_map(root))


def _path_to(root: CSTNode, wanted: set[int], parents: dict[CSTNode, CSTNode]) -> set[int]:
    on_path: set[int] = set()
    for node in [root, *parents]:
        if id(node) in wanted:
            while node is not None and id(node) not in on_path:
                on_path.add(id(node))
                node = parents.get(node)
    return on_path


class TargetedTransformer(cst.CSTTransformer):
    """A libcst transform that changes only known nodes (and what is above them) descends
    only along the paths to them: libcst rebuilds every node it enters, and most of a
    module is nowhere near what changes. Nodes off the path get `leave_*(node, node)`
    unvisited, so a subclass may change only nodes on the path, and must not count on
    visiting the others."""

    def __init__(self, root: CSTNode, target_ids: Iterable[int],
                 code_parents: dict[CSTNode, CSTNode] | None = None) -> None:
        super().__init__()
        self._on_path = path_to(root, target_ids, code_parents)

    def on_visit(self, node: CSTNode) -> bool:
        return id(node) in self._on_path and super().on_visit(node)

    def on_leave(self, original_node: CSTNode, updated_node: CSTNode) -> Any:
        # A `leave_*` hook often rebuilds every node of its class it is given, changed or
        # not (`updated_node.with_changes(body=kept)`). A rebuilt node equal field for field
        # to the one given is dropped for it: the unchanged parts of a tree stay the same
        # objects, which is what makes the next version cheap to render and to send back
        # from a worker (`positions.code_of`, `transfer.sharing`).
        result = super().on_leave(original_node, updated_node)
        if result is not updated_node and type(result) is type(updated_node) and _same_fields(result, updated_node):
            return updated_node
        return result


def _same_fields(node: CSTNode, other: CSTNode) -> bool:
    """Whether two nodes of one class hold the same objects in every field (sequences
    compared element by element)."""
    for name in field_names(type(node)):
        mine, theirs = getattr(node, name), getattr(other, name)
        if mine is theirs:
            continue
        if not (isinstance(mine, (list, tuple)) and isinstance(theirs, (list, tuple)) and len(mine) == len(theirs)
                and all(a is b for a, b in zip(mine, theirs))):
            return False
    return True


@functools.cache
def field_names(cls: type) -> tuple[str, ...]:
    """The dataclass fields of a node class, in order."""
    return tuple(field.name for field in dataclasses.fields(cls))
