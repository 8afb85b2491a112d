"""Where a project registers code with Flask: views (route decorators, `add_url_rule`,
class-based views), request hooks and error handlers (decorator and call forms), and
the blueprints they are registered on.

This is the one place that answers "is this a view or a hook, registered on what,
under which endpoint names and HTTP methods"; the Flask names it matches (route
decorators, hooks, view classes) are in `flask.py`. Callers that need a narrower notion
(only routes with a literal rule, only objects of the project) filter what these
functions return or pass the documented parameter, instead of matching decorators again.
A route or hook decorator on an object another framework's class made (FastAPI's
`APIRouter`, Quart's `Blueprint`: `of_another_framework`) registers nothing with Flask.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.project import Project
from flask_refactor.walk import ReadOnlyVisitor

from .cache import per_statement, per_tree
from .calls import CallSurvey, call_survey, statement_survey
from .flask import (
    APP_HOOKS, BLUEPRINT_CLASSES, ROUTE_DECORATORS, VIEW_CLASSES, app_modules, assigned_name, decorator_method,
    import_map, import_reach, is_call_to, is_flask_package, project_module_of,
)
from .imports import ImportMap

# Every method that registers a hook on an app or a blueprint.
HOOK_METHODS = frozenset(APP_HOOKS) | frozenset(m for m in APP_HOOKS.values() if m) | {"register_error_handler"}
ERROR_HANDLER_METHODS = frozenset({"errorhandler", "app_errorhandler", "register_error_handler"})
# Hooks whose call form registers its first argument (`app.before_request(load_user)`);
# the others take a key first (`errorhandler(404)`, `template_filter("name")`).
FUNCTION_FIRST_HOOKS = HOOK_METHODS - ERROR_HANDLER_METHODS - {
    name for name in HOOK_METHODS if name.startswith(("template_", "app_template_"))}
# Hooks whose function runs while a request is being handled.
REQUEST_HOOKS = frozenset({
    "before_request", "before_app_request",
    "after_request", "after_app_request",
    "teardown_request", "teardown_app_request",
    "errorhandler", "app_errorhandler", "register_error_handler",
    "context_processor", "app_context_processor",
    "url_value_preprocessor", "app_url_value_preprocessor",
})
# Hooks that run before the view, for every request the registering object handles.
BEFORE_REQUEST_HOOKS = frozenset({"before_request", "before_app_request"})

# The route shortcuts and the one method each accepts.
SHORTCUT_METHODS = {"get": "GET", "post": "POST", "put": "PUT", "delete": "DELETE", "patch": "PATCH"}
HTTP_METHOD_HANDLERS = frozenset({"get", "post", "put", "patch", "delete", "head", "options"})
# Methods of a View/MethodView subclass that handle requests.
VIEW_METHODS = HTTP_METHOD_HANDLERS | {"dispatch_request"}


@dataclass(frozen=True)
class Registration:
    """One registration on an app or a blueprint: a decorator `@owner.method` /
    `@owner.method(...)` on a def, or a call `owner.add_url_rule(...)`,
    `owner.register_error_handler(code, f)`, `owner.before_request(f)`,
    `owner.errorhandler(404)(f)`."""

    owner: str | None  # the app or blueprint as written (`app`, `main.bp`); None: not a dotted name
    method: str  # `route`, `get`, `add_url_rule`, `before_request`, `errorhandler`, ...
    node: cst.CSTNode  # the decorator, or the registering call
    call: cst.Call | None  # the call holding the arguments (rule, code, endpoint=); None: a bare decorator
    function: cst.BaseExpression | None  # call forms: what is registered; None for decorators
    decorated: cst.FunctionDef | None = None  # decorator form: the function

    @property
    def is_route(self) -> bool:
        return self.method in ROUTE_DECORATORS or self.method == "add_url_rule"

    def argument(self, keyword: str, position: int) -> cst.BaseExpression | None:
        """The argument passed as `keyword=`, else the `position`-th one without a keyword."""
        return None if self.call is None else _argument(self.call, keyword, position)

    @property
    def methods(self) -> frozenset[str] | None:
        """The HTTP methods of a route: a shortcut's own, else `methods=` (None when it is not
        a literal), else GET."""
        if self.method in SHORTCUT_METHODS:
            return frozenset({SHORTCUT_METHODS[self.method]})
        keywords = [a.value for a in self.call.args if a.keyword is not None and a.keyword.value == "methods"] \
            if self.call is not None else []
        return literal_methods(keywords[-1]) if keywords else frozenset({"GET"})


def _argument(call: cst.Call, keyword: str, position: int) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    positional = [a.value for a in call.args if a.keyword is None]
    return positional[position] if len(positional) > position else None


def literal_methods(node: cst.BaseExpression) -> frozenset[str] | None:
    """`["GET", "post"]` -> {"GET", "POST"}; None when not a literal list, tuple or set of strings."""
    if not isinstance(node, (cst.List, cst.Tuple, cst.Set)):
        return None
    found = set()
    for element in node.elements:
        if not isinstance(element.value, cst.SimpleString):
            return None
        found.add(str(element.value.evaluated_value).upper())
    return frozenset(found)


# -- decorator and call forms ------------------------------------------------------------

def decorator_registration(decorator: cst.Decorator, decorated: cst.FunctionDef | None = None
                           ) -> Registration | None:
    """The route or hook a decorator (of `decorated`) registers (`@app.route("/")`,
    `@bp.before_request`), or None."""
    method = decorator_method(decorator)
    if method is None or (method[1] not in ROUTE_DECORATORS and method[1] not in HOOK_METHODS):
        return None
    call = decorator.decorator if isinstance(decorator.decorator, cst.Call) else None
    return Registration(method[0], method[1], decorator, call, None, decorated)


def decorator_registrations(func: cst.FunctionDef) -> list[Registration]:
    """The routes and hooks a function's decorators register it as, outermost first."""
    found = (decorator_registration(decorator, func) for decorator in func.decorators)
    return [registration for registration in found if registration is not None]


