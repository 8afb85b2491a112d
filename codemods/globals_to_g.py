"""`globals-to-g`: module globals that hold per-request state become attributes of `flask.g`.

A module global rebound with `global X; X = ...` during a request is shared by every
thread of the worker: under a threaded server, one user's request reads the value the
concurrent request of another user has just written. `flask.g` lives exactly as long as
the request's app context, so moving the value there keeps each request's state its own.

Only what is provably per-request moves; everything else is reported and left alone.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import ComprehensionScope, FunctionScope, GlobalScope

from flask_refactor.codemod import ChangeSet, Codemod, Severity
from flask_refactor.project import Project
from flask_refactor.scopes import scope_map
from flask_refactor.snippets import parse_statement, parsing_config
from flask_refactor.walk import WHITESPACE, ReadOnlyVisitor, TargetedTransformer, parent_map

from .support.context import (
    ContextMap, FunctionRef, context_map, is_before_request_hook, iter_functions, view_blueprint,
)
from .support.flask import (
    EXTENSIONS, STREAM_WITH_CONTEXT, app_code_modules, app_scope, assigned_name, decorator_method, files_naming,
    import_map, import_reach, is_package, stream_wrapper,
)
from .support.imports import ImportMap, bound_name, last_name, resolve_relative
from .support.names import flask_name, import_from_flask, names_used, preferred_quote

MUTATING_METHODS = frozenset({
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault",
    "add", "discard", "sort", "reverse", "appendleft", "extendleft",
})
# Calls whose result is shared infrastructure, never per-request state.
INFRASTRUCTURE = (
    "threading.", "multiprocessing.", "queue.", "concurrent.futures.", "asyncio.", "socket.",
    "requests.Session", "requests.sessions.Session", "httpx.Client", "httpx.AsyncClient",
    "urllib3.PoolManager", "redis.", "boto3.", "pymongo.MongoClient", "sqlalchemy.create_engine",
    "sqlalchemy.orm.sessionmaker", "sqlalchemy.orm.scoped_session", "re.compile", "logging.getLogger",
    "flask.Flask", "flask.Blueprint", "celery.Celery", "functools.lru_cache",
)
MUTATED = ("mutated in place: process-wide mutable state shared between requests and threads; "
           "guard it with a lock or move it to an external store")
G_METHODS = frozenset({"get", "pop", "setdefault"})
CONSTANT_NAME = re.compile(r"^_*[A-Z][A-Z0-9_]*$")
# Calls whose first argument becomes the response body.
RESPONSE_CLASSES = frozenset({"flask.Response", "flask.wrappers.Response", "werkzeug.Response",
                              "werkzeug.wrappers.Response", "werkzeug.wrappers.response.Response"})
GENERATOR = ("used in a generator, lambda or nested function (line {line}) that may run after the request has "
             "ended (only a generator defined in a view and returned there, alone or in a Response, is wrapped "
             "in stream_with_context)")
TEARDOWN_REQUEST_ROLES = {"hook:teardown_request": "teardown_request",
                          "hook:teardown_app_request": "teardown_app_request"}
# Hooks that also run when a before_request hook returned early or raised before writing.
RUN_WITHOUT_BEFORE_HOOKS = ("hook:after_request", "hook:after_app_request", "hook:teardown_request",
                            "hook:teardown_app_request", "hook:errorhandler", "hook:app_errorhandler",
                            "hook:register_error_handler")


@dataclass
class Use:
    """One occurrence of the global inside the module."""

    node: cst.Name
    kind: str  # "read", "write", "augmented", "mutation", "other-binding", "default"
    function: str | None  # qualname of the enclosing function (None: import time)
    nested: bool = False  # inside a lambda or a function nested in `function`'s body
    line: int = 0


@dataclass
class Candidate:
    name: str
    uses: list[Use] = field(default_factory=list)
    globals: list[tuple[str, cst.Global]] = field(default_factory=list)  # (function, statement)
    default: cst.SimpleStatementLine | None = None  # the module-level `X = value`
    default_value: cst.BaseExpression | None = None
    default_count: int = 0
    line: int = 0

    def in_functions(self, kind: str) -> dict[str, list[Use]]:
        found: dict[str, list[Use]] = {}
        for use in self.uses:
            if use.kind == kind and use.function is not None:
                found.setdefault(use.function, []).append(use)
        return found


@dataclass
class Resource:
    """A per-request resource (a connection) opened by a before_request hook and closed by
    a teardown: it becomes Flask's `get_X()` + `X = g.pop("X", None)` pattern."""

    name: str
    getter: str  # get_conn
    hook: str  # the before_request hook that opens it
    opening: list  # the hook's statements that open and configure it: they move into the getter
    closer: str  # the teardown that closes it
    closer_kind: str  # teardown_request, teardown_app_request or teardown_appcontext
    quote: str


@dataclass
class Streamed:
    """A generator defined in a view whose generator object the view returns as the body."""

    view: str
    generator: str
    line: int
    unwrapped: list  # the `gen()` calls still to wrap in stream_with_context


@dataclass
class Plan:
    """How one global is rewritten: `g.X` for these reads, `g.get(X, default)` for those."""

    candidate: Candidate
    plain_reads: set = field(default_factory=set)
    defaulted_reads: dict = field(default_factory=dict)  # node -> quote for the name in g.get("name", ...)
    resource: Resource | None = None
    streamed: list = field(default_factory=list)  # Streamed generators that read it
    not_a_resource: str | None = None  # why a closed-in-teardown global is not the get_X() pattern


class Rejected(Exception):
    def __init__(self, reason: str, severity: Severity = Severity.INFO) -> None:
        super().__init__(reason)
        self.reason = reason
        self.severity = severity


