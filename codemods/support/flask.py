"""Flask knowledge shared by every codemod: which names are Flask's, which calls create
apps and extensions, which decorators register views and hooks, and where the apps of a
project are. Facts about a whole project are computed once per run through
`Project.fact`. Reading what a project registers (views, hooks, blueprints) from its
code is `routes.py`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Iterable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.project import Project

from .imports import ImportMap, import_records, imported_modules

FLASK_APP_CLASSES = frozenset({"flask.Flask", "flask.app.Flask"})
BLUEPRINT_CLASSES = frozenset({"flask.Blueprint", "flask.blueprints.Blueprint"})
# Class-based views: their HTTP-method handlers (and `dispatch_request`) are views.
VIEW_CLASSES = frozenset({"flask.views.View", "flask.views.MethodView"})
# Extensions' class-based resources, routed by the extension's own `Api` object.
RESTFUL_RESOURCES = frozenset({"flask_restful.Resource", "flask_restx.Resource"})
# keeps the request's context for a generator iterated after its view returned (a
# streamed response); on a call's result or as a decorator of the generator function
STREAM_WITH_CONTEXT = frozenset({"flask.stream_with_context", "flask.helpers.stream_with_context"})

ROUTE_DECORATORS = frozenset({"route", "get", "post", "put", "delete", "patch"})

# Hook registration methods on an app, and the app-wide form on a blueprint (None: a
# blueprint has no app-wide form, the registration must stay on the app).
APP_HOOKS: dict[str, str | None] = {
    "before_request": "before_app_request",
    "after_request": "after_app_request",
    "teardown_request": "teardown_app_request",
    "context_processor": "app_context_processor",
    "url_value_preprocessor": "app_url_value_preprocessor",
    "url_defaults": "app_url_defaults",
    "errorhandler": "app_errorhandler",
    "template_filter": "app_template_filter",
    "template_test": "app_template_test",
    "template_global": "app_template_global",
    "teardown_appcontext": None,
    "shell_context_processor": None,
    "before_first_request": None,
}
TEARDOWN_HOOKS = frozenset({"teardown_appcontext", "teardown_request", "teardown_app_request"})
AFTER_REQUEST_HOOKS = frozenset({"after_request", "after_app_request"})

SCOPED_SESSION = frozenset({
    "sqlalchemy.orm.scoped_session",
    "sqlalchemy.orm.scoping.scoped_session",
})
SESSIONMAKER = frozenset({"sqlalchemy.orm.sessionmaker", "sqlalchemy.orm.session.sessionmaker"})


@dataclass(frozen=True)
class Extension:
    """A Flask extension class; `extra_init_args` are the constructor arguments after the
    app that `init_app` also needs (e.g. `Migrate(app, db)` -> `migrate.init_app(app, db)`)."""

    qualified: str
    extra_init_args: bool = False
    binds_session: bool = False  # registers its own session teardown


EXTENSIONS: dict[str, Extension] = {e.qualified: e for e in [
    Extension("flask_sqlalchemy.SQLAlchemy", binds_session=True),
    Extension("flask_migrate.Migrate", extra_init_args=True),
    Extension("flask_login.LoginManager"),
    Extension("flask_mail.Mail"),
    Extension("flask_wtf.CSRFProtect"),
    Extension("flask_wtf.csrf.CSRFProtect"),
    Extension("flask_bootstrap.Bootstrap"),
    Extension("flask_bootstrap.Bootstrap5"),
    Extension("flask_moment.Moment"),
    Extension("flask_limiter.Limiter"),
    Extension("flask_cors.CORS"),
    Extension("flask_marshmallow.Marshmallow"),
    Extension("flask_babel.Babel"),
    Extension("flask_bcrypt.Bcrypt"),
    Extension("flask_caching.Cache"),
    Extension("flask_session.Session"),
    Extension("flask_jwt_extended.JWTManager"),
    Extension("flask_socketio.SocketIO"),
]}


def is_call_to(node: cst.CSTNode, imports: ImportMap, qualified: frozenset[str]) -> bool:
    return isinstance(node, cst.Call) and imports.resolve(node.func) in qualified


def assigned_name(stmt: cst.CSTNode) -> tuple[str, cst.BaseExpression] | None:
    """(`name`, value) for `name = value` or `name: T = value`, else None."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        small = stmt.body[0]
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
            return small.targets[0].target.value, small.value
        if isinstance(small, cst.AnnAssign) and small.value is not None and isinstance(small.target, cst.Name):
            return small.target.value, small.value
    return None


