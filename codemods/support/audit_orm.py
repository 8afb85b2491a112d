"""SQLAlchemy facts for the N+1 rule: the models' lazily loaded relationships, which
expressions are query results of which model, and Jinja for-loops in templates."""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.project import Project

from .audit_common import string_value
from .audit_views import nodes_of
from .flask import app_modules

# `lazy=` values that do not emit one query per parent object on access.
EAGER = frozenset({"selectin", "joined", "subquery", "immediate", "raise", "raise_on_sql", "noload",
                   "dynamic", "write_only"})
LOADER_OPTIONS = frozenset({"selectinload", "joinedload", "subqueryload", "contains_eager", "immediateload",
                            "raiseload", "defaultload"})


@dataclass(frozen=True)
class Relationship:
    model: str
    attribute: str
    target: str | None
    path: str
    line: int


def lazy_relationships(project: Project) -> dict[str, dict[str, Relationship]]:
    """model class name -> relationship attribute -> where it is declared, for every
    relationship (or backref) that loads lazily, one query per object."""
    def compute(proj: Project) -> dict[str, dict[str, Relationship]]:
        found: dict[str, dict[str, Relationship]] = {}
        for path, module in app_modules(proj, ("relationship",)):
            positions = proj.position_lookup(path)
            for stmt in module.body:
                if isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock):
                    for attribute, call, node in _class_relationships(stmt):
                        _record(found, stmt.name.value, attribute, call, path, positions(node)[0])
        return found
    return project.fact("orm.lazy-relationships", compute)


def _class_relationships(cls: cst.ClassDef):
    for stmt in cls.body.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            target = value = None
            if isinstance(small, cst.Assign) and len(small.targets) == 1:
                target, value = small.targets[0].target, small.value
            elif isinstance(small, cst.AnnAssign):
                target, value = small.target, small.value
            if isinstance(target, cst.Name) and isinstance(value, cst.Call) and _callee(value) == "relationship":
                yield target.value, value, stmt


def _callee(call: cst.Call) -> str:
    name = get_full_name_for_node(call.func) or ""
    return name.rsplit(".", 1)[-1]


def _keyword(call: cst.Call, name: str) -> cst.BaseExpression | None:
    return next((a.value for a in call.args if a.keyword and a.keyword.value == name), None)


def _record(found: dict, model: str, attribute: str, call: cst.Call, path: str, line: int) -> None:
    target = None
    if call.args and call.args[0].keyword is None:
        first = call.args[0].value
        target = string_value(first) if isinstance(first, cst.SimpleString) else get_full_name_for_node(first)
        target = target.rsplit(".", 1)[-1] if isinstance(target, str) else None
    if string_value(_keyword(call, "lazy")) not in EAGER:
        found.setdefault(model, {})[attribute] = Relationship(model, attribute, target, path, line)
    backref = _keyword(call, "backref")
    if target and backref is not None:
        name = string_value(backref)
        lazy = None
        if isinstance(backref, cst.Call) and _callee(backref) == "backref" and backref.args:
            name = string_value(backref.args[0].value)
            lazy = string_value(_keyword(backref, "lazy"))
        if isinstance(name, str) and lazy not in EAGER:
            found.setdefault(target, {})[name] = Relationship(target, name, model, path, line)


def queried_model(node: cst.BaseExpression, models: set[str]) -> str | None:
    """The model whose rows `node` yields: `M.query...`, `session.query(M)...`,
    `session.scalars(select(M)...)`, `paginate(select(M)).items` - unless the query
    sets loader options (`.options(selectinload(...))`)."""
    model = None
    for current in nodes_of(node):
        if isinstance(current, cst.Call):
            callee = _callee(current)
            if callee == "options" or callee in LOADER_OPTIONS:
                return None
            if callee in ("query", "select") and current.args and current.args[0].keyword is None:
                name = get_full_name_for_node(current.args[0].value)
                if name in models:
                    model = model or name
        elif isinstance(current, cst.Attribute) and current.attr.value == "query":
            name = get_full_name_for_node(current.value)
            if name in models:
                model = model or name
    return model


_TAG = re.compile(r"{%-?\s*(?:for\s+(?P<target>[^%]+?)\s+in\s+(?P<iter>[^%]+?)|(?P<end>endfor))\s*-?%}")
_LEADING_NAME = re.compile(r"[A-Za-z_]\w*(?=\s*(?:\||$|\s+if\b|\s+recursive\b))")


def template_loops(text: str) -> list[tuple[str, str, int, str]]:
    """(loop variable, iterated name, line of the for tag, loop body) for each
    `{% for v in name %}` of a Jinja template (`name|filter` too), nested loops included.
    Loops over anything else (`for k, v in ...`, `for x in a.b`) are matched and skipped."""
    loops = []
    stack: list[tuple[str | None, str | None, int, int]] = []
    for match in _TAG.finditer(text):
        if match.group("end") is None:
            target = match.group("target").strip()
            iterated = _LEADING_NAME.match(match.group("iter").strip())
            stack.append((target if target.isidentifier() else None, iterated.group(0) if iterated else None,
                          text.count("\n", 0, match.start()) + 1, match.end()))
        elif stack:
            variable, iterated, line, start = stack.pop()
            if variable and iterated:
                loops.append((variable, iterated, line, text[start:match.start()]))
    return loops