class GlobalsToG(Codemod):
    name = "globals-to-g"
    summary = "Move per-request module globals (`global X; X = ...` in hooks and views) to flask.g."
    order = 20
    needles = ("global", "] =", "+=", ".append(", ".extend(", ".insert(", ".update(", ".add(", ".setdefault(",
               ".pop(", ".remove(", ".clear(", "del ")
    uses_index = True
    explain = '''\
A module global rebound during a request (`global current_user` in a before_request hook)
is shared by every thread of a worker: under a threaded server one user's request can
read the value another user's concurrent request just wrote. `flask.g` lives as long as
the request, so each request keeps its own value.

A global is moved to `g` only when it is per-request state: every request writes it
before reading it, either in a `before_request`/`before_app_request` hook or at the start
of each view (or hook) that reads it. All writers and readers in the module are rewritten
together, the `global` statements and the module-level default go, and `g` is imported
(`from flask import g`, or `flask_g` when the module already uses the name `g`; a module
that only has `import flask as f` gets `f.g`). When a hook sets the value only on some
requests (`if "uid" in session: current_user = ...`) and the global had a literal
module-level default, reads become `g.get("current_user", None)`: a request that does not
set it now sees the default instead of the previous request's value.

A per-request resource opened in a before_request hook (`conn = sqlite3.connect(...)`,
then only `conn.attr = ...` / `conn.method(...)` set-up), read by the views it covers
and closed by a teardown (`if conn is not None: conn.close()`, registered with
teardown_request or teardown_appcontext) becomes Flask's documented pattern: a
`get_conn()` that opens it once per request on g, called from the same hook (so the same
requests still open it, at the same point), views calling `get_conn()`, and the teardown
starting with `conn = g.pop("conn", None)`, so a request where the hook never opened it
closes nothing. When that shape does not fit (other late readers, more set-up, the name
taken) the global is moved as above and the reason reported.

A generator defined in a view that reads the global, and whose every generator object
the view returns as the body (`return Response(gen(), ...)`, `return gen()`), is wrapped
in `stream_with_context` so that it runs in its own request: g stays readable, and the
request context (with its teardown callbacks) ends when the stream does, which is reported.

Left alone and reported, with the reason: globals imported or patched by other modules
(they hold their own binding); names `g` already uses (`g.user` set elsewhere, or in a
template) or that are methods of `g` (`get`, `pop`, `setdefault`);
globals mutated in place (`CACHE[key] = value`, `items.append(x)`: process-wide mutable
state shared between requests and threads); counters (`hits += 1`); caches and lazy
singletons (read before they are written); locks, clients, executors and other
infrastructure; ALL_CAPS constants; values carried from one request to another (written in
one view, read in another); globals read at import time, in threads, tasks or CLI commands,
or in generators (other than the streamed ones above, and what they call), lambdas and
nested functions that may run after the request.

Note: up to Flask 3.1 a request reuses an app context that is already pushed, so requests
made inside `with app.app_context():` (test fixtures, CLI scripts) share one `g`; a value
a hook sets only on some requests then survives into the next one there, as the global did.

Before:

    from flask import Flask, request

    app = Flask(__name__)
    current_user = None

    @app.before_request
    def load_user():
        global current_user
        current_user = request.headers.get("X-User")

    @app.route("/me")
    def me():
        return {"user": current_user}

After:

    from flask import Flask, request, g

    app = Flask(__name__)

    @app.before_request
    def load_user():
        g.current_user = request.headers.get("X-User")

    @app.route("/me")
    def me():
        return {"user": g.current_user}
'''

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        cmap = context_map(project)
        # (with no function, nothing rebinds or mutates a global during a request)
        modules = [(path, module) for path, module in app_code_modules(project, self.needles)
                   if _may_hold_state(project, path, module)]  # no `global`, no module-level container: nothing to do
        external = external_references(project, [name for path, _ in modules if (name := project.module_name(path))])
        _g_users(project)  # both asked by every module's work: known before it is shared out
        _template_paths(project)

        def one_module(item: tuple[str, cst.Module], changes: ChangeSet) -> None:
            _move_globals(project, *item, cmap, external, changes)

        project.per_module(modules, one_module, changes, project.sizes(path for path, _ in modules))
        return changes


def _move_globals(project: Project, path: str, module: cst.Module, cmap: ContextMap, external: "References",
                  changes: ChangeSet) -> None:
    """Plan and rewrite one module's per-request globals."""
    module_name = project.module_name(path)
    analysis = ModuleAnalysis(project, path, module, cmap)
    plans = []
    for candidate in analysis.candidates():
        try:
            plans.append(analysis.plan(candidate, external.get(f"{module_name}.{candidate.name}")))
        except Rejected as rejected:
            changes.report(path, candidate.line, f"{candidate.name} left as a module global: {rejected.reason}",
                           rejected.severity)
    if not plans:
        return
    noted = set()
    for plan in plans:
        for note in plan_notes(plan):
            if note not in noted:  # a generator reading two globals is wrapped once
                noted.add(note)
                changes.report(path, note[0], note[1], Severity.INFO)
        if plan.defaulted_reads:
            readers = sorted({u.function for u in plan.candidate.uses if u.node in plan.defaulted_reads})
            name = plan.candidate.name
            changes.report(path, plan.candidate.line,
                           f"{name} is now read with g.get() in {', '.join(r + '()' for r in readers)}: "
                           f"on a request where no hook has set it, it is the module default there instead "
                           "of the previous request's value", Severity.INFO)
    new = rewrite(module, path, project, plans, analysis)
    changes.modify(path, new, "per-request module globals moved to flask.g")


def plan_notes(plan: Plan) -> list[tuple[int, str]]:
    """What a reviewer should know about how a moved global is now kept."""
    c, notes = plan.candidate, []
    resource = plan.resource
    if resource is not None:
        notes.append((c.line, f"{c.name} is now opened by {resource.getter}() (called from {resource.hook}()) and "
                              f"closed in {resource.closer}() after g.pop(): when {resource.hook}() did not open it "
                              f"(an earlier hook returned or it raised), {resource.closer}() closes nothing instead of "
                              f"the previous request's {c.name}"))
        if resource.closer_kind == "teardown_appcontext":
            notes.append((c.line, f"{resource.closer}() is a teardown_appcontext: requests made inside an outer "
                                  f"`with app.app_context():` (Flask <= 3.1) now share one {c.name}"))
    elif plan.not_a_resource:
        notes.append((c.line, f"{c.name} is kept as g.{c.name}, not a get_{c.name}() function: "
                              f"{plan.not_a_resource}"))
    for streamed in plan.streamed:
        if streamed.unwrapped:
            notes.append((streamed.line, f"{streamed.view}() now streams {streamed.generator.rpartition('.')[2]}() "
                                         "through stream_with_context, so that it reads this request's g: the "
                                         "request context, and the teardown callbacks, now end when the stream does"))
    return notes


# -- facts about the whole project ---------------------------------------------------------

