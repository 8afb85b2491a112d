"""Syntax helpers for `app-factory`: finding and replacing the app's name in libcst
trees, re-indenting moved statements without touching string contents."""

from __future__ import annotations

import ast
import io
import tokenize

import libcst as cst

from flask_refactor.walk import ReadOnlyVisitor, all_calls

from .support.cache import per_tree
from .support.flask import parameter_names
from .support.names import names_used

CURRENT_APP = "current_app"
# Trailing comments that only instruct linters about the line they end; dropped with it.
LINT_PRAGMAS = ("# noqa", "# type:", "# pylint:", "# isort:", "# pragma")


class _Loads(ReadOnlyVisitor):
    """Name nodes used as names (not attribute names, keyword names or definitions)."""

    def __init__(self) -> None:
        self.found: list[cst.Name] = []

    def visit_Name(self, node: cst.Name) -> None:
        self.found.append(node)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self.walk(node.value)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        self.walk(node.value)
        return False

    def visit_Param(self, node: cst.Param) -> bool:
        for part in (node.annotation, node.default):
            if part is not None:
                self.walk(part)
        return False

    def visit_ImportAlias(self, node: cst.ImportAlias) -> bool:
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        for part in (*node.decorators, node.params, node.body):
            self.walk(part)
        if node.returns is not None:
            self.walk(node.returns)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        for part in (*node.decorators, *node.bases, *node.keywords, node.body):
            self.walk(part)
        return False


@per_tree
def name_uses(node: cst.CSTNode) -> tuple[cst.Name, ...]:
    finder = _Loads()
    finder.walk(node)
    return tuple(finder.found)


def uses_name(node: cst.CSTNode, name: str) -> bool:
    return any(n.value == name for n in name_uses(node))


@per_tree
def binds_locally(func: cst.FunctionDef | cst.Lambda, name: str) -> bool:
    """Whether `name` is a parameter of `func` or assigned, imported or declared in it."""
    if name in parameter_names(func):
        return True
    if isinstance(func, cst.Lambda):
        return False
    finder = _Binder(name)
    finder.walk(func.body)
    return finder.binds


