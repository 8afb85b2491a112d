"""libcst's ScopeProvider for a tree, without the two traversals MetadataWrapper adds.

ScopeProvider and its dependency ExpressionContextProvider are "batchable" providers
whose whole work happens in `visit_Module`: each runs a visitor of its own over the
module there. MetadataWrapper resolves each batch by walking the entire tree with a
batched visitor that, past the root, finds nothing to call, and libcst's walk rebuilds
every node it passes. Those two empty walks were half the cost of a scope map. Here each
provider's `visit_Module` is called directly, dependencies first, and what it computed
is read the way MetadataWrapper reads it. tests/test_scopes.py compares the result with
`MetadataWrapper.resolve(ScopeProvider)` on real packages.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

import libcst as cst
from libcst.metadata import ExpressionContextProvider, Scope, ScopeProvider


def scopes_of(module: cst.Module) -> Mapping[cst.CSTNode, Scope | None]:
    """node -> its scope, as `MetadataWrapper(module).resolve(ScopeProvider)` gives it."""
    contexts = ExpressionContextProvider()
    contexts.visit_Module(module)
    scopes = ScopeProvider()
    scopes.metadata = {ExpressionContextProvider: MappingProxyType(dict(contexts._computed))}
    scopes.visit_Module(module)
    return MappingProxyType(dict(scopes._computed))


@functools.lru_cache(maxsize=16)  # scope maps are large: keep only the trees in use
def scope_map(module: cst.Module) -> Mapping[cst.CSTNode, Scope | None]:
    """`scopes_of`, resolved once per tree for every analysis that asks."""
    return scopes_of(module)