def call_registration(node: cst.Call) -> Registration | None:
    """The registration a call makes: `owner.errorhandler(404)(f)`, `owner.route("/")(f)`,
    `owner.add_url_rule(...)` (`function` None when no view is given),
    `owner.register_error_handler(code, f)`, `owner.before_request(f)`; else None."""
    func = node.func
    if isinstance(func, cst.Call) and isinstance(func.func, cst.Attribute):
        method = func.func.attr.value
        if node.args and (method in ROUTE_DECORATORS or method in HOOK_METHODS):
            return Registration(get_full_name_for_node(func.func.value), method, node, func, node.args[0].value)
        return None
    if not isinstance(func, cst.Attribute):
        return None
    method = func.attr.value  # (looked at first: most calls are not registrations, and the owner costs)
    if method == "add_url_rule":
        function = _argument(node, "view_func", 2)
    elif method == "register_error_handler" and len(node.args) >= 2:
        function = node.args[1].value
    elif method in FUNCTION_FIRST_HOOKS and len(node.args) == 1 and not node.args[0].keyword:
        function = node.args[0].value
    else:
        return None
    return Registration(get_full_name_for_node(func.value), method, node, node, function)


def call_registrations(module: cst.CSTNode) -> tuple[Registration, ...]:
    """Every registration in call form anywhere in `module`, in source order."""
    return tuple(r for r in registrations(module) if r.decorated is None)


@per_tree
def registrations(module: cst.CSTNode) -> tuple[Registration, ...]:
    """Every registration anywhere in `module` (in nested functions too), decorator and
    call forms, in source order."""
    if isinstance(module, cst.Module):
        return tuple(found for statement in module.body for found in _statement_registrations(statement))
    return _registrations_in(module)


def _registrations_in(node: cst.CSTNode) -> tuple[Registration, ...]:
    return _registrations_of(call_survey(node))


@per_statement
def _statement_registrations(statement: cst.CSTNode) -> tuple[Registration, ...]:
    return _registrations_of(statement_survey(statement))


def _registrations_of(survey: CallSurvey) -> tuple[Registration, ...]:
    """A function's decorators register it where the function starts, before the calls
    in them: in the survey's order."""
    found: list[Registration] = []
    for node in survey.order:
        if isinstance(node, cst.FunctionDef):
            found.extend(decorator_registrations(node))
        elif (registration := call_registration(node)) is not None:
            found.append(registration)
    return tuple(found)


# -- whose routes ------------------------------------------------------------------------------

def _flask_package(qualified: str) -> bool:
    """Whether a class of this qualified name is Flask's or a Flask extension's, or
    APIFlask's: their objects take Flask's route decorators."""
    top = qualified.split(".", 1)[0]
    return is_flask_package(top) or top == "apiflask"


@per_tree
def _constructed_names(module: cst.Module) -> dict[str, cst.BaseExpression]:
    """Names the module binds once at its top level, by `name = Callee(...)`: name -> the
    callee. (A name bound twice is left out: which binding a decorator sees is not known.)"""
    bound: dict[str, cst.BaseExpression | None] = {}
    for name, value in filter(None, map(assigned_name, module.body)):
        bound[name] = None if name in bound or not isinstance(value, cst.Call) else value.func
    return {name: callee for name, callee in bound.items() if callee is not None}