class References:
    """Qualified name -> (file, line) of its first reference. The line is looked up only
    for the names asked about: positions cost more than a parse."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[str, cst.CSTNode, Callable]] = {}

    def add(self, qualified: str, path: str, node: cst.CSTNode, positions: Callable) -> None:
        self.first.setdefault(qualified, (path, node, positions))

    def get(self, qualified: str) -> tuple[str, int] | None:
        found = self.first.get(qualified)
        return None if found is None else (found[0], found[2](found[1])[0])


def external_references(project: Project, modules: list[str]) -> References:
    """Qualified names (`pkg.state.current_user`) other modules import, read as module
    attributes, or name in strings (`monkeypatch.setattr("pkg.state.x", ...)`): all those
    of the globals of `modules` (dotted names), and maybe others."""
    found = References()
    for path, module in project.parsed(_referencing_paths(project, frozenset(modules))):
        imports = import_map(project, path) or ImportMap()
        positions = project.position_lookup(path)
        collector = _ReferenceCollector(imports, path, positions, found)
        collector.module_name, collector.package = project.module_name(path), is_package(path)
        collector.walk(module)
    return found


def _referencing_paths(project: Project, modules: frozenset[str]) -> list[str]:
    """Files that may refer to a global of these modules: those of the app's
    import-connected files whose imports lead to one (an import or attribute use needs
    an import), and any file naming one in a string (`monkeypatch.setattr("pkg.state.x",
    ...)`). Every file of the app scope was walked before: 299 on the benchmark's big app,
    where only the app module, which imports the 98 views modules, can refer to theirs."""
    scope = app_scope(project)
    paths = {name: path for name in modules if (path := project.path_of_module(name)) is not None}
    naming = set(files_naming(project, *modules))
    above = frozenset(module.rsplit(".", depth)[0] for module in modules for depth in range(1, module.count(".") + 1))
    importing = [path for path in scope if path in naming or _imports_toward(project, path, modules, above)]
    outside = naming - set(scope)
    return sorted({*importing, *(path for path in outside if _may_name_a_global(project, path, paths))})


def _imports_toward(project: Project, path: str, modules: frozenset[str], above: frozenset[str]) -> bool:
    """Whether an import of the file, at any depth, names one of the modules, a package
    above one (`above`: `import pkg` reaches `pkg.state.x`) or something in one (`from
    pkg.state import x`): the only ways its code can spell a global of theirs but in a string."""
    entry = project.index(path)
    if entry is None or entry.error:
        return True  # its imports are unknown: walked
    module_name, package = project.module_name(path), is_package(path)
    for record in entry.imports:  # at any depth: a function's import is read by the walk too
        bound = bound_name(record, module_name, package)
        if bound is None:
            continue
        # `from a import b` binds `a.b`, which is in module `a` (asked below with its prefixes)
        parts = bound[1].split(".")
        if bound[1] in above or any(".".join(parts[:end]) in modules for end in range(1, len(parts) + 1)):
            return True
    return False


def _may_name_a_global(project: Project, path: str, modules: dict[str, str]) -> bool:
    """Whether a file outside the app's import scope may refer to one of the app modules'
    globals: only in a string that is exactly `"module.name"` (a reference needs no
    more), and a global's name is a word of its module's text. A file that mentions
    `"wsgi.input"` beside an app module `wsgi.py` that never says `input` is not parsed."""
    for dotted in getattr(project.index(path), "dotted_strings", ()):
        module, _, name = dotted.rpartition(".")
        if module in modules and re.search(rf"\b{name}\b", project.text(modules[module]) or ""):
            return True
    return False


class _ReferenceCollector(ReadOnlyVisitor):
    def __init__(self, imports: ImportMap, path: str, positions, found: References) -> None:
        self.imports, self.path, self.positions, self.found = imports, path, positions, found

    def _add(self, qualified: str, node: cst.CSTNode) -> None:
        self.found.add(qualified, self.path, node, self.positions)

    module_name: str | None = None
    package = False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        source = get_full_name_for_node(node.module) if node.module else None
        source = resolve_relative(self.module_name, len(node.relative), source, self.package)
        if source:
            for alias in node.names:
                self._add(f"{source}.{get_full_name_for_node(alias.name)}", node)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        qualified = self.imports.resolve(node)
        if qualified:
            self._add(qualified, node)

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if "." not in node.value and "\\" not in node.value:
            return  # no dot in the value either: evaluating the literal costs a parse
        value = node.evaluated_value
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", value):
            self._add(value, node)

    def visit_Call(self, node: cst.Call) -> None:
        # setattr(module, "name", value) / monkeypatch.setattr(module, "name", value)
        if len(node.args) >= 2 and last_name(node.func) == "setattr":
            owner = self.imports.resolve(node.args[0].value)
            name = node.args[1].value
            if owner and isinstance(name, cst.SimpleString) and isinstance(name.evaluated_value, str):
                self._add(f"{owner}.{name.evaluated_value}", node)


def g_attribute_user(project: Project, name: str) -> str | None:
    """The first file (Python or template) that already uses `g.<name>`, if any. Python
    files that can use Flask's `g` import it, from Flask or through the app's modules:
    only the import reach is searched, and in it the files that use any `g.` attribute."""
    # (the pattern is compiled by `re` only for a text holding the name: most names have none)
    pattern = rf"\b(?:g|flask_g\d*)\.{re.escape(name)}\b|\bg\.get\(\s*['\"]{re.escape(name)}['\"]"
    python = [path for path in _g_users(project) if project.mentions(path, (name,))]
    for path in [*python, *_template_paths(project)]:
        text = project.text(path) or ""
        if name in text and re.search(pattern, text):  # (a search for the name alone is many times faster)
            return path
    return None


def _template_paths(project: Project) -> list[str]:
    """The files besides Python's that may use `g.<name>`: templates and text."""
    return project.fact("globals-to-g.template-paths",
                        lambda proj: proj.other_paths((".html", ".htm", ".jinja", ".jinja2", ".j2", ".txt")))


def _g_users(project: Project) -> list[str]:
    """The files of the import reach whose text reads an attribute of `g` (any: what
    `g_attribute_user` then looks for in them, name by name), sorted. Known before the
    work is shared out: each candidate global asked every file of the reach before (on
    the big app, 98 names x 301 files)."""
    def compute(proj: Project) -> list[str]:
        # (every text `g_attribute_user`'s pattern matches, whatever digits an alias ends
        # with: this one may be run on a file's bytes)
        using = set(proj.matching(r"\bg\.|flask_g[^.\n]*\.", ("g.", "flask_g")))
        return [path for path in import_reach(proj) if path in using]
    return project.fact("globals-to-g.g-users", compute)


# -- one module ---------------------------------------------------------------------------

