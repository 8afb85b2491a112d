"""`error-handling`: hand-built error responses in views become `abort(code,
description=...)`, with one registered handler per response shape that renders exactly
what clients saw before.

Each handler is scoped: it renders its shape only for the (endpoint, code) pairs whose
views were converted and passes every other HTTP error through unchanged, so routing
404/405, existing `abort()` calls, CSRF failures and the like keep their old pages.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.codemod import ChangeSet, Codemod, Option, Severity
from flask_refactor.project import Project
from flask_refactor.walk import ReadOnlyVisitor

from ._error_handling_code import (
    Names, Rewriter, abort_statement, add_imports, bound_names, drop_unused_imports, dropped_comments,
    extend_own_handler, handler_function, insert_unexpected_handler, recognise_own_handler,
)
from ._error_handling_sites import (
    ErrorSource, Shape, Site, SourceFinder, analyse_function, catches_around_parameters,
)
from .support.cache import per_tree
from .support.errors import (
    ABORT_FUNCTIONS, DECORATOR_CODES, DECORATOR_NAME_CODES, WerkzeugMissing, http_errors,
    JSONIFY, HandlerRegistration, registrations_in, status_code,
)
from .support.flask import RESTFUL_RESOURCES, app_modules, app_paths, decorator_callee, find_apps, import_map
from .support.imports import ImportMap
from .support.routes import (
    BEFORE_REQUEST_HOOKS, decorator_registrations, endpoints_of, find_blueprints, local_blueprints, route_owner,
)

# Functions registered with these are hooks, not helpers: their error returns are not reported.
NOT_HANDLERS = frozenset({"errorhandler", "app_errorhandler", "before_request", "before_app_request",
                          "after_request", "after_app_request", "teardown_request", "teardown_app_request",
                          "teardown_appcontext", "context_processor", "app_context_processor"})


@dataclass
class View:
    path: str
    func: cst.FunctionDef
    container: cst.CSTNode  # the module, or the factory function the view is defined in
    owner: str  # local name of the app or blueprint in the decorator
    scope: str  # qualified blueprint name, or "app:<path>:<factory>:<var>" for views on an app
    endpoints: list[str] | None  # full endpoint names; None when they cannot be known
    sites: list[Site]
    sources: list[ErrorSource] = field(default_factory=list)


@dataclass
class Handler:
    """One handler to add: a shape, on a scope, for (endpoint, code) pairs."""

    scope: str
    shape: Shape
    view: View | None  # the first converted view: the handler goes just before it
    pairs: set[tuple[str, int]] = field(default_factory=set)
    existing: "OwnHandler | None" = None  # a handler an earlier run added: extended in place

    @property
    def path(self) -> str:
        return self.existing.path if self.existing else self.view.path

    @property
    def owner(self) -> str:
        return self.existing.owner if self.existing else self.view.owner


@dataclass
class OwnHandler:
    """A handler this codemod generated in an earlier run (its `converted = {...}` set)."""

    path: str
    func: cst.FunctionDef
    owner: str
    scope: str
    shape: Shape
    pairs: set[tuple[str, int]]
    depth: int  # 0 at module level, 1 inside an app factory


class ErrorHandling(Codemod):
    name = "error-handling"
    summary = "Hand-built error responses in views -> abort(code, description=...) plus one handler per shape."
    order = 50
    needles = ("flask",)
    uses_index = True
    options = (
        Option("unexpected_errors", bool, False,
               "also add an errorhandler(Exception) to apps without one: it logs the traceback and answers "
               "with the app's 500 page, passing HTTP errors through"),
    )
    own: list[OwnHandler] = []  # handlers earlier runs added, found at the start of `run`
    explain = '''\
Views that build their own error responses

    return jsonify({"error": msg}), 404        return jsonify(error=msg), 400
    return {"error": msg}, 409                 return make_response(jsonify(error=msg), 422)
    return "Not found", 404                    raise NotFound()

become `abort(code, description=msg)` (always by keyword: 405 and 416 take other
arguments first), and the app, factory or blueprint the views belong to gets one error
handler per response shape that renders exactly what clients saw before: the same
status, the same `jsonify` bytes (trailing newline, debug indentation), the same content
type, and the headers of `e.get_response()`. A blueprint's handler is registered on the
blueprint, so it never reaches other clients.

The handler renders its shape only for the (endpoint, code) pairs that were converted;
every other HTTP error passes through unchanged, so routing 404/405, `abort()` calls that
were already there, CSRF failures, 413 and 429 keep their old pages. A site is left alone
(and reported) when abort() cannot reproduce it: a code abort cannot raise (402, 2xx...),
a 3-tuple with headers, a body with more than one key or not a literal, a string or
computed status, a message that may be None, a return inside `try/except Exception` or
a `finally`, a view whose own decorator (one of the app's) calls it inside such a
`try` (the decorator would catch the abort), a `with` block (transactions roll back on
exceptions), a generator, a helper whose result its callers inspect, a flask_restful
Resource or class-based view method, a 500 (unexpected exceptions answer 500 too), a
view that can also fail with the same code in another way (its own abort(),
get_or_404, request.get_json(), request.form[...], a helper or decorator that aborts,
@login_required, CSRF, rate limits, a before_request hook), a code an existing handler
on the app or blueprint already handles, and views whose endpoint name cannot be known
(a blueprint registered under another name or nested).
Views whose error responses differ from the others of their app or blueprint are listed
for a human to decide, and abort() calls that already misbehave are reported: abort(402)
(a 500), abort(jsonify(...), 404) (a 200), abort(405, "message") (the message is lost).

Running it again after new hand-built errors appeared extends the handler it added
before (its `converted` set and decorators) instead of adding a second one.

With `unexpected-errors = true`, an app with no handler for unexpected exceptions gets
an `errorhandler(Exception)` that logs the traceback and answers with the same 500 page,
passing HTTP errors through.

Before:

    @api.route("/items/<int:item_id>")
    def get_item(item_id):
        item = ITEMS.get(item_id)
        if item is None:
            return jsonify({"error": f"no item {item_id}"}), 404
        return jsonify(item)

After:

    @api.errorhandler(404)
    def render_error_response(error):
        """Render the errors these views raise with abort() as they answered before:
        {"error": description}; any other HTTP error passes through unchanged."""
        converted = {("api.get_item", 404)}
        if (request.endpoint, error.code) not in converted or error.response is not None:
            return error
        response = make_response(jsonify({"error": error.description}), error.code)
        for name, value in error.get_response().headers.items():
            if name not in ("Content-Type", "Content-Length"):
                response.headers[name] = value
        return response


    @api.route("/items/<int:item_id>")
    def get_item(item_id):
        item = ITEMS.get(item_id)
        if item is None:
            abort(404, description=f"no item {item_id}")
        return jsonify(item)
'''

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        try:
            http_errors()
        except WerkzeugMissing as exc:
            changes.report(".", 1, f"error-handling did nothing: {exc}", Severity.ERROR)
            return changes
        registrations = self._registrations(project)
        helper_codes = _helper_error_codes(project)
        handler_names = {r.function for r in registrations}
        views = self._views(project, changes, helper_codes, handler_names)
        project_sources = _project_sources(project)
        self.own = self._own_handlers(project)
        handlers = self._plan(project, views, registrations, project_sources, changes)
        self._rewrite(project, views, handlers, self._inconsistent(views), changes)
        _report_abort_mistakes(project, changes)
        if self.config["unexpected_errors"]:
            self._add_unexpected_error_handlers(project, registrations, changes)
        return changes

    # -- what is there -------------------------------------------------------------
    def _registrations(self, project: Project) -> list[HandlerRegistration]:
        blueprints = find_blueprints(project)
        found = []
        for path, module in app_modules(project, ("errorhandler", "register_error_handler")):
            imports = import_map(project, path)
            local = local_blueprints(module, project.module_name(path), path, imports, blueprints)
            found.extend(registrations_in(module, path, imports, local, project.position_lookup(path)))
        return found

    def _own_handlers(self, project: Project) -> list[OwnHandler]:
        found = []
        blueprints, apps = find_blueprints(project), _apps_by_name(project)
        for path, module in app_modules(project, ("converted = {",)):
            imports = import_map(project, path)
            module_name = project.module_name(path)
            local = local_blueprints(module, module_name, path, imports, blueprints)
            for container, func in _functions(module):
                recognised = recognise_own_handler(func)
                if recognised is None:
                    continue
                owner, shape, pairs = recognised
                scope = local.get(owner) or _app_scope(owner, path, container, module_name, imports, apps)
                if scope is not None:
                    found.append(OwnHandler(path, func, owner, scope, shape, pairs, int(container is not module)))
        return found

    def _views(self, project: Project, changes: ChangeSet, helper_codes: dict[str, ErrorSource],
               handler_names: set[str]) -> list[View]:
        blueprints = find_blueprints(project)
        apps = _apps_by_name(project)
        catching = _catching_decorators(project)
        views = []
        for path, module in app_modules(project, self.needles):
            imports = import_map(project, path)
            positions = project.position_lookup(path)
            module_name = project.module_name(path)
            local = local_blueprints(module, module_name, path, imports, blueprints)
            for container, func in _functions(module):
                found = route_owner(func)
                if found is None:
                    if not _is_registered_hook(func) and func.name.value not in handler_names:
                        self._report_helper(path, func, container, imports, positions, changes)
                    continue
                owner, routes = found
                scope = local.get(owner) or _app_scope(owner, path, container, module_name, imports, apps)
                if scope is None:
                    self._report_unknown_owner(path, func, owner, imports, positions, changes)
                    continue
                names = endpoints_of(func, routes)
                if names is not None and owner in local:
                    prefix = blueprints.get(local[owner])
                    names = None if prefix is None else [f"{prefix}.{n}" for n in names]
                sources, yields = _view_sources(func, imports, positions, module, module_name, helper_codes)
                sources += _catching_sources(func, imports, positions, module, module_name, catching)
                sites = analyse_function(func, imports, positions, generator=yields)
                view = View(path, func, container, owner, scope, names, sites, sources)
                views.append(view)
        return views

    def _report_unknown_owner(self, path, func, owner, imports, positions, changes) -> None:
        """Views on an object that is not an app or blueprint created in the run's files."""
        sites = [s for s in analyse_function(func, imports, positions) if s.kind == "return" and s.body.convertible_kind]
        if sites:
            changes.report(path, positions(func)[0],
                           f"{func.name.value} is registered on `{owner}`, which is not a Flask app or blueprint "
                           "created in the files of this run (a parameter, or defined elsewhere), so no handler can "
                           f"be registered for it; its {len(sites)} error response(s) were not converted",
                           Severity.INFO)

    def _report_helper(self, path, func, container, imports, positions, changes) -> None:
        """Error returns outside views: left alone, since callers may inspect the result."""
        resource = isinstance(container, cst.ClassDef) and any(
            imports.resolve(base.value) in RESTFUL_RESOURCES for base in container.bases)
        for site in analyse_function(func, imports, positions):
            if site.kind != "return" or not site.body.convertible_kind:
                continue
            if isinstance(container, cst.ClassDef) and not resource:
                reason = (f"{container.name.value}.{func.name.value} is a method of a class-based view, whose "
                          "endpoint is set where it is registered; not converted")
            elif resource:
                reason = (f"{container.name.value}.{func.name.value} is a flask_restful Resource method: Api renders "
                          "its errors as {\"message\": ...}, so abort() would change the body; not converted")
            else:
                reason = (f"{func.name.value}() is not a view: its callers may inspect the response it returns "
                          "(`resp = check(); if resp: return resp`), which abort() would turn into an exception; "
                          "not converted")
            changes.report(path, site.line, reason, Severity.INFO)

    # -- deciding --------------------------------------------------------------------
    def _plan(self, project: Project, views: list[View], registrations: list[HandlerRegistration],
              project_sources: list[ErrorSource], changes: ChangeSet) -> list[Handler]:
        hook_sources = _hook_sources(project, _helper_error_codes(project))
        candidates: dict[str, list[tuple[View, Site]]] = {}
        for view in views:
            for site in view.sites:
                if site.kind != "return":
                    continue
                if site.skip is None:
                    site.skip = self._scope_problem(view, site, registrations,
                                                    [*view.sources, *project_sources, *hook_sources])
                if site.skip is None:
                    candidates.setdefault(view.scope, []).append((view, site))
                elif site.body.convertible_kind:
                    changes.report(view.path, site.line, f"not converted to abort(): {site.skip}", Severity.INFO)
        handlers = []
        for scope, pairs in candidates.items():
            handlers.extend(self._handlers_for_scope(scope, pairs, changes))
        return handlers

    def _scope_problem(self, view: View, site: Site, registrations: list[HandlerRegistration],
                       sources: list[ErrorSource]) -> str | None:
        if view.endpoints is None:
            return ("the view's endpoint name is not known (blueprint name or endpoint= is not a literal), "
                    "so a handler cannot be scoped to it")
        if site.code == 500:
            return ("any unexpected exception in the view also answers 500, and a handler for 500 would render "
                    "those too")
        blueprint = None if view.scope.startswith("app:") else view.scope
        for registration in registrations:
            if registration.blueprint not in (None, blueprint):
                continue
            if any(own.path == registration.path and own.func.name.value == registration.function
                   and own.scope == view.scope and own.shape == site.body.shape for own in self.own):
                continue  # an earlier run's handler for this shape: it is extended
            if registration.code == site.code or registration.catch_all:
                return (f"{registration.describe()} already handles {site.code}: it would render the abort() "
                        "differently, or be bypassed for other errors")
        for source in sources:
            if source.codes is None or site.code in source.codes:
                if source.reason:
                    return source.reason
                where = f" (line {source.line})" if source.line else ""
                return (f"the view can also fail with {site.code} through {source.what}{where}, which answers with "
                        f"its own page; a handler for this view's {site.code} would change that response too")
        return None

    def _handlers_for_scope(self, scope: str, pairs: list[tuple[View, Site]], changes: ChangeSet) -> list[Handler]:
        """One handler per shape; a code two shapes use goes to the more common one."""
        by_code: dict[int, Counter] = {}
        for view, site in pairs:
            by_code.setdefault(site.code, Counter())[site.body.shape] += 1
        handlers: dict[Shape, Handler] = {}
        for view, site in pairs:
            winner = sorted(by_code[site.code].items(), key=lambda kv: (-kv[1], kv[0].label()))[0][0]
            if site.body.shape != winner:
                site.skip = (f"other views of this {'app' if scope.startswith('app:') else 'blueprint'} answer "
                             f"{site.code} as {winner.label()}, and a code has one handler per app or blueprint")
                changes.report(view.path, site.line, f"not converted to abort(): {site.skip}", Severity.INFO)
                continue
            if site.body.shape not in handlers:
                own = next((o for o in self.own if o.scope == scope and o.shape == site.body.shape), None)
                handlers[site.body.shape] = Handler(scope, site.body.shape, None if own else view,
                                                    set(own.pairs) if own else set(), own)
            handlers[site.body.shape].pairs.update((endpoint, site.code) for endpoint in view.endpoints)
        return list(handlers.values())

    # -- the edit ------------------------------------------------------------------
    def _rewrite(self, project: Project, views: list[View], handlers: list[Handler],
                 inconsistent: dict[str, list["Inconsistency"]], changes: ChangeSet) -> None:
        """Each module's edit, and its inconsistency reports: their lines need the
        positions of the module as it was, which the edit's own report computes anyway."""
        by_path: dict[str, list[View]] = {}
        for view in views:
            by_path.setdefault(view.path, []).append(view)
        for handler in handlers:
            by_path.setdefault(handler.path, [])
        if project.candidates(("aborter",)):
            for view in views:
                for site in (s for s in view.sites if s.kind == "raise" and s.skip is None):
                    site.skip = "the project customises app.aborter, so abort() may raise another class than this raise"
        for view in views:
            for site in (s for s in view.sites if s.kind == "raise" and s.skip):
                changes.report(view.path, site.line, f"not converted to abort(): {site.skip}", Severity.INFO)
        names = {path: Names(project.parse(path), import_map(project, path)) for path in by_path}
        self._drop_unwritable(views, handlers, names, changes)
        work = []
        for path, path_views in sorted(by_path.items()):
            sites = [s for v in path_views for s in v.sites if s.skip is None]
            module_handlers = [h for h in handlers if h.path == path]
            if sites or module_handlers or path in inconsistent:
                work.append((path, sites, module_handlers))

        def one_module(item: tuple[str, list[Site], list[Handler]], changes: ChangeSet) -> None:
            path, sites, module_handlers = item
            if sites or module_handlers:
                _rewrite_module(project, path, sites, module_handlers, names[path], changes)
            for inconsistency in inconsistent.get(path, []):
                inconsistency.report(project, changes)

        project.per_module(work, one_module, changes, project.sizes(path for path, _, _ in work))

    def _drop_unwritable(self, views: list[View], handlers: list[Handler], names: dict[str, Names],
                         changes: ChangeSet) -> None:
        """A module whose names for abort/jsonify/... are taken cannot be edited: its sites
        stay, and so do the sites of other modules whose handler it was to hold."""
        for path, module_names in names.items():
            needed = ["flask.abort"]
            if any(h.path == path and not h.existing for h in handlers):
                needed += ["flask.request", "flask.make_response", "flask.jsonify"]
            for qualified in needed:
                module_names.check(qualified)
        failed = {path for path, module_names in names.items() if module_names.failed}
        for path in sorted(failed):
            changes.report(path, 1, f"not converted: {names[path].failed}", Severity.WARNING)
        lost = {(h.scope, h.shape) for h in handlers if h.path in failed}
        handlers[:] = [h for h in handlers if (h.scope, h.shape) not in lost]
        for view in views:
            for site in view.sites:
                if site.skip is None and (view.path in failed or (site.kind == "return" and
                                                                   (view.scope, site.body.shape) in lost)):
                    site.skip = "a module this conversion needs cannot be edited"

    def _inconsistent(self, views: list[View]) -> dict[str, list["Inconsistency"]]:
        """path -> its views whose error bodies differ from the most common shape of their
        app or blueprint; in a JSON API also views that answer with Werkzeug's HTML page."""
        found: dict[str, list[Inconsistency]] = {}
        by_scope: dict[str, list[tuple[View, set[str]]]] = {}
        for view in views:
            labels = {site.body.label for site in view.sites if site.kind == "return"}
            by_scope.setdefault(view.scope, []).append((view, labels))
        for scope, entries in by_scope.items():
            counts = Counter(label for _, labels in entries for label in labels)
            if not counts:
                continue
            common, _ = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            owner = f"the {'app' if scope.startswith('app:') else 'blueprint'} `{entries[0][0].owner}`"
            rendered = {pair for own in self.own if own.scope == scope for pair in own.pairs}
            for view, labels in entries:
                odd = sorted(labels - {common})
                html = _html_pages(view, rendered) if common.startswith("JSON") else []
                if odd or html:
                    found.setdefault(view.path, []).append(Inconsistency(view, odd, html, owner, common))
        return found

    def _add_unexpected_error_handlers(self, project: Project, registrations: list[HandlerRegistration],
                                       changes: ChangeSet) -> None:
        app_level = [r for r in registrations if r.blueprint is None and (r.code == 500 or r.catch_all)]
        for app in find_apps(project):
            if app_level:
                changes.report(app.path, app.line,
                               f"not adding an Exception handler: {app_level[0].describe()} already exists", Severity.INFO)
                continue
            pending = changes.changes.get(app.path)
            module = pending.new if pending is not None else project.parse(app.path)
            new = insert_unexpected_handler(project, app, module)
            if new is None:
                changes.report(app.path, app.line, "not adding an Exception handler: the names it needs are taken",
                               Severity.WARNING)
                continue
            changes.modify(app.path, new, "log unexpected exceptions in one handler")
            changes.report(app.path, app.line,
                           "added an errorhandler(Exception): unexpected errors are logged with their traceback and "
                           "answer with the same 500 page; in debug/testing mode they still propagate, but the "
                           "got_request_exception signal is no longer sent", Severity.INFO)


