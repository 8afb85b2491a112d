"""Answers kept per top-level statement, across the versions of a module.

A codemod replaces a few top-level statements of a module and keeps the others as the
same objects (`TargetedTransformer`, `add_imports`), and the next codemod asks the new
version the same questions about the whole module (which names it uses, what it
registers). When the answer for a module is made of the answers for its top-level
statements, in order, those can be kept per statement (`per_statement`) and only the
new statements walked.

Each entry holds its statement, so an id can never stand for another object. The
engine drops the entries of statements that are in no current tree between codemods
(`prune`), so what is kept is bounded by the project's trees, and drops them all when a
run ends (`clear`): a process that runs again, as `batch` workers do, keeps nothing of
the projects it saw. Forked workers inherit the entries; what they add stays there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import libcst as cst

T = TypeVar("T")

# every `per_statement` function's answers: id -> (statement, answer)
_ANSWERS: list[dict[int, tuple[cst.CSTNode, Any]]] = []


def per_statement(function: Callable[[cst.CSTNode], T]) -> Callable[[cst.CSTNode], T]:
    """`function(statement)`, computed once per statement object while it is in a tree.
    The answer must not be mutated (return tuples and frozensets)."""
    answers: dict[int, tuple[cst.CSTNode, Any]] = {}
    _ANSWERS.append(answers)

    @functools.wraps(function)
    def cached(statement: cst.CSTNode) -> T:
        entry = answers.get(id(statement))
        if entry is not None and entry[0] is statement:
            return entry[1]
        answer = function(statement)
        answers[id(statement)] = (statement, answer)
        return answer

    return cached


def prune(trees: Iterable[cst.Module]) -> None:
    """Forget the answers for statements that are not top-level statements of `trees`."""
    live = {id(statement) for tree in trees for statement in tree.body}
    for answers in _ANSWERS:
        for key in [key for key in answers if key not in live]:
            del answers[key]


def clear() -> None:
    for answers in _ANSWERS:
        answers.clear()