class ModuleAnalysis:
    def __init__(self, project: Project, path: str, module: cst.Module, cmap: ContextMap) -> None:
        self.project, self.path, self.module, self.cmap = project, path, module, cmap
        self.imports = import_map(project, path) or ImportMap()
        self.positions = project.position_lookup(path)
        self.scopes = scope_map(module)
        self.all_scopes = list({id(s): s for s in self.scopes.values() if s is not None}.values())
        self.parents = parent_map(module, WHITESPACE)  # parents of code: no comment or space is asked about
        self.functions = {node: qualname for qualname, node, _ in iter_functions(module)}
        self.by_qualname = {qualname: node for node, qualname in self.functions.items()}
        self.redefined = {q for q, n in Counter(self.functions.values()).items() if n > 1}
        self.blueprints = cmap.blueprints.get(path, set())
        self.quote = preferred_quote(module)

    # which globals to look at
    def candidates(self) -> list[Candidate]:
        global_scope = self.scopes.get(self.module)
        if not isinstance(global_scope, GlobalScope):
            return []
        declared: dict[str, list[tuple[str, cst.Global]]] = {}
        for node, qualname in self.functions.items():
            for statement in _global_statements(node):
                for item in statement.names:
                    declared.setdefault(item.name.value, []).append((qualname, statement))
        names = set(declared)
        uses_by_name: dict[str, list[Use]] = {}
        for name in self._containers() | names:
            uses = self._uses(global_scope, name)
            uses_by_name[name] = uses
            if any(u.kind == "mutation" and u.function and self._runs_in_request_or_thread(u.function) for u in uses):
                names.add(name)
        candidates = []
        for name in sorted(names):
            if not any(isinstance(a.node, cst.Name) for a in global_scope.assignments[name]) and name not in declared:
                continue  # a def, class or import: not state
            candidate = Candidate(name, uses_by_name[name], declared.get(name, []))
            self._find_default(candidate)
            lines = [self.positions(candidate.default)[0]] if candidate.default is not None else []
            lines += [self.positions(stmt)[0] for _, stmt in candidate.globals]
            lines += [u.line for u in candidate.uses]
            candidate.line = min(lines) if lines else 1
            candidates.append(candidate)
        return candidates

    def _containers(self) -> set[str]:
        """Module-level names bound to a new list, dict, set or similar container."""
        found = set()
        for stmt in self.module.body:
            assigned = assigned_name(stmt)
            if assigned and _is_container(assigned[1], self.imports):
                found.add(assigned[0])
        return found

    def _runs_in_request_or_thread(self, qualname: str) -> bool:
        ref = FunctionRef(self.path, qualname)
        return ref in self.cmap.request or ref in self.cmap.background

    def _uses(self, global_scope: GlobalScope, name: str) -> list[Use]:
        uses = []
        for assignment in global_scope.assignments[name]:
            node = assignment.node
            if not isinstance(node, cst.Name):
                uses.append(Use(node, "other-binding", self._function_of(node)[0], line=self.positions(node)[0]))
                continue
            function, nested = self._function_of(node)
            uses.append(Use(node, self._binding_kind(node), function, nested, self.positions(node)[0]))
        for scope in self.all_scopes:
            for access in scope.accesses[name]:
                if not any(isinstance(r.scope, GlobalScope) for r in access.referents):
                    continue
                node = access.node
                if not isinstance(node, cst.Name) or self._is_augmented_target(node):
                    continue
                function, nested = self._function_of(node)
                uses.append(Use(node, self._access_kind(node), function, nested, self.positions(node)[0]))
        return sorted(uses, key=lambda u: (u.line, u.kind))

    def _function_of(self, node: cst.CSTNode) -> tuple[str | None, bool]:
        """(qualname of the function executing `node`, whether it is in a lambda or nested def)."""
        scope = self.scopes.get(node)
        nested = False
        while isinstance(scope, ComprehensionScope):
            scope = scope.parent
        while isinstance(scope, FunctionScope) and not isinstance(scope.node, cst.FunctionDef):
            nested, scope = True, scope.parent  # a lambda
            while isinstance(scope, ComprehensionScope):
                scope = scope.parent
        if isinstance(scope, FunctionScope):
            qualname = self.functions.get(scope.node)
            if qualname is not None:
                parent = scope.parent
                while isinstance(parent, ComprehensionScope):
                    parent = parent.parent
                if isinstance(parent, FunctionScope):
                    nested = True
                return qualname, nested
        return None, False

    def _binding_kind(self, node: cst.Name) -> str:
        parent = self.parents[node]
        if isinstance(parent, cst.AugAssign):
            return "augmented"
        if isinstance(parent, cst.Element):
            parent = self.parents[self.parents[parent]]  # (a, b) = ...
        if isinstance(parent, cst.AssignTarget) or (isinstance(parent, cst.AnnAssign) and parent.value is not None):
            return "write" if self._function_of(node)[0] is not None else "default"
        return "other-binding"

    def _is_augmented_target(self, node: cst.Name) -> bool:
        parent = self.parents.get(node)
        return isinstance(parent, cst.AugAssign) and parent.target is node

    def _access_kind(self, node: cst.Name) -> str:
        parent = self.parents.get(node)
        if isinstance(parent, cst.Subscript) and parent.value is node:
            holder = self.parents.get(parent)
            if isinstance(holder, (cst.AssignTarget, cst.Del)) or (isinstance(holder, cst.AugAssign) and holder.target is parent):
                return "mutation"
        if isinstance(parent, cst.Attribute) and parent.value is node:
            holder = self.parents.get(parent)
            if isinstance(holder, cst.Call) and holder.func is parent and parent.attr.value in MUTATING_METHODS:
                return "mutation"
            if isinstance(holder, (cst.AssignTarget, cst.Del)) or (isinstance(holder, cst.AugAssign) and holder.target is parent):
                return "mutation"
        return "read"

    def _find_default(self, candidate: Candidate) -> None:
        for stmt in self.module.body:
            if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
                continue
            small = stmt.body[0]
            targets = []
            if isinstance(small, cst.Assign) and len(small.targets) == 1:
                targets = [small.targets[0].target]
            elif isinstance(small, cst.AnnAssign) and small.value is not None:
                targets = [small.target]
            if any(isinstance(t, cst.Name) and t.value == candidate.name for t in targets):
                candidate.default_count += 1
                if candidate.default is None:
                    candidate.default, candidate.default_value = stmt, small.value
        candidate.default_count = sum(1 for u in candidate.uses
                                      if u.function is None and u.kind in ("default", "other-binding"))

    # the decision
    def plan(self, c: Candidate, imported_by: tuple[str, int] | None) -> Plan:
        if imported_by:
            raise Rejected(f"imported or patched by another module ({imported_by[0]}:{imported_by[1]}), which "
                           "would not see a value moved to g", Severity.WARNING)
        if any(u.kind == "mutation" for u in c.uses) and not c.in_functions("write"):
            raise Rejected(MUTATED, Severity.WARNING)
        if any(u.kind == "augmented" for u in c.uses):
            raise Rejected("a counter (augmented assignment): process-wide and not thread-safe, and g would reset it "
                           "on every request; use a lock or an external store", Severity.WARNING)
        kind = self._infrastructure(c)
        if kind:
            raise Rejected(f"holds {kind}: shared infrastructure, not per-request state")
        if CONSTANT_NAME.match(c.name):
            raise Rejected("named as a constant (ALL_CAPS): treated as configuration shared by all requests")
        if any(u.kind == "other-binding" for u in c.uses):
            line = next(u.line for u in c.uses if u.kind == "other-binding")
            raise Rejected(f"bound by a statement that cannot become an attribute assignment (line {line})")
        if c.default_count > 1:
            raise Rejected("assigned more than once at import time")
        if c.name in G_METHODS:
            raise Rejected(f"g.{c.name} is a method of g; rename the global first")
        taken = g_attribute_user(self.project, c.name)
        if taken:
            raise Rejected(f"g.{c.name} is already used ({taken}); rename one of them first", Severity.WARNING)
        import_time = [u for u in c.uses if u.function is None and u.kind == "read"]
        if import_time:
            raise Rejected(f"read at import time (line {import_time[0].line}), where no request exists")
        writers = c.in_functions("write")
        if not writers:
            raise Rejected("never written inside a function")
        resource, not_a_resource = self._resource(c, writers)
        if resource is not None:
            try:
                plan = self._checked_plan(c, writers, closer=resource.closer)
            except Rejected as rejected:
                plan, not_a_resource = None, rejected.reason
            if plan is not None and not plan.defaulted_reads:
                plan.resource = resource
                return plan
            if plan is not None:
                readers = sorted({u.function for u in c.uses if u.node in plan.defaulted_reads})
                not_a_resource = (f"{', '.join(r + '()' for r in readers)} may read it when {resource.hook}() "
                                  "has not opened it")
        try:
            plan = self._checked_plan(c, writers)
        except Rejected as rejected:
            if not_a_resource:
                raise Rejected(f"{rejected.reason}; and it cannot become a get_{c.name}() function: "
                               f"{not_a_resource}", rejected.severity) from None
            raise
        plan.not_a_resource = not_a_resource
        return plan

    def _checked_plan(self, c: Candidate, writers: dict[str, list[Use]], closer: str | None = None) -> Plan:
        """The plan for a global every request writes; `closer`, a teardown that will read
        the value popped from g into a local of the same name, is left out."""
        for use in c.uses:
            if use.kind not in ("read", "write", "mutation") or use.function == closer:
                continue
            ref = FunctionRef(self.path, use.function)
            if use.function in self.redefined:
                raise Rejected(f"used in {use.function}(), which this module defines more than once")
            if ref in self.cmap.background:
                raise Rejected(f"used in {use.function}() (line {use.line}), {self.cmap.background[ref]}, "
                               "which runs outside any request")
            if self._teardowns.get(use.function) == "teardown_appcontext":
                raise Rejected(f"used in {use.function}() (line {use.line}), a teardown_appcontext, which also runs "
                               "when an app context without a request ends")
            if ref not in self.cmap.request:
                raise Rejected(f"used in {use.function}() (line {use.line}), which is not known to run in a request")
            if (use.nested or self.cmap.functions[ref].is_generator) and not self._streams(use):
                raise Rejected(GENERATOR.format(line=use.line))
            if ref in self._lazy:
                raise Rejected(f"used in {use.function}() (line {use.line}), which a generator calls while the "
                               "response streams, after the request has ended")
        for function, uses in writers.items():
            self._check_blind_writer(c, function, uses)
        plan = self._plan_reads(c, writers, closer)
        plan.streamed = self._streamed_readers(c, writers)
        return plan

    # streaming generators (stream_with_context)
    @functools.cached_property
    def _streamed(self) -> dict[str, Streamed]:
        """Generators defined in a view whose every generator object the view returns as the
        response body (`return Response(gen(), ...)`, `return gen()`): wrapped in
        stream_with_context, they run inside the request that created them."""
        found = {}
        for node, qualname in self.functions.items():
            facts = self.cmap.functions.get(FunctionRef(self.path, qualname))
            view = facts.nested_in if facts is not None else None
            if (view is None or not facts.is_generator or node.asynchronous or qualname in self.redefined
                    or qualname != f"{view}.{node.name.value}"):
                continue
            view_facts = self.cmap.functions.get(FunctionRef(self.path, view))
            if view_facts is None or "view" not in view_facts.roles or view_facts.is_generator:
                continue
            decorators = [self.imports.resolve(d.decorator) for d in node.decorators]
            if any(d not in STREAM_WITH_CONTEXT for d in decorators):
                continue
            calls = self._returned_calls(node)
            if calls:
                unwrapped = [] if decorators else [call for call, wrapped in calls if not wrapped]
                found[qualname] = Streamed(view, qualname, self.positions(node)[0], unwrapped)
        return found

    def _returned_calls(self, generator: cst.FunctionDef) -> list[tuple[cst.Call, bool]] | None:
        """Each call creating the generator, and whether it is already wrapped in
        stream_with_context; None unless the view returns every one as the response body."""
        scope = self.scopes.get(generator)
        if scope is None:
            return None
        assignments = list(scope.assignments[generator.name.value])
        if len(assignments) != 1 or assignments[0].node is not generator:
            return None
        calls = []
        for access in assignments[0].references:
            call = self.parents.get(access.node)
            if not (isinstance(call, cst.Call) and call.func is access.node):
                return None  # passed around: it may be iterated anywhere
            wrapper = stream_wrapper(call, self.parents, self.imports)
            if not self._returned_as_body(wrapper or call, scope):
                return None
            calls.append((call, wrapper is not None))
        return calls

    def _returned_as_body(self, expr: cst.BaseExpression, scope) -> bool:
        """`return expr`, `return expr, 200`, `return Response(expr, ...)` (or its tuple) in `scope`."""
        parent = self.parents.get(expr)
        if isinstance(parent, cst.Arg):
            response = self.parents.get(parent)
            body_argument = (isinstance(response, cst.Call) and not parent.star
                             and (response.args[0] is parent and parent.keyword is None
                                  or parent.keyword is not None and parent.keyword.value == "response"))
            if not body_argument or self.imports.resolve(response.func) not in RESPONSE_CLASSES:
                return False
            expr, parent = response, self.parents.get(response)
        if isinstance(parent, cst.Element):
            returned = self.parents.get(parent)
            if not (isinstance(returned, cst.Tuple) and returned.elements[0] is parent):
                return False
            expr, parent = returned, self.parents.get(returned)
        return isinstance(parent, cst.Return) and self.scopes.get(parent) is scope

    def _streams(self, use: Use) -> bool:
        """Whether `use` reads the global right in the body of a streamed generator."""
        if use.kind != "read" or use.function not in self._streamed:
            return False
        scope = self.scopes.get(use.node)
        while isinstance(scope, ComprehensionScope):
            scope = scope.parent
        return isinstance(scope, FunctionScope) and scope.node is self.by_qualname[use.function]

    @functools.cached_property
    def _lazy(self) -> set[FunctionRef]:
        """Functions run by generators left unwrapped: they may run after the request ended."""
        return self._reach([ref for ref, facts in self.cmap.functions.items() if facts.is_generator
                            and not (ref.path == self.path and ref.qualname in self._streamed)])

    def _reach(self, roots: list[FunctionRef]) -> set[FunctionRef]:
        stack, reached = list(roots), set(roots)
        while stack:
            for callee in self.cmap.functions[stack.pop()].calls:
                if callee not in reached and callee in self.cmap.functions:
                    reached.add(callee)
                    stack.append(callee)
        return reached

    def _streamed_readers(self, c: Candidate, writers: dict[str, list[Use]]) -> list[Streamed]:
        """The streamed generators that read the global (themselves or through a helper)."""
        readers = {FunctionRef(self.path, u.function) for u in c.uses if u.function and u.kind in ("read", "mutation")}
        found = []
        for streamed in self._streamed.values():
            if not readers & self._reach([FunctionRef(self.path, streamed.generator)]):
                continue
            late = sorted(w for w in writers if FunctionRef(self.path, w) in self._late)
            if late:
                raise Rejected(f"read while {streamed.view}() streams and written in {late[0]}(), which runs "
                               "before the stream today but after it once the stream keeps the request context")
            found.append(streamed)
        return found

    # per-request resources (get_X() + g.pop in the teardown)
    @functools.cached_property
    def _teardowns(self) -> dict[str, str]:
        """Teardown functions of this module: qualname -> registering method."""
        found = {ref.qualname: TEARDOWN_REQUEST_ROLES[role] for ref, facts in self.cmap.functions.items()
                 if ref.path == self.path for role in facts.roles if role in TEARDOWN_REQUEST_ROLES}
        # the shared context map does not list teardown_appcontext among the request hooks
        for node, qualname in self.functions.items():
            if any((decorator_method(d) or ("", ""))[1] == "teardown_appcontext" for d in node.decorators):
                found.setdefault(qualname, "teardown_appcontext")
        for stmt in self.module.body:
            call = stmt.body[0].value if isinstance(stmt, cst.SimpleStatementLine) and isinstance(
                stmt.body[0], cst.Expr) else None
            if (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and len(call.args) == 1
                    and call.func.attr.value == "teardown_appcontext" and isinstance(call.args[0].value, cst.Name)):
                found.setdefault(call.args[0].value.value, "teardown_appcontext")
        return found

    def _resource(self, c: Candidate, writers: dict[str, list[Use]]) -> tuple[Resource | None, str | None]:
        """The get_X()/g.pop shape for a global a teardown closes: (resource, None), or
        (None, why not) when a teardown closes it but the shape does not fit, or (None, None)."""
        closers = sorted({u.function for u in c.uses if u.function in self._teardowns})
        closing = [f for f in closers if _closes(self.by_qualname[f], c.name)]
        if not closing:
            return None, None
        closer = closing[0]
        getter = f"get_{c.name}"
        hook = next(iter(writers)) if len(writers) == 1 else None
        facts = self.cmap.functions.get(FunctionRef(self.path, hook)) if hook else None
        reason = None
        if len(closers) > 1:
            reason = f"read by more than one teardown ({', '.join(f + '()' for f in closers)})"
        elif closer in writers or "." in closer:
            reason = f"{closer}() assigns it too, or is nested in another function"
        elif hook is None:
            reason = f"assigned in more than one function ({', '.join(sorted(f + '()' for f in writers))})"
        elif facts is None or is_before_request_hook(facts, self.blueprints) is None:
            reason = f"opened in {hook}(), not in a before_request hook"
        elif "." in hook or self.by_qualname[hook].asynchronous:
            reason = f"{hook}() is nested in another function or async"
        elif getter in names_used(self.module):
            reason = f"the name {getter} is already used in this module"
        if reason:
            return None, reason
        opening = self._opening(c.name, self.by_qualname[hook])
        if isinstance(opening, str):
            return None, opening
        return Resource(c.name, getter, hook, opening, closer, self._teardowns[closer], self.quote), None

    def _opening(self, name: str, hook: cst.FunctionDef) -> list | str:
        """The consecutive statements of `hook` that assign `name` and then set it up, when
        nothing else in the hook mentions it and they use no local of the hook; else why not."""
        body = _body(hook)
        mentions = [i for i, stmt in enumerate(body) if name in names_used(stmt) and not _is_global_statement(stmt)]
        run = body[mentions[0]:mentions[-1] + 1] if mentions else []
        if (not run or len(run) != len(mentions) or not _assigns_name(run[0], name)
                or not all(_sets_up(stmt, name) for stmt in run[1:])):
            return (f"{hook.name.value}() does more with it than assign it and then set it up "
                    f"(`{name}.attr = ...`, `{name}.method(...)`) in consecutive statements")
        scope = self.scopes.get(run[0].body[0])
        local = {a.name for a in scope.assignments} if isinstance(scope, FunctionScope) else set()
        used = sorted(other for other in local - {name} if any(other in names_used(stmt) for stmt in run))
        if used:  # the getter, at module level, would not see them
            return f"opening it uses {', '.join(used)}, local to {hook.name.value}()"
        return run

    def _infrastructure(self, c: Candidate) -> str | None:
        values = [c.default_value] if c.default_value is not None else []
        for use in c.uses:
            if use.kind == "write":
                assign = self.parents.get(self.parents.get(use.node))
                if isinstance(assign, cst.Assign):
                    values.append(assign.value)
        for value in values:
            if isinstance(value, cst.Call):
                qualified = self.imports.resolve(value.func) or ""
                if qualified in EXTENSIONS or any(qualified.startswith(p) or qualified == p.rstrip(".")
                                                  for p in INFRASTRUCTURE):
                    return f"a {qualified.rpartition('.')[2]} object"
        return None

    def _check_blind_writer(self, c: Candidate, function: str, writes: list[Use]) -> None:
        first_write = min(self.positions(w.node) for w in writes)
        for use in c.uses:
            if use.function == function and use.kind in ("read", "mutation") and self.positions(use.node) <= first_write:
                raise Rejected(f"{function}() reads it before writing it (line {use.line}): a cache or a value "
                               "carried between requests")
        for write in writes:
            assign = self.parents.get(self.parents.get(write.node))
            value = getattr(assign, "value", None)
            if value is not None and c.name in names_used(value):
                raise Rejected(f"{function}() computes it from its previous value (line {write.line}): "
                               "a value carried between requests")

    def _plan_reads(self, c: Candidate, writers: dict[str, list[Use]], closer: str | None = None) -> Plan:
        hooks = {}  # writer qualname -> (scope, always writes)
        for function in writers:
            facts = self.cmap.functions[FunctionRef(self.path, function)]
            scope = is_before_request_hook(facts, self.blueprints)
            if scope:
                hooks[function] = (scope, self._always_writes_first(c, function))
        plan = Plan(c)
        for use in c.uses:
            if use.kind not in ("read", "mutation") or use.function == closer:
                continue
            if self._written_earlier_in(c, use) or self._callers_write_first(c, use.function):
                plan.plain_reads.add(use.node)
                continue
            # a streamed generator runs for its view's request: the view's hooks cover it
            reader = self._streamed[use.function].view if use.function in self._streamed else use.function
            covering = [always for writer, (scope, always) in hooks.items()
                        if writer != use.function and self._hook_covers(writer, scope, reader)]
            if covering and all(covering) and not self._may_run_without_hook(reader):
                plan.plain_reads.add(use.node)
            elif use.kind == "mutation":
                # changing a value this request may not have set: the default, or another request's
                raise Rejected(f"{MUTATED} ({use.function}(), line {use.line}, may change it before this request "
                               "has set it)", Severity.WARNING)
            elif hooks:
                if not _is_literal(c.default_value):
                    raise Rejected(f"{use.function}() may read it before any hook writes it (line {use.line}), "
                                   "and it has no literal module default to fall back to")
                plan.defaulted_reads[use.node] = self._quote_for(c, use)
            else:
                raise Rejected(f"{use.function}() reads it (line {use.line}) without writing it earlier in the same "
                               "request: its value is carried from one request to another", Severity.WARNING)
        return plan

    def _quote_for(self, c: Candidate, read: Use) -> str:
        """The quote for `g.get("name", default)` at this read: inside an f-string (before
        Python 3.12) it must differ from the f-string's own quotes, and so must the default's."""
        taken: set[str] = set()
        node = self.parents.get(read.node)
        while node is not None and not isinstance(node, cst.BaseStatement):
            if isinstance(node, cst.FormattedString):
                taken.update(node.start.lstrip("rRfFbBuU"))
            node = self.parents.get(node)
        preferred = self.quote
        if preferred in taken:
            preferred = "'" if preferred == '"' else '"'
        default_code = self.module.code_for_node(c.default_value)
        if preferred in taken or any(q in default_code for q in taken):
            raise Rejected(f"read inside an f-string (line {read.line}) where g.get() with its default cannot be "
                           "written without changing the string's quotes")
        return preferred

    def _written_earlier_in(self, c: Candidate, read: Use) -> bool:
        """Whether `read`'s function always writes the global in a statement before the read."""
        node = self.by_qualname[read.function]
        statement = self._top_statement(node, read.node)
        for stmt in _body(node):
            if stmt is statement:
                return False
            if _always_writes(stmt, c.name):
                return True
        return False

    def _callers_write_first(self, c: Candidate, reader: str) -> bool:
        """For a helper that only reads: whether each of its callers is in this module and
        always writes the global before the statement that calls the helper."""
        ref = FunctionRef(self.path, reader)
        facts = self.cmap.functions[ref]
        if facts.roles:
            return False  # registered itself: Flask may call it directly
        callers = [f for f in self.cmap.functions.values() if ref in f.calls]
        if not callers or any(f.ref.path != self.path for f in callers):
            return False
        for caller in callers:
            node = self.by_qualname[caller.ref.qualname]
            written = False
            for stmt in _body(node):
                if not written and _calls_function(stmt, reader.rpartition(".")[2]):
                    return False
                written = written or _always_writes(stmt, c.name)
        return True

    def _always_writes_first(self, c: Candidate, function: str) -> bool:
        return any(_always_writes(stmt, c.name) for stmt in _body(self.by_qualname[function]))

    def _top_statement(self, function: cst.FunctionDef, node: cst.CSTNode) -> cst.CSTNode | None:
        while node is not None:
            parent = self.parents.get(node)
            if isinstance(parent, cst.IndentedBlock) and self.parents.get(parent) is function:
                return node
            node = parent
        return None

    def _hook_covers(self, writer: str, scope: str, reader: str) -> bool:
        reader_facts = self.cmap.functions[FunctionRef(self.path, reader)]
        if scope == "app":
            if "hook:before_request" in reader_facts.roles or "hook:before_app_request" in reader_facts.roles \
                    or any(r.startswith("hook:url_value_preprocessor") or r.startswith("hook:app_url_value")
                           for r in reader_facts.roles):
                # another before-request hook: only covered when registered after the writer
                writer_line = self.cmap.functions[FunctionRef(self.path, writer)].line
                return is_before_request_hook(reader_facts, self.blueprints) is not None and reader_facts.line > writer_line
            return True
        blueprint = scope.split(":", 1)[1]
        return view_blueprint(reader_facts, self.blueprints) == blueprint

    def _may_run_without_hook(self, reader: str) -> bool:
        """After-request, teardown and error handlers also run when a before_request hook
        returned a response or raised before writing."""
        return FunctionRef(self.path, reader) in self._late

    @functools.cached_property
    def _late(self) -> set[FunctionRef]:
        # the same for every module (`self.cmap` is the project's context map): a walk of
        # the whole call graph, made once per version of the project, not per module
        return self.project.fact("globals-to-g.late", lambda project: _run_after_early_exit(context_map(project)))


