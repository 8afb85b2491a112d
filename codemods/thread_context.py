"""`thread-context`: background threads started during a request get the context they need.

Flask's contexts belong to one thread. A `threading.Thread`, `threading.Timer` or
executor job started from a view runs with no app context: its first `current_app`,
`db.session`, `mail.send` or `url_for` raises "Working outside of application context"
in the thread, where nobody sees it. The fix Flask documents is to capture the real app
object while handling the request and push its app context in the thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.codemod import ChangeSet, Codemod, Severity
from flask_refactor.project import Project
from flask_refactor.snippets import parse_statement, parsing_config
from flask_refactor.walk import ReadOnlyVisitor, TargetedTransformer, node_finder

from .support.context import (
    ContextMap, FunctionRef, Resolver, body_calls, call_target, context_map, executors_in, iter_functions,
    partial_function,
)
from .support.flask import EXTENSIONS, app_code_modules, app_modules, assigned_name, import_map
from .support.imports import ImportMap
from .support.names import flask_name, import_from_flask, import_module, names_used

HELPER = "_with_app_context"
APP_CONTEXT_NAMES = frozenset({"flask.current_app", "flask.g", "flask.url_for", "flask.render_template",
                               "flask.render_template_string", "flask.jsonify"})
REQUEST_NAMES = frozenset({"flask.request", "flask.session", "flask.flash"})
ENTERS_CONTEXT = frozenset({"app_context", "test_request_context", "request_context"})
CONTEXT_DECORATORS = frozenset({"flask.copy_current_request_context", "flask.cli.with_appcontext",
                                "flask.stream_with_context"})
# Query results that are ORM instances bound to the request's session.
ORM_LOADERS = frozenset({"get_or_404", "first_or_404", "one_or_404", "first", "one", "one_or_none",
                         "scalar", "scalar_one", "scalar_one_or_none", "get"})


@dataclass(frozen=True)
class Use:
    """One use of a Flask name in a thread target. Its line is looked up only when a
    report names it: the positions of a module cost a rendering of all of it."""

    what: str
    where: FunctionRef
    node: cst.CSTNode
    positions: Callable[[cst.CSTNode], tuple[int, int]]

    @property
    def place(self) -> str:
        """`path:line`, for a report."""
        return f"{self.where.path}:{self.positions(self.node)[0]}"


@dataclass
class Needs:
    """What a thread target uses, followed into the project's functions."""

    app: list[Use] = field(default_factory=list)
    request: list[Use] = field(default_factory=list)
    url_for: list[Use] = field(default_factory=list)
    g: list[Use] = field(default_factory=list)
    enters_context: bool = False