# -- facts ---------------------------------------------------------------------------

_SUSPECT_ABORT = re.compile(r"abort\(\s*(?:[\w.]*jsonify\b|(\d+)\b)")


def _suspect_abort_text(text: str) -> bool:
    """Cheap test before parsing: an abort() of jsonify, of a code abort cannot raise, or
    of a code whose first argument is not the description."""
    for match in _SUSPECT_ABORT.finditer(text):
        code = match.group(1)
        errors = http_errors()
        if code is None or int(code) not in errors.abort_codes \
                or errors.constructor_parameters[int(code)][0] != "description":
            return True
    return False


def _report_abort_mistakes(project: Project, changes: ChangeSet) -> None:
    """abort() calls already in the code that do not do what they seem to."""
    for path in app_paths(project, ("abort(",)):  # Flask's abort() is called by the app's code only
        module = project.parse(path) if _suspect_abort_text(project.text(path) or "") else None
        if module is None:
            continue
        imports = import_map(project, path)
        positions = project.position_lookup(path)

        class Visitor(ReadOnlyVisitor):
            def visit_Call(self, node: cst.Call) -> None:
                if imports.resolve(node.func) not in ABORT_FUNCTIONS or not node.args or node.args[0].keyword:
                    return
                first = node.args[0].value
                code = status_code(first, imports)
                positional = [a for a in node.args[1:] if a.keyword is None and not a.star]
                problem = None
                if isinstance(first, cst.Call) and imports.resolve(first.func) in JSONIFY:
                    problem = ("abort(jsonify(...)) sends the response as it is, with jsonify's status 200; any "
                               "code passed after it is ignored: use abort(make_response(jsonify(...), code))")
                elif code is not None and code not in http_errors().abort_codes:
                    problem = (f"abort({code}) raises LookupError (Werkzeug has no exception for {code}), so the "
                               "client gets a 500")
                elif code is not None and positional and http_errors().constructor_parameters[code][0] != "description":
                    problem = (f"the second positional argument of abort({code}) is "
                               f"{http_errors().constructor_parameters[code][0]}, not the description: "
                               "pass description= by keyword")
                if problem:
                    changes.report(path, positions(node)[0], problem, Severity.WARNING)

        Visitor().walk(module)