def _run_after_early_exit(cmap: ContextMap) -> set[FunctionRef]:
    """Functions run by (or called from) hooks that run after an early before_request exit."""
    stack = [ref for ref, facts in cmap.functions.items()
             if any(role in facts.roles for role in RUN_WITHOUT_BEFORE_HOOKS)]
    reached = set(stack)
    while stack:
        for callee in cmap.functions[stack.pop()].calls:
            if callee not in reached and callee in cmap.functions:
                reached.add(callee)
                stack.append(callee)
    return reached


CONTAINER_CALLS = frozenset({"list", "dict", "set", "collections.defaultdict", "collections.OrderedDict",
                             "collections.deque", "collections.Counter"})


def _may_hold_state(project: Project, path: str, module: cst.Module) -> bool:
    """The cheap condition for `ModuleAnalysis.candidates` (whose scope analysis costs
    several parses): a `global` statement, or a module-level container to mutate."""
    if "global" in (project.text(path) or ""):
        return True
    imports = import_map(project, path) or ImportMap()
    return any((assigned := assigned_name(stmt)) and _is_container(assigned[1], imports) for stmt in module.body)


def _is_container(value: cst.BaseExpression, imports: ImportMap) -> bool:
    if isinstance(value, (cst.List, cst.Dict, cst.Set, cst.ListComp, cst.DictComp, cst.SetComp)):
        return True
    if isinstance(value, cst.Call):
        name = imports.resolve(value.func) or get_full_name_for_node(value.func)
        return name in CONTAINER_CALLS
    return False


