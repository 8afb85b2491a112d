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
from typing import Any

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import ExpressionContextProvider, Scope, ScopeProvider
from libcst.metadata.expression_context_provider import ExpressionContext
from libcst.metadata.scope_provider import _ASSIGNMENT_LIKE_NODES, ScopeVisitor

from .walk import WHITESPACE, code_children, iter_nodes, visited_fields


class _DirectWalk(cst.CSTVisitor):
    """Mixed in after a libcst visitor class (so that its `super().on_leave()` lands
    here): replaces CSTVisitor's walk and hook dispatch, keeping the protocol."""

    _visit_hooks: dict[type, Any] = {}
    _leave_hooks: dict[type, Any] = {}
    _attribute_hooked: frozenset[str] = frozenset()  # node classes with visit_<Class>_<field> hooks

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._visit_hooks, cls._leave_hooks = {}, {}
        own = [k for k in cls.__mro__ if k not in cst.CSTVisitor.__mro__ and k is not _DirectWalk]
        cls._attribute_hooked = frozenset(
            parts[1] for k in own for name in vars(k)
            if (parts := name.split("_"))[0] in ("visit", "leave") and len(parts) >= 3 and parts[1][:1].isupper())

    def walk(self, node: cst.CSTNode) -> None:
        if self._visit(node):
            self._descend(node)
        self.on_leave(node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        # asked by libcst's `visit` when a hook visits a child itself: walk it here instead
        if self._visit(node):
            self._descend(node)
        return False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        node_class = original_node.__class__
        hook = self._leave_hooks.get(node_class, 0)
        if hook == 0:
            hook = self._leave_hooks[node_class] = getattr(type(self), f"leave_{node_class.__name__}", None)
        if hook is not None:
            hook(self, original_node)

    def _visit(self, node: cst.CSTNode) -> bool:
        node_class = node.__class__
        hook = self._visit_hooks.get(node_class, 0)
        if hook == 0:
            hook = self._visit_hooks[node_class] = getattr(type(self), f"visit_{node_class.__name__}", None)
        return hook is None or hook(self, node) is not False

    def _descend(self, node: cst.CSTNode) -> None:
        if node.__class__.__name__ not in self._attribute_hooked:
            for child in code_children(node):
                self.walk(child)
            return
        for field in visited_fields(node):  # rare (class bases): field by field, with its hooks
            self.on_visit_attribute(node, field)
            value = getattr(node, field)
            for child in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(child, cst.CSTNode) and child.__class__ not in WHITESPACE:
                    self.walk(child)
            self.on_leave_attribute(node, field)


class _ScopeVisitor(ScopeVisitor, _DirectWalk):
    def __init__(self, provider: ScopeProvider) -> None:
        super().__init__(provider)
        self.stores: dict[cst.CSTNode, ExpressionContext] = {}  # what ScopeVisitor reads as expression contexts
        self._string_depth = 0  # inside an annotation parsed from a string: no contexts there
        self._typing_named = False  # whether a name met so far has "typing" in it

    def walk(self, node: cst.CSTNode) -> None:
        self.on_visit(node)
        self.on_leave(node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        # _DirectWalk's entry with this visitor's steps in one place, each node class's
        # hooks looked up once (`_steps_for`): the big app's view modules took 70 ms of
        # scope maps instead of 88. Also asked by libcst's `visit` when a hook visits a
        # child itself, which then asks `on_leave`.
        before, visit, _, _, by_field = _STEPS.get(node.__class__) or _steps_for(node.__class__)
        if before is not None:
            before(self, node)
        if visit is None or visit(self, node) is not False:
            if by_field:
                self._descend(node)
            else:
                for child in code_children(node):
                    self.walk(child)
        return False

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
        # ScopeVisitor.on_leave, with its test of every node against a tuple of about 15
        # ABC classes (each a slow ABCMeta check when it fails) answered once per class,
        # and `set_metadata` written out
        _, _, leave, assigns, _ = _STEPS.get(original_node.__class__) or _steps_for(original_node.__class__)
        self.provider._computed[original_node] = self.scope  # what set_metadata does
        if assigns:
            self.scope._assignment_count += 1
        if leave is not None:
            leave(self, original_node)


_StepsT = tuple[Any, Any, Any, bool, bool]
_STEPS: dict[type, _StepsT] = {}  # node class -> (before hook, visit hook, leave hook, assignment-like, hooked by field)


def _steps_for(node_class: type) -> _StepsT:
    name = node_class.__name__
    steps = _STEPS[node_class] = (
        _BEFORE_HOOKS.get(node_class), getattr(_ScopeVisitor, f"visit_{name}", None),
        getattr(_ScopeVisitor, f"leave_{name}", None), issubclass(node_class, _ASSIGNMENT_LIKE_NODES),
        name in _ScopeVisitor._attribute_hooked)
    return steps


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