class ThreadContext(Codemod):
    name = "thread-context"
    summary = "Run threads, executor jobs and Socket.IO tasks started in a request inside the app (or request) context."
    order = 40
    needles = ("Thread", "Timer", "submit(", "start_background_task")
    uses_index = True
    explain = '''\
A `threading.Thread(target=f)`, `threading.Timer(delay, f)`, `executor.submit(f, ...)`,
`executor.map(f, ...)` or `socketio.start_background_task(f, ...)` (Flask-SocketIO's
background thread or greenlet) started while handling a request runs `f` with no Flask
context: if `f` (or a project function it calls) uses `current_app`, `g`, `url_for`,
`render_template`, `Model.query` or an extension that needs the app (`db.session`,
`mail.send`), the thread dies with "Working outside of application context", and nobody
sees it.

For a start inside a view, a request hook or a function called from one, this codemod
follows the target into the project's functions and:

* when it needs the app: wraps the target at the call site,
  `Thread(target=_with_app_context(f), ...)`, with a small helper added to the module that
  captures `current_app._get_current_object()` during the request and runs `f` inside
  `app.app_context()` in the thread;
* when it reads `request` or `session`: applies `copy_current_request_context(f)` at the
  call site, inside the view (never at module level, where it raises), and warns that the
  request object is then shared between threads (better: pass the values as arguments).

`daemon=`, `name=`, `args=` and `kwargs=` are kept, and no `join()` is added.

Left alone: targets that already push a context (`with app.app_context():`, or decorated
with `copy_current_request_context`; not `with current_app.app_context():`, which raises
in a thread with no context, and which app-factory makes of `app.app_context()`),
targets that need no context, and threads started outside any request (at import time,
in CLI commands, in tasks). Reported: ORM instances
passed into the thread (they belong to the request's session: pass primary keys), `url_for`
in a thread without `SERVER_NAME` configured, `g` read in the thread (it starts empty), and
process pools, which cannot carry a context.

Before:

    @app.route("/signup", methods=["POST"])
    def signup():
        threading.Thread(target=send_welcome, args=(email,)).start()

After:

    def _with_app_context(func):
        app = current_app._get_current_object()

        @functools.wraps(func)
        def run(*args, **kwargs):
            with app.app_context():
                return func(*args, **kwargs)

        return run

    @app.route("/signup", methods=["POST"])
    def signup():
        threading.Thread(target=_with_app_context(send_welcome), args=(email,)).start()
'''

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        cmap = context_map(project)
        analyser = TargetAnalyser(project, cmap)
        server_name = _server_name_configured(project)

        def one_module(item: tuple[str, cst.Module], changes: ChangeSet) -> None:
            path, module = item
            new = ModuleSites(project, path, module, cmap, analyser, server_name, changes).rewrite()
            if new is not None:
                changes.modify(path, new, "background work started in a request runs inside the app context")

        modules = list(app_code_modules(project, self.needles))  # (a thread is started by a call)
        project.per_module(modules, one_module, changes, project.sizes(path for path, _ in modules))
        return changes


def _server_name_configured(project: Project) -> bool:
    if project.candidates(("SERVER_NAME",)):
        return True
    others = project.other_paths((".cfg", ".toml", ".env", ".ini", ".json", ".yaml", ".yml"))
    return any("SERVER_NAME" in (project.text(p) or "") for p in others)


# -- what a target needs ---------------------------------------------------------------

class TargetAnalyser:
    def __init__(self, project: Project, cmap: ContextMap) -> None:
        self.project, self.cmap = project, cmap
        self.extensions = extension_objects(project)
        self.modules: dict[str, set[str]] = {}
        for ref in cmap.functions:
            self.modules.setdefault(ref.path, set()).add(ref.qualname)
        self.models = model_classes(project, self.extensions)
        self._cache: dict[FunctionRef, Needs] = {}

    def needs(self, ref: FunctionRef) -> Needs:
        if ref not in self._cache:
            self._cache[ref] = Needs()  # a recursion guard while this one is computed
            self._cache[ref] = self._compute(ref)
        return self._cache[ref]

    def _compute(self, ref: FunctionRef) -> Needs:
        module = self.project.parse(ref.path)
        func = next((node for q, node, _ in iter_functions(module) if q == ref.qualname), None)
        if func is None:
            return Needs()
        imports = import_map(self.project, ref.path) or ImportMap()
        if any(imports.resolve(d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator)
               in CONTEXT_DECORATORS for d in func.decorators):
            return Needs(enters_context=True)
        return self.needs_of_code(ref.path, func.body, ref.qualname, ref)

    def needs_of_code(self, path: str, code: cst.CSTNode, scope: str | None, ref: FunctionRef | None = None) -> Needs:
        """What `code` (a function body, or a lambda started as a target) in `path` uses,
        following its calls into the project; `scope` is the qualname it runs in."""
        imports = import_map(self.project, path) or ImportMap()
        positions = self.project.position_lookup(path)
        where = ref or FunctionRef(path, scope or "<module>")
        finder = _UseFinder(imports, self.extensions.get(path, set()), self._qualified_extensions())
        finder.is_model = lambda expr: is_model(expr, self.models, imports, path)
        finder.walk(code)
        needs = Needs(enters_context=finder.enters_context)
        needs.app = [Use(what, where, node, positions) for what, node in finder.app]
        needs.request = [Use(what, where, node, positions) for what, node in finder.request]
        needs.url_for = [Use("url_for", where, node, positions) for node in finder.url_for]
        needs.g = [Use("g", where, node, positions) for node in finder.g]
        resolver = Resolver(self.project, path, self.modules)
        for call in finder.calls:
            callee = resolver.function(call.func, scope)
            if callee is None or callee == ref:
                continue
            inner = self.needs(callee)
            if inner.enters_context:
                continue  # the callee takes care of its own context
            needs.app += inner.app
            needs.request += inner.request
            needs.url_for += inner.url_for
            needs.g += inner.g
        return needs

    def _qualified_extensions(self) -> set[str]:
        return {q for names in self.extensions.values() for q in names if "." in q}