def _global_statements(function: cst.FunctionDef) -> list[cst.Global]:
    """The `global` statements of a function body, at any depth (not in nested functions)."""
    finder = _GlobalStatements(function)
    finder.walk(function)
    return finder.found


class _GlobalStatements(ReadOnlyVisitor):
    def __init__(self, function: cst.FunctionDef) -> None:
        self.function = function
        self.found: list[cst.Global] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return node is self.function

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    # a `global` is a small statement of a line: no need to walk the expressions
    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        self.found.extend(small for small in node.body if isinstance(small, cst.Global))
        return False

    def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> bool:
        self.found.extend(small for small in node.body if isinstance(small, cst.Global))
        return False


def _body(function: cst.FunctionDef) -> list:
    return list(function.body.body) if isinstance(function.body, cst.IndentedBlock) else []


def _is_global_statement(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, cst.Global) for s in stmt.body)


def _single(stmt: cst.CSTNode) -> cst.BaseSmallStatement | None:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        return stmt.body[0]
    return None


def _is_name(node: cst.CSTNode, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def _assigns_name(stmt: cst.CSTNode, name: str) -> bool:
    """`name = value` (value not using name)."""
    small = _single(stmt)
    return (isinstance(small, cst.Assign) and len(small.targets) == 1 and _is_name(small.targets[0].target, name)
            and name not in names_used(small.value))


def _sets_up(stmt: cst.CSTNode, name: str) -> bool:
    """`name.attr = value` or `name.method(...)`."""
    small = _single(stmt)
    if isinstance(small, cst.Assign):
        return all(isinstance(t.target, cst.Attribute) and _is_name(t.target.value, name) for t in small.targets)
    if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
        func = small.value.func
        return isinstance(func, cst.Attribute) and _is_name(func.value, name)
    return False


def _closes(teardown: cst.FunctionDef, name: str) -> bool:
    """Whether the teardown's only mention of `name` is `if name [is not None]: name.close()`."""
    closing = [stmt for stmt in _body(teardown) if name in names_used(stmt)]
    if len(closing) != 1 or not isinstance(closing[0], cst.If) or closing[0].orelse is not None:
        return False
    test, body = closing[0].test, _body(closing[0])
    guarded = _is_name(test, name) or (
        isinstance(test, cst.Comparison) and _is_name(test.left, name) and len(test.comparisons) == 1
        and isinstance(test.comparisons[0].operator, cst.IsNot) and _is_name(test.comparisons[0].comparator, "None"))
    call = _single(body[0]) if len(body) == 1 else None
    return (guarded and isinstance(call, cst.Expr) and isinstance(call.value, cst.Call) and not call.value.args
            and isinstance(call.value.func, cst.Attribute) and _is_name(call.value.func.value, name)
            and call.value.func.attr.value == "close")


def _contains(node: cst.CSTNode, target: cst.CSTNode) -> bool:
    class Finder(ReadOnlyVisitor):
        found = False

        def on_visit(self, n: cst.CSTNode) -> bool:
            if n is target:
                Finder.found = True
            return not Finder.found
    Finder().walk(node)
    return Finder.found


def _calls_function(node: cst.CSTNode, name: str) -> bool:
    class Finder(ReadOnlyVisitor):
        found = False

        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Name) and call.func.value == name:
                Finder.found = True
    Finder().walk(node)
    return Finder.found


