"""Writing the code `error_handling` adds: abort() calls, the scoped handlers (new, or an
earlier run's extended), imports, and the optional Exception handler."""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.project import Project
from flask_refactor.snippets import parse_statement, parsing_config
from flask_refactor.walk import ReadOnlyVisitor, TargetedTransformer, iter_nodes

from ._error_handling_sites import Shape, Site
from .support.errors import ABORT_FUNCTIONS, INTERNAL_SERVER_ERROR
from .support.flask import assigned_name, module_defines
from .support.imports import ImportMap
from .support.imports import add_imports as add_imports_anywhere
from .support.routes import decorator_registrations

if TYPE_CHECKING:
    from .error_handling import Handler


# -- recognising an earlier run's handler ------------------------------------------

def recognise_own_handler(func: cst.FunctionDef) -> tuple[str, Shape, set] | None:
    """(owner, shape, pairs) when `func` is a handler this codemod generated."""
    owners = {r.owner for r in decorator_registrations(func) if r.method == "errorhandler"}
    if len(owners) != 1 or not isinstance(func.body, cst.IndentedBlock):
        return None
    pairs, shape = None, None
    for stmt in func.body.body:
        if not isinstance(stmt, cst.SimpleStatementLine) or not isinstance(stmt.body[0], cst.Assign):
            continue
        assign = stmt.body[0]
        target = get_full_name_for_node(assign.targets[0].target)
        if target == "converted" and isinstance(assign.value, cst.Set):
            pairs = _literal_pairs(assign.value)
        elif target == "response" and isinstance(assign.value, cst.Call) and assign.value.args:
            shape = _rendered_shape(assign.value.args[0].value)
    if pairs is None or shape is None:
        return None
    return owners.pop(), shape, pairs


def _literal_pairs(node: cst.Set) -> set[tuple[str, int]] | None:
    pairs = set()
    for element in node.elements:
        value = element.value
        if not (isinstance(value, cst.Tuple) and len(value.elements) == 2
                and isinstance(value.elements[0].value, cst.SimpleString)
                and isinstance(value.elements[1].value, cst.Integer)):
            return None
        pairs.add((value.elements[0].value.evaluated_value, int(value.elements[1].value.value)))
    return pairs


def _rendered_shape(node: cst.BaseExpression) -> Shape | None:
    """The shape of `jsonify({"key": error.description})` or `error.description`."""
    if get_full_name_for_node(node) == "error.description":
        return Shape("text")
    if isinstance(node, cst.Call) and len(node.args) == 1 and isinstance(node.args[0].value, cst.Dict):
        elements = node.args[0].value.elements
        if len(elements) == 1 and isinstance(elements[0].key, cst.SimpleString) \
                and get_full_name_for_node(elements[0].value) == "error.description":
            return Shape("json", elements[0].key.evaluated_value)
    return None


def extend_own_handler(handler: Handler, module: cst.Module) -> cst.FunctionDef:
    """The earlier run's handler with the new pairs and a decorator for each new code."""
    func = handler.existing.func
    known = {code for _, code in handler.existing.pairs}
    new_codes = sorted({code for _, code in handler.pairs} - known)
    decorators = list(func.decorators) + [
        cst.Decorator(cst.parse_expression(f"{handler.owner}.errorhandler({code})")) for code in new_codes]
    return _with_converted(func, handler.pairs, module, handler.existing.depth + 1).with_changes(decorators=decorators)


def _with_converted(func: cst.FunctionDef, pairs: set[tuple[str, int]], module: cst.Module,
                    depth: int) -> cst.FunctionDef:
    """The handler with its `converted = ...` line (`depth` blocks deep) listing these pairs."""
    converted = "".join(line[4:] for line in _converted_statement(pairs).splitlines(keepends=True))
    statement = _parse_at_depth(converted, module, depth)
    body = []
    for stmt in func.body.body:
        if isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Assign) \
                and get_full_name_for_node(stmt.body[0].targets[0].target) == "converted":
            stmt = statement.with_changes(leading_lines=stmt.leading_lines)
        body.append(stmt)
    return func.with_changes(body=func.body.with_changes(body=body))


def _converted_statement(pairs: set[tuple[str, int]]) -> str:
    """`    converted = {...}` (4-space indented): one line when short, else a pair per line."""
    ordered = sorted(pairs, key=lambda p: (p[1], p[0]))
    pair_text = ", ".join(f"({_quote(endpoint)}, {code})" for endpoint, code in ordered)
    if len(pair_text) <= 60:
        return f"    converted = {{{pair_text}}}\n"
    return "    converted = {\n" + "".join(f"        ({_quote(e)}, {c}),\n" for e, c in ordered) + "    }\n"