class _Binder(ReadOnlyVisitor):
    def __init__(self, name: str) -> None:
        self.name = name
        self.binds = False

    def _check(self, target: cst.CSTNode) -> None:
        if (any(n.value == self.name for n in name_uses(target))
                and not isinstance(target, (cst.Attribute, cst.Subscript))):
            self.binds = True

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._check(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._check(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._check(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._check(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._check(node.target)

    def visit_Global(self, node: cst.Global) -> None:
        if any(item.name.value == self.name for item in node.names):
            self.binds = True

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        if any(item.name.value == self.name for item in node.names):
            self.binds = True

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if node.asname is None and isinstance(node.name, cst.Name) and node.name.value == self.name:
            self.binds = True


class CurrentAppRewriter(cst.CSTTransformer):
    """Inside function bodies: `app.x` -> `current_app.x`; a bare `app` passed on ->
    `current_app._get_current_object()` (the real object, as the legacy code passed).
    Functions that bind the name themselves are left alone."""

    def __init__(self, app_var: str) -> None:
        self.app_var = app_var
        self.heads: set[int] = set()
        self.skip: set[int] = set()
        self.count = 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.skip.add(id(node.name))
        return not binds_locally(node, self.app_var)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return not binds_locally(node, self.app_var)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.skip.add(id(node.name))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.skip.add(id(node.attr))
        self.heads.add(id(node.value))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.skip.add(id(node.keyword))

    def visit_Param(self, node: cst.Param) -> None:
        self.skip.add(id(node.name))

    def visit_ImportAlias(self, node: cst.ImportAlias) -> bool:
        return False

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if original.value != self.app_var or id(original) in self.skip:
            return updated
        self.count += 1
        if id(original) in self.heads:
            return updated.with_changes(value=CURRENT_APP)
        return cst.parse_expression(f"{CURRENT_APP}._get_current_object()")


def rewrite_function_bodies(node: cst.CSTNode, app_var: str) -> tuple[cst.CSTNode, int]:
    """Rewrite app uses inside the bodies of `node`'s functions (not decorators or defaults)."""
    if isinstance(node, cst.FunctionDef):
        if binds_locally(node, app_var) or app_var not in names_used(node.body):
            return node, 0  # (a transform rebuilds the whole body: not for nothing)
        rewriter = CurrentAppRewriter(app_var)
        body = node.body.visit(rewriter)
        return node.with_changes(body=body), rewriter.count
    if isinstance(node, cst.ClassDef):
        total = 0
        new_body = []
        for stmt in node.body.body:
            new, count = rewrite_function_bodies(stmt, app_var)
            new_body.append(new)
            total += count
        return node.with_changes(body=node.body.with_changes(body=new_body)), total
    return node, 0


def refs_outside_function_bodies(node: cst.CSTNode, app_var: str) -> list[cst.Name]:
    """App uses that run at import time: module level, decorators, defaults, class bodies."""
    if isinstance(node, cst.FunctionDef):
        outside = [*node.decorators, node.params]
        return [n for part in outside for n in name_uses(part) if n.value == app_var]
    if isinstance(node, cst.ClassDef):
        found = [n for part in (*node.decorators, *node.bases, *node.keywords)
                 for n in name_uses(part) if n.value == app_var]
        for stmt in node.body.body:
            found.extend(refs_outside_function_bodies(stmt, app_var))
        return found
    return [n for n in name_uses(node) if n.value == app_var]


def replace_head(expr: cst.BaseExpression, new_head: str, new_attr: str | None = None) -> cst.BaseExpression:
    """`app.route(...)` -> `bp.route(...)`; with `new_attr`, also renames the last attribute."""
    if isinstance(expr, cst.Call):
        return expr.with_changes(func=replace_head(expr.func, new_head, new_attr))
    if isinstance(expr, cst.Attribute):
        value = replace_head(expr.value, new_head)
        attr = expr.attr.with_changes(value=new_attr) if new_attr else expr.attr
        return expr.with_changes(value=value, attr=attr)
    if isinstance(expr, cst.Name):
        return expr.with_changes(value=new_head)
    return expr


# -- moving statements into a function ----------------------------------------------

def _string_continuation_rows(code: str) -> set[int]:
    """1-based rows that are inside a multi-line string (must not be re-indented)."""
    if '"""' not in code and "'''" not in code and "\\\n" not in code and "\\\r" not in code:
        return set()  # a string spans lines only triple-quoted or continued by a backslash
    rows: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
            rows.update(range(tok.start[0] + 1, tok.end[0] + 1))
    return rows


def indent_code(code: str, prefix: str) -> str:
    """Indent statement code by `prefix`, leaving the inside of multi-line strings alone."""
    keep = _string_continuation_rows(code)
    out = []
    for row, line in enumerate(code.splitlines(keepends=True), 1):
        if row in keep or not line.strip():
            out.append(line if line.strip() or row in keep else "\n")
        else:
            out.append(prefix + line)
    return "".join(out)


def reindents_cleanly(code: str, indented: str) -> bool:
    """Whether `indented` (the body of a block) is the same program as `code`."""
    try:
        wrapped = ast.parse(f"if True:\n{indented}").body[0].body
        return [ast.dump(node) for node in ast.parse(code).body] == [ast.dump(node) for node in wrapped]
    except SyntaxError:
        return False


def statement_code(module: cst.Module, stmt: cst.CSTNode, keep_comments: bool = True) -> str:
    """The statement's own code with its comment lines but without leading blank lines."""
    lines = []
    for line in getattr(stmt, "leading_lines", ()):
        if keep_comments and line.comment is not None:
            lines.append(module.code_for_node(line))
    bare = stmt.with_changes(leading_lines=[]) if hasattr(stmt, "leading_lines") else stmt
    return "".join(lines) + module.code_for_node(bare)


def import_from_flask(module: cst.Module, name: str) -> cst.Module:
    """Add `name` to the module's first `from flask import ...` line, in sorted position
    when the line is sorted, else at its end; add a new import line if there is none."""
    from .support.imports import add_import

    for index, stmt in enumerate(module.body):
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        if not (isinstance(small, cst.ImportFrom) and not small.relative and isinstance(small.module, cst.Name)
                and small.module.value == "flask" and not isinstance(small.names, cst.ImportStar)):
            continue
        aliases = list(small.names)
        names = [a.name.value if isinstance(a.name, cst.Name) else "" for a in aliases]
        if any(n == name and a.asname is None for n, a in zip(names, aliases)):
            return module
        separator = next((a.comma for a in aliases if isinstance(a.comma, cst.Comma)),
                         cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        at = len(aliases)
        for key in (str, str.lower):  # isort's order (classes first), or case-insensitive
            if names == sorted(names, key=key):
                at = next((i for i, n in enumerate(names) if key(n) > key(name)), len(aliases))
                break
        if at < len(aliases):
            new = cst.ImportAlias(name=cst.Name(name), comma=aliases[at].comma if at + 1 < len(aliases) else separator)
            if at + 1 == len(aliases):
                new = new.with_changes(comma=separator)
        else:
            new = cst.ImportAlias(name=cst.Name(name), comma=aliases[-1].comma)
            aliases[-1] = aliases[-1].with_changes(comma=separator)
        aliases.insert(at, new)
        body = list(module.body)
        body[index] = stmt.with_changes(body=[small.with_changes(names=aliases)])
        return module.with_changes(body=body)
    return add_import(module, "flask", name)


def calls_to(node: cst.CSTNode, names: set[str]) -> list[cst.Call]:
    """Calls of plain names in `names` inside `node`."""
    return [call for call in _plain_name_calls(node) if call.func.value in names]


@per_tree
def _plain_name_calls(node: cst.CSTNode) -> tuple[cst.Call, ...]:
    return tuple(call for call in all_calls(node) if isinstance(call.func, cst.Name))



def functions_using(body, app_var: str) -> set[str]:
    """Module-level functions that use the app when called, directly or through other
    such functions: calling one at import time needs the app to exist then."""
    defs = {stmt.name.value: stmt for stmt in body
            if isinstance(stmt, cst.FunctionDef) and not binds_locally(stmt, app_var)}
    using = {name for name, func in defs.items() if uses_name(func.body, app_var)}
    changed = True
    while changed:
        changed = False
        for name, func in defs.items():
            if name not in using and calls_to(func.body, using):
                using.add(name)
                changed = True
    return using
