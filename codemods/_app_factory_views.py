"""Moving `@app.*` registrations of one module onto a Blueprint (for `app-factory`).

Views stay in the module they were written in (so `mock.patch` targets, string
`csrf.exempt("module.view")` keys and cache keys do not change); only what they are
registered on changes. App-wide hooks take the blueprint's `app_*` form; hooks without
one are handed to the factory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from .support.flask import APP_HOOKS, ROUTE_DECORATORS, decorator_method
from ._app_factory_syntax import (
    name_uses, refs_outside_function_bodies, replace_head, rewrite_function_bodies,
)

CLI_METHODS = frozenset({"command", "group"})


@dataclass
class Problem:
    path: str
    line: int
    message: str


@dataclass
class BlueprintPlan:
    """What moving one module's registrations needs and produced."""

    path: str
    module_name: str
    app_var: str  # how this module names the app
    bp_var: str
    bp_name: str
    endpoints: dict[str, str] = field(default_factory=dict)  # legacy -> qualified
    factory_hooks: list[tuple[str, str]] = field(default_factory=list)  # (app method, function name)
    uses_cli: bool = False
    current_app_uses: int = 0
    # extensions this module binds to the app: (variable, names of the extra init_app arguments)
    extension_inits: list[tuple[str, list[str]]] = field(default_factory=list)


def needs_blueprint(module: cst.Module, app_var: str) -> bool:
    """Whether the module registers views, CLI commands or hooks with a blueprint form."""
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            for decorator in stmt.decorators:
                method = decorator_method(decorator)
                if method and (method[0] == f"{app_var}.cli" or method[0] == app_var and (
                        method[1] in ROUTE_DECORATORS or APP_HOOKS.get(method[1]) is not None)):
                    return True
        elif _add_url_rule_call(stmt, app_var) is not None:
            return True
    return False


def _add_url_rule_call(stmt: cst.CSTNode, app_var: str) -> cst.Call | None:
    if (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Expr) and isinstance(stmt.body[0].value, cst.Call)):
        call = stmt.body[0].value
        if get_full_name_for_node(call.func) == f"{app_var}.add_url_rule":
            return call
    return None