def extension_objects(project: Project) -> dict[str, set[str]]:
    """path -> names of module-level Flask extension objects defined there, plus their
    qualified names (`pkg.extensions.db`) so that importers are recognised too."""
    def compute(proj: Project) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        # `db = SQLAlchemy()` names the class, whatever the import looks like (and is a call)
        for path, module in app_code_modules(proj, tuple(sorted({q.rpartition(".")[2] for q in EXTENSIONS}))):
            imports = import_map(proj, path) or ImportMap()
            module_name = proj.module_name(path)
            for stmt in module.body:
                assigned = assigned_name(stmt)
                if assigned and isinstance(assigned[1], cst.Call) and imports.resolve(assigned[1].func) in EXTENSIONS:
                    found.setdefault(path, set()).add(assigned[0])
                    if module_name:
                        found[path].add(f"{module_name}.{assigned[0]}")
        return found
    return project.fact("thread-context.extensions", compute)


class _UseFinder(ReadOnlyVisitor):
    def __init__(self, imports: ImportMap, local_extensions: set[str], qualified_extensions: set[str]) -> None:
        self.imports = imports
        self.local_extensions = {n for n in local_extensions if "." not in n}
        self.qualified_extensions = qualified_extensions
        self.app: list[tuple[str, cst.CSTNode]] = []
        self.request: list[tuple[str, cst.CSTNode]] = []
        self.url_for: list[cst.CSTNode] = []
        self.g: list[cst.CSTNode] = []
        self.calls: list[cst.Call] = []
        self.enters_context = False
        self.is_model = lambda expr: False

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in ENTERS_CONTEXT \
                and not self._through_current_app(node.func.value):
            self.enters_context = True

    def _through_current_app(self, expr: cst.BaseExpression) -> bool:
        """Whether `expr` is reached through the `current_app` proxy (`current_app`,
        `current_app._get_current_object()`), which in a thread started with no context
        raises instead of giving an app to push a context of (app-factory turns a
        target's `with app.app_context():` into `with current_app.app_context():`)."""
        qualified = self._resolve(expr) or ""  # (the name of a call or subscript is its callee's, its value's)
        return qualified == "flask.current_app" or qualified.startswith("flask.current_app.")

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        return self._check(node)

    def visit_Name(self, node: cst.Name) -> None:
        self._check(node)

    def _resolve(self, node: cst.BaseExpression) -> str | None:
        qualified = self.imports.resolve(node)
        if qualified is None and "flask" in self.imports.star_modules:
            dotted = get_full_name_for_node(node) or ""
            head = dotted.partition(".")[0]
            if f"flask.{head}" in APP_CONTEXT_NAMES | REQUEST_NAMES:
                return f"flask.{dotted}"  # `from flask import *`
        return qualified

    def _check(self, node: cst.BaseExpression) -> bool:
        qualified = self._resolve(node)
        text = get_full_name_for_node(node) or ""
        if qualified in REQUEST_NAMES:
            self.request.append((text, node))
            return False
        if qualified in APP_CONTEXT_NAMES:
            self.app.append((text, node))
            if qualified == "flask.url_for":
                self.url_for.append(node)
            if qualified == "flask.g":
                self.g.append(node)
            return False
        if isinstance(node, cst.Attribute) and node.attr.value == "query" and self.is_model(node.value):
            self.app.append((text, node))  # Flask-SQLAlchemy's Model.query needs the app
            return False
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
            owner = node.value.value
            owner_qualified = self.imports.resolve(node.value)
            if owner in self.local_extensions and owner not in self.imports.names or owner_qualified in self.qualified_extensions:
                self.app.append((text, node))
                return False
        return True


