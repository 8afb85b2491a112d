"""libcst's ScopeProvider for a tree, without the rebuilding walks libcst adds.

ScopeProvider and its dependency ExpressionContextProvider are "batchable" providers
whose whole work happens in `visit_Module`: each runs a visitor of its own over the
module there. Three costs are avoided here:

* MetadataWrapper resolves each batch by walking the entire tree with a batched visitor
  that, past the root, finds nothing to call; libcst's walk rebuilds every node it
  passes. Those two empty walks were half the cost of a scope map. Here each provider's
  `visit_Module` is done directly, dependencies first, and what it computed is read the
  way MetadataWrapper reads it.
* The providers' own visitors walk through libcst's `visit` too, which rebuilds, and
  looks up each hook by formatting its name, twice per node. Here the same visitor
  classes walk over `walk.code_children`, hooks looked up once per node class
  (`_DirectWalk`): the same calls in the same order, nothing rebuilt. A hook that calls
  `child.visit(self)` itself still enters libcst's `visit`, whose `on_visit` walks on
  here. This made scope maps about 1.5x faster on real packages.
* Whitespace and comments, half the nodes, are not walked: neither visitor has a hook
  for them, so the only difference is that they have no entry in the map (nothing asks
  for the scope of a comment). And ScopeVisitor's test of every node against its
  assignment-like classes is answered once per class. Together about 2x again.
* ExpressionContextProvider's whole walk (a third of a scope map) is not made. Of what
  it computes, ScopeVisitor asks only whether a Name it visits is a STORE (an assignment)
  or not (an access). A Name is a STORE only in the target of an assignment-like node:
  those targets are marked as the scope walk enters such a node, before it reaches the
  Names below (`_mark_stores`, the expression-context rules for targets).
* ScopeVisitor looks up the qualified names of every call and subscript, to tell
  `typing.cast(...)` and `typing.List[...]` apart (a quarter of what remained). Those
  names can start with `typing` only once the walk has met a name with "typing" in it
  (an import, or a name a module binds): until then the lookup is skipped, and its
  answer is known.

tests/test_scopes.py compares the result with `MetadataWrapper.resolve(ScopeProvider)` on
real packages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import ExpressionContextProvider, Scope, ScopeProvider
from libcst.metadata.expression_context_provider import ExpressionContext
from libcst.metadata.scope_provider import _ASSIGNMENT_LIKE_NODES, ScopeVisitor

from .walk import WHITESPACE, code_children, iter_nodes, visited_fields


class _Steps(NamedTuple):
    """What a direct walk does for a node of one class."""

    before: Callable[[Any, Any], None] | None  # a subclass's step before the visit hook
    visit: Callable[[Any, Any], bool | None] | None  # visit_<Class>
    leave: Callable[[Any, Any], None] | None  # leave_<Class>
    by_field: bool  # has visit_<Class>_<field> hooks: walked field by field
    counts: bool  # a subclass's own question about the class (`_counts`)


class _DirectWalk(cst.CSTVisitor):
    """Mixed in after a libcst visitor class (so that its `super().on_leave()` lands
    here): replaces CSTVisitor's walk and hook dispatch, keeping the protocol. What is
    done for a node of a class (`_Steps`) is looked up once per class: the walk's own
    steps were a fifth of a scope map (the big app's view modules: 88 ms, 70 after)."""

    _steps: dict[type, tuple] = {}  # per subclass: node class -> its `_Steps`, as a plain tuple
    _attribute_hooked: frozenset[str] = frozenset()  # node classes with visit_<Class>_<field> hooks

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._steps = {}
        own = [k for k in cls.__mro__ if k not in cst.CSTVisitor.__mro__ and k is not _DirectWalk]
        cls._attribute_hooked = frozenset(
            parts[1] for k in own for name in vars(k)
            if (parts := name.split("_"))[0] in ("visit", "leave") and len(parts) >= 3 and parts[1][:1].isupper())

    @classmethod
    def _steps_for(cls, node_class: type) -> tuple:
        name = node_class.__name__
        steps = cls._steps[node_class] = tuple(_Steps(  # (unpacked for every node: a tuple's is faster)
            cls._before_hook(node_class), getattr(cls, f"visit_{name}", None), getattr(cls, f"leave_{name}", None),
            name in cls._attribute_hooked, cls._counts(node_class)))
        return steps

    @classmethod
    def _before_hook(cls, node_class: type) -> Callable[[Any, Any], None] | None:
        """What a subclass does as it enters a node of this class, before its visit hook."""
        return None

    @classmethod
    def _counts(cls, node_class: type) -> bool:
        """A subclass's own question about each node class, asked once (see `_Steps`)."""
        return False

    def walk(self, node: cst.CSTNode) -> None:
        self.on_visit(node)
        self.on_leave(node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        # also asked by libcst's `visit` when a hook visits a child itself: walked here
        # instead (libcst's `visit` then asks `on_leave`)
        before, visit, _, by_field, _ = self._steps.get(node.__class__) or self._steps_for(node.__class__)
        if before is not None:
            before(self, node)
        if visit is None or visit(self, node) is not False:
            if by_field:
                self._descend_by_field(node)
            else:
                for child in code_children(node):
                    self.walk(child)
        return False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        _, _, leave, _, _ = self._steps.get(original_node.__class__) or self._steps_for(original_node.__class__)
        if leave is not None:
            leave(self, original_node)

    def _descend_by_field(self, node: cst.CSTNode) -> None:
        """The children of a node whose class has visit_<Class>_<field> hooks (rare:
        class bases), field by field, with those hooks."""
        for field in visited_fields(node):
            self.on_visit_attribute(node, field)
            value = getattr(node, field)
            for child in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(child, cst.CSTNode) and child.__class__ not in WHITESPACE:
                    self.walk(child)
            self.on_leave_attribute(node, field)


class _ScopeVisitor(ScopeVisitor, _DirectWalk):
    def __init__(self, provider: ScopeProvider) -> None:
        super().__init__(provider)
        self._steps = type(self)._steps  # read for every node: found faster on the instance
        self.stores: dict[cst.CSTNode, ExpressionContext] = {}  # what ScopeVisitor reads as expression contexts
        self._string_depth = 0  # inside an annotation parsed from a string: no contexts there
        self._typing_named = False  # whether a name met so far has "typing" in it

    @classmethod
    def _before_hook(cls, node_class: type) -> Callable[[Any, Any], None] | None:
        return _BEFORE_HOOKS.get(node_class)

    @classmethod
    def _counts(cls, node_class: type) -> bool:
        return issubclass(node_class, _ASSIGNMENT_LIKE_NODES)  # what ScopeVisitor.on_leave counts

    def visit_Call(self, node: cst.Call) -> bool | None:
        if self._typing_named:
            return super().visit_Call(node)
        # ScopeVisitor.visit_Call when the call's qualified names cannot be typing's
        self._ScopeVisitor__top_level_attribute_stack.append(None)
        self._ScopeVisitor__in_type_hint_stack.append(False)
        return True

    def visit_Subscript(self, node: cst.Subscript) -> bool | None:
        if self._typing_named:
            return super().visit_Subscript(node)
        # ScopeVisitor.visit_Subscript when the subscripted name's cannot be typing's
        self._ScopeVisitor__in_type_hint_stack.append(False)
        return True

    def _handle_string_annotation(self, node: cst.BaseString) -> bool:
        # libcst walks a string annotation's freshly parsed nodes, which have no context
        self._string_depth += 1
        try:
            return super()._handle_string_annotation(node)
        finally:
            self._string_depth -= 1

    def on_leave(self, original_node: cst.CSTNode) -> None:
        # ScopeVisitor.on_leave, with `set_metadata` written out and its test of every
        # node against a tuple of about 15 ABC classes (each a slow ABCMeta check when it
        # fails) answered once per class
        _, _, leave, _, counts = self._steps.get(original_node.__class__) or self._steps_for(original_node.__class__)
        self.provider._computed[original_node] = self.scope
        if counts:
            self.scope._assignment_count += 1
        if leave is not None:
            leave(self, original_node)


# The targets that libcst's ExpressionContextVisitor visits in the STORE context, by the
# class of the node holding them. Function, class and parameter names are left out:
# ScopeVisitor records them without visiting them. A comprehension's first `for` is
# marked from the comprehension, whose hook visits that target without passing through
# its `CompFor` (the inner ones it walks through).
_TARGETS: dict[type, Callable[[Any], Iterable[cst.CSTNode]]] = {
    cst.Assign: lambda node: node.targets,
    cst.AnnAssign: lambda node: (node.target,),
    cst.AugAssign: lambda node: (node.target,),
    cst.NamedExpr: lambda node: (node.target,),
    cst.AsName: lambda node: (node.name,),
    cst.For: lambda node: (node.target,),
    cst.CompFor: lambda node: (node.target,),
    **dict.fromkeys((cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp), lambda node: (node.for_in.target,)),
}


def _mark_targets(visitor: _ScopeVisitor, node: cst.CSTNode) -> None:
    if not visitor._string_depth:
        for target in _TARGETS[node.__class__](node):
            _mark_stores(target, visitor.stores)


def _note_name(visitor: _ScopeVisitor, node: cst.Name) -> None:
    if "typing" in node.value:
        visitor._typing_named = True


def _note_defined_name(visitor: _ScopeVisitor, node: Any) -> None:
    # functions, classes, parameters and type parameters: ScopeVisitor records their
    # names without visiting them (a class named so also prefixes its methods' names)
    if "typing" in node.name.value:
        visitor._typing_named = True


def _note_import(visitor: _ScopeVisitor, node: cst.Import | cst.ImportFrom) -> None:
    names = [alias.name for alias in node.names] if not isinstance(node.names, cst.ImportStar) else []
    if isinstance(node, cst.ImportFrom) and node.module is not None:
        names.append(node.module)
    if any("typing" in (get_full_name_for_node(name) or "") for name in names):
        visitor._typing_named = True


# What the scope walk does as it enters a node, before ScopeVisitor's own hook.
_BEFORE_HOOKS: dict[type, Callable[[_ScopeVisitor, Any], None]] = {
    **dict.fromkeys(_TARGETS, _mark_targets),
    cst.Name: _note_name,
    **dict.fromkeys((cst.FunctionDef, cst.ClassDef, cst.Param, cst.TypeAlias, cst.TypeVar, cst.TypeVarTuple,
                     cst.ParamSpec), _note_defined_name),
    cst.Import: _note_import,
    cst.ImportFrom: _note_import,
}


def _mark_stores(target: cst.CSTNode, stores: dict[cst.CSTNode, ExpressionContext]) -> None:
    """The Names under an assignment target that libcst's expression contexts call STORE:
    all of them but those under an attribute or a subscript (which are loaded: `a.b = 1`
    reads `a`). A target holding another assignment-like node (only in code Python
    refuses) is marked as libcst marks it too: the STORE context goes on through it."""
    for node in iter_nodes(target, descend=lambda node: node.__class__ not in _LOADED_BELOW, skip=WHITESPACE):
        if node.__class__ is cst.Name:
            stores[node] = ExpressionContext.STORE


_LOADED_BELOW = frozenset({cst.Attribute, cst.Subscript, cst.Del})


class _ScopeProvider(ScopeProvider):
    """Answers ScopeVisitor's one question about expression contexts (is this Name a
    STORE?) from the walk's own table, without libcst's general lookup: checking the
    declared dependencies and the metadata present costs more than the answer."""

    stores: dict[cst.CSTNode, ExpressionContext]

    def get_metadata(self, key: Any, node: cst.CSTNode, *default: Any) -> Any:
        if key is ExpressionContextProvider and default:  # (ScopeVisitor.visit_Name's call)
            return self.stores.get(node, default[0])
        return super().get_metadata(key, node, *default)


def scopes_of(module: cst.Module) -> Mapping[cst.CSTNode, Scope | None]:
    """node -> its scope, as `MetadataWrapper(module).resolve(ScopeProvider)` gives it."""
    # what ScopeProvider's visit_Module does, with the visitor walking directly
    scopes = _ScopeProvider()
    visitor = _ScopeVisitor(scopes)
    scopes.stores = visitor.stores  # filled as the walk goes
    scopes.metadata = {ExpressionContextProvider: visitor.stores}
    visitor.walk(module)
    visitor.infer_accesses()
    return MappingProxyType(dict(scopes._computed))


@functools.lru_cache(maxsize=16)  # scope maps are large: keep only the trees in use
def scope_map(module: cst.Module) -> Mapping[cst.CSTNode, Scope | None]:
    """`scopes_of`, resolved once per tree for every analysis that asks."""
    return scopes_of(module)