class RegistrationMover:
    """Rewrites the top-level defs and `add_url_rule` calls of one module."""

    def __init__(self, plan: BlueprintPlan, line_of: Callable[[cst.CSTNode], int], problems: list[Problem]) -> None:
        self.plan = plan
        self.line_of = line_of
        self.problems = problems

    def problem(self, node: cst.CSTNode, message: str) -> None:
        self.problems.append(Problem(self.plan.path, self.line_of(node), message))

    # -- defs ------------------------------------------------------------------------
    def convert_def(self, stmt: cst.FunctionDef | cst.ClassDef) -> cst.CSTNode | None:
        """The def with registrations moved and app uses in bodies rewritten (None: keep it, with a problem)."""
        app = self.plan.app_var
        reported = len(self.problems)
        decorators, leftovers = [], []
        for decorator in stmt.decorators:
            new = self._convert_decorator(stmt, decorator)
            if new is not None:
                decorators.append(new)
                leftovers.extend(n for n in name_uses(new) if n.value == app)
        leftovers.extend(refs_outside_function_bodies(stmt.with_changes(decorators=[]), app))
        if len(self.problems) > reported:
            return None
        if leftovers:
            self.problem(leftovers[0], f"`{app}` is used at import time in `{stmt.name.value}` (a decorator "
                                       "argument, default value or class body); it cannot become current_app there")
            return None
        new, count = rewrite_function_bodies(stmt.with_changes(decorators=decorators), app)
        self.plan.current_app_uses += count
        return new

    def _convert_decorator(self, func: cst.CSTNode, decorator: cst.Decorator) -> cst.Decorator | None:
        method = decorator_method(decorator)
        app, bp = self.plan.app_var, self.plan.bp_var
        if not method or method[0] not in (app, f"{app}.cli"):
            return decorator
        owner, name = method
        expr = decorator.decorator
        if owner == f"{app}.cli":
            if name not in CLI_METHODS:
                self.problem(decorator, f"`@{owner}.{name}` has no blueprint equivalent; not migrated")
                return decorator
            self.plan.uses_cli = True
            return decorator.with_changes(decorator=replace_head(expr, bp))
        if name in ROUTE_DECORATORS:
            self._record_route(func, expr)
            return decorator.with_changes(decorator=replace_head(expr, bp))
        if name in APP_HOOKS:
            app_wide = APP_HOOKS[name]
            if app_wide is not None:
                return decorator.with_changes(decorator=replace_head(expr, bp, app_wide))
            if isinstance(expr, cst.Call):
                self.problem(decorator, f"`@{app}.{name}(...)` with arguments: not migrated")
                return decorator
            if func.decorators[0] is not decorator:
                # create_app registers the name's final value: only the same function if outermost
                self.problem(decorator, f"`@{app}.{name}` below other decorators registers the undecorated "
                                        "function; make it the outermost decorator first")
                return decorator
            self.plan.factory_hooks.append((name, func.name.value))
            return None  # registered by create_app
        self.problem(decorator, f"`@{app}.{name}` cannot be moved onto a blueprint; not migrated")
        return decorator

    def _record_route(self, func: cst.CSTNode, expr: cst.BaseExpression) -> None:
        endpoint = func.name.value if isinstance(func, cst.FunctionDef) else None
        if isinstance(expr, cst.Call):
            for arg in expr.args:
                if arg.keyword is not None and arg.keyword.value == "endpoint":
                    endpoint = _literal(arg.value)
                    if endpoint is None:
                        self.problem(expr, "dynamic endpoint name: references to it cannot be qualified")
                        return
        self._add_endpoint(expr, endpoint)

    def _add_endpoint(self, node: cst.CSTNode, endpoint: str | None) -> None:
        if endpoint is None:
            self.problem(node, "the endpoint name of this rule cannot be determined; references cannot be qualified")
        elif "." in endpoint:
            self.problem(node, f"endpoint {endpoint!r} contains a dot, which blueprints do not allow")
        else:
            self.plan.endpoints[endpoint] = f"{self.plan.bp_name}.{endpoint}"

    # -- add_url_rule ------------------------------------------------------------------
    def convert_add_url_rule(self, stmt: cst.SimpleStatementLine) -> cst.SimpleStatementLine | None:
        call = _add_url_rule_call(stmt, self.plan.app_var)
        if call is None:
            return None
        endpoint = None
        positional = [a for a in call.args if a.keyword is None and not a.star]
        keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        if len(positional) >= 2:
            endpoint = _literal(positional[1].value)
            explicit_none = isinstance(positional[1].value, cst.Name) and positional[1].value.value == "None"
            if endpoint is None and not explicit_none:
                self.problem(stmt, "dynamic endpoint name in add_url_rule: references to it cannot be qualified")
                return stmt
        elif "endpoint" in keywords:
            endpoint = _literal(keywords["endpoint"])
        if endpoint is None:
            view = positional[2].value if len(positional) >= 3 else keywords.get("view_func")
            endpoint = _view_endpoint(view)
        if any(n.value == self.plan.app_var for arg in call.args for n in name_uses(arg)):
            self.problem(stmt, f"`{self.plan.app_var}` is used in the arguments of add_url_rule at import time")
            return stmt
        self._add_endpoint(stmt, endpoint)
        expr = stmt.body[0]
        return stmt.with_changes(body=[expr.with_changes(value=replace_head(call, self.plan.bp_var))])


def _literal(node: cst.BaseExpression | None) -> str | None:
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _view_endpoint(view: cst.BaseExpression | None) -> str | None:
    """Endpoint Flask derives from a view function: its name, or `View.as_view("name")`."""
    if isinstance(view, cst.Name):
        return view.value
    if (isinstance(view, cst.Call) and isinstance(view.func, cst.Attribute)
            and view.func.attr.value == "as_view" and view.args):
        return _literal(view.args[0].value)
    return None