# -- the call sites of one module --------------------------------------------------------

@dataclass
class Wrap:
    arg: cst.Arg
    how: str  # "app" or "request"


class ModuleSites:
    def __init__(self, project: Project, path: str, module: cst.Module, cmap: ContextMap,
                 analyser: TargetAnalyser, server_name: bool, changes: ChangeSet) -> None:
        self.project, self.path, self.module, self.cmap = project, path, module, cmap
        self.analyser, self.server_name, self.changes = analyser, server_name, changes
        self.imports = import_map(project, path) or ImportMap()
        self.positions = project.position_lookup(path)
        self.executors, self.process_executors = executors_in(project, path, module)
        self.resolver = Resolver(project, path, analyser.modules)
        self.helper = existing_helper(module)
        self.copy_names = set(self.imports.local_names_for("flask.copy_current_request_context"))

    def rewrite(self) -> cst.Module | None:
        wraps: dict[cst.Arg, Wrap] = {}
        bodies = body_calls(self.module)
        for qualname, func, _ in iter_functions(self.module):
            ref = FunctionRef(self.path, qualname)
            if ref not in self.cmap.request:
                continue  # import time, CLI commands, tasks: no request to take a context from
            for call in bodies[func].calls:
                target = call_target(call, self.imports, self.executors, self.process_executors)
                if target:
                    wrap = self._site(func, qualname, call, *target)
                    if wrap:
                        wraps[target[1]] = wrap
        if not wraps:
            return None
        return self._apply(wraps)

    def _site(self, func: cst.FunctionDef, qualname: str, call: cst.Call, kind: str, arg: cst.Arg) -> Wrap | None:
        # lines are looked up only for findings: a lookup renders the statement holding the node
        if kind == "process":
            self.changes.report(self.path, self.positions(call)[0],
                                "a process started in a request cannot carry Flask's context: pass plain values "
                                "and create the app (or an app context) in the child process", Severity.INFO)
            return None
        inner = arg.value.args[0].value if self._already_wrapped(arg.value) and arg.value.args else arg.value
        name = get_full_name_for_node(inner) or "the target"
        self._report_orm_arguments(func, call, kind, name)
        if inner is not arg.value:
            return None
        needs = self._target_needs(arg.value, qualname)
        if needs is None or needs.enters_context or not (needs.app or needs.request):
            return None
        self._report_needs(name, needs, call)
        return Wrap(arg, "request" if needs.request else "app")

    def _report_needs(self, name: str, needs: Needs, call: cst.Call) -> None:
        """What the wrapper cannot fix: url_for without SERVER_NAME, g, the shared request."""
        if needs.url_for and not self.server_name:
            self.changes.report(self.path, self.positions(call)[0],
                                f"{name} calls url_for ({needs.url_for[0].place}) in another thread, where there is no "
                                "request: set SERVER_NAME (and PREFERRED_URL_SCHEME) or build the URL in the view "
                                "and pass it as an argument")
        if needs.g:
            self.changes.report(self.path, self.positions(call)[0],
                                f"{name} uses g ({needs.g[0].place}): the thread gets a new, empty g, so values set "
                                "during the request are not there; pass them as arguments")
        if needs.request:
            use = needs.request[0]
            self.changes.report(self.path, self.positions(call)[0],
                                f"{name} reads {use.what} ({use.place}): wrapped in copy_current_request_context, "
                                "so the thread shares this request object, which is not thread-safe and whose "
                                "session changes are never saved; prefer passing the values it needs as arguments")

    def _target_needs(self, target: cst.BaseExpression, qualname: str) -> Needs | None:
        """What the started callable needs: a project function, a lambda, or a
        `functools.partial` of one; None when it cannot be followed."""
        if isinstance(target, cst.Lambda):
            return self.analyser.needs_of_code(self.path, target.body, qualname)
        ref = self.resolver.function(partial_function(target, self.imports), qualname)
        return self.analyser.needs(ref) if ref is not None else None

    def _already_wrapped(self, expr: cst.BaseExpression) -> bool:
        if not isinstance(expr, cst.Call):
            return False
        func = get_full_name_for_node(expr.func)
        return func == HELPER or func == self.helper or func in self.copy_names \
            or self.imports.resolve(expr.func) in CONTEXT_DECORATORS

    def _report_orm_arguments(self, func: cst.FunctionDef, call: cst.Call, kind: str, name: str) -> None:
        passed: list[cst.BaseExpression] = []
        for i, arg in enumerate(call.args):
            if arg.keyword and arg.keyword.value in ("args", "kwargs"):
                value = arg.value
                if isinstance(value, (cst.Tuple, cst.List)):
                    passed += [e.value for e in value.elements]
                elif isinstance(value, cst.Dict):
                    passed += [e.value for e in value.elements if isinstance(e, cst.DictElement)]
            elif kind in ("submit", "background") and i > 0:
                passed.append(arg.value)
        loaded = _orm_bindings(func, self.analyser.models, self.imports, self.path)
        for value in passed:
            if isinstance(value, cst.Name) and value.value in loaded:
                self.changes.report(self.path, self.positions(call)[0],
                                    f"{value.value} is an ORM instance loaded in the request and passed to {name}: "
                                    "it belongs to the request's session and is detached in the thread; pass its "
                                    "primary key and load it again there")

    def _apply(self, wraps: dict[cst.Arg, Wrap]) -> cst.Module:
        module = self.module
        current_app, need_current_app = flask_name(module, self.imports, "current_app")
        copy_name, need_copy = flask_name(module, self.imports, "copy_current_request_context")
        helper = self.helper or _free_name(module, HELPER)
        if self.copy_names:
            copy_name, need_copy = sorted(self.copy_names, key=len)[0], None
        new = module.visit(_WrapTargets(module, wraps, helper, copy_name))
        if any(w.how == "app" for w in wraps.values()):
            if self.helper is None:
                functools_name, need_functools = _functools_wraps(module, self.imports)
                new = _insert_helper(new, helper, current_app, functools_name)
                if need_functools:
                    new = import_module(new, "functools")
            if need_current_app:
                new = import_from_flask(new, *need_current_app)
        if any(w.how == "request" for w in wraps.values()) and need_copy:
            new = import_from_flask(new, *need_copy)
        return new


