"""`globals-to-g`: module globals that hold per-request state become attributes of `flask.g`.

A module global rebound with `global X; X = ...` during a request is shared by every
thread of the worker: under a threaded server, one user's request reads the value the
concurrent request of another user has just written. `flask.g` lives exactly as long as
the request's app context, so moving the value there keeps each request's state its own.

Only what is provably per-request moves; everything else is reported and left alone.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import (
    ComprehensionScope, FunctionScope, GlobalScope, MetadataWrapper, ParentNodeProvider, ScopeProvider,
)

from flask_refactor.codemod import ChangeSet, Codemod, Severity
from flask_refactor.project import Project

from .support.context import (
    ContextMap, FunctionRef, context_map, is_before_request_hook, iter_functions, view_blueprint,
)
from .support.flask import EXTENSIONS, assigned_name, import_map
from .support.imports import ImportMap, resolve_relative
from .support.names import flask_name, import_from_flask, preferred_quote

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
class Plan:
    """How one global is rewritten: `g.X` for these reads, `g.get(X, default)` for those."""

    candidate: Candidate
    plain_reads: set = field(default_factory=set)
    defaulted_reads: dict = field(default_factory=dict)  # node -> quote for the name in g.get("name", ...)


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

Left alone and reported, with the reason: globals imported or patched by other modules
(they hold their own binding); names `g` already uses (`g.user` set elsewhere, or in a
template) or that are methods of `g` (`get`, `pop`, `setdefault`);
globals mutated in place (`CACHE[key] = value`, `items.append(x)`: process-wide mutable
state shared between requests and threads); counters (`hits += 1`); caches and lazy
singletons (read before they are written); locks, clients, executors and other
infrastructure; ALL_CAPS constants; values carried from one request to another (written in
one view, read in another); globals read at import time, in threads, tasks or CLI commands,
or in generators and nested functions that may run after the request.

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
        external = external_references(project)
        for path, module in project.modules(self.needles):
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
                continue
            for plan in plans:
                if plan.defaulted_reads:
                    readers = sorted({u.function for u in plan.candidate.uses if u.node in plan.defaulted_reads})
                    name = plan.candidate.name
                    changes.report(path, plan.candidate.line,
                                   f"{name} is now read with g.get() in {', '.join(r + '()' for r in readers)}: "
                                   f"on a request where no hook has set it, it is the module default there instead "
                                   "of the previous request's value", Severity.INFO)
            new = rewrite(module, path, project, plans)
            changes.modify(path, new, "per-request module globals moved to flask.g")
        return changes


# -- facts about the whole project ---------------------------------------------------------

def external_references(project: Project) -> dict[str, tuple[str, int]]:
    """Qualified names (`pkg.state.current_user`) other modules import, read as module
    attributes, or name in strings (`monkeypatch.setattr("pkg.state.x", ...)`)."""
    def compute(proj: Project) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        for path in proj.paths():
            module = proj.parse(path)
            if module is None:
                continue
            imports = import_map(proj, path) or ImportMap()
            positions = proj.position_lookup(path)
            collector = _ReferenceCollector(imports, path, positions, found)
            collector.module_name, collector.package = proj.module_name(path), path.endswith("__init__.py")
            module.visit(collector)
        return found
    return project.fact("globals-to-g.external", compute)


class _ReferenceCollector(cst.CSTVisitor):
    def __init__(self, imports: ImportMap, path: str, positions, found: dict) -> None:
        self.imports, self.path, self.positions, self.found = imports, path, positions, found

    module_name: str | None = None
    package = False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        source = get_full_name_for_node(node.module) if node.module else None
        source = resolve_relative(self.module_name, len(node.relative), source, self.package)
        if source:
            for alias in node.names:
                self.found.setdefault(f"{source}.{get_full_name_for_node(alias.name)}",
                                      (self.path, self.positions(node)[0]))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        qualified = self.imports.resolve(node)
        if qualified:
            self.found.setdefault(qualified, (self.path, self.positions(node)[0]))

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        value = node.evaluated_value
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", value):
            self.found.setdefault(value, (self.path, self.positions(node)[0]))

    def visit_Call(self, node: cst.Call) -> None:
        # setattr(module, "name", value) / monkeypatch.setattr(module, "name", value)
        func = get_full_name_for_node(node.func) or ""
        if func.rpartition(".")[2] == "setattr" and len(node.args) >= 2:
            owner = self.imports.resolve(node.args[0].value)
            name = node.args[1].value
            if owner and isinstance(name, cst.SimpleString) and isinstance(name.evaluated_value, str):
                self.found.setdefault(f"{owner}.{name.evaluated_value}", (self.path, self.positions(node)[0]))


def g_attribute_user(project: Project, name: str) -> str | None:
    """The first file (Python or template) that already uses `g.<name>`, if any."""
    pattern = re.compile(rf"\b(?:g|flask_g\d*)\.{re.escape(name)}\b|\bg\.get\(\s*['\"]{re.escape(name)}['\"]")
    for path in [*project.paths(), *project.other_paths((".html", ".htm", ".jinja", ".jinja2", ".j2", ".txt"))]:
        if pattern.search(project.text(path) or ""):
            return path
    return None


# -- one module ---------------------------------------------------------------------------

class ModuleAnalysis:
    def __init__(self, project: Project, path: str, module: cst.Module, cmap: ContextMap) -> None:
        self.project, self.path, self.module, self.cmap = project, path, module, cmap
        self.imports = import_map(project, path) or ImportMap()
        self.positions = project.position_lookup(path)
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        self.scopes = wrapper.resolve(ScopeProvider)
        self.all_scopes = list({id(s): s for s in self.scopes.values() if s is not None}.values())
        self.parents = wrapper.resolve(ParentNodeProvider)
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
        for use in c.uses:
            if use.kind not in ("read", "write", "mutation"):
                continue
            ref = FunctionRef(self.path, use.function)
            if use.function in self.redefined:
                raise Rejected(f"used in {use.function}(), which this module defines more than once")
            if ref in self.cmap.background:
                raise Rejected(f"used in {use.function}() (line {use.line}), {self.cmap.background[ref]}, "
                               "which runs outside any request")
            if ref not in self.cmap.request:
                raise Rejected(f"used in {use.function}() (line {use.line}), which is not known to run in a request")
            if use.nested or self.cmap.functions[ref].is_generator:
                raise Rejected(f"used in a generator, lambda or nested function (line {use.line}) that may run after "
                               "the request has ended")
        for function, uses in writers.items():
            self._check_blind_writer(c, function, uses)
        return self._plan_reads(c, writers)

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
            if value is not None and _mentions(value, c.name):
                raise Rejected(f"{function}() computes it from its previous value (line {write.line}): "
                               "a value carried between requests")

    def _plan_reads(self, c: Candidate, writers: dict[str, list[Use]]) -> Plan:
        hooks = {}  # writer qualname -> (scope, always writes)
        for function in writers:
            facts = self.cmap.functions[FunctionRef(self.path, function)]
            scope = is_before_request_hook(facts, self.blueprints)
            if scope:
                hooks[function] = (scope, self._always_writes_first(c, function))
        plan = Plan(c)
        for use in c.uses:
            if use.kind not in ("read", "mutation"):
                continue
            if self._written_earlier_in(c, use) or self._callers_write_first(c, use.function):
                plan.plain_reads.add(use.node)
                continue
            covering = [always for writer, (scope, always) in hooks.items()
                        if writer != use.function and self._hook_covers(writer, scope, use.function)]
            if covering and all(covering) and not self._may_run_without_hook(use.function):
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
        """Functions run by (or called from) hooks that run after an early before_request exit."""
        stack = [ref for ref, facts in self.cmap.functions.items()
                 if any(role in facts.roles for role in RUN_WITHOUT_BEFORE_HOOKS)]
        reached = set(stack)
        while stack:
            for callee in self.cmap.functions[stack.pop()].calls:
                if callee not in reached and callee in self.cmap.functions:
                    reached.add(callee)
                    stack.append(callee)
        return reached


CONTAINER_CALLS = frozenset({"list", "dict", "set", "collections.defaultdict", "collections.OrderedDict",
                             "collections.deque", "collections.Counter"})


def _is_container(value: cst.BaseExpression, imports: ImportMap) -> bool:
    if isinstance(value, (cst.List, cst.Dict, cst.Set, cst.ListComp, cst.DictComp, cst.SetComp)):
        return True
    if isinstance(value, cst.Call):
        name = imports.resolve(value.func) or get_full_name_for_node(value.func)
        return name in CONTAINER_CALLS
    return False


def _global_statements(function: cst.FunctionDef) -> list[cst.Global]:
    """The `global` statements of a function body, at any depth (not in nested functions)."""
    found: list[cst.Global] = []

    class Visitor(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return node is function

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def visit_Global(self, node: cst.Global) -> None:
            found.append(node)
    function.visit(Visitor())
    return found


def _body(function: cst.FunctionDef) -> list:
    return list(function.body.body) if isinstance(function.body, cst.IndentedBlock) else []


def _mentions(node: cst.CSTNode, name: str) -> bool:
    class Finder(cst.CSTVisitor):
        found = False

        def visit_Name(self, n: cst.Name) -> None:
            if n.value == name:
                Finder.found = True
    finder = Finder()
    node.visit(finder)
    return Finder.found


def _calls_function(node: cst.CSTNode, name: str) -> bool:
    class Finder(cst.CSTVisitor):
        found = False

        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Name) and call.func.value == name:
                Finder.found = True
    node.visit(Finder())
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

def rewrite(module: cst.Module, path: str, project: Project, plans: list[Plan]) -> cst.Module:
    imports = import_map(project, path) or ImportMap()
    g_text, needed = flask_name(module, imports, "g")
    new = module.visit(_Rewriter(plans, g_text))
    if needed:
        name, alias = needed
        new = import_from_flask(new, name, alias)
    return new


class _Rewriter(cst.CSTTransformer):
    def __init__(self, plans: list[Plan], g_text: str) -> None:
        self.g = cst.parse_expression(g_text)
        self.g_text = g_text
        self.names = {p.candidate.name for p in plans}
        self.plain: set = set()
        self.defaulted: dict = {}
        self.writes: set = set()
        self.globals: set = set()
        self.defaults: set = set()
        for plan in plans:
            c = plan.candidate
            self.plain |= plan.plain_reads
            self.defaulted.update({node: (c, quote) for node, quote in plan.defaulted_reads.items()})
            self.writes |= {u.node for u in c.uses if u.kind == "write"}
            self.globals |= {stmt for _, stmt in c.globals}
            if c.default is not None:
                self.defaults.add(c.default)
        self.doomed: dict[int, cst.CSTNode] = {}  # kept alive so that ids are never reused
        self.moved: dict[int, str] = {}  # removed default -> where the value lives now

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
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
        body, footer = self._without_doomed(updated_node.body, updated_node.footer)
        if not body:
            body = [cst.SimpleStatementLine([cst.Pass()])]
        return updated_node.with_changes(body=body, footer=footer)

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