def of_another_framework(owner: str, module: cst.Module, imports: ImportMap, project: Project) -> bool:
    """Whether the object a route or hook decorator is called on (`owner`, as written) is
    made at the top of `module` by a class of another package than Flask and its
    extensions: `router = APIRouter()` (FastAPI), Quart's or Sanic's `Blueprint`. Their
    `@router.get(...)` looks like Flask's, but registers no Flask view: no request
    context, no `g`, no Flask error handling. (An object made by the project's own code,
    or imported, is taken as Flask's, as before.)"""
    callee = _constructed_names(module).get(owner.split(".", 1)[0])
    qualified = imports.resolve(callee) if callee is not None else None
    return qualified is not None and not _flask_package(qualified) and project_module_of(project, qualified) is None


# -- views ---------------------------------------------------------------------------------

def is_view(func: cst.FunctionDef, imports: ImportMap | None = None, project: Project | None = None,
            module: cst.Module | None = None) -> bool:
    """Whether a route decorator (`@app.route`, `@bp.post`, ...) registers `func` as a view.

    Given `imports` and `project`, the decorator's object must also be the module's own or
    come from the project, so that `@mock.patch(...)` or `@responses.get(...)` is not taken
    for a route (extract-services moves code out of views and must not touch tests');
    given the `module` too, not one another framework's class made
    (`of_another_framework`)."""
    for registration in decorator_registrations(func):
        if not registration.is_route:
            continue
        if imports is None or project is None:
            return True
        qualified = imports.names.get(registration.owner.split(".")[0])
        if qualified is None and module is not None and of_another_framework(registration.owner, module, imports,
                                                                              project):
            continue
        if qualified is None or project_module_of(project, qualified) is not None:
            return True
    return False


def route_owner(func: cst.FunctionDef) -> tuple[str, list[Registration]] | None:
    """For a view registered by route decorators with arguments (`@x.route(...)`,
    `@x.get(...)`): the owner's text and those routes; None when there are none or they
    are on two different objects (not a simple view)."""
    owner, routes = None, []
    for registration in decorator_registrations(func):
        if registration.is_route and registration.call is not None:
            if owner is not None and owner != registration.owner:
                return None
            owner = registration.owner
            routes.append(registration)
    return (owner, routes) if owner else None


def endpoints_of(func: cst.FunctionDef, routes: list[Registration]) -> list[str] | None:
    """Endpoint names a view is registered under by its route decorators (without the
    blueprint prefix); None when an `endpoint=` argument is not a literal."""
    names = []
    for route in routes:
        name = func.name.value
        for arg in route.call.args if route.call is not None else ():
            if arg.keyword and arg.keyword.value == "endpoint":
                if not isinstance(arg.value, cst.SimpleString):
                    return None
                name = arg.value.evaluated_value
        if name not in names:
            names.append(name)
    return names


def module_subclasses(module: cst.Module, imports: ImportMap,
                      bases: frozenset[str] = VIEW_CLASSES) -> list[cst.ClassDef]:
    """Module-level classes deriving directly from one of `bases` (by default Flask's
    View and MethodView; extension resources, Thread, ... when given)."""
    return [stmt for stmt in module.body if isinstance(stmt, cst.ClassDef)
            and any(imports.resolve(base.value) in bases for base in stmt.bases)]


def view_class_methods(module: cst.Module, imports: ImportMap) -> set[str]:
    """Qualnames (`UserAPI.get`) of the request-handling methods of View/MethodView subclasses."""
    found = set()
    for cls in module_subclasses(module, imports):
        for item in cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ():
            if isinstance(item, cst.FunctionDef) and item.name.value in VIEW_METHODS:
                found.add(f"{cls.name.value}.{item.name.value}")
    return found


# -- blueprints ------------------------------------------------------------------------------

def find_blueprints(project: Project) -> dict[str, str | None]:
    """Qualified name of every module-level Blueprint object -> its name (None when the
    name is not a literal, or the blueprint is registered renamed or nested).
    Computed once per project revision."""
    def compute(proj: Project) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for path, module in app_modules(proj, ("Blueprint",)):
            imports = import_map(proj, path)
            module_name = proj.module_name(path) or path
            for stmt in module.body:
                assigned = assigned_name(stmt)
                if not assigned or not is_call_to(assigned[1], imports, BLUEPRINT_CLASSES):
                    continue
                call = assigned[1]
                name_arg = next((a.value for a in call.args if a.keyword and a.keyword.value == "name"), None)
                if name_arg is None and call.args and call.args[0].keyword is None:
                    name_arg = call.args[0].value
                name = name_arg.evaluated_value if isinstance(name_arg, cst.SimpleString) else None
                found[f"{module_name}.{assigned[0]}"] = name
        _forget_renamed(proj, found)
        return found

    return project.fact("routes.blueprints", compute)