def _orm_bindings(func: cst.FunctionDef, models: dict[str, set[str]], imports: ImportMap, path: str) -> set[str]:
    """Names the function binds to what looks like an ORM query result or a new model."""
    names = set()
    for node in _assignments(func.body):
        if _looks_like_orm(node.value) or (isinstance(node.value, cst.Call)
                                           and is_model(node.value.func, models, imports, path)):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    names.add(target.target.value)
    return names


_assignments = node_finder(cst.Assign, stop_at=(cst.FunctionDef,))  # not those of nested functions


def model_classes(project: Project, extensions: dict[str, set[str]]) -> dict[str, set[str]]:
    """path -> names of ORM model classes defined there (subclasses of `<db>.Model`, where
    `db` is a Flask-SQLAlchemy object, or of a declarative base), plus qualified names."""
    def compute(proj: Project) -> dict[str, set[str]]:
        qualified_extensions = {q for names in extensions.values() for q in names if "." in q}
        found: dict[str, set[str]] = {}
        for path, module in app_modules(proj, ("Model", "Base")):  # what the app's code can import
            imports = import_map(proj, path) or ImportMap()
            local_extensions = {n for n in extensions.get(path, set()) if "." not in n}
            module_name = proj.module_name(path)
            for stmt in module.body:
                if not isinstance(stmt, cst.ClassDef):
                    continue
                for base in stmt.bases:
                    value = base.value
                    owner = value.value if isinstance(value, cst.Attribute) else None
                    is_db_model = (isinstance(value, cst.Attribute) and value.attr.value == "Model"
                                   and (get_full_name_for_node(owner) in local_extensions
                                        or imports.resolve(owner) in qualified_extensions))
                    is_declarative = (imports.resolve(value) or "").startswith("sqlalchemy.orm.") or \
                        get_full_name_for_node(value) in ("Base", "Model")
                    if is_db_model or is_declarative:
                        found.setdefault(path, set()).add(stmt.name.value)
                        if module_name:
                            found[path].add(f"{module_name}.{stmt.name.value}")
        return found
    return project.fact("thread-context.models", compute)