@dataclass
class Inconsistency:
    """A view answering errors unlike most of its app or blueprint: `odd` labels, and
    `html` sources of Werkzeug's HTML page (their lines are read only when reported)."""

    view: View
    odd: list[str]
    html: list[ErrorSource]
    owner: str
    common: str

    def report(self, project: Project, changes: ChangeSet) -> None:
        view = self.view
        odd = list(self.odd)
        if self.html:
            where = ", ".join(f"{s.what} at line {s.line}" for s in self.html[:3])
            odd.append(f"Werkzeug's HTML page ({where})")
        line = project.position_lookup(view.path)(view.func)[0]
        changes.report(view.path, line,
                       f"{view.func.name.value} answers errors as {', '.join(odd)}, while most error "
                       f"responses of {self.owner} are {self.common}: make them consistent by hand if clients allow",
                       Severity.INFO)


def _html_pages(view: View, rendered: set[tuple[str, int]]) -> list[ErrorSource]:
    """The view's sources of Werkzeug's HTML error page, when the view itself aborts or
    raises; not the aborts an earlier run's handler renders (`rendered`: its
    endpoint/code pairs)."""
    def html(source: ErrorSource) -> bool:
        if source.codes and len(source.codes) == 1 and view.endpoints:
            code = next(iter(source.codes))
            if any((endpoint, code) in rendered for endpoint in view.endpoints):
                return False
        return source.what == "abort()" or source.what.startswith(("raise ", "get_or_404", "first_or_404",
                                                                   "one_or_404"))

    return [s for s in view.sources if html(s)]


