"""The legacy app module imported its view modules at module level so that their routes
registered on `app`. After the migration create_app() imports them itself; the module-level
import is redundant and its comment (about registering on `app`) describes the import
create_app now makes, so the comment moves there with it."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node

from ._app_factory_syntax import LINT_PRAGMAS
from .support.imports import resolve_relative


@dataclass
class RemovedImports:
    body: list[cst.CSTNode | str]
    comments: dict[str, list[str]] = field(default_factory=dict)  # module -> comment lines for create_app
    modules: set[str] = field(default_factory=set)  # modules no longer imported at module level


def imported_module(small: cst.BaseSmallStatement, alias: cst.ImportAlias, module_name: str | None,
                    package: bool) -> str | None:
    """The module `alias` binds under its own last name (`import views`, `from pkg import
    views`, `from . import views`); None for other forms (`import a.b`, `as` aliases)."""
    if alias.asname is not None:
        return None
    name = get_full_name_for_node(alias.name)
    if isinstance(small, cst.Import):
        return name if name and "." not in name else None
    source = get_full_name_for_node(small.module) if small.module else None
    source = resolve_relative(module_name, len(small.relative), source, package)
    return f"{source}.{name}" if source and name else None


def drop_module_imports(body: list[cst.CSTNode | str], removable: set[str], module_name: str | None,
                        package: bool) -> RemovedImports:
    """Remove top-level imports of the `removable` modules from `body`. A statement left
    empty goes, its comments (lint pragmas aside) kept for the import in create_app and
    its blank lines given to the next statement; one that still imports other names keeps
    its comments."""
    result = RemovedImports([])
    blank_lines: list[cst.EmptyLine] = []
    for stmt in body:
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        if not isinstance(small, (cst.Import, cst.ImportFrom)) or isinstance(small.names, cst.ImportStar):
            result.body.append(_with_blank_lines(stmt, blank_lines))
            blank_lines = []
            continue
        dropped = [m for a in small.names if (m := imported_module(small, a, module_name, package)) in removable]
        if not dropped:
            result.body.append(_with_blank_lines(stmt, blank_lines))
            blank_lines = []
            continue
        result.modules.update(dropped)
        keep = [a for a in small.names if imported_module(small, a, module_name, package) not in removable]
        if keep:
            keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            result.body.append(_with_blank_lines(stmt.with_changes(body=[small.with_changes(names=keep)]),
                                                 blank_lines))
            blank_lines = []
            continue
        comments = [line.comment.value for line in stmt.leading_lines if line.comment is not None]
        trailing = stmt.trailing_whitespace.comment
        if trailing is not None and (explanation := without_lint_pragma(trailing.value)):
            comments.append(explanation)
        result.comments.setdefault(dropped[0], []).extend(comments)
        blank_lines = blank_lines or [line for line in stmt.leading_lines if line.comment is None][:1]
    return result


def without_lint_pragma(comment: str) -> str | None:
    """`# noqa: E402  (why)` -> `# (why)`: the pragma concerned the removed line, the
    explanation is the author's; None when nothing but the pragma is left."""
    if not comment.startswith(LINT_PRAGMAS):
        return comment
    _, separator, explanation = comment.partition("  ")
    return f"# {explanation.strip().lstrip('#').strip()}" if separator and explanation.strip("# ") else None


def _with_blank_lines(stmt: cst.CSTNode | str, blank_lines: list[cst.EmptyLine]) -> cst.CSTNode | str:
    """A removed statement's separating blank line goes to the next one if it has none."""
    if not blank_lines or isinstance(stmt, str) or not hasattr(stmt, "leading_lines") or stmt.leading_lines:
        return stmt
    return stmt.with_changes(leading_lines=blank_lines)
