"""Error responses of a JSON API: unexpected exceptions, shapes (FR109, FR110)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.audit import Rule
from flask_refactor.codemod import Finding, Severity
from flask_refactor.project import Project

from .audit_common import string_value
from .audit_views import body_nodes, functions, is_test_path, routes
from .flask import find_apps, import_map
from .imports import ImportMap
from .routes import ERROR_HANDLER_METHODS, registrations


# -- FR109 / FR110 ---------------------------------------------------------------------

CATCH_ALL = frozenset({"Exception", "BaseException", "builtins.Exception", "werkzeug.exceptions.HTTPException",
                       "werkzeug.exceptions.InternalServerError", "werkzeug.exceptions.default_exceptions"})
JSONIFY = frozenset({"flask.jsonify", "flask.json.jsonify"})


@dataclass(frozen=True)
class ErrorResponse:
    path: str
    line: int
    status: int
    keys: frozenset[str] | None  # None: not a literal shape


def json_error_responses(project: Project) -> list[ErrorResponse]:
    """`return jsonify(...), 4xx/5xx` and `return {...}, 4xx/5xx` in views, in source order."""
    def compute(proj: Project) -> list[ErrorResponse]:
        found = []
        known = functions(proj)
        for route in routes(proj):
            if is_test_path(route.path):
                continue
            imports = import_map(proj, route.path) or ImportMap()
            positions = proj.position_lookup(route.path)
            for node in body_nodes(known[route.key]):
                response = _json_error(node, imports)
                if response is not None:
                    found.append(ErrorResponse(route.path, positions(node)[0], *response))
        return sorted(set(found), key=lambda r: (r.path, r.line))
    return project.fact("audit.json-error-responses", compute)


def _json_error(node: cst.CSTNode, imports: ImportMap) -> tuple[int, frozenset[str] | None] | None:
    if not isinstance(node, cst.Return) or not isinstance(node.value, cst.Tuple) or len(node.value.elements) < 2:
        return None
    body, status = node.value.elements[0].value, node.value.elements[1].value
    if not isinstance(status, cst.Integer) or int(status.value) < 400:
        return None
    if isinstance(body, cst.Dict):
        return int(status.value), _dict_keys(body)
    if isinstance(body, cst.Call) and imports.resolve(body.func) in JSONIFY:
        keywords = [a for a in body.args if a.keyword is not None]
        if keywords and len(keywords) == len(body.args):
            return int(status.value), frozenset(a.keyword.value for a in keywords)
        if len(body.args) == 1 and isinstance(body.args[0].value, cst.Dict):
            return int(status.value), _dict_keys(body.args[0].value)
        return int(status.value), None
    return None


def _dict_keys(node: cst.Dict) -> frozenset[str] | None:
    keys = set()
    for element in node.elements:
        key = string_value(element.key) if isinstance(element, cst.DictElement) else None
        if not isinstance(key, str):
            return None
        keys.add(key)
    return frozenset(keys)


def catch_all_handlers(project: Project) -> list[tuple[str, int]]:
    """Where a handler for unexpected exceptions is registered: `errorhandler(500)`,
    `errorhandler(Exception)`, `HTTPException` or `InternalServerError` handlers (Flask
    looks an unhandled exception's 500 up along InternalServerError's MRO)."""
    found = []
    for path, module in project.modules(("errorhandler", "register_error_handler")):
        imports = import_map(project, path) or ImportMap()
        positions = project.position_lookup(path)
        for registration in registrations(module):
            if registration.method in ERROR_HANDLER_METHODS and registration.call and registration.call.args \
                    and _catches_unexpected(registration.call.args[0].value, imports):
                found.append((path, positions(registration.node)[0]))
    return found


def _catches_unexpected(node: cst.BaseExpression, imports: ImportMap) -> bool:
    if isinstance(node, cst.Integer):
        return node.value == "500"
    name = imports.resolve(node) or get_full_name_for_node(node) or ""
    return name in CATCH_ALL or name.endswith(".InternalServerError")


class UnhandledExceptions(Rule):
    id = "FR109"
    name = "unhandled-exception"
    severity = Severity.WARNING
    summary = "A JSON API without a handler for unexpected exceptions (they get an HTML 500 page)."
    explain = '''\
When a view raises something it did not expect, Flask logs it and answers with its
default 500 page, which is HTML. In an app whose views answer errors with JSON, that is
the one error clients cannot parse, and it is the one that matters most. The rule
reports apps whose views return JSON error responses (`return jsonify(...), 404`) when
no handler for 500, `InternalServerError`, `HTTPException` or `Exception` is registered
anywhere in the project. (The `error-handling` codemod turns hand-built error responses
into `abort()` with handlers that keep their bytes; its `unexpected-errors` option adds
an `errorhandler(Exception)` that logs, which you can then make answer in JSON.)

Bad:

    @app.get("/items/<int:id>")
    def item(id):
        ...
        return jsonify(error="not found"), 404
    # and nothing handles a crash: clients get <!doctype html>...

Good:

    @app.errorhandler(InternalServerError)
    def internal_error(error):
        return jsonify(error="internal server error"), 500
'''

    def check(self, project: Project) -> Iterable[Finding]:
        responses = json_error_responses(project)
        if not responses or catch_all_handlers(project):
            return
        first = responses[0]
        more = f" and {len(responses) - 1} more" if len(responses) > 1 else ""
        message = (f"views answer errors with JSON ({first.path}:{first.line}{more}) but nothing handles unexpected "
                   "exceptions: a bug answers with Flask's HTML 500 page, which API clients cannot parse; register "
                   "an errorhandler for InternalServerError (or Exception) that logs and returns the same JSON shape")
        apps = [a for a in find_apps(project) if not is_test_path(a.path)]
        if apps:
            yield self.finding(apps[0].path, apps[0].line, message)
        else:
            yield self.finding(first.path, first.line, message)


class ErrorShapes(Rule):
    id = "FR110"
    name = "error-shapes"
    severity = Severity.INFO
    summary = "JSON error responses of different shapes in one API."
    explain = '''\
Clients of an API handle errors by shape: `{"error": "..."}` from one endpoint and
`{"message": "...", "code": 3}` from another means every client handles both, and
usually one of them badly. The rule compares the keys of the JSON error bodies views
return with a 4xx/5xx status and reports the ones that differ from the most common
shape. Raising `abort(404, description=...)` everywhere and rendering every HTTP error
with one registered handler gives one shape by construction. (The `error-handling`
codemod converts views to `abort()` but keeps each shape's bytes: it is a first step.)

Bad:

    return jsonify(error="no such order"), 404
    return jsonify(message="out of stock", code=7), 409

Good:

    abort(404, description="no such order")
    abort(409, description="out of stock")
    # one @app.errorhandler(HTTPException) renders {"error": e.description}
'''

    def check(self, project: Project) -> Iterable[Finding]:
        shaped = [r for r in json_error_responses(project) if r.keys is not None]
        counts: dict[frozenset[str], list[ErrorResponse]] = {}
        for response in shaped:
            counts.setdefault(response.keys, []).append(response)
        if len(counts) < 2:
            return
        common = max(counts, key=lambda keys: (len(counts[keys]), sorted(keys)))
        example = counts[common][0]
        for keys, responses in counts.items():
            if keys == common:
                continue
            for response in responses:
                yield self.finding(response.path, response.line,
                                   f"error body with keys {_shape(keys)}, while {len(counts[common])} other error "
                                   f"response(s) use {_shape(common)} (e.g. {example.path}:{example.line}): clients "
                                   "must handle each shape; use one")


def _shape(keys: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(keys)) + "}"
