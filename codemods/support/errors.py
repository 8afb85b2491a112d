"""Flask and Werkzeug facts about HTTP errors: which codes `abort` can raise, how each
exception class takes its arguments, what sources raise which codes, and where a project
registers error handlers.

The abort codes and constructor signatures are read from the installed Werkzeug (on
first use), so they follow the version the project runs on instead of a copied list.
"""

from __future__ import annotations

import functools
import http
import inspect
from dataclasses import dataclass

import libcst as cst
from libcst.helpers import get_full_name_for_node

from .flask import BLUEPRINT_CLASSES, ROUTE_DECORATORS, assigned_name, decorator_method, import_map, is_call_to
from .imports import ImportMap

WERKZEUG_EXCEPTIONS = "werkzeug.exceptions"

class WerkzeugMissing(RuntimeError):
    """Werkzeug is not importable: which codes abort() accepts cannot be known."""


@dataclass(frozen=True)
class HTTPErrors:
    """What the installed Werkzeug says about the errors `abort` raises."""

    # `abort(code)` looks the code up in `default_exceptions`; any other code raises
    # LookupError (a 500), so only these codes can be converted.
    abort_codes: frozenset[int]
    # qualified class name -> code, for every class abort can raise (NotFound -> 404)
    exception_codes: dict[str, int]
    # code -> positional parameter names of its class: the first one is not always
    # `description` (405 takes valid_methods first, 416 the length)
    constructor_parameters: dict[int, tuple[str, ...]]


@functools.lru_cache(maxsize=1)
def http_errors() -> HTTPErrors:
    """Read from the installed Werkzeug on first use, so the facts follow the version the
    project runs on instead of a copied list (and importing this module needs no Werkzeug)."""
    try:
        from werkzeug import exceptions
    except ImportError:
        raise WerkzeugMissing("Werkzeug is not installed where flask-refactor runs, so the codes abort() accepts "
                              "cannot be known; install flask-refactor next to the app's Flask") from None
    table = exceptions.default_exceptions
    return HTTPErrors(
        frozenset(table),
        {f"{WERKZEUG_EXCEPTIONS}.{cls.__name__}": code for code, cls in table.items()},
        {code: _constructor_parameters(cls) for code, cls in table.items()},
    )


def _constructor_parameters(cls: type) -> tuple[str, ...]:
    """Names of the positional parameters after `self` (MethodNotAllowed: valid_methods, ...)."""
    names = []
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            names.append(parameter.name)
    return tuple(names)


ABORT_FUNCTIONS = frozenset({"flask.abort", "flask.helpers.abort", f"{WERKZEUG_EXCEPTIONS}.abort"})
HTTP_EXCEPTION = f"{WERKZEUG_EXCEPTIONS}.HTTPException"
# Handlers registered for these classes see every HTTP error (Flask walks the MRO).
CATCH_ALL_CLASSES = frozenset({HTTP_EXCEPTION, "Exception", "BaseException", "builtins.Exception",
                               "builtins.BaseException"})
INTERNAL_SERVER_ERROR = f"{WERKZEUG_EXCEPTIONS}.InternalServerError"

JSONIFY = frozenset({"flask.jsonify", "flask.json.jsonify"})
MAKE_RESPONSE = frozenset({"flask.make_response", "flask.helpers.make_response"})
RESTFUL_RESOURCES = frozenset({"flask_restful.Resource", "flask_restx.Resource"})

# View decorators of extensions that end requests with these codes themselves.
DECORATOR_CODES: dict[str, frozenset[int]] = {
    "flask_login.login_required": frozenset({401}),
    "flask_login.fresh_login_required": frozenset({401}),
    "flask_login.utils.login_required": frozenset({401}),
    "webargs.flaskparser.use_args": frozenset({400, 422}),
    "webargs.flaskparser.use_kwargs": frozenset({400, 422}),
}
# The same by the decorator's last name, for extension objects (`@auth.login_required`
# of Flask-HTTPAuth, `@roles_required` of Flask-Security) that imports cannot resolve.
DECORATOR_NAME_CODES: dict[str, frozenset[int]] = {
    "login_required": frozenset({401, 403}),
    "fresh_login_required": frozenset({401}),
    "roles_required": frozenset({401, 403}),
    "roles_accepted": frozenset({401, 403}),
    "permission_required": frozenset({401, 403}),
    "use_args": frozenset({400, 422}),
    "use_kwargs": frozenset({400, 422}),
}

# Calls that end a request with 404 (Flask-SQLAlchemy's query helpers).
NOT_FOUND_HELPERS = frozenset({"get_or_404", "first_or_404", "one_or_404"})
# Reading these request attributes raises 400 (BadRequestKeyError) for a missing key.
REQUEST_MULTIDICTS = frozenset({"form", "args", "files", "values", "cookies", "headers"})

# `with` contexts that commit on success and roll back when an exception leaves them.
TRANSACTION_METHODS = frozenset({"begin", "begin_nested", "atomic", "transaction"})

HANDLER_METHODS = frozenset({"errorhandler", "app_errorhandler", "register_error_handler"})


def status_code(node: cst.BaseExpression, imports: ImportMap) -> int | None:
    """The int a status expression always evaluates to: `404` or `HTTPStatus.NOT_FOUND`."""
    if isinstance(node, cst.Integer):
        return int(node.value)
    qualified = imports.resolve(node)
    if qualified and qualified.startswith("http.HTTPStatus."):
        member = qualified.rsplit(".", 1)[1]
        return http.HTTPStatus[member].value if member in http.HTTPStatus.__members__ else None
    return None