def _functions(module: cst.Module):
    """(container, function) for module-level functions, functions inside them (views in
    an app factory) and class methods."""
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef):
            yield module, stmt
            for inner in stmt.body.body if isinstance(stmt.body, cst.IndentedBlock) else ():
                if isinstance(inner, cst.FunctionDef):
                    yield stmt, inner
        elif isinstance(stmt, cst.ClassDef):
            for inner in stmt.body.body if isinstance(stmt.body, cst.IndentedBlock) else ():
                if isinstance(inner, cst.FunctionDef):
                    yield stmt, inner


def _apps_by_name(project: Project) -> dict[str, list]:
    apps: dict[str, list] = {}
    for app in find_apps(project):
        qualified = ".".join(p for p in (app.module_name or app.path, app.factory, app.var) if p)
        apps.setdefault(qualified, []).append(app)
    return apps


def _app_scope(owner: str, path: str, container: cst.CSTNode, module_name: str | None,
               imports: ImportMap, apps: dict[str, list]) -> str | None:
    """"app:<path>:<factory>:<var>" for a view on a Flask app of the project, else None
    (also when two apps share the qualified name, e.g. two top-level `app.py`)."""
    module = module_name or path
    if isinstance(container, cst.FunctionDef):
        found = [a for a in apps.get(f"{module}.{container.name.value}.{owner}", ()) if a.path == path]
    else:
        found = [a for a in apps.get(f"{module}.{owner}", ()) if a.path == path]
        if not found and owner.isidentifier():
            found = apps.get(imports.resolve(cst.Name(owner)) or "", [])
    if len(found) != 1:
        return None
    return f"app:{found[0].path}:{found[0].factory or ''}:{found[0].var}"