def _always_writes(stmt: cst.CSTNode, name: str) -> bool:
    """Whether executing `stmt` always assigns `name` (or leaves the function)."""
    if isinstance(stmt, cst.SimpleStatementLine):
        for small in stmt.body:
            if isinstance(small, cst.Assign) and any(_target_binds(t.target, name) for t in small.targets):
                return True
            if isinstance(small, cst.AnnAssign) and small.value is not None and _target_binds(small.target, name):
                return True
        return False
    if isinstance(stmt, cst.If):
        if stmt.orelse is None:
            return False
        other = stmt.orelse if isinstance(stmt.orelse, cst.If) else None
        return (_block_writes(stmt.body, name)
                and (_always_writes(other, name) if other is not None else _block_writes(stmt.orelse.body, name)))
    if isinstance(stmt, cst.Try):
        if stmt.finalbody is not None and _block_writes(stmt.finalbody.body, name):
            return True
        return _block_writes(stmt.body, name) and all(_block_writes(h.body, name) for h in stmt.handlers)
    if isinstance(stmt, cst.With):
        return _block_writes(stmt.body, name)
    return False


def _block_writes(block: cst.BaseSuite, name: str) -> bool:
    statements = block.body if isinstance(block, cst.IndentedBlock) else [block]
    for stmt in statements:
        if _always_writes(stmt, name):
            return True
        if isinstance(stmt, cst.SimpleStatementLine) and any(isinstance(s, (cst.Return, cst.Raise)) for s in stmt.body):
            return True  # this path leaves before reading
    return False


def _target_binds(target: cst.BaseExpression, name: str) -> bool:
    if isinstance(target, cst.Name):
        return target.value == name
    if isinstance(target, (cst.Tuple, cst.List)):
        return any(_target_binds(e.value, name) for e in target.elements)
    return False


def _is_literal(node: cst.BaseExpression | None) -> bool:
    if node is None:
        return False
    if isinstance(node, cst.Name):
        return node.value in ("None", "True", "False")
    if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString)):
        return True
    if isinstance(node, cst.UnaryOperation):
        return isinstance(node.expression, (cst.Integer, cst.Float))
    if isinstance(node, cst.Tuple):
        return all(_is_literal(e.value) for e in node.elements)
    return False


# -- the rewrite ---------------------------------------------------------------------------

def rewrite(module: cst.Module, path: str, project: Project, plans: list[Plan],
            analysis: ModuleAnalysis) -> cst.Module:
    imports = import_map(project, path) or ImportMap()
    g_text, needed = flask_name(module, imports, "g")
    wrap_text, wrap_needed = None, None
    if any(streamed.unwrapped for plan in plans for streamed in plan.streamed):
        wrap_text, wrap_needed = flask_name(module, imports, "stream_with_context")
    new = module.visit(_Rewriter(plans, g_text, wrap_text, analysis))
    for needed_name in (needed, wrap_needed):
        if needed_name:
            name, alias = needed_name
            new = import_from_flask(new, name, alias)
    return new