def parameter_names(func: cst.FunctionDef) -> set[str]:
    """The names a function's parameters bind, `*args` and `**kwargs` included."""
    params = func.params
    names = {p.name.value for p in [*params.posonly_params, *params.params, *params.kwonly_params]}
    for star in (params.star_arg, params.star_kwarg):
        if isinstance(star, cst.Param):
            names.add(star.name.value)
    return names


def stream_wrapper(call: cst.Call, parents: dict[cst.CSTNode, cst.CSTNode], imports: ImportMap) -> cst.Call | None:
    """The `stream_with_context(...)` call `call` is the argument of, if it is one."""
    arg = parents.get(call)
    holder = parents.get(arg) if isinstance(arg, cst.Arg) else None
    if isinstance(holder, cst.Call) and holder.args[0] is arg and imports.resolve(holder.func) in STREAM_WITH_CONTEXT:
        return holder
    return None


def decorator_callee(decorator: cst.Decorator) -> cst.BaseExpression:
    """What a decorator names: `x.y` for `@x.y` and for `@x.y(...)`."""
    target = decorator.decorator
    return target.func if isinstance(target, cst.Call) else target


def decorator_method(decorator: cst.Decorator) -> tuple[str, str] | None:
    """For `@obj.method` or `@obj.method(...)`: (`obj` dotted text, `method`)."""
    target = decorator_callee(decorator)
    if isinstance(target, cst.Attribute):
        owner = get_full_name_for_node(target.value)
        if owner:
            return owner, target.attr.value
    return None


def is_package(path: str) -> bool:
    return path.endswith("__init__.py")


def import_map(project: Project, path: str) -> ImportMap | None:
    """The import map of a file, computed once per project revision, from the project
    index (no libcst parse); None when the file cannot be parsed."""
    def compute(proj: Project) -> ImportMap | None:
        entry = proj.index(path)
        if entry is not None and entry.error is None:
            return ImportMap.from_index(entry.imports, proj.module_name(path), is_package(path))
        # `ast` could not read it (e.g. syntax newer than this Python): ask libcst
        module = proj.parse(path)
        return None if module is None else ImportMap.of(module, proj.module_name(path), is_package(path))
    return project.fact(f"imports:{path}", compute)


@dataclass(frozen=True)
class AppSite:
    """Where a Flask app object is created.

    kind "module": `var = Flask(...)` at module level; kind "factory": inside the function
    `factory`, which returns `var`."""

    path: str
    module_name: str | None
    var: str
    kind: str
    factory: str | None
    line: int


def find_apps(project: Project) -> list[AppSite]:
    """Every Flask app creation in the project (computed once per revision)."""
    return project.fact("flask.apps", _find_apps)


def _find_apps(project: Project) -> list[AppSite]:
    sites = []
    for path, module in project.modules(("Flask",)):
        imports = import_map(project, path)
        positions = project.position_lookup(path)
        name = project.module_name(path)
        for stmt in module.body:
            found = assigned_name(stmt)
            if found and is_call_to(found[1], imports, FLASK_APP_CLASSES):
                sites.append(AppSite(path, name, found[0], "module", None, positions(stmt)[0]))
            elif isinstance(stmt, cst.FunctionDef):
                var = _factory_app_var(stmt, imports)
                if var:
                    sites.append(AppSite(path, name, var, "factory", stmt.name.value, positions(stmt)[0]))
    return sites