def local_blueprints(module: cst.Module, module_name: str | None, path: str, imports: ImportMap,
                     blueprints: dict[str, str | None]) -> dict[str, str]:
    """Local names of Blueprint objects in a module (defined or imported there) -> their
    qualified names; `blueprints` is `find_blueprints(project)`."""
    local = {}
    prefix = f"{module_name or path}."
    for qualified in _blueprints_named_in(blueprints, prefix, imports):
        if qualified.startswith(prefix) and "." not in qualified[len(prefix):]:
            local[qualified[len(prefix):]] = qualified
        for name in imports.local_names_for(qualified):
            local[name] = qualified
    return local


def _blueprints_named_in(blueprints: dict[str, str | None], prefix: str, imports: ImportMap) -> list[str]:
    """Of `blueprints`, in their order, those under `prefix` (the module's own) or under
    what one of its imports names: the only ones `local_blueprints` may bind, read off an
    index of their dotted prefixes. Testing every blueprint against every module made it
    quadratic in an app with a blueprint per views module."""
    order, under = _prefix_index(tuple(blueprints))
    found = set(under.get(prefix[:-1], ()))
    for target in imports.names.values():
        found.update(under.get(target, ()))
    return sorted(found, key=order.__getitem__)


@functools.lru_cache(maxsize=4)  # asked for every module, with the same blueprints
def _prefix_index(qualified_names: tuple[str, ...]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """(each blueprint's place, dotted name -> the blueprints named so or under it)."""
    under: dict[str, list[str]] = {}
    for qualified in qualified_names:
        parts = qualified.split(".")
        for end in range(1, len(parts) + 1):
            under.setdefault(".".join(parts[:end]), []).append(qualified)
    return {qualified: place for place, qualified in enumerate(qualified_names)}, under


def blueprint_variables(project: Project) -> dict[str, set[str]]:
    """Path -> the names that hold a Blueprint object in that module: assigned anywhere
    (`bp = Blueprint(...)`, also inside an app factory, `self.bp = Blueprint(...)`) or
    imported from the module that binds them. Unlike `find_blueprints` this needs no
    literal name: it answers "is this object a blueprint", not "what are its endpoints
    called". Computed once per project revision."""
    def compute(proj: Project) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        # the class is named wherever one is made; only the app's code can hold the app's
        for path, module in app_modules(proj, ("Blueprint",)):
            found[path] = _assigned_instances(module, import_map(proj, path) or ImportMap(), BLUEPRINT_CLASSES)
        defined = {f"{proj.module_name(path)}.{name}" for path, names in found.items()
                   for name in names if proj.module_name(path) and "." not in name}
        for path in import_reach(proj) if defined else ():  # importers (of app modules): from the index
            imports = import_map(proj, path) or ImportMap()
            imported = {local for local, target in imports.names.items() if target in defined}
            if imported:
                found.setdefault(path, set()).update(imported)
        return found

    return project.fact("routes.blueprint-variables", compute)


def _assigned_instances(module: cst.Module, imports: ImportMap, classes: frozenset[str]) -> set[str]:
    """Names (`bp`, `self.bp`) assigned anywhere in the module a new instance of `classes`."""
    names: set[str] = set()
    finder = _SmallStatements()
    finder.walk(module)
    for small in finder.found:
        if (isinstance(small, cst.Assign) and isinstance(small.value, cst.Call)
                and imports.resolve(small.value.func) in classes):
            for target in small.targets:
                name = get_full_name_for_node(target.target)
                if name:
                    names.add(name)
    return names


class _SmallStatements(ReadOnlyVisitor):
    """Every small statement, in order: they are found in lines and suites, so no
    expression is walked."""

    def __init__(self) -> None:
        self.found: list[cst.BaseSmallStatement] = []

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        self.found.extend(node.body)
        return False

    def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> bool:
        self.found.extend(node.body)
        return False


def _forget_renamed(project: Project, found: dict[str, str | None]) -> None:
    """A blueprint registered under another name (`name=`) or nested in another blueprint
    gets other endpoint names: treat its name as unknown."""
    for path, module in app_modules(project, ("register_blueprint",)):
        imports = import_map(project, path)
        local = local_blueprints(module, project.module_name(path), path, imports, found)

        class Visitor(ReadOnlyVisitor):
            def visit_Call(self, node: cst.Call) -> None:
                func = node.func
                if not (isinstance(func, cst.Attribute) and func.attr.value == "register_blueprint" and node.args):
                    return
                target = local.get(get_full_name_for_node(node.args[0].value) or "")
                renamed = any(a.keyword and a.keyword.value == "name" for a in node.args)
                nested = (get_full_name_for_node(func.value) or "") in local
                if target and (renamed or nested):
                    found[target] = None

        Visitor().walk(module)