def _is_registered_hook(func: cst.FunctionDef) -> bool:
    return any(registration.method in NOT_HANDLERS for registration in decorator_registrations(func))


def _view_sources(func, imports, positions, module, module_name, helper_codes) -> tuple[list[ErrorSource], bool]:
    """The other ways a view fails with an HTTP error, and whether it is a generator."""
    finder = SourceFinder(imports, positions)
    finder.walk(func)
    sources = list(finder.sources)
    for name, call in finder.called:
        qualified = _resolve_function(name, imports, module, module_name)
        if qualified in helper_codes:
            helper = helper_codes[qualified]
            sources.append(ErrorSource(helper.codes, f"{name}() ({helper.what})", call, positions))
    for decorator, name, qualified in _decorators(func, imports, module, module_name):
        # e.g. @login_required, or the project's own @require_key
        codes = (helper_codes[qualified].codes if qualified in helper_codes else DECORATOR_CODES.get(qualified)
                 or DECORATOR_NAME_CODES.get((name or "").rsplit(".", 1)[-1]))
        if codes is not None or qualified in helper_codes:
            sources.append(ErrorSource(codes, f"the decorator @{name}", decorator, positions))
    return sources, finder.yields


def _catching_sources(func, imports, positions, module, module_name, catching: dict[str, str]) -> list[ErrorSource]:
    """The view's decorators that run it inside a `try` catching what it raises: an
    abort() there ends in their `except`, not in the error handler, so no site of the
    view is converted."""
    found = []
    for decorator, name, qualified in _decorators(func, imports, module, module_name):
        handler = catching.get(qualified or "")
        if handler is not None:
            reason = (f"the view runs inside the decorator @{name} (line {positions(decorator)[0]}), whose "
                      f"`{handler}` would catch the abort()")
            found.append(ErrorSource(None, f"the decorator @{name}", decorator, positions, reason))
    return found