# -- generating code -----------------------------------------------------------------

class Names:
    """Local names for Flask objects in a module, and the imports to add for them."""

    def __init__(self, module: cst.Module, imports: ImportMap) -> None:
        self.module = module
        self.imports_map = imports
        self.imports: set[tuple[str, str]] = set()
        self.failed: str | None = None

    def check(self, qualified: str) -> None:
        """Record (in `failed`) whether `qualified` can be named here, importing nothing."""
        if not self._existing(qualified) and module_defines(self.module, qualified.rpartition(".")[2]):
            self.failed = f"the name {qualified.rpartition('.')[2]} is taken in this module, so {qualified} " \
                          "cannot be imported"

    def _existing(self, qualified: str) -> list[str]:
        names = self.imports_map.local_names_for(qualified)
        if not names and qualified == "flask.abort":
            names = [n for q in ABORT_FUNCTIONS for n in self.imports_map.local_names_for(q)]
        return names

    def get(self, qualified: str) -> str:
        names = self._existing(qualified)
        if not names and qualified == "flask.abort":
            names = [n for q in ABORT_FUNCTIONS for n in self.imports_map.local_names_for(q)]
        if names:
            return min(names, key=len)
        source, _, short = qualified.rpartition(".")
        if module_defines(self.module, short):
            self.failed = f"the name {short} is taken in this module, so {qualified} cannot be imported"
        else:
            self.imports.add((source, short))
        return short


def abort_statement(site: Site, abort_name: str) -> cst.Expr:
    status = site.status if site.kind == "return" else cst.Integer(str(site.code))
    no_space = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))
    args = [cst.Arg(status)] + [cst.Arg(_without_parentheses(value), keyword=cst.Name(key), equal=no_space)
                                for key, value in site.replacement_args]
    call = cst.Call(func=cst.parse_expression(abort_name), args=args)
    return cst.Expr(call, semicolon=site.node.semicolon)


def _without_parentheses(value: cst.BaseExpression) -> cst.BaseExpression:
    """`("text")` -> `"text"`: an argument needs no parentheses of its own."""
    if isinstance(value, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)) and value.lpar \
            and not any(isinstance(n, cst.Comment) for paren in (*value.lpar, *value.rpar) for n in iter_nodes(paren)):
        return value.with_changes(lpar=[], rpar=[])
    return value


def bound_names(module: cst.Module) -> set[str]:
    names = set(ImportMap.of(module).names)
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            names.add(stmt.name.value)
            if isinstance(stmt, cst.FunctionDef) and isinstance(stmt.body, cst.IndentedBlock):
                names.update(s.name.value for s in stmt.body.body if isinstance(s, (cst.FunctionDef, cst.ClassDef)))
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign):
                    names.update(t.target.value for t in small.targets if isinstance(t.target, cst.Name))
    return names


def handler_function(handler: Handler, names: Names, taken: set[str], module: cst.Module,
                      nested: bool) -> cst.FunctionDef:
    shape = handler.shape
    base = f"render_{shape.key}_response" if shape.kind == "json" and shape.key.isidentifier() else (
        "render_error_response" if shape.kind == "json" else "render_text_error")
    func_name, counter = base, 2
    while func_name in taken:
        func_name, counter = f"{base}_{counter}", counter + 1
    taken.add(func_name)
    request = names.get("flask.request")
    make_response = names.get("flask.make_response")
    if shape.kind == "json":
        body = f"{names.get('flask.jsonify')}({{{_quote(shape.key)}: error.description}})"
        what = f'{{{_quote(shape.key)}: description}}'
    else:
        body, what = "error.description", "the description as a text/html body"
    codes = sorted({code for _, code in handler.pairs})
    decorators = "".join(f"@{handler.view.owner}.errorhandler({code})\n" for code in codes)
    code = (
        f"{decorators}def {func_name}(error):\n"
        f'    """Render the errors these views raise with abort() as they answered before:\n'
        f'    {what}; any other HTTP error passes through unchanged."""\n'
        f"{_CONVERTED_PLACEHOLDER}"
        f"    if ({request}.endpoint, error.code) not in converted or error.response is not None:\n"
        f"        return error\n"
        f"    response = {make_response}({body}, error.code)\n"
        f"    for name, value in error.get_response().headers.items():\n"
        f'        if name not in ("Content-Type", "Content-Length"):\n'
        f"            response.headers[name] = value\n"
        f"    return response\n"
    )
    return _with_converted(_parse_function(code, module, nested), handler.pairs, module, 2 if nested else 1)