def _factory_app_var(func: cst.FunctionDef, imports: ImportMap) -> str | None:
    """The app variable of a factory: assigned from Flask(...) in its body and returned."""
    created = None
    returned = set()
    for stmt in func.body.body:
        found = assigned_name(stmt)
        if found and is_call_to(found[1], imports, FLASK_APP_CLASSES):
            created = found[0]
        # `return name` (isinstance, not libcst.matchers: that import alone costs 0.2 s a run)
        if (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Return) and isinstance(stmt.body[0].value, cst.Name)):
            returned.add(stmt.body[0].value.value)
    return created if created in returned else None


def factory_function(module: cst.Module, name: str) -> cst.FunctionDef | None:
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == name:
            return stmt
    return None


def module_level_names(module: cst.Module) -> set[str]:
    """Names bound at module level: assignments, defs, classes and imports."""
    names = set(ImportMap.of(module).names)
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            names.add(stmt.name.value)
        found = assigned_name(stmt)
        if found:
            names.add(found[0])
    return names


def module_defines(module: cst.Module, name: str) -> bool:
    """Whether `name` is bound at module level (assignment, def, class or import)."""
    return name in module_level_names(module)


def project_imports(project: Project) -> dict[str, set[str]]:
    """Import graph between the project's own modules: dotted name -> dotted names it
    imports at module level. Built from the project index: nothing is parsed."""
    def compute(proj: Project) -> dict[str, set[str]]:
        graph: dict[str, set[str]] = {}
        for path in import_reach(proj):  # no import chain leads from outside into it
            name = proj.module_name(path)
            imports = import_map(proj, path) if name else None
            if imports is None:
                continue
            targets = set()
            for qualified in [*imports.names.values(), *imports.star_modules]:
                target = project_module_of(proj, qualified)
                if target:
                    targets.add(target)
            graph[name] = targets
        return graph
    return project.fact("flask.import-graph", compute)


FLASK_NEEDLES = ("flask", "Flask")  # Flask itself and every `flask_*` extension


def flask_files(project: Project) -> list[str]:
    """Files that import Flask or a Flask extension, sorted: where every Flask analysis
    starts. Text that only mentions Flask (a lexer's keyword list, a docstring) does
    not count; a file the index cannot read does, if it mentions Flask."""
    mentioning = project.candidates(FLASK_NEEDLES)
    project.index_many(mentioning)
    return [path for path in mentioning if _imports_flask(project.index(path))]


def _imports_flask(entry) -> bool:
    if entry is None:
        return False
    if entry.error:
        return True
    return any(record.level == 0 and is_flask_package((record.module or record.name).split(".")[0])
               for record in entry.imports)


def is_flask_package(top: str) -> bool:
    """Whether a top-level package is Flask or a Flask extension (`flask_*`, `flaskext`)."""
    return top in ("flask", "flaskext") or top.startswith("flask_")


def app_scope(project: Project) -> list[str]:
    """The Python files that can take part in a Flask app, sorted: files that import
    Flask, and everything connected to them by imports, both ways (what they import,
    what imports them, transitively). A function outside this set can neither be called
    from a view nor call into the app, so project-wide analyses (call graphs, references
    to a module's globals) need look no further. Built from the project index."""
    return _import_graph(project).scope


def import_reach(project: Project) -> list[str]:
    """The Python files that may be import-connected to a file importing Flask, sorted:
    the only files whose imports a Flask analysis ever needs, so the only ones indexed.

    Found outwards from those files, with cheap tests before any index: a module's
    importers name its top-level package on an import line (`import shop.views`, `from
    shop import views`) or sit in that package (relative imports), and what a file
    imports is read from its index. A file outside this set imports nothing in it and
    nothing in it imports the file, so leaving it out changes no import question asked
    from inside (a chain of imports into the set ends in a file of the set)."""
    return _import_graph(project).reach


