"""Referring to a Flask name from a module being rewritten: reuse how the module already
imports it, or import it without clashing with the module's own names."""

from __future__ import annotations

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.scopes import scope_map
from flask_refactor.snippets import parse_statement, parsing_config
from flask_refactor.walk import ReadOnlyVisitor

from .cache import per_statement, per_tree
from .imports import ImportMap, add_import


@per_tree
def names_used(module: cst.Module) -> frozenset[str]:
    """Every identifier that appears anywhere in the module (or node)."""
    if not isinstance(module, cst.Module):
        return _names_and_quotes(module)[0]
    return frozenset().union(*(_names_and_quotes(statement)[0] for statement in module.body))


@per_statement
def _names_and_quotes(statement: cst.CSTNode) -> tuple[frozenset[str], int, int]:
    """(the identifiers in a statement, its single-quoted strings, its double-quoted
    ones): one walk for both questions, which a rewrite asks of the same module."""
    finder = _NamesAndQuotes()
    finder.walk(statement)
    return frozenset(finder.names), finder.quotes["'"], finder.quotes['"']


class _NamesAndQuotes(ReadOnlyVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()
        self.quotes = {"'": 0, '"': 0}

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if len(node.quote) == 1:
            self.quotes[node.quote] += 1


@per_tree
def bound_names(module: cst.Module) -> frozenset[str]:
    """Names bound in any scope of the module."""
    names: set[str] = set()
    for scope in set(scope_map(module).values()):
        if scope is not None:
            names |= {a.name for a in scope.assignments}
    return frozenset(names)


def flask_name(module: cst.Module, imports: ImportMap, name: str) -> tuple[str, tuple[str, str | None] | None]:
    """How to write `flask.<name>` in this module, and the (name, alias) to import first
    (None when the module can already refer to it).

    An existing `from flask import name [as x]` is reused; then `from flask import *`; a
    name is added to an existing `from flask import ...` line when it is free; `import
    flask as f` gives `f.<name>`; otherwise it is imported, as `flask_<name>` if taken."""
    existing = imports.local_names_for(f"flask.{name}")
    plain = [local for local in existing if "." not in local]
    if plain:
        return plain[0], None
    used = names_used(module)
    if "flask" in imports.star_modules and name not in imports.names and name not in bound_names(module):
        return name, None
    from_flask = any(q.startswith("flask.") for q in imports.names.values())
    if existing and not (name not in used and from_flask):
        return min(existing, key=len), None
    if name not in used:
        return name, (name, None)
    alias, counter = f"flask_{name}", 2
    while alias in used:
        alias, counter = f"flask_{name}{counter}", counter + 1
    return alias, (name, alias)


def import_from_flask(module: cst.Module, name: str, alias: str | None = None) -> cst.Module:
    """Append `name [as alias]` to the module's first top-level `from flask import ...`,
    keeping its layout; add a new import line when there is none."""
    for index, stmt in enumerate(module.body):
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1):
            continue
        small = stmt.body[0]
        if (isinstance(small, cst.ImportFrom) and not small.relative and not isinstance(small.names, cst.ImportStar)
                and get_full_name_for_node(small.module) == "flask"):
            names = list(small.names)
            last = names[-1]
            new_alias = cst.ImportAlias(cst.Name(name), asname=cst.AsName(cst.Name(alias)) if alias else None)
            if isinstance(last.comma, cst.Comma):  # a trailing comma: keep the one-name-per-line style
                new_alias = new_alias.with_changes(comma=last.comma)
                before_last = names[-2].comma if len(names) > 1 else None
                separator = before_last if isinstance(before_last, cst.Comma) else last.comma
            else:
                separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            names[-1] = last.with_changes(comma=separator)
            names.append(new_alias)
            new_stmt = stmt.with_changes(body=[small.with_changes(names=names)])
            return module.with_changes(body=[*module.body[:index], new_stmt, *module.body[index + 1:]])
    return add_import(module, "flask", name, alias)


@per_tree
def preferred_quote(module: cst.Module) -> str:
    """The quote character most strings of the module use."""
    single = double = 0
    for statement in module.body:
        _, in_single, in_double = _names_and_quotes(statement)
        single, double = single + in_single, double + in_double
    return "'" if single > double else '"'


def import_module(module: cst.Module, name: str) -> cst.Module:
    """Add `import name` to the module's first block of top-level imports, in alphabetical
    place among its plain `import x` lines (after the docstring and `__future__`)."""
    body = list(module.body)
    plain: list[int] = []
    for index, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
            small = stmt.body[0]
            if isinstance(small, cst.Import):
                if any(get_full_name_for_node(a.name) == name and a.asname is None for a in small.names):
                    return module
                plain.append(index)
                continue
            if isinstance(small, (cst.ImportFrom, cst.Expr)):
                continue  # docstring, from-imports: still the import block
        if plain:
            break
    if not plain:
        return add_import(module, name)
    new = parse_statement(f"import {name}\n", config=parsing_config(module))
    for index in plain:
        first = get_full_name_for_node(body[index].body[0].names[0].name) or ""
        if first > name:
            new = new.with_changes(leading_lines=body[index].leading_lines)
            body[index] = body[index].with_changes(leading_lines=[])
            body.insert(index, new)
            return module.with_changes(body=body)
    body.insert(plain[-1] + 1, new)
    return module.with_changes(body=body)
