"""Finding the hand-built error responses of views, and deciding which ones `abort` can
replace without changing a byte of what clients see. Used by `error_handling`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.walk import WHITESPACE, ReadOnlyVisitor, iter_nodes

from .support.errors import (
    ABORT_FUNCTIONS, JSONIFY, MAKE_RESPONSE, NOT_FOUND_HELPERS, REQUEST_MULTIDICTS, TRANSACTION_METHODS,
    http_errors, status_code,
)
from .support.flask import parameter_names
from .support.imports import ImportMap

# Exceptions an `except` clause may name without catching an HTTPException.
NARROW_BUILTIN_EXCEPTIONS = frozenset({
    "ValueError", "KeyError", "IndexError", "TypeError", "AttributeError", "ZeroDivisionError",
    "ArithmeticError", "OSError", "IOError", "FileNotFoundError", "PermissionError", "UnicodeError",
    "UnicodeDecodeError", "UnicodeEncodeError", "StopIteration", "NotImplementedError", "OverflowError",
    "TimeoutError", "ConnectionError", "RecursionError", "AssertionError", "NameError", "ImportError",
})
STRING_FUNCTIONS = frozenset({"str", "repr", "format"})
STRING_METHODS = frozenset({"format", "join", "strip", "lower", "upper", "title", "capitalize", "replace"})


@dataclass(frozen=True)
class Shape:
    """How an error response is rendered: JSON with one key, or a plain-text body."""

    kind: str  # "json" or "text"
    key: str = ""

    def label(self) -> str:
        return f'JSON {{"{self.key}": ...}}' if self.kind == "json" else "plain text (text/html)"


@dataclass
class Body:
    """What an error `return` sends: its shape when it is one `abort` can reproduce."""

    label: str  # for the consistency report
    shape: Shape | None = None
    description: cst.BaseExpression | None = None
    problem: str | None = None  # why abort cannot reproduce it
    convertible_kind: bool = True  # False: a shape this codemod does not try to convert


@dataclass
class Site:
    node: cst.CSTNode  # the Return or Raise small statement
    positions: Callable[[cst.CSTNode], tuple[int, int]]  # for `line`, looked up only if a report needs it
    kind: str  # "return" or "raise"
    code: int | None = None
    status: cst.BaseExpression | None = None
    body: Body | None = None
    skip: str | None = None
    replacement_args: list[tuple[str, cst.BaseExpression]] = field(default_factory=list)

    @property
    def line(self) -> int:
        return self.positions(self.node)[0]


def error_return(value: cst.BaseExpression | None, imports: ImportMap) -> tuple[Body, list[cst.BaseExpression]] | None:
    """(body, [status, headers...]) for `return body, status[, headers]` or
    `return make_response(body, status[, headers])`; None for anything else."""
    if isinstance(value, cst.Tuple) and len(value.elements) in (2, 3):
        parts = [e.value for e in value.elements]
        if any(isinstance(e, cst.StarredElement) for e in value.elements):
            return None
    elif isinstance(value, cst.Call) and imports.resolve(value.func) in MAKE_RESPONSE and len(value.args) in (2, 3) \
            and all(a.keyword is None and not a.star for a in value.args):
        parts = [a.value for a in value.args]
    else:
        return None
    if isinstance(parts[1], (cst.Dict, cst.List)):
        return None  # `return body, headers`: a 200
    body = classify_body(parts[0], imports)
    return (body, parts[1:]) if body else None


def classify_body(node: cst.BaseExpression, imports: ImportMap) -> Body | None:
    if isinstance(node, cst.Call) and imports.resolve(node.func) in JSONIFY:
        args = node.args
        if len(args) == 1 and args[0].keyword is None and not args[0].star:
            return _dict_body(args[0].value) if isinstance(args[0].value, cst.Dict) else \
                Body("JSON", problem="the JSON body is not a dict literal")
        if args and all(a.keyword is not None for a in args):
            return _keys_body([(a.keyword.value, a.value) for a in args])
        return Body("JSON", problem="the JSON body is not a dict literal")
    if isinstance(node, cst.Dict):
        return _dict_body(node)
    if is_string_expression(node, imports):
        return Body("plain text (text/html)", Shape("text"), node)
    if isinstance(node, cst.Call) and imports.resolve(node.func) == "flask.render_template":
        return Body("HTML template", problem="the body is a rendered template", convertible_kind=False)
    return None


def _dict_body(node: cst.Dict) -> Body:
    pairs = []
    for element in node.elements:
        if not isinstance(element, cst.DictElement) or not isinstance(element.key, cst.SimpleString):
            return Body("JSON", problem="the JSON body has keys that are not string literals")
        pairs.append((element.key.evaluated_value, element.value))
    return _keys_body(pairs)


def _keys_body(pairs: list[tuple[str, cst.BaseExpression]]) -> Body:
    keys = sorted(key for key, _ in pairs)
    label = "JSON {" + ", ".join(f'"{k}"' for k in keys) + "}"
    if len(pairs) != 1:
        return Body(label, problem=f"the body has {len(pairs)} keys ({', '.join(keys)}); the handler renders one")
    key, value = pairs[0]
    return Body(label, Shape("json", key), value)


def is_string_expression(node: cst.BaseExpression, imports: ImportMap) -> bool:
    """Whether `node` always evaluates to a str (never None): literals, f-strings,
    `"..." % x`, `"...".format()`, `str(x)`."""
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
        return not (isinstance(node, cst.SimpleString) and node.prefix.lower().count("b"))
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Modulo, cst.Add)):
        return is_string_expression(node.left, imports)
    if isinstance(node, cst.Call):
        func = node.func
        if isinstance(func, cst.Name) and func.value in STRING_FUNCTIONS and func.value not in imports.names:
            return True
        if isinstance(func, cst.Attribute) and func.attr.value in STRING_METHODS:
            return is_string_expression(func.value, imports)
    return False


def never_none(node: cst.BaseExpression, imports: ImportMap, guards: list[cst.BaseExpression]) -> bool:
    """Whether a description is provably not None (abort would show Werkzeug's default
    text instead): a str expression, a number or container literal, or a value the
    enclosing `if` tested for truth."""
    if is_string_expression(node, imports):
        return True
    if isinstance(node, (cst.Integer, cst.Float, cst.Dict, cst.List, cst.Tuple, cst.DictComp, cst.ListComp)):
        return True
    code = cst.Module(body=[]).code_for_node(node)
    for test in guards:
        if isinstance(test, cst.Comparison) and len(test.comparisons) == 1 \
                and isinstance(test.comparisons[0].operator, cst.IsNot) \
                and get_full_name_for_node(test.comparisons[0].comparator) == "None":
            test = test.left
        if cst.Module(body=[]).code_for_node(test) == code:
            return True
    return False


def raise_site(node: cst.Raise, imports: ImportMap) -> tuple[int, list[tuple[str, cst.BaseExpression]]] | str | None:
    """For `raise NotFound(...)`: (code, keyword arguments for abort), a reason it cannot
    be converted, or None when it does not raise a Werkzeug HTTP error."""
    exc = node.exc
    call = exc if isinstance(exc, cst.Call) else None
    qualified = imports.resolve(call.func if call else exc) if exc is not None else None
    errors = http_errors()
    if qualified not in errors.exception_codes:
        return None
    code = errors.exception_codes[qualified]
    if node.cause is not None:
        return "`raise ... from ...` keeps a cause that abort() cannot set"
    args: list[tuple[str, cst.BaseExpression]] = []
    if call is not None:
        parameters = errors.constructor_parameters[code]
        for index, arg in enumerate(call.args):
            if arg.star:
                return "starred arguments cannot be matched to abort()'s keywords"
            if arg.keyword is not None:
                args.append((arg.keyword.value, arg.value))
            elif index < len(parameters):
                args.append((parameters[index], arg.value))
            else:
                return "more positional arguments than the exception takes"
    return code, args


@dataclass
class ErrorSource:
    """Something in a function that ends the request with an HTTP error by itself."""

    codes: frozenset[int] | None  # None: any code
    what: str
    node: cst.CSTNode | None = None  # where, for the message: resolved only when reported
    positions: object = None
    reason: str = ""  # the whole message, when it is not "the view can also fail with..."

    @property
    def line(self) -> int:
        return self.positions(self.node)[0] if self.node is not None and self.positions else 0


class SourceFinder(ReadOnlyVisitor):
    """Other ways a function raises HTTP errors: abort(), raise NotFound, get_or_404,
    request.get_json(), request.form[...], and calls to project functions."""

    def __init__(self, imports: ImportMap, positions) -> None:
        self.imports = imports
        self.positions = positions
        self.depth = 0
        self.yields = False  # the visited function itself is a generator
        self.sources: list[ErrorSource] = []
        self.called: list[tuple[str, cst.CSTNode]] = []  # (callee dotted text, call)

    def _add(self, codes, what: str, node: cst.CSTNode) -> None:
        self.sources.append(ErrorSource(None if codes is None else frozenset(codes), what, node, self.positions))

    def visit_Call(self, node: cst.Call) -> None:
        resolved = self.imports.resolve(node.func)
        if resolved in ABORT_FUNCTIONS:
            code = status_code(node.args[0].value, self.imports) if node.args else None
            self._add(None if code is None else {code}, "abort()", node)
        elif isinstance(node.func, cst.Attribute) and node.func.attr.value in NOT_FOUND_HELPERS:
            self._add({404}, f"{node.func.attr.value}()", node)
        elif resolved == "flask.request.get_json":
            if not any(a.keyword and a.keyword.value == "silent" and get_full_name_for_node(a.value) == "True"
                       for a in node.args):
                self._add({400, 415}, "request.get_json()", node)
        else:
            name = get_full_name_for_node(node.func)
            if name:
                self.called.append((name, node))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if self.imports.resolve(node) == "flask.request.json":
            self._add({400, 415}, "request.json", node)

    def visit_Subscript(self, node: cst.Subscript) -> None:
        resolved = self.imports.resolve(node.value) or ""
        if resolved.startswith("flask.request.") and resolved.rsplit(".", 1)[1] in REQUEST_MULTIDICTS:
            self._add({400}, f"{get_full_name_for_node(node.value)}[...] (a missing key is a 400)", node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.depth += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.depth -= 1

    def visit_Yield(self, node: cst.Yield) -> None:
        self.yields = self.yields or self.depth == 1

    def visit_Raise(self, node: cst.Raise) -> None:
        found = raise_site(node, self.imports)
        if isinstance(found, tuple):
            self._add({found[0]}, f"raise {get_full_name_for_node(node.exc.func if isinstance(node.exc, cst.Call) else node.exc)}", node)


@dataclass
class Context:
    """What encloses a statement of a view body."""

    guards: list[cst.BaseExpression] = field(default_factory=list)  # `if` tests on the way
    blocker: str | None = None  # why an exception here does not end the request as a return does


def walk_body(statements, context: Context, imports: ImportMap, visit) -> None:
    """Call `visit(small_statement, context)` for every Return/Raise of a function body,
    not descending into nested functions or classes."""
    for stmt in statements:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, (cst.Return, cst.Raise)):
                    visit(small, context)
        elif isinstance(stmt, cst.If):
            walk_body(stmt.body.body, Context([*context.guards, stmt.test], context.blocker), imports, visit)
            if isinstance(stmt.orelse, cst.If):
                walk_body([stmt.orelse], context, imports, visit)
            elif stmt.orelse is not None:
                walk_body(stmt.orelse.body.body, context, imports, visit)
        elif isinstance(stmt, (cst.For, cst.While)):
            walk_body(stmt.body.body, context, imports, visit)
            if stmt.orelse is not None:
                walk_body(stmt.orelse.body.body, context, imports, visit)
        elif isinstance(stmt, cst.Try):
            _walk_try(stmt, context, imports, visit)
        elif isinstance(stmt, cst.With):
            walk_body(stmt.body.body, Context(context.guards, context.blocker or _with_blocker(stmt)), imports, visit)
        elif isinstance(stmt, cst.Match):
            for case in stmt.cases:
                walk_body(case.body.body, context, imports, visit)


def _walk_try(stmt: cst.Try, context: Context, imports: ImportMap, visit) -> None:
    finally_blocker = "inside a try with a `finally:` block" if stmt.finalbody else None
    broad = _broad_handler(stmt, imports)
    body_blocker = context.blocker or (f"inside a try whose `{broad}` would catch the abort" if broad else None) \
        or finally_blocker
    walk_body(stmt.body.body, Context(context.guards, body_blocker), imports, visit)
    rest = Context(context.guards, context.blocker or finally_blocker)
    for handler in stmt.handlers:
        walk_body(handler.body.body, rest, imports, visit)
    if stmt.orelse is not None:
        walk_body(stmt.orelse.body.body, rest, imports, visit)
    if stmt.finalbody is not None:
        walk_body(stmt.finalbody.body.body, context, imports, visit)


def _broad_handler(stmt: cst.Try, imports: ImportMap) -> str | None:
    """The first except clause that may catch an HTTPException, as written."""
    for handler in stmt.handlers:
        if handler.type is None:
            return "except:"
        types = handler.type.elements if isinstance(handler.type, cst.Tuple) else [cst.Element(handler.type)]
        for element in types:
            name = get_full_name_for_node(element.value) or "?"
            resolved = imports.resolve(element.value)
            if resolved is None and name in NARROW_BUILTIN_EXCEPTIONS:
                continue
            if resolved and not resolved.startswith(("werkzeug.", "flask.")):
                continue  # an imported class of another library cannot be a base of HTTPException
            if resolved and resolved.startswith("werkzeug.exceptions.") and resolved != "werkzeug.exceptions.HTTPException" \
                    and resolved not in http_errors().exception_codes:
                continue
            return f"except {name}"
    return None


def catches_around_parameters(func: cst.FunctionDef, imports: ImportMap) -> str | None:
    """The except clause, as written, that may catch an HTTPException (`_broad_handler`)
    of a `try`, in a function nested in `func`, whose body calls a parameter of theirs or
    a callee made from one: a decorator's wrapper calling the view it wraps there
    (`return view(*args, **kwargs)`, `ensure_sync(view)(...)`) catches what the view
    raises, an abort() too. None if there is none. (The `try` of `func`'s own body runs
    when it decorates, not at a request; and any parameter's call counts: a decorator is
    left out for less, never taken in for more.)"""
    functions = [node for node in iter_nodes(func, descend=_holds_statements, skip=WHITESPACE)
                 if isinstance(node, cst.FunctionDef)]
    if len(functions) < 2:
        return None  # nothing nested: no wrapper runs at a request
    parameters = set().union(*(parameter_names(function) for function in functions))
    for nested in functions[1:]:
        for node in iter_nodes(nested.body, skip=WHITESPACE):
            if isinstance(node, cst.Try) and (broad := _broad_handler(node, imports)) is not None \
                    and _calls_one_of(node.body, parameters):
                return broad
    return None


def _holds_statements(node: cst.CSTNode) -> bool:
    """Whether a walk for nested functions must enter `node`: not an expression nor a
    simple statement line, which hold none (the walk of every expression of a large
    app's modules was a tenth of a second)."""
    return not isinstance(node, (cst.SimpleStatementLine, cst.BaseExpression, cst.Decorator, cst.Parameters))


def _calls_one_of(block: cst.BaseSuite, names: set[str]) -> bool:
    """Whether a call under `block` has one of `names` in its callee."""
    return any(isinstance(node, cst.Call) and any(isinstance(inner, cst.Name) and inner.value in names
                                                  for inner in iter_nodes(node.func, skip=WHITESPACE))
               for node in iter_nodes(block, skip=WHITESPACE))


def _with_blocker(stmt: cst.With) -> str:
    for item in stmt.items:
        call = item.item
        if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) \
                and call.func.attr.value in TRANSACTION_METHODS:
            text = get_full_name_for_node(call.func) or call.func.attr.value
            return f"inside `with {text}()`, a transaction block that rolls back on an exception instead of committing"
    text = cst.Module(body=[]).code_for_node(stmt.items[0].item)
    return f"inside `with {text}`, whose exit may treat an exception differently from a return"


