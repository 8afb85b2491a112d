"""Answers kept per libcst tree.

A module is asked the same questions many times in a run: by each codemod, and again
for every name a codemod adds. libcst trees are immutable and hash by identity, so a
pure function of a tree can keep its answer for as long as the tree is in use; a tree a
codemod replaced is simply never asked again. Cached answers must not be mutated: the
functions return tuples and frozensets.
"""

from __future__ import annotations

import functools

from flask_refactor.memo import per_statement  # noqa: F401  (the other memo codemods use: per top-level statement)

per_tree = functools.lru_cache(maxsize=2048)