@dataclass(frozen=True)
class HandlerRegistration:
    """An existing error handler: on an app (`blueprint` None) or a blueprint, for a code
    (`code`), a class that sees every HTTP error (`catch_all`), or neither (a class of the
    app's own)."""

    path: str
    line: int
    blueprint: str | None
    code: int | None
    catch_all: bool
    function: str

    def describe(self) -> str:
        target = self.code if self.code is not None else "every HTTP error" if self.catch_all else "an exception class"
        return f"the error handler {self.function} ({self.path}:{self.line}) for {target}"


def handler_key(node: cst.BaseExpression, imports: ImportMap) -> tuple[int | None, bool]:
    """(code, catch_all) an `errorhandler(...)` argument registers for."""
    code = status_code(node, imports)
    if code is not None:
        return code, False
    qualified = imports.resolve(node) or get_full_name_for_node(node) or ""
    exception_codes = http_errors().exception_codes
    if qualified in exception_codes:
        return exception_codes[qualified], False  # Flask files a class under its code
    return None, qualified in CATCH_ALL_CLASSES


def registrations_in(module: cst.Module, path: str, imports: ImportMap, blueprints: dict[str, str],
                     positions) -> list[HandlerRegistration]:
    """Every error handler registration in a module: decorator and call forms.

    `blueprints` maps local names of Blueprint objects to their qualified name;
    `app_errorhandler` on a blueprint registers on the app."""
    found: list[HandlerRegistration] = []

    def add(owner: str, method: str, argument: cst.BaseExpression, function: str, node: cst.CSTNode) -> None:
        code, catch_all = handler_key(argument, imports)  # (None, False): an app-specific exception class
        blueprint = blueprints.get(owner) if method != "app_errorhandler" else None
        found.append(HandlerRegistration(path, positions(node)[0], blueprint, code, catch_all, function))

    class Visitor(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            for decorator in node.decorators:
                method = decorator_method(decorator)
                if method and method[1] in HANDLER_METHODS and isinstance(decorator.decorator, cst.Call) \
                        and decorator.decorator.args:
                    add(method[0], method[1], decorator.decorator.args[0].value, node.name.value, node)

        def visit_Call(self, node: cst.Call) -> None:
            func = node.func
            if isinstance(func, cst.Call):  # app.errorhandler(404)(handler)
                inner = func.func
                if isinstance(inner, cst.Attribute) and inner.attr.value in HANDLER_METHODS and func.args and node.args:
                    add(get_full_name_for_node(inner.value) or "", inner.attr.value, func.args[0].value,
                        get_full_name_for_node(node.args[0].value) or "?", node)
            elif isinstance(func, cst.Attribute) and func.attr.value == "register_error_handler" and len(node.args) >= 2:
                add(get_full_name_for_node(func.value) or "", "register_error_handler", node.args[0].value,
                    get_full_name_for_node(node.args[1].value) or "?", node)

    module.visit(Visitor())
    return found


def route_owner(func: cst.FunctionDef) -> tuple[str, list[cst.Decorator]] | None:
    """For a view (`@x.route(...)`, `@x.get(...)`, ...): the owner's text and its route decorators."""
    owner, routes = None, []
    for decorator in func.decorators:
        method = decorator_method(decorator)
        if method and method[1] in ROUTE_DECORATORS and isinstance(decorator.decorator, cst.Call):
            if owner is not None and owner != method[0]:
                return None  # one function on two apps/blueprints: not a simple view
            owner = method[0]
            routes.append(decorator)
    return (owner, routes) if owner else None


def endpoints_of(func: cst.FunctionDef, routes: list[cst.Decorator]) -> list[str] | None:
    """Endpoint names a view is registered under (without the blueprint prefix); None
    when an `endpoint=` argument is not a literal."""
    names = []
    for decorator in routes:
        name = func.name.value
        for arg in decorator.decorator.args:
            if arg.keyword and arg.keyword.value == "endpoint":
                if not isinstance(arg.value, cst.SimpleString):
                    return None
                name = arg.value.evaluated_value
        if name not in names:
            names.append(name)
    return names


def find_blueprints(project) -> dict[str, str | None]:
    """Qualified name of every module-level Blueprint object -> its name (None when the
    name is not a literal). Computed once per project revision."""
    def compute(proj) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for path, module in proj.modules(("Blueprint",)):
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

    return project.fact("errors.blueprints", compute)


def local_blueprints(module: cst.Module, module_name: str | None, path: str, imports: ImportMap,
                     blueprints: dict[str, str | None]) -> dict[str, str]:
    """Local names of Blueprint objects in a module -> their qualified names."""
    local = {}
    prefix = f"{module_name or path}."
    for qualified in blueprints:
        if qualified.startswith(prefix) and "." not in qualified[len(prefix):]:
            local[qualified[len(prefix):]] = qualified
        for name in imports.local_names_for(qualified):
            local[name] = qualified
    return local


def _forget_renamed(project, found: dict[str, str | None]) -> None:
    """A blueprint registered under another name (`name=`) or nested in another blueprint
    gets other endpoint names: treat its name as unknown."""
    for path, module in project.modules(("register_blueprint",)):
        imports = import_map(project, path)
        local = local_blueprints(module, project.module_name(path), path, imports, found)

        class Visitor(cst.CSTVisitor):
            def visit_Call(self, node: cst.Call) -> None:
                func = node.func
                if not (isinstance(func, cst.Attribute) and func.attr.value == "register_blueprint" and node.args):
                    return
                target = local.get(get_full_name_for_node(node.args[0].value) or "")
                renamed = any(a.keyword and a.keyword.value == "name" for a in node.args)
                nested = (get_full_name_for_node(func.value) or "") in local
                if target and (renamed or nested):
                    found[target] = None

        module.visit(Visitor())