def in_import_reach(project: Project, path: str) -> bool:
    return path in _import_graph(project).edges


@dataclass
class _ImportGraph:
    """The import reach, and what it was found from: the files importing Flask, the
    imports of each file reached, and the files each search of import lines found.
    Codemods rewrite the app's files one after another, nearly always keeping what they
    import from the project (an added `from flask import g` leads nowhere new): while
    those inputs are the same, so are the reach and the app scope, and they are not
    searched for again."""

    layout: int
    flask: list[str]
    # each file reached -> its `imported_paths`
    edges: dict[str, tuple[frozenset[str], frozenset[str]]] = field(default_factory=dict)
    searches: dict[tuple[str, tuple[str, ...]], list[str]] = field(default_factory=dict)  # (pattern, needles) -> hits

    def still_holds(self, project: Project) -> bool:
        return (project.layout == self.layout
                and flask_files(project) == self.flask
                and all(imported_paths(project, path) == edges for path, edges in self.edges.items())
                and all(project.matching(*search) == hits for search, hits in self.searches.items()))

    @functools.cached_property
    def reach(self) -> list[str]:
        return sorted(self.edges)

    @functools.cached_property
    def scope(self) -> list[str]:
        forward: dict[str, set[str]] = {}
        backward: dict[str, set[str]] = {}
        for path in self.reach:
            named, packages = self.edges[path]
            forward[path] = named | packages
            for target in named:
                # Only the module an import names leads back: every module importing
                # something of a package runs its __init__, but calls none of it by that.
                backward.setdefault(target, set()).add(path)
        scope: set[str] = set()
        pending = list(self.flask)
        while pending:
            path = pending.pop()
            if path in scope:
                continue
            scope.add(path)
            pending.extend(forward.get(path, ()))
            pending.extend(backward.get(path, ()))
        return sorted(scope)


def _import_graph(project: Project) -> _ImportGraph:
    return project.fact("flask.import-reach", _compute_import_graph, lambda proj, graph: graph.still_holds(proj))


def _compute_import_graph(project: Project) -> _ImportGraph:
    graph = _ImportGraph(project.layout, flask_files(project))
    searched_names: set[str] = set()
    searched_folders: set[str] = set()
    pending = set(graph.flask)
    while pending:
        project.index_many(sorted(pending))  # one batch: in forked workers when that pays
        found: set[str] = set()
        names: set[str] = set()
        folders: set[str] = set()
        for path in pending:
            named, packages = graph.edges[path] = imported_paths(project, path)
            found |= named | packages
            module_name = project.module_name(path)
            if module_name:  # a file with no dotted name cannot be imported
                names.add(module_name.split(".")[0])
                depth = module_name.count(".") + (1 if is_package(path) else 0)
                if depth:  # in a package: relative imports come from inside its top-level package
                    folders.add(_top_package_folder(path, depth))
        names -= searched_names
        folders -= searched_folders
        searched_names |= names
        searched_folders |= folders
        if names:
            search = (_naming_in_import(sorted(names)), tuple(sorted(names)))
            graph.searches[search] = project.matching(*search)
            found |= set(graph.searches[search])
        found |= {path for path in project.paths() if any(path.startswith(f"{folder}/") for folder in folders)}
        pending = found - graph.edges.keys()
    return graph


def _naming_in_import(names: list[str]) -> str:
    """A pattern any absolute import of these top-level modules (or of something in them)
    matches: a name as a word, not after a dot (`from .utils` and `a.utils` are other
    modules), after `import` or `from` on its line, or on a line continued from the one
    before (`import a, \\` then `shop`). It matches more than imports (comments, `from x
    import shop` of a name): a superset is all the test must be."""
    word = r"(?<![.\w])(?:" + "|".join(re.escape(name) for name in names) + r")\b"
    return rf"\b(?:import|from)\b[^\n]*{word}|\\\r?\n[^\n]*{word}"


