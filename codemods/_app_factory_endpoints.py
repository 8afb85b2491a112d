"""Qualifying endpoint names in Python code for `app-factory`: `url_for("index")` ->
`url_for("main.index")`, `login_manager.login_view`, `request.endpoint` comparisons."""

from __future__ import annotations

import libcst as cst

from flask_refactor.walk import ReadOnlyVisitor

from .support.imports import ImportMap

URL_FOR = frozenset({"flask.url_for", "flask.helpers.url_for"})
# Fields that build URLs from endpoint names: Flask-Marshmallow (also reached through a
# `ma = Marshmallow()` object, so matched by attribute name too) and flask_restful.
ENDPOINT_FIELDS = frozenset({
    "flask_marshmallow.fields.URLFor", "flask_marshmallow.fields.UrlFor",
    "flask_marshmallow.fields.AbsoluteURLFor", "flask_marshmallow.fields.AbsoluteUrlFor",
    "flask_restful.fields.Url",
})
ENDPOINT_FIELD_NAMES = frozenset(name.rsplit(".", 1)[1] for name in ENDPOINT_FIELDS if "marshmallow" in name)
REQUEST_ENDPOINT = frozenset({"flask.request.endpoint", "flask.globals.request.endpoint"})
# Flask-Login's manager attributes that hold endpoint names.
ENDPOINT_ATTRIBUTES = frozenset({"login_view", "refresh_view"})


def _requalified(node: cst.BaseExpression, endpoints: dict[str, str]) -> cst.BaseExpression | None:
    if not isinstance(node, cst.SimpleString) or node.prefix or node.quote not in ("'", '"'):
        return None
    body = node.value[1:-1]
    new = endpoints.get(body[1:] if body.startswith(".") else body)
    return node.with_changes(value=f"{node.quote}{new}{node.quote}") if new else None


def endpoint_argument(call: cst.Call) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "endpoint":
            return arg
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return positional[0] if positional else None


class EndpointQualifier(cst.CSTTransformer):
    def __init__(self, imports: ImportMap, endpoints: dict[str, str]) -> None:
        self.imports = imports
        self.endpoints = endpoints
        self.count = 0

    def _swap(self, node: cst.BaseExpression) -> cst.BaseExpression:
        new = _requalified(node, self.endpoints)
        if new is None:
            return node
        self.count += 1
        return new

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        if not builds_urls(updated, self.imports):
            return updated
        target = endpoint_argument(updated)
        if target is None:
            return updated
        new_value = self._swap(target.value)
        if new_value is target.value:
            return updated
        return updated.with_changes(args=[a.with_changes(value=new_value) if a is target else a for a in updated.args])

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        if all(isinstance(t.target, cst.Attribute) and t.target.attr.value in ENDPOINT_ATTRIBUTES
               for t in updated.targets):
            return updated.with_changes(value=self._swap(updated.value))
        return updated

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> cst.Subscript:
        """`app.view_functions["index"]` (or `current_app.view_functions[...]`)."""
        if (isinstance(updated.value, cst.Attribute) and updated.value.attr.value == "view_functions"
                and len(updated.slice) == 1 and isinstance(updated.slice[0].slice, cst.Index)):
            element = updated.slice[0]
            index = element.slice.with_changes(value=self._swap(element.slice.value))
            return updated.with_changes(slice=[element.with_changes(slice=index)])
        return updated

    def leave_Comparison(self, original: cst.Comparison, updated: cst.Comparison) -> cst.Comparison:
        sides = [updated.left, *(c.comparator for c in updated.comparisons)]
        if not any(self.imports.resolve(side) in REQUEST_ENDPOINT for side in sides):
            return updated
        left = self._swap(updated.left)
        comparisons = []
        for target in updated.comparisons:
            value = target.comparator
            if isinstance(value, (cst.Tuple, cst.List, cst.Set)):
                value = value.with_changes(elements=[e.with_changes(value=self._swap(e.value)) for e in value.elements])
            else:
                value = self._swap(value)
            comparisons.append(target.with_changes(comparator=value))
        return updated.with_changes(left=left, comparisons=comparisons)


def builds_urls(call: cst.Call, imports: ImportMap) -> bool:
    qualified = imports.resolve(call.func)
    if qualified in URL_FOR or qualified in ENDPOINT_FIELDS:
        return True
    return isinstance(call.func, cst.Attribute) and call.func.attr.value in ENDPOINT_FIELD_NAMES


class DynamicEndpointFinder(ReadOnlyVisitor):
    """`url_for(variable)`: the endpoint cannot be checked or qualified."""

    def __init__(self, imports: ImportMap) -> None:
        self.imports = imports
        self.found: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        if builds_urls(node, self.imports):
            target = endpoint_argument(node)
            if target is None or isinstance(target.value, (cst.SimpleString, cst.ConcatenatedString)):
                return
            if self.imports.resolve(target.value) in REQUEST_ENDPOINT:
                return  # the current request's endpoint: already qualified after the move
            self.found.append(node)
