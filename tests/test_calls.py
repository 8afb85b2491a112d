"""One walk of a statement's calls (`codemods/support/calls.py`) answers the three
questions the call graph and the route finder ask: the functions and calls in order,
the calls outside any function, and each function's own body calls."""

from __future__ import annotations

import libcst as cst

from flask_refactor.codemods.support.calls import call_survey
from flask_refactor.walk import WHITESPACE, ReadOnlyVisitor, iter_nodes
from helpers import sample_modules

MODULE = '''\
setup(config())

@route(path("/"))
def view(limit=default()):
    first()
    helper = lambda: inside_lambda()

    class Inner:
        attribute = class_body()

        def method(self):
            in_method()

    @decorate(deco_arg())
    def nested():
        in_nested()
        yield
    return last(nested_arg())

def one_line(): return on_the_line()

def one_line_producer(): yield produced_on_the_line()

def producer():
    yield produced()

class Outer:
    at_import = outer_body()
    handler = lambda: module_lambda()
'''


def _text(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def test_the_survey_answers_each_question_as_its_own_walk_did():
    module = cst.parse_module(MODULE)
    functions = {node.name.value: node for node in iter_nodes(module, skip=WHITESPACE)
                 if isinstance(node, cst.FunctionDef)}
    survey = call_survey(module)
    assert [_text(n) if isinstance(n, cst.Call) else f"def {n.name.value}" for n in survey.order] == [
        "setup(config())", "config()", "def view", 'route(path("/"))', 'path("/")', "default()", "first()",
        "inside_lambda()", "class_body()", "def method", "in_method()", "def nested", "decorate(deco_arg())",
        "deco_arg()", "in_nested()", "last(nested_arg())", "nested_arg()", "def one_line", "on_the_line()",
        "def one_line_producer", "produced_on_the_line()", "def producer", "produced()", "outer_body()",
        "module_lambda()"]
    # calls run when the module is imported: none in a function, its decorators or defaults
    assert [_text(call) for call in survey.outside_functions] == [
        "setup(config())", "config()", "outer_body()", "module_lambda()"]
    own = {name: ([_text(call) for call in survey.bodies[node].calls], survey.bodies[node].is_generator)
           for name, node in functions.items()}
    assert own == {
        # not the lambda's, the class's, the method's or the nested function's (nor its decorator's)
        "view": (["first()", "last(nested_arg())", "nested_arg()"], False),
        "method": (["in_method()"], False),
        "nested": (["in_nested()"], True),
        "one_line": (["on_the_line()"], False),  # a body on the `def` line is the function's body too
        "one_line_producer": (["produced_on_the_line()"], True),
        "producer": (["produced()"], True),
    }
    # a survey of one function gives it the same answer
    assert call_survey(functions["view"]).bodies[functions["view"]] == survey.bodies[functions["view"]]


class _OwnBodyCalls(ReadOnlyVisitor):
    """The reference: a function body's walk, not entering functions, lambdas or classes."""

    def __init__(self) -> None:
        self.calls: list[cst.Call] = []
        self.yields = False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)

    def visit_Yield(self, node: cst.Yield) -> None:
        self.yields = True


class _Calls(ReadOnlyVisitor):
    """The reference: functions and calls in visiting order, and whether each is in a function."""

    def __init__(self) -> None:
        self.order: list[cst.CSTNode] = []
        self.outside: list[cst.Call] = []
        self.depth = 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.order.append(node)
        self.depth += 1

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.depth -= 1

    def visit_Call(self, node: cst.Call) -> None:
        self.order.append(node)
        if not self.depth:
            self.outside.append(node)


def test_the_survey_agrees_with_a_walk_per_question_on_real_packages():
    for where, module in sample_modules(("flask", "werkzeug", "click")):
        for statement in module.body:
            survey = call_survey(statement)
            reference = _Calls()
            reference.walk(statement)
            assert survey.order == tuple(reference.order), where
            assert survey.outside_functions == tuple(reference.outside), where
            for node in iter_nodes(statement, skip=WHITESPACE):
                if isinstance(node, cst.FunctionDef):
                    own = _OwnBodyCalls()
                    for inner in node.body.body:  # indented, or on the `def` line
                        own.walk(inner)
                    assert survey.bodies[node].calls == tuple(own.calls), where
                    assert survey.bodies[node].is_generator == own.yields, where