def is_model(expr: cst.BaseExpression, models: dict[str, set[str]], imports: ImportMap, path: str) -> bool:
    name = get_full_name_for_node(expr)
    if name and name in models.get(path, set()) and name not in imports.names:
        return True
    qualified = imports.resolve(expr)
    return bool(qualified) and any(qualified in names for names in models.values())


def _looks_like_orm(value: cst.BaseExpression) -> bool:
    if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Attribute):
        return False
    method = value.func.attr.value
    if method in {"get_or_404", "first_or_404", "one_or_404"}:
        return True
    if method not in ORM_LOADERS:
        return False  # (decided without rendering the call: most assignments are not loads)
    text = cst.Module(body=[]).code_for_node(value)
    return ".query" in text or "session." in text or "select(" in text


def _free_name(module: cst.Module, wanted: str) -> str:
    used = names_used(module)
    name, counter = wanted, 2
    while name in used:
        name, counter = f"{wanted}_{counter}", counter + 1
    return name


def existing_helper(module: cst.Module) -> str | None:
    """The name of a helper this codemod added before (a module-level function whose name
    starts with the helper's and that pushes an app context)."""
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value.startswith(HELPER):
            code = module.code_for_node(stmt)
            if "_get_current_object()" in code and ".app_context()" in code:
                return stmt.name.value
    return None


def _functools_wraps(module: cst.Module, imports: ImportMap) -> tuple[str, bool]:
    existing = imports.local_names_for("functools.wraps")
    if existing:
        return min(existing, key=len), False
    if "functools" in names_used(module):
        if imports.names.get("functools") == "functools":
            return "functools.wraps", False
        return "__import__('functools').wraps", False  # the name is taken by something else
    return "functools.wraps", True


def _insert_helper(module: cst.Module, helper: str, current_app: str, wraps: str) -> cst.Module:
    code = (
        f"def {helper}(func):\n"
        f'    """Wrap `func` to run inside an app context of the app handling the current\n'
        f"    request, for another thread. Call it during the request: it captures the real app\n"
        f'    object then, because the `current_app` proxy does not reach other threads."""\n'
        f"    app = {current_app}._get_current_object()\n"
        f"\n"
        f"    @{wraps}(func)\n"
        f"    def run(*args, **kwargs):\n"
        f"        with app.app_context():\n"
        f"            return func(*args, **kwargs)\n"
        f"\n"
        f"    return run\n"
    )
    # the docstring's line breaks are part of the string token: give them the file's own
    function = parse_statement(code.replace("\n", module.default_newline), config=parsing_config(module))
    body = list(module.body)
    index = next((i for i, stmt in enumerate(body) if isinstance(stmt, (cst.FunctionDef, cst.ClassDef))), len(body))
    blank = cst.EmptyLine()
    function = function.with_changes(leading_lines=[blank, blank])
    if index < len(body):
        # the helper goes above the first definition, which keeps its own comments
        first = body[index]
        lines = list(first.leading_lines)
        while lines and lines[0].comment is None:
            lines.pop(0)
        body[index] = first.with_changes(leading_lines=[blank, blank, *lines])
    body.insert(index, function)
    return module.with_changes(body=body)


class _WrapTargets(TargetedTransformer):
    def __init__(self, module: cst.Module, wraps: dict[cst.Arg, Wrap], helper: str, copy_name: str) -> None:
        super().__init__(module, map(id, wraps))
        self.wraps = wraps
        self.helper = cst.parse_expression(helper)
        self.copy = cst.parse_expression(copy_name)

    def leave_Arg(self, original_node: cst.Arg, updated_node: cst.Arg) -> cst.Arg:
        wrap = self.wraps.get(original_node)
        if wrap is None:
            return updated_node
        func = self.helper if wrap.how == "app" else self.copy
        return updated_node.with_changes(value=cst.Call(func=func, args=[cst.Arg(updated_node.value)]))