# The handlers generated for the modules of an app differ only in their `converted` line:
# the rest is one text, parsed once (`snippets`), and that line is parsed on its own.
_CONVERTED_PLACEHOLDER = "    converted = set()\n"


def _parse_function(code: str, module: cst.Module, nested: bool) -> cst.FunctionDef:
    """A generated function, with the blank lines that go before it."""
    function = _parse_at_depth(code, module, 1 if nested else 0)
    blank = cst.EmptyLine(indent=False)
    return function.with_changes(leading_lines=[blank] if nested else [blank, blank])


def _parse_at_depth(code: str, module: cst.Module, depth: int) -> cst.BaseStatement:
    """Parse generated code (written with 4-space indents) as a statement at `depth`
    blocks deep, in the module's indent and newline: lines inside brackets and strings
    are not re-indented by libcst, so they are written at their final indentation."""
    indent = module.default_indent
    lines = []
    for line in code.splitlines(keepends=True):
        stripped = line.lstrip(" ")
        lines.append(indent * (depth + (len(line) - len(stripped)) // 4) + stripped)
    header = "".join(indent * level + "if True:\n" for level in range(depth))
    text = (header + "".join(lines)).replace("\n", module.default_newline)
    statement = parse_statement(text, config=parsing_config(module))
    for _ in range(depth):
        statement = statement.body.body[0]
    return statement


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add_imports(module: cst.Module, wanted: set[tuple[str, str]]) -> cst.Module:
    """Append names to an existing module-level `from source import ...` (keeping its
    order), or add the import."""
    for source in sorted({s for s, _ in wanted}):
        names = sorted(n for s, n in wanted if s == source)
        body = list(module.body)
        for index, stmt in enumerate(body):
            small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
            if isinstance(small, cst.ImportFrom) and not small.relative and not isinstance(small.names, cst.ImportStar) \
                    and get_full_name_for_node(small.module) == source:
                aliases = list(small.names)
                last = aliases[-1]
                if small.lpar is None and last.comma != cst.MaybeSentinel.DEFAULT:
                    aliases[-1] = last.with_changes(comma=cst.MaybeSentinel.DEFAULT)
                trailing = last.comma if small.lpar is not None and last.comma != cst.MaybeSentinel.DEFAULT else None
                if trailing is not None:  # parenthesised, one name per line: keep that layout
                    between = aliases[0].comma if len(aliases) > 1 else trailing
                    aliases[-1] = last.with_changes(comma=between)
                    aliases.extend(cst.ImportAlias(cst.Name(n), comma=between) for n in names)
                    aliases[-1] = aliases[-1].with_changes(comma=trailing)
                else:
                    aliases[-1] = aliases[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                    aliases.extend(cst.ImportAlias(cst.Name(n)) for n in names)
                    aliases[-1] = aliases[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                body[index] = stmt.with_changes(body=[small.with_changes(names=aliases)])
                module = module.with_changes(body=body)
                break
        else:
            module = add_imports_anywhere(module, [(source, name, None) for name in names])
    return module


def drop_unused_imports(module: cst.Module, names: set[str]) -> cst.Module:
    """Remove `from x import Name` for exception classes no raise uses any more."""
    if not names:
        return module

    class Uses(ReadOnlyVisitor):
        def __init__(self) -> None:
            self.used: set[str] = set()

        def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
            return False

        def visit_Name(self, node: cst.Name) -> None:
            self.used.add(node.value)

    uses = Uses()
    uses.walk(module)
    unused = names - uses.used
    if not unused:
        return module
    body = []
    for stmt in module.body:
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        if isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
            kept = [a for a in small.names if a.asname is not None or get_full_name_for_node(a.name) not in unused]
            if not kept:
                continue
            if len(kept) != len(small.names):
                kept[-1] = kept[-1].with_changes(comma=small.names[-1].comma)
                stmt = stmt.with_changes(body=[small.with_changes(names=kept)])
        body.append(stmt)
    return module.with_changes(body=body)


def dropped_comments(site: Site) -> list[str]:
    """Comments inside a replaced statement but outside what the abort() keeps."""
    kept = {id(node) for _, value in site.replacement_args for node in iter_nodes(value)}
    if site.kind == "return" and site.status is not None:
        kept |= {id(node) for node in iter_nodes(site.status)}
    return [node.value for node in iter_nodes(site.node) if isinstance(node, cst.Comment) and id(node) not in kept]


class Rewriter(TargetedTransformer):
    """Replaces nodes, inserts functions before statements and moves comments onto lines,
    all keyed by the id of an original node: only the paths to those are walked."""

    def __init__(self, module: cst.Module, replacements: dict[int, cst.CSTNode],
                 insertions: dict[int, list[cst.BaseStatement]],
                 moved_comments: dict[int, list[str]] | None = None) -> None:
        super().__init__(module, [*replacements, *insertions, *(moved_comments or {})])
        self.replacements = replacements
        self.insertions = insertions
        self.moved_comments = moved_comments or {}

    def leave_SimpleStatementLine(self, original_node, updated_node):
        comments = [c for small in original_node.body for c in self.moved_comments.get(id(small), ())]
        if not comments:
            return updated_node
        lines = [cst.EmptyLine(comment=cst.Comment(comment)) for comment in comments]
        return updated_node.with_changes(leading_lines=[*updated_node.leading_lines, *lines])

    def leave_Return(self, original_node, updated_node):
        return self.replacements.get(id(original_node), updated_node)

    def leave_Raise(self, original_node, updated_node):
        return self.replacements.get(id(original_node), updated_node)

    def leave_FunctionDef(self, original_node, updated_node):
        return self.replacements.get(id(original_node), updated_node)

    def _insert(self, originals, updated):
        body = []
        for original, new in zip(originals, updated):
            for function in self.insertions.get(id(original), ()):
                body.append(function)
                missing = len(function.leading_lines) - len(new.leading_lines)
                if missing > 0:  # the blank lines PEP 8 wants between the handler and the view
                    new = new.with_changes(leading_lines=[*function.leading_lines[:missing], *new.leading_lines])
            body.append(new)
        return body

    def leave_Module(self, original_node, updated_node):
        return updated_node.with_changes(body=self._insert(original_node.body, updated_node.body))

    def leave_IndentedBlock(self, original_node, updated_node):
        if not any(id(s) in self.insertions for s in original_node.body):
            return updated_node
        return updated_node.with_changes(body=self._insert(original_node.body, updated_node.body))


def insert_unexpected_handler(project: Project, app, module: cst.Module) -> cst.Module | None:
    imports = ImportMap.of(module, project.module_name(app.path), app.path.endswith("__init__.py"))
    names = Names(module, imports)
    http_exception = names.get("werkzeug.exceptions.HTTPException")
    server_error = names.get(INTERNAL_SERVER_ERROR)
    request = names.get("flask.request")
    if names.failed:
        return None
    taken = bound_names(module)
    func_name, counter = "handle_unexpected_error", 2
    while func_name in taken:
        func_name, counter = f"handle_unexpected_error_{counter}", counter + 1
    code = (
        f"@{app.var}.errorhandler(Exception)\n"
        f"def {func_name}(error):\n"
        f'    """Log unexpected exceptions with their traceback and answer with the 500 page;\n'
        f'    HTTP errors pass through, and in debug or testing mode exceptions still propagate."""\n'
        f"    if isinstance(error, {http_exception}):\n"
        f"        return error\n"
        f'    propagate = {app.var}.config["PROPAGATE_EXCEPTIONS"]\n'
        f"    if propagate or (propagate is None and ({app.var}.testing or {app.var}.debug)):\n"
        f"        raise error\n"
        f'    {app.var}.logger.error(f"Exception on {{{request}.path}} [{{{request}.method}}]", exc_info=error)\n'
        f"    return {server_error}(original_exception=error)\n"
    )
    function = _parse_function(code, module, nested=app.kind == "factory")
    new = _insert_after_app(module, app, function)
    return None if new is None else add_imports(new, names.imports)


def _insert_after_app(module: cst.Module, app, function: cst.FunctionDef) -> cst.Module | None:
    """Module-level app: after its set-up lines; factory: before `return app`."""
    blank = cst.EmptyLine()
    if app.kind == "factory":
        factory = next((s for s in module.body if isinstance(s, cst.FunctionDef) and s.name.value == app.factory), None)
        if factory is None:
            return None
        statements = list(factory.body.body)
        index = max(i for i, s in enumerate(statements) if isinstance(s, cst.SimpleStatementLine)
                    and isinstance(s.body[0], cst.Return))
        statements.insert(index, function)
        new_factory = factory.with_changes(body=factory.body.with_changes(body=statements))
        return module.with_changes(body=[new_factory if s is factory else s for s in module.body])
    body = list(module.body)
    index = next((i for i, s in enumerate(body) if (assigned_name(s) or ("",))[0] == app.var), None)
    if index is None:
        return None
    index += 1
    while index < len(body) and isinstance(body[index], cst.SimpleStatementLine):
        index += 1
    if index < len(body) and len(body[index].leading_lines) < 2:
        body[index] = body[index].with_changes(leading_lines=[blank, blank, *body[index].leading_lines])
    body.insert(index, function)
    return module.with_changes(body=body)