def _decorators(func, imports, module, module_name) -> list[tuple[cst.Decorator, str | None, str | None]]:
    """(decorator, the name it is written with, the project function or import that
    name resolves to) for each decorator of `func` (names None where not known)."""
    found = []
    for decorator in func.decorators:
        name = get_full_name_for_node(decorator_callee(decorator))
        found.append((decorator, name, _resolve_function(name, imports, module, module_name) if name else None))
    return found


def _resolve_function(name: str, imports: ImportMap, module: cst.Module, module_name: str | None) -> str | None:
    if "." not in name and module_name and name in _top_level_functions(module):
        return f"{module_name}.{name}"
    head, _, rest = name.partition(".")
    base = imports.names.get(head)
    return None if base is None else f"{base}.{rest}" if rest else base


@per_tree
def _top_level_functions(module: cst.Module) -> frozenset[str]:
    """The names of the functions a module defines at its top level: asked about every
    call its views and helpers make, which a search of its statements made cost the
    module's length times its calls."""
    return frozenset(statement.name.value for statement in module.body if isinstance(statement, cst.FunctionDef))


def _helper_error_codes(project: Project) -> dict[str, ErrorSource]:
    """Module-level functions that end a request with an HTTP error, directly or through
    other such functions: qualified name -> the codes (None: any)."""
    def compute(proj: Project) -> dict[str, ErrorSource]:
        direct: dict[str, ErrorSource] = {}
        calls: dict[str, set[str]] = {}
        for path, module in app_modules(proj, ("abort", "raise", "_or_404")):  # helpers a view can call
            module_name = proj.module_name(path)
            if not module_name:
                continue
            imports = import_map(proj, path)
            positions = proj.position_lookup(path)
            for stmt in module.body:
                if not isinstance(stmt, cst.FunctionDef) or route_owner(stmt):
                    continue
                finder = SourceFinder(imports, positions)
                finder.walk(stmt)
                qualified = f"{module_name}.{stmt.name.value}"
                if finder.sources:
                    codes = _union(s.codes for s in finder.sources)
                    direct[qualified] = ErrorSource(codes, finder.sources[0].what)
                calls[qualified] = {q for q in (_resolve_function(n, imports, module, module_name)
                                                for n, _ in finder.called) if q}
        changed = True
        while changed:  # callers of aborting helpers abort too
            changed = False
            for caller, callees in calls.items():
                for callee in callees & direct.keys():
                    merged = _union([direct[callee].codes, *([direct[caller].codes] if caller in direct else [])])
                    if caller not in direct or direct[caller].codes != merged:
                        what = direct[caller].what if caller in direct else f"via {callee.rsplit('.', 1)[1]}()"
                        direct[caller] = ErrorSource(merged, what)
                        changed = True
        return direct

    return project.fact("errors.helper-codes", compute)


