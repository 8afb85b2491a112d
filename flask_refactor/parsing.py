"""Batches of libcst parses without the checks libcst makes of each node it builds.

Each libcst node checks itself when it is made (`CSTNode.__post_init__` calls
`_validate`): that a `Name` is an identifier, that parentheses pair up, that a keyword
has the spaces it needs. The checks are there to catch trees built wrong by hand. The
nodes of a parse are built from text the grammar accepted, so there they pass (libcst's
own comment on `__post_init__` says they could move out of parsing), but
they are a sixth of each parse: the 299 modules of the benchmark's big app parse in
0.32 s instead of 0.38 s (best of seven).

So a batch of parses that builds no node by hand (`Project.parse_many`) runs with the
checks off; nodes a codemod builds are still checked. Turned off once per batch, not per
parse: a change to a class makes Python drop what it has specialised for the attribute
lookups of every node class, and a switch around each parse made a run slower, not
faster. `tests/test_parsing.py` compares parses with and without the checks on the
sources of installed packages. If a later libcst's `__post_init__` does more than
check, it is left on (`_ONLY_CHECKS`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import libcst as cst

_CHECKS = cst.CSTNode.__post_init__


def does_only_checks(post_init) -> bool:
    """Whether a `__post_init__` only calls `self._validate()`, as libcst 1.x's does."""
    code = post_init.__code__
    return code.co_names == ("_validate",) and code.co_argcount == 1


_ONLY_CHECKS = does_only_checks(_CHECKS)


def _no_checks(self: cst.CSTNode) -> None:
    pass


@contextlib.contextmanager
def unchecked() -> Iterator[None]:
    """Within it, libcst builds nodes without checking them: for parses only (processes
    forked meanwhile inherit it)."""
    if not _ONLY_CHECKS or cst.CSTNode.__post_init__ is _no_checks:
        yield
        return
    cst.CSTNode.__post_init__ = _no_checks
    try:
        yield
    finally:
        cst.CSTNode.__post_init__ = _CHECKS