def _top_package_folder(path: str, depth: int) -> str:
    """`src/shop/views/x.py` (module shop.views.x, depth 2) -> `src/shop`."""
    return "/".join(path.split("/")[:-depth])


def files_naming(project: Project, *module_names: str) -> list[str]:
    """Files with a string that starts with one of the module names and a dot
    (`mock.patch("pkg.views.x")`), sorted: the files whose text holds a quote, the
    name's top-level package and a dot, confirmed on their index."""
    names = sorted(set(module_names))
    if not names:
        return []
    tops = sorted({name.split(".")[0] for name in names})
    holding = project.candidates(tuple(f"{quote}{top}." for top in tops for quote in "\"'"))
    project.index_many(holding)
    prefixes = tuple(f"{name}." for name in names)
    return [path for path in holding
            if any(text.startswith(prefixes) for text in getattr(project.index(path), "dotted_strings", ()))]


def app_paths(project: Project, needles: tuple[str, ...] = ()) -> list[str]:
    """The files of the app scope whose text contains a needle, sorted: searched file by
    file, where `project.candidates` would search the bytes of the whole tree."""
    return [path for path in app_scope(project) if project.mentions(path, needles)]


def app_modules(project: Project, needles: tuple[str, ...] = ()) -> Iterable[tuple[str, cst.Module]]:
    """(path, module) for the files of the app scope whose text contains a needle: what a
    codemod about request-time behaviour looks at. Files outside it are never parsed."""
    return project.parsed(app_paths(project, needles))


def app_code_modules(project: Project, needles: tuple[str, ...] = ()) -> Iterable[tuple[str, cst.Module]]:
    """`app_modules` without the files that define no function and call nothing, left out
    before any parse (`Project.may_define_or_call`): all that a search for calls,
    definitions or state that functions change has to look at."""
    return project.parsed([path for path in app_paths(project, needles) if project.may_define_or_call(path)])


def imported_paths(project: Project, path: str) -> tuple[frozenset[str], frozenset[str]]:
    """Files of the project that `path` imports anywhere in its code (functions too):
    (the modules its imports name, the packages those live in, run on import).
    Kept for the run: it changes only with the file's text or the project's files."""
    entry = project.index(path)
    if entry is None:
        return frozenset(), frozenset()
    if entry.error is None:
        records = entry.imports
    else:  # `ast` cannot read it (syntax newer than this Python?): libcst may
        module = project.parse(path)
        records = () if module is None else tuple(import_records(module, everywhere=True))
    return project.memo(("imported-paths", path, records, project.layout),
                        lambda: _resolve_imports(project, path, records))


def _resolve_imports(project: Project, path: str, records) -> tuple[frozenset[str], frozenset[str]]:
    module_name, package = project.module_name(path), is_package(path)
    named, packages = set(), set()
    for record in records:
        longest = True
        for dotted in imported_modules(record, module_name, package):
            target = project.path_of_module(dotted)
            if target:
                (named if longest else packages).add(target)
                longest = False
    named.discard(path)
    packages.discard(path)
    return frozenset(named), frozenset(packages)


def project_module_of(project: Project, qualified: str) -> str | None:
    """The longest prefix of `qualified` that is a module of the project."""
    parts = qualified.split(".")
    for cut in range(len(parts), 0, -1):
        candidate = ".".join(parts[:cut])
        if project.path_of_module(candidate):
            return candidate
    return None


def imports_transitively(project: Project, source: str, target: str) -> bool:
    graph = project_imports(project)
    seen, stack = set(), [source]
    while stack:
        current = stack.pop()
        if current == target:
            return True
        if current in seen:
            continue
        seen.add(current)
        stack.extend(graph.get(current, ()))
        # importing a.b.c imports a and a.b as well
        parts = current.split(".")
        stack.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    return False