def _catching_decorators(project: Project) -> dict[str, str]:
    """Module-level functions of the app that run a function they are given inside a
    `try` whose handler may catch an HTTPException (`catches_around_parameters`):
    qualified name -> that handler, as written. Decorators of other libraries are not
    read (Flask-Login's, Flask-Limiter's do not catch)."""
    def compute(proj: Project) -> dict[str, str]:
        found = {}
        for path, module in app_modules(proj, ("except",)):
            module_name = proj.module_name(path)
            if not module_name:
                continue
            imports = import_map(proj, path)
            for stmt in module.body:
                if isinstance(stmt, cst.FunctionDef) and (handler := catches_around_parameters(stmt, imports)):
                    found[f"{module_name}.{stmt.name.value}"] = handler
        return found

    return project.fact("errors.catching-decorators", compute)


def _union(code_sets) -> frozenset[int] | None:
    result: set[int] = set()
    for codes in code_sets:
        if codes is None:
            return None
        result |= codes
    return frozenset(result)


def _project_sources(project: Project) -> list[ErrorSource]:
    """Errors the app raises around every view: CSRF (400), rate limits (429), body size
    (413); and settings under which an abort() escapes instead of becoming a response."""
    found = []
    sources = (("CSRFProtect", {400}, "Flask-WTF's CSRF check"), ("Limiter", {429}, "Flask-Limiter's rate limit"),
               ("MAX_CONTENT_LENGTH", {413}, "MAX_CONTENT_LENGTH"), ("TRAP_BAD_REQUEST_ERRORS", {400}, ""),
               ("TRAP_HTTP_EXCEPTIONS", None, ""))
    holding = project.candidates_each(needle for needle, _, _ in sources)
    for needle, codes, what in sources:
        if holding[needle]:
            reason = "" if what else (f"the project sets {needle}, under which an abort() escapes as an exception "
                                      "instead of becoming the response")
            found.append(ErrorSource(None if codes is None else frozenset(codes), what, reason=reason))
    return found