def is_generator(func: cst.FunctionDef) -> bool:
    class Finder(ReadOnlyVisitor):
        found = False

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return node is func

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def visit_Yield(self, node: cst.Yield) -> None:
            self.found = True

    finder = Finder()
    finder.walk(func)
    return finder.found


def analyse_function(func: cst.FunctionDef, imports: ImportMap, positions, generator: bool | None = None) -> list[Site]:
    """Every error return and HTTP-exception raise in a function's own body (`generator`:
    whether it yields, when the caller already knows)."""
    sites: list[Site] = []
    generator = [] if generator is None else [generator]  # else computed on the first error return

    def in_generator() -> bool:
        if not generator:
            generator.append(is_generator(func))
        return generator[0]

    def visit(small: cst.CSTNode, context: Context) -> None:
        if isinstance(small, cst.Raise):
            found = raise_site(small, imports)
            if found is None:
                return
            site = Site(small, positions, "raise")
            if isinstance(found, str):
                site.skip = found
            else:
                site.code, site.replacement_args = found
            sites.append(site)
            return
        found = error_return(small.value, imports)
        if found is None:
            return
        body, rest = found
        site = Site(small, positions, "return", body=body, status=rest[0])
        site.code = status_code(rest[0], imports)
        if site.code is None and not isinstance(rest[0], cst.SimpleString) and body.shape is None:
            return  # `return render_template(...), code`: not an error return we know
        if site.code is not None and site.code < 400:
            return  # not an error response
        site.skip = _return_problem(site, body, rest, context, in_generator(), imports)
        if site.skip is None:
            site.replacement_args = [("description", body.description)]
        sites.append(site)

    walk_body(func.body.body, Context(), imports, visit)
    return sites


def _return_problem(site: Site, body: Body, rest, context: Context, generator: bool, imports: ImportMap) -> str | None:
    if generator:
        return "the view is a generator: a return there ends the stream, it is not a response"
    if len(rest) == 2:
        return "the response has headers (a 3-tuple); abort() would drop them"
    if isinstance(rest[0], (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
        return "the status is a string; abort() takes an int code"
    if site.code is None:
        return "the status is not a literal code"
    if site.code not in http_errors().abort_codes:
        return f"abort() cannot raise {site.code} (Werkzeug has no exception for it: LookupError, a 500)"
    if body.problem:
        return body.problem
    if not never_none(body.description, imports, context.guards):
        return ("the message may be None, and abort(description=None) shows Werkzeug's default text; "
                "guard it with `if <message>:` or pass a str")
    return context.blocker
