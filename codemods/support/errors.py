"""Flask and Werkzeug facts about HTTP errors: which codes `abort` can raise, how each
exception class takes its arguments, what sources raise which codes, and where a project
registers error handlers.

The abort codes and constructor signatures are read from the installed Werkzeug (on
first use), so they follow the version the project runs on instead of a copied list.
"""

from __future__ import annotations

import functools
import http
import importlib
import importlib.util
import inspect
import sys
import types
from dataclasses import dataclass

import libcst as cst
from libcst.helpers import get_full_name_for_node

from .imports import ImportMap
from .routes import ERROR_HANDLER_METHODS, registrations

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
        exceptions = _werkzeug_exceptions()
    except ImportError:
        raise WerkzeugMissing("Werkzeug is not installed where flask-refactor runs, so the codes abort() accepts "
                              "cannot be known; install flask-refactor next to the app's Flask") from None
    table = exceptions.default_exceptions
    return HTTPErrors(
        frozenset(table),
        {f"{WERKZEUG_EXCEPTIONS}.{cls.__name__}": code for code, cls in table.items()},
        {code: _constructor_parameters(cls) for code, cls in table.items()},
    )


def _werkzeug_exceptions() -> types.ModuleType:
    """Werkzeug's `exceptions` module. Importing the package runs `werkzeug/__init__.py`,
    which imports its development server and test client (43 ms, 2% of a run on the
    benchmark's library tree); `exceptions` needs neither. So, unless Werkzeug is
    imported already, the module is loaded under a bare stand-in for its package, and
    every Werkzeug module this loaded is then dropped from `sys.modules`: a later `import
    werkzeug` starts afresh. If that goes wrong in any way, the plain import."""
    if "werkzeug" in sys.modules:
        return importlib.import_module(WERKZEUG_EXCEPTIONS)
    spec = importlib.util.find_spec("werkzeug")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("no werkzeug")
    package = types.ModuleType("werkzeug")
    package.__path__ = list(spec.submodule_search_locations)
    before = set(sys.modules)
    sys.modules["werkzeug"] = package
    try:
        return importlib.import_module(WERKZEUG_EXCEPTIONS)
    except Exception:
        loaded = None
    finally:
        for name in set(sys.modules) - before:
            if name == "werkzeug" or name.startswith("werkzeug."):
                del sys.modules[name]
    return loaded or importlib.import_module(WERKZEUG_EXCEPTIONS)


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
    for registration in registrations(module):
        if registration.method not in ERROR_HANDLER_METHODS or registration.call is None or not registration.call.args:
            continue
        code, catch_all = handler_key(registration.call.args[0].value, imports)  # (None, False): an app's own class
        owner = registration.owner or ""
        blueprint = blueprints.get(owner) if registration.method != "app_errorhandler" else None
        if registration.decorated is not None:
            function, node = registration.decorated.name.value, registration.decorated
        else:
            function, node = get_full_name_for_node(registration.function) or "?", registration.node
        found.append(HandlerRegistration(path, positions(node)[0], blueprint, code, catch_all, function))
    return found