class _Rewriter(TargetedTransformer):
    """Every node it changes is one of the sets below (by identity), so only the paths
    to them are walked; blocks and statement lines off those paths are still left (with
    their original children), which is all `leave_IndentedBlock` and
    `leave_SimpleStatementLine` need there."""

    def __init__(self, plans: list[Plan], g_text: str, wrap_text: str | None, analysis: ModuleAnalysis) -> None:
        self.g = cst.parse_expression(g_text)
        self.g_text = g_text
        self.config = parsing_config(analysis.module)
        self.names = {p.candidate.name for p in plans}
        self.plain: set = set()
        self.defaulted: dict = {}
        self.writes: set = set()
        self.globals: set = set()
        self.defaults: set = set()
        self.getter_reads: dict = {}  # node -> getter name
        self.kept: set = set()  # reads of the local a teardown pops from g
        self.openers: dict = {}  # the opening hook's FunctionDef -> Resource
        self.closers: dict = {}  # the closing teardown's FunctionDef -> Resource
        self.getters: dict = {}  # getter name -> the statements moved into it
        self.wrap = cst.parse_expression(wrap_text) if wrap_text else None
        self.unwrapped = {call for plan in plans for streamed in plan.streamed for call in streamed.unwrapped}
        for plan in plans:
            c = plan.candidate
            self.plain |= plan.plain_reads
            self.defaulted.update({node: (c, quote) for node, quote in plan.defaulted_reads.items()})
            self.writes |= {u.node for u in c.uses if u.kind == "write"}
            self.globals |= {stmt for _, stmt in c.globals}
            if c.default is not None:
                self.defaults.add(c.default)
            resource = plan.resource
            if resource is not None:
                self.kept |= {u.node for u in c.uses if u.function == resource.closer}
                self.getter_reads.update({node: resource.getter for node in plan.plain_reads
                                          if not any(_contains(stmt, node) for stmt in resource.opening)})
                self.openers[analysis.by_qualname[resource.hook]] = resource
                self.closers[analysis.by_qualname[resource.closer]] = resource
        self.doomed: dict[int, cst.CSTNode] = {}  # kept alive so that ids are never reused
        self.moved: dict[int, str] = {}  # removed default -> where the value lives now
        targets = [*self.unwrapped, *self.plain, *self.defaulted, *self.writes, *self.globals, *self.defaults,
                   *self.getter_reads, *self.kept, *self.openers, *self.closers]
        super().__init__(analysis.module, map(id, targets), analysis.parents)

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if original_node in self.unwrapped:
            return cst.Call(func=self.wrap, args=[cst.Arg(updated_node)])
        return updated_node

    def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef):
        resource = self.openers.get(original_node)
        if resource is None:
            return updated_node
        return cst.FlattenSentinel([self._getter(resource, updated_node), self._after_getter(updated_node)])

    def _getter(self, resource: Resource, hook: cst.FunctionDef) -> cst.FunctionDef:
        """def get_conn():
            if "conn" not in g:
                <the hook's statements that opened it>
            return g.conn"""
        key = f"{resource.quote}{resource.name}{resource.quote}"
        opening = cst.If(test=cst.parse_expression(f"{key} not in {self.g_text}", config=self.config),
                         body=cst.IndentedBlock(self.getters[resource.getter]))
        result = parse_statement(f"return {self.g_text}.{resource.name}\n", config=self.config)
        blank = list(itertools.takewhile(lambda line: line.comment is None, hook.leading_lines))
        return cst.FunctionDef(name=cst.Name(resource.getter), params=cst.Parameters(),
                               body=cst.IndentedBlock([opening, result]), leading_lines=blank)

    @staticmethod
    def _after_getter(hook: cst.FunctionDef) -> cst.FunctionDef:
        if hook.leading_lines and hook.leading_lines[0].comment is None:
            return hook
        return hook.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine(), *hook.leading_lines])

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
        if original_node in self.kept:
            return updated_node
        getter = self.getter_reads.get(original_node)
        if getter is not None:
            return cst.Call(func=cst.Name(getter))
        if original_node in self.plain or original_node in self.writes:
            return cst.Attribute(value=self.g, attr=cst.Name(original_node.value))
        defaulted = self.defaulted.get(original_node)
        if defaulted is not None:
            candidate, quote = defaulted
            return cst.Call(
                func=cst.Attribute(value=self.g, attr=cst.Name("get")),
                args=[cst.Arg(cst.SimpleString(f"{quote}{candidate.name}{quote}"),
                              comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                      cst.Arg(candidate.default_value)],
            )
        return updated_node

    def leave_SimpleStatementLine(self, original_node, updated_node):
        if original_node in self.defaults:
            self.doomed[id(updated_node)] = updated_node
            self.moved[id(updated_node)] = f"{self.g_text}.{original_node.body[0].targets[0].target.value}" \
                if isinstance(original_node.body[0], cst.Assign) else f"{self.g_text}.{original_node.body[0].target.value}"
            return updated_node
        body = []
        for small in original_node.body:
            if isinstance(small, cst.Global) and small in self.globals:
                kept = [item for item in small.names if item.name.value not in self.names]
                if kept:
                    kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                    body.append(small.with_changes(names=kept))
            else:
                body.append(updated_node.body[original_node.body.index(small)])
        if not body:
            self.doomed[id(updated_node)] = updated_node
            return updated_node
        if len(body) != len(updated_node.body):
            body[-1] = body[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
        return updated_node.with_changes(body=body)

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock):
        function = self._function_of_block.get(original_node)
        if function in self.openers:
            updated_node = self._open_with_getter(self.openers[function], original_node, updated_node)
        elif function in self.closers:
            updated_node = self._pop_first(self.closers[function], updated_node)
        body, footer = self._without_doomed(updated_node.body, updated_node.footer)
        if not body:
            body = [cst.SimpleStatementLine([cst.Pass()])]
        return updated_node.with_changes(body=body, footer=footer)

    @functools.cached_property
    def _function_of_block(self) -> dict:
        return {function.body: function for function in [*self.openers, *self.closers]}

    def _open_with_getter(self, resource: Resource, original: cst.IndentedBlock,
                          updated: cst.IndentedBlock) -> cst.IndentedBlock:
        """The hook's opening statements move into the getter; the hook calls it in their place."""
        body, moved = [], []
        for before, after in zip(original.body, updated.body):
            if before is resource.opening[0]:
                call = parse_statement(f"{resource.getter}()\n", config=self.config)
                body.append(call.with_changes(leading_lines=after.leading_lines))
                moved.append(after.with_changes(leading_lines=[]))
            elif any(before is stmt for stmt in resource.opening):
                moved.append(after)
            else:
                body.append(after)
        self.getters[resource.getter] = moved
        return updated.with_changes(body=body)

    def _pop_first(self, resource: Resource, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        """`conn = g.pop("conn", None)` first (after a docstring): the teardown's reads of
        the global become reads of this local."""
        key = f"{resource.quote}{resource.name}{resource.quote}"
        pop = parse_statement(f"{resource.name} = {self.g_text}.pop({key}, None)\n", config=self.config)
        body = list(updated.body)
        first = _single(body[0]) if body else None
        docstring = isinstance(first, cst.Expr) and isinstance(first.value, (cst.SimpleString, cst.ConcatenatedString))
        at = 1 if docstring else 0
        return updated.with_changes(body=[*body[:at], pop, *body[at:]])

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        body, footer = self._without_doomed(updated_node.body, updated_node.footer)
        return updated_node.with_changes(body=body, footer=footer)

    def _without_doomed(self, statements, footer):
        """Drop the removed statements, handing their comments to the next statement kept
        (or to the block's footer), so that no comment is lost."""
        kept, pending = [], []
        for stmt in statements:
            if id(stmt) in self.doomed:
                pending.extend(stmt.leading_lines)
                trailing = stmt.trailing_whitespace
                if trailing.comment is not None:
                    text = trailing.comment.value.lstrip("#").strip()
                    where = self.moved.get(id(stmt))
                    pending.append(cst.EmptyLine(comment=cst.Comment(f"# {where}: {text}" if where else f"# {text}")))
                continue
            if pending:
                if any(line.comment for line in pending):
                    stmt = stmt.with_changes(leading_lines=[*pending, *stmt.leading_lines])
                elif not stmt.leading_lines:
                    stmt = stmt.with_changes(leading_lines=pending)
                pending = []
            kept.append(stmt)
        return kept, [*(line for line in pending if line.comment), *footer]
