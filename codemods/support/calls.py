"""The calls of a top-level statement, found in one walk for the three questions asked
of them: what the statement registers (`routes.registrations`: its functions and calls,
in order), which calls run when the module is imported (those outside any function), and
which calls each function's own body makes (`context.body_calls`, per module).

Each question had its own walk, and the call graph (`context.context_map`) asks all three
of every module of an app, in the process that shares out the work: on the benchmark's
big app the three walks were 63 ms of the 98 ms its two builds spent reading modules.
One walk, kept per statement (`per_statement`), answers the three: 84 ms of reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from flask_refactor.walk import ReadOnlyVisitor

from .cache import per_statement


@dataclass(frozen=True)
class BodyCalls:
    """The calls a function's own body makes (not those of functions, lambdas or classes
    in it), in source order, and whether it yields."""

    calls: tuple[cst.Call, ...]
    is_generator: bool


@dataclass(frozen=True)
class CallSurvey:
    order: tuple[cst.FunctionDef | cst.Call, ...]  # the functions and calls, in libcst's visiting order
    outside_functions: tuple[cst.Call, ...]  # the calls in no function (nor its decorators or defaults)
    bodies: dict[cst.FunctionDef, BodyCalls]  # each function under the root: its own body's calls


def call_survey(root: cst.CSTNode) -> CallSurvey:
    """The survey of the calls under `root` (itself included)."""
    walk = _Survey()
    walk.walk(root)
    bodies = {function: BodyCalls(tuple(calls), function in walk.generators)
              for function, calls in walk.body_calls.items()}
    return CallSurvey(tuple(walk.order), tuple(walk.outside), bodies)


statement_survey = per_statement(call_survey)  # a top-level statement's, kept while it is in a tree


class _Survey(ReadOnlyVisitor):
    """`owners[-1]` is the function whose own body the walk is in, or None: it changes
    where a function's body starts and ends (indented, or on the `def` line: `def f():
    return g()`), and is None inside lambdas and classes, whose calls are no function's
    own."""

    def __init__(self) -> None:
        self.order: list[cst.FunctionDef | cst.Call] = []
        self.outside: list[cst.Call] = []
        self.body_calls: dict[cst.FunctionDef, list[cst.Call]] = {}
        self.generators: set[cst.FunctionDef] = set()
        self.functions: list[cst.FunctionDef] = []  # those the walk is in, innermost last
        self.owners: list[cst.FunctionDef | None] = [None]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.order.append(node)
        self.body_calls[node] = []
        self.functions.append(node)
        self.owners.append(None)  # its decorators, parameters and annotations are no body

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.pop()
        self.owners.pop()

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        if self.functions and node is self.functions[-1].body:
            self.owners.append(self.functions[-1])

    def leave_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        if self.functions and node is self.functions[-1].body:
            self.owners.pop()

    visit_SimpleStatementSuite = visit_IndentedBlock  # a body on the `def` line
    leave_SimpleStatementSuite = leave_IndentedBlock

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.owners.append(None)

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self.owners.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.owners.append(None)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.owners.pop()

    def visit_Call(self, node: cst.Call) -> None:
        self.order.append(node)
        if not self.functions:
            self.outside.append(node)
        owner = self.owners[-1]
        if owner is not None:
            self.body_calls[owner].append(node)

    def visit_Yield(self, node: cst.Yield) -> None:
        owner = self.owners[-1]
        if owner is not None:
            self.generators.add(owner)