def _hook_sources(project: Project, helper_codes: dict[str, ErrorSource]) -> list[ErrorSource]:
    """before_request hooks that abort: they fail requests to every view."""
    found = []
    for path, module in app_modules(project, ("before_request", "before_app_request")):
        imports = import_map(project, path)
        positions = project.position_lookup(path)
        module_name = project.module_name(path)
        for _, func in _functions(module):
            if any(r.method in BEFORE_REQUEST_HOOKS for r in decorator_registrations(func)):
                for source in _view_sources(func, imports, positions, module, module_name, helper_codes)[0]:
                    found.append(ErrorSource(source.codes, f"the before_request hook {func.name.value}() "
                                             f"({path}:{source.line})"))
    return found


def _rewrite_module(project: Project, path: str, sites: list[Site], module_handlers: list[Handler], module_names: Names,
                    changes: ChangeSet) -> None:
    """One module: its error responses become abort() calls, its handlers are added or extended."""
    module = project.parse(path)
    replacements = {id(site.node): abort_statement(site, module_names.get("flask.abort")) for site in sites}
    moved_comments = {id(site.node): dropped_comments(site) for site in sites}
    insertions: dict[int, list[cst.BaseStatement]] = {}
    taken = set(bound_names(module))  # grows as handlers are added
    for handler in sorted(module_handlers, key=lambda h: h.shape.label()):
        if handler.existing:
            replacements[id(handler.existing.func)] = extend_own_handler(handler, module)
            continue
        function = handler_function(handler, module_names, taken, module,
                                    nested=handler.view.container is not module)
        insertions.setdefault(id(handler.view.func), []).append(function)
    new = add_imports(module.visit(Rewriter(module, replacements, insertions, moved_comments)),
                      module_names.imports)
    raised = {get_full_name_for_node(s.node.exc.func if isinstance(s.node.exc, cst.Call) else s.node.exc)
              for s in sites if s.kind == "raise"}
    new = drop_unused_imports(new, {n for n in raised if n and "." not in n})
    changes.modify(path, new, "hand-built error responses -> abort() and a handler rendering the same bytes")
    for handler in module_handlers:
        line = project.position_lookup(path)(handler.existing.func if handler.existing else handler.view.func)[0]
        where = "blueprint" if not handler.scope.startswith("app:") else "app"
        verb = "extended the error handler" if handler.existing else "added an error handler"
        changes.report(path, line,
                       f"{verb} on the {where} `{handler.owner}` rendering "
                       f"{handler.shape.label()} for {len(handler.pairs)} converted endpoint/code pair(s); "
                       "other HTTP errors pass through unchanged", Severity.INFO)
