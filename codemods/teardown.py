"""`teardown`: remove plain SQLAlchemy `scoped_session`s at the end of every app context.

Without `remove()`, a worker thread keeps the same session, and any transaction a failed
request left open, for every later request. Flask-SQLAlchemy registers this teardown
itself, so only `sqlalchemy.orm.scoped_session` objects are handled.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.codemod import ChangeSet, Codemod, Severity
from flask_refactor.project import Project
from flask_refactor.snippets import parse_statement, parsing_config
from flask_refactor.walk import ReadOnlyVisitor

from .support.flask import (
    AFTER_REQUEST_HOOKS, SCOPED_SESSION, SESSIONMAKER, TEARDOWN_HOOKS, AppSite, app_paths,
    assigned_name, factory_function, find_apps, import_map, module_level_names,
    imported_paths, imports_transitively, is_call_to,
)
from .support.imports import ImportMap, add_import
from .support.routes import call_registration, decorator_registrations

FUNCTION_NAME = "shutdown_session"
_HOOK_NEEDLES = ("teardown", "after_request", "after_app_request")  # the name Flask's own SQLAlchemy recipe uses


@dataclass(frozen=True)
class Session:
    path: str
    module_name: str
    var: str
    line: int
    custom_scope: bool

    @property
    def qualified(self) -> str:
        return f"{self.module_name}.{self.var}"


class Teardown(Codemod):
    name = "teardown"
    summary = "Remove plain SQLAlchemy scoped_sessions in a teardown_appcontext handler."
    order = 30
    needles = ("scoped_session",)
    uses_index = True
    explain = '''\
A `scoped_session` keeps one session per thread. Unless something calls `.remove()`,
a worker thread reuses the same session, and any transaction a failed request left
open, for every later request; under load this exhausts the connection pool.

This codemod finds module-level `sqlalchemy.orm.scoped_session(...)` objects (however
imported or aliased) and gives the Flask app that uses them exactly one
`@app.teardown_appcontext` function calling `.remove()`: after the app's set-up lines in
a single-module app, or before `return app` in an app factory.

Left alone: Flask-SQLAlchemy's `db.session` (the extension already removes it), sessions
that an existing `teardown_appcontext`/`teardown_request` (decorator or call form)
already removes, and a bare `sessionmaker()` (reported: that needs a per-request session
closed in a teardown instead). Reported: `.remove()` in `after_request` (it does not run
when a view raises) and sessions with a custom `scopefunc`.

Before (database.py + app.py):

    # database.py
    engine = create_engine("sqlite:///app.db")
    db_session = scoped_session(sessionmaker(bind=engine))

    # app.py
    from flask import Flask
    from database import db_session

    app = Flask(__name__)

    @app.route("/")
    def index(): ...

After (app.py):

    from flask import Flask
    from database import db_session

    app = Flask(__name__)


    @app.teardown_appcontext
    def shutdown_session(exception=None):
        db_session.remove()

    @app.route("/")
    def index(): ...
'''

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        sessions = self._sessions(project, changes)
        self._report_bare_sessionmakers(project, sessions, changes)
        if not sessions:
            return changes
        removed = self._removed_sessions(project, sessions, changes)
        pending = [s for s in sessions if s.qualified not in removed]
        by_app: dict[AppSite, list[Session]] = {}
        apps = find_apps(project)
        for session in pending:
            for app in self._apps_for(project, session, apps, changes):
                by_app.setdefault(app, []).append(session)
        for app, app_sessions in by_app.items():
            module = project.parse(app.path)
            new = self._insert_teardown(project, app, module, app_sessions)
            if new is not None:
                changes.modify(app.path, new, "remove scoped sessions at the end of each app context")
            for session in app_sessions:
                if session.custom_scope:
                    changes.report(session.path, session.line,
                                   f"{session.var} uses a custom scopefunc: the added teardown removes the session "
                                   "of the current scope; check that this scope ends with the app context",
                                   Severity.WARNING)
        return changes

    # -- what is there -------------------------------------------------------------
    def _sessions(self, project: Project, changes: ChangeSet) -> list[Session]:
        """Module-level scoped_sessions of the app: in files that mention Flask or that
        those import (not in libraries vendored in the tree), or anywhere if nothing
        mentions Flask (then each is reported: there is no app to attach it to)."""
        sessions = []
        near = _modules_near_flask(project)
        candidates = project.candidates(self.needles)
        project.index_many(candidates)  # a file left aside below is still read: if broken, it is reported
        for path in candidates:
            module = project.parse(path) if not near or path in near else None
            if module is None:
                continue
            imports = import_map(project, path)
            module_name = project.module_name(path)
            positions = project.position_lookup(path)
            for stmt in module.body:
                found = assigned_name(stmt)
                if not found or not is_call_to(found[1], imports, SCOPED_SESSION):
                    continue
                if module_name is None:
                    changes.report(path, positions(stmt)[0],
                                   f"scoped_session {found[0]} is in a file that is not importable as a module; not handled")
                    continue
                custom = any(arg.keyword and arg.keyword.value == "scopefunc" for arg in found[1].args)
                sessions.append(Session(path, module_name, found[0], positions(stmt)[0], custom))
        return sessions

    def _report_bare_sessionmakers(self, project: Project, sessions: list[Session], changes: ChangeSet) -> None:
        session_files = {s.path for s in sessions}
        flask_side = _modules_near_flask(project)  # computed once per revision
        for path in (p for p in sorted(flask_side) if project.mentions(p, ("sessionmaker",))):
            if path in session_files or "scoped_session" in (project.text(path) or ""):
                continue
            module = project.parse(path)
            if module is None:
                continue
            imports = import_map(project, path)
            positions = project.position_lookup(path)
            for stmt in module.body:
                found = assigned_name(stmt)
                if found and is_call_to(found[1], imports, SESSIONMAKER):
                    changes.report(path, positions(stmt)[0],
                                   f"{found[0]} = sessionmaker() without scoped_session: open one session per request "
                                   "(e.g. on g) and close it in a teardown_appcontext function; not changed",
                                   Severity.INFO)

    def _removed_sessions(self, project: Project, sessions: list[Session], changes: ChangeSet) -> set[str]:
        """Sessions an existing teardown already removes; reports removals in after_request."""
        wanted = {s.qualified for s in sessions}
        removed: set[str] = set()
        for path in app_paths(project, (".remove(",)):  # hooks are registered by the app's code
            text = project.text(path) or ""
            if not any(s.var in text for s in sessions) or not any(h in text for h in _HOOK_NEEDLES):
                continue  # cannot remove one of the sessions in a hook registered here
            module = project.parse(path)
            if module is None:
                continue
            finder = _RemovalFinder(import_map(project, path), project.module_name(path), wanted)
            finder.walk(module)
            positions = project.position_lookup(path)
            for func, targets in finder.removals.items():
                hooks = finder.hooks_of(func)
                if hooks & TEARDOWN_HOOKS:
                    removed |= targets
                elif hooks & AFTER_REQUEST_HOOKS:
                    names = ", ".join(sorted(t.rsplit(".", 1)[1] for t in targets))
                    changes.report(path, positions(finder.defs[func])[0],
                                   f"{names}.remove() in an after_request hook does not run when a view raises; "
                                   "a teardown_appcontext function removes it instead (this call can then go)")
        return removed

    def _apps_for(self, project: Project, session: Session, apps: list[AppSite], changes: ChangeSet) -> list[AppSite]:
        if not apps:
            changes.report(session.path, session.line,
                           f"scoped_session {session.var} is never removed, and no Flask app was found in the files "
                           "of this run to register a teardown on; add the run's app module or call .remove() "
                           "in a teardown_appcontext function by hand")
            return []
        if len(apps) == 1:
            return apps
        users = [a for a in apps if a.module_name and (a.module_name == session.module_name or
                 imports_transitively(project, a.module_name, session.module_name))]
        if not users:
            changes.report(session.path, session.line,
                           f"scoped_session {session.var} is never removed, and none of the {len(apps)} Flask apps "
                           "imports it; register a teardown_appcontext calling .remove() on the app that uses it")
        return users

    # -- the edit ------------------------------------------------------------------
    def _insert_teardown(self, project: Project, app: AppSite, module: cst.Module, sessions: list[Session]) -> cst.Module | None:
        imports = import_map(project, app.path)
        taken = module_level_names(module)
        body_lines, module_imports = [], []
        for session in sessions:
            local = self._local_name(project, app, imports, session)
            if local is None:
                if session.var in taken or imports_transitively(project, session.module_name, app.module_name or ""):
                    # the name is taken, or a module-level import would close an import
                    # cycle: import it when the teardown runs
                    body_lines.append(f"from {session.module_name} import {session.var}")
                else:
                    module_imports.append(session)
                local = session.var
            body_lines.append(f"{local}.remove()")
        func_name = FUNCTION_NAME
        counter = 2
        while func_name in taken:
            func_name, counter = f"{FUNCTION_NAME}_{counter}", counter + 1
        code = (f"@{app.var}.teardown_appcontext\n"
                f"def {func_name}(exception=None):\n" + "".join(f"    {line}\n" for line in body_lines))
        function = parse_statement(code, config=parsing_config(module))
        if app.kind == "factory":
            new = _insert_in_factory(module, app, function)
        else:
            new = _insert_at_module_level(module, app, function, [s.var for s in module_imports])
        for session in module_imports:
            new = add_import(new, session.module_name, session.var)
        return new

    def _local_name(self, project: Project, app: AppSite, imports: ImportMap, session: Session) -> str | None:
        """How the app module already refers to the session, if it does."""
        if app.module_name == session.module_name:
            return session.var
        names = imports.local_names_for(session.qualified)
        return min(names, key=len) if names else None


class _RemovalFinder(ReadOnlyVisitor):
    """Functions calling `<session>.remove()` and how each function is registered."""

    def __init__(self, imports: ImportMap, module_name: str | None, wanted: set[str]) -> None:
        self.imports = imports
        self.module_name = module_name
        self.wanted = wanted
        self.defs: dict[str, cst.FunctionDef] = {}
        self.removals: dict[str, set[str]] = {}
        self.calls: dict[str, set[str]] = {}  # function -> names of functions it calls
        self.registrations: dict[str, set[str]] = {}  # function -> hooks via `app.hook(fn)`
        self.stack: list[str] = []
        self.local_imports: list[ImportMap] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        name = node.name.value
        self.defs[name] = node
        self.stack.append(name)
        self.local_imports.append(ImportMap.of(cst.Module(body=node.body.body), self.module_name)
                                  if isinstance(node.body, cst.IndentedBlock) else ImportMap())
        for registration in decorator_registrations(node):
            self.registrations.setdefault(name, set()).add(registration.method)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.stack.pop()
        self.local_imports.pop()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        registration = call_registration(node)  # `app.teardown_appcontext(close_session)`
        if registration is not None and registration.function is not None:
            target = get_full_name_for_node(registration.function)
            if target:
                self.registrations.setdefault(target, set()).add(registration.method)
        if not self.stack:
            return
        if isinstance(func, cst.Attribute) and func.attr.value == "remove" and not node.args:
            target = self._resolve(func.value)
            if target in self.wanted:
                self.removals.setdefault(self.stack[-1], set()).add(target)
        elif isinstance(func, cst.Name):
            self.calls.setdefault(self.stack[-1], set()).add(func.value)

    def _resolve(self, node: cst.BaseExpression) -> str | None:
        for imports in reversed(self.local_imports):
            found = imports.resolve(node)
            if found:
                return found
        found = self.imports.resolve(node)
        if found:
            return found
        name = get_full_name_for_node(node)
        return f"{self.module_name}.{name}" if name and self.module_name else None

    def hooks_of(self, func: str) -> set[str]:
        """Hooks `func` is registered on, directly or through a registered caller."""
        hooks = set(self.registrations.get(func, ()))
        for caller, callees in self.calls.items():
            if func in callees and caller != func:
                hooks |= self.registrations.get(caller, set())
        return hooks


def _modules_near_flask(project: Project) -> set[str]:
    """Files that mention Flask, and the project modules those import: where a session
    factory belongs to a Flask app rather than to some library vendored in the tree."""
    return project.fact("teardown.near-flask", _compute_near_flask)


def _compute_near_flask(project: Project) -> set[str]:
    """Flask-mentioning files plus every project module they import, transitively,
    followed through the project index (no parse)."""
    near: set[str] = set()
    pending = list(project.candidates(("flask",)))
    while pending:
        path = pending.pop()
        if path in near:
            continue
        near.add(path)
        named, packages = imported_paths(project, path)
        pending.extend((named | packages) - near)
    return near


def _binds(stmt: cst.CSTNode, name: str) -> bool:
    if isinstance(stmt, cst.SimpleStatementLine):
        for small in stmt.body:
            if isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
                for alias in small.names:
                    bound = alias.asname.name.value if alias.asname else get_full_name_for_node(alias.name).split(".")[0]
                    if bound == name.split(".")[0]:
                        return True
    found = assigned_name(stmt)
    return bool(found and found[0] == name)


def _insert_at_module_level(module: cst.Module, app: AppSite, function: cst.FunctionDef,
                            names: list[str]) -> cst.Module:
    body = list(module.body)
    index = next(i for i, stmt in enumerate(body) if (assigned_name(stmt) or ("",))[0] == app.var)
    # after whatever binds the names the function uses...
    for i, stmt in enumerate(body):
        if any(_binds(stmt, name) for name in names):
            index = max(index, i)
    # ...and after the app's set-up lines, before the first def, class or block
    index += 1
    while index < len(body) and isinstance(body[index], cst.SimpleStatementLine):
        index += 1
    blank = cst.EmptyLine(indent=False)
    function = function.with_changes(leading_lines=[blank, blank])
    if index < len(body) and len(body[index].leading_lines) < 2 and not _has_comment(body[index]):
        missing = 2 - len(body[index].leading_lines)  # PEP 8: two blank lines after a def
        body[index] = body[index].with_changes(leading_lines=[*[blank] * missing, *body[index].leading_lines])
    body.insert(index, function)
    return module.with_changes(body=body)


def _has_comment(stmt: cst.CSTNode) -> bool:
    return any(line.comment for line in getattr(stmt, "leading_lines", ()))


def _insert_in_factory(module: cst.Module, app: AppSite, function: cst.FunctionDef) -> cst.Module:
    factory = factory_function(module, app.factory)
    statements = list(factory.body.body)
    index = max(i for i, stmt in enumerate(statements)
                if isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Return))
    returned = statements[index]
    if not returned.leading_lines:  # a blank line between the new def and `return app`
        statements[index] = returned.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
    statements.insert(index, function.with_changes(leading_lines=[cst.EmptyLine(indent=False)]))
    new_factory = factory.with_changes(body=factory.body.with_changes(body=statements))
    return module.with_changes(body=[new_factory if stmt is factory else stmt for stmt in module.body])
