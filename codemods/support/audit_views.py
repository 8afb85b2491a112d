"""Views and what they call, for the audit rules: the routes of a project with their
methods, and the project functions a view reaches (followed through imports).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.project import Project
from flask_refactor.walk import iter_nodes

from .context import iter_functions
from .flask import RESTFUL_RESOURCES, VIEW_CLASSES, app_modules, import_map
from .routes import HTTP_METHOD_HANDLERS, call_registrations, decorator_registration, module_subclasses

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Web frameworks whose route decorators look like Flask's: their modules are not Flask views.
OTHER_FRAMEWORKS = ("fastapi", "quart", "sanic", "starlette", "django", "bottle", "litestar")
MAX_DEPTH = 4  # how deep calls are followed from a view


@dataclass(frozen=True)
class FunctionKey:
    path: str
    qualname: str  # `func` or `Class.method`


@dataclass(frozen=True)
class Route:
    path: str
    function: str  # qualname of the view function
    rule: str  # the URL rule as written
    methods: frozenset[str] | None  # None: not literal, unknown
    line: int
    is_async: bool

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.path, self.function)

    @property
    def label(self) -> str:
        """`'/' (index)` for a routed function, `CustomerAPI.get` for a class-based view."""
        return f"{self.rule!r} ({self.function})" if self.rule != self.function else self.function

    @property
    def safe_only(self) -> bool:
        return self.methods is not None and self.methods <= SAFE_METHODS


def is_test_path(path: str) -> bool:
    """Tests and test fixtures: not what production runs."""
    parts = path.split("/")
    name = parts[-1]
    return (any(p in ("tests", "test", "testing") for p in parts[:-1]) or name.startswith("test_")
            or name.endswith("_test.py") or name == "conftest.py")


def functions(project: Project) -> dict[FunctionKey, cst.FunctionDef]:
    """Every function and method of the project (nested ones by their dotted path; of two
    defs with one name, the first)."""
    def compute(proj: Project) -> dict[FunctionKey, cst.FunctionDef]:
        found: dict[FunctionKey, cst.FunctionDef] = {}
        for path, module in app_modules(proj, ("def ",)):
            for qualname, func, _ in iter_functions(module):
                found.setdefault(FunctionKey(path, qualname), func)
        return found
    return project.fact("audit.functions", compute)


def is_flask_module(project: Project, path: str) -> bool:
    imports = import_map(project, path)
    if imports is None:
        return False
    targets = [*imports.names.values(), *imports.star_modules]
    if any(t.split(".")[0] == "flask" for t in targets):
        return True
    if any(t.split(".")[0] in OTHER_FRAMEWORKS for t in targets):
        return False
    # `from app import app` style view modules import their app from the project
    return any(project.path_of_module(t.rsplit(".", 1)[0]) or project.path_of_module(t) for t in targets)


def routes(project: Project) -> list[Route]:
    """Functions registered by a route decorator whose first argument is a URL rule, or
    by `add_url_rule("/rule", ..., view_func=function)`."""
    def compute(proj: Project) -> list[Route]:
        found = []
        known = functions(proj)
        for key, func in known.items():
            for decorator in func.decorators:
                route = _route(key, func, decorator, proj)
                if route is not None:
                    found.append(route)
        for path, module in app_modules(proj, ("add_url_rule",)):
            if is_flask_module(proj, path):
                found.extend(_url_rules(proj, path, module, known))
        for path, module in app_modules(proj, ("View", "Resource")):
            found.extend(_class_views(proj, path, module, known))
        return found
    return project.fact("audit.routes", compute)


# Classes whose HTTP-method handlers are views, for Flask or for an extension's router.
CLASS_VIEW_BASES = VIEW_CLASSES | RESTFUL_RESOURCES | {"flask_smorest.MethodView"}


def _class_views(project: Project, path: str, module: cst.Module, known: dict) -> list[Route]:
    """Handler methods of MethodView / Flask-RESTful Resource subclasses (`get` is GET)."""
    imports = import_map(project, path)
    found = []
    for stmt in module_subclasses(module, imports, CLASS_VIEW_BASES) if imports is not None else ():
        for key in [k for k in known if k.path == path and k.qualname.startswith(stmt.name.value + ".")]:
            method = key.qualname[len(stmt.name.value) + 1:]
            if method in HTTP_METHOD_HANDLERS:
                func = known[key]
                found.append(Route(path, key.qualname, key.qualname, frozenset({method.upper()}),
                                   project.position_lookup(path)(func)[0], func.asynchronous is not None))
    return found


def _url_rules(project: Project, path: str, module: cst.Module, known: dict) -> list[Route]:
    found = []
    for registration in call_registrations(module):
        if registration.method != "add_url_rule" or registration.function is None:
            continue
        rule_arg = registration.argument("rule", 0)
        rule = rule_arg.evaluated_value if isinstance(rule_arg, cst.SimpleString) else None
        if not isinstance(rule, str):
            continue
        target = resolve_callee(project, path, cst.Call(func=registration.function))
        if target is None or target not in known:
            continue
        found.append(Route(target.path, target.qualname, rule, registration.methods, project.position_lookup(
            target.path)(known[target])[0], known[target].asynchronous is not None))
    return found


def _route(key: FunctionKey, func: cst.FunctionDef, decorator: cst.Decorator, project: Project) -> Route | None:
    registration = decorator_registration(decorator)
    call = registration.call if registration is not None and registration.is_route else None
    if call is None or not call.args:
        return None
    first = call.args[0]
    if first.keyword is not None or not isinstance(first.value, cst.SimpleString):
        return None
    rule = first.value.evaluated_value
    if not isinstance(rule, str) or not (rule == "" or rule.startswith("/")):
        return None
    if not is_flask_module(project, key.path):
        return None
    line = project.position_lookup(key.path)(func)[0]
    return Route(key.path, key.qualname, rule, registration.methods, line, func.asynchronous is not None)


# -- calls --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8192)  # rules walk the same modules and views: walk each once
def nodes_of(root: cst.CSTNode, skip: tuple[type, ...] = (), leaves: tuple[type, ...] = ()) -> tuple[cst.CSTNode, ...]:
    """Every node below `root` (included), in source order: nodes of the `skip` types are
    left out with what is inside them, nodes of the `leaves` types are kept without it."""
    def kept(node: cst.CSTNode) -> bool:
        return node is root or not isinstance(node, skip)

    return tuple(node for node in iter_nodes(root, descend=lambda n: kept(n) and not isinstance(n, leaves))
                 if kept(node))


def body_nodes(func: cst.FunctionDef) -> tuple[cst.CSTNode, ...]:
    """Every node run by calling `func`: nested functions, classes and lambdas left out
    (they run later, if at all)."""
    return nodes_of(func.body, (cst.FunctionDef, cst.ClassDef, cst.Lambda))


def calls_in(func: cst.FunctionDef) -> list[cst.Call]:
    return [n for n in body_nodes(func) if isinstance(n, cst.Call)]


def resolve_callee(project: Project, path: str, call: cst.Call) -> FunctionKey | None:
    """The project function a call runs: a function of the same module, or one imported
    from a project module (`helper()`, `services.helper()`, `Service.method()`)."""
    dotted = get_full_name_for_node(call.func)
    if not dotted:
        return None
    known = functions(project)
    local = FunctionKey(path, dotted)
    if local in known:
        return local
    imports = import_map(project, path)
    qualified = imports.resolve(call.func) if imports else None
    if not qualified:
        return None
    parts = qualified.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        target = project.path_of_module(".".join(parts[:cut]))
        if target:
            key = FunctionKey(target, ".".join(parts[cut:]))
            return key if key in known else None
    return None


@dataclass(frozen=True)
class Reached:
    key: FunctionKey
    func: cst.FunctionDef
    chain: tuple[FunctionKey, ...]  # from the view (excluded) to this function (included)


def reachable(project: Project, start: FunctionKey) -> list[Reached]:
    """The view itself and the project functions it calls, breadth first, each once."""
    known = functions(project)
    if start not in known:
        return []
    found = [Reached(start, known[start], ())]
    seen = {start}
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        if len(current.chain) >= MAX_DEPTH:
            continue
        for call in calls_in(current.func):
            callee = resolve_callee(project, current.key.path, call)
            if callee is not None and callee not in seen:
                seen.add(callee)
                found.append(Reached(callee, known[callee], current.chain + (callee,)))
    return found


def describe_chain(project: Project, chain: tuple[FunctionKey, ...]) -> str:
    """`via record_view() (analytics.py:22)` for a call chain, or '' for the view itself."""
    if not chain:
        return ""
    known = functions(project)
    steps = [f"{key.qualname}() ({key.path}:{project.position_lookup(key.path)(known[key])[0]})" for key in chain]
    return " via " + " -> ".join(steps)
