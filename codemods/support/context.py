"""Which functions of a project run inside a Flask request, and which run elsewhere.

A function runs in a request context when it is a view (route decorator, `add_url_rule`,
a `MethodView` method), a request hook (`before_request`, `after_request`, error
handlers, context processors, ... in decorator or call form, on an app or a blueprint),
or a project function called from one of those. A function runs *outside* any request
when it is a thread target (named, wrapped in `functools.partial`, or called by a
`lambda` target; the `run` method of a Thread subclass), a task, a queued or scheduled
job (rq's `enqueue`, APScheduler's `add_job` and `scheduled_job`), a CLI command, an
exit or signal handler (`atexit.register`, `signal.signal`), or is called from one of
those.

Calls are followed between modules of the project through their imports (`from .mail
import send_welcome`, `helpers.load_user()`), and into functions nested in a function.
Methods called on objects (`obj.method()`) are not followed: their receiver is unknown.

Computed once per project revision (`context_map(project)`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.project import Project
from flask_refactor.walk import WHITESPACE, ReadOnlyVisitor, iter_nodes

from .cache import per_tree
from .calls import BodyCalls, statement_survey
from .flask import app_code_modules, app_modules, decorator_callee, decorator_method, import_map
from .imports import ImportMap, last_name
from .routes import (
    BEFORE_REQUEST_HOOKS, REQUEST_HOOKS, blueprint_variables, call_registrations, decorator_registration,
    module_subclasses, of_another_framework, view_class_methods,
)

THREAD_CLASSES = frozenset({"threading.Thread", "threading.Timer"})
PROCESS_CLASSES = frozenset({"multiprocessing.Process", "multiprocessing.context.Process"})
EXECUTOR_CLASSES = frozenset({"concurrent.futures.ThreadPoolExecutor",
                              "concurrent.futures.thread.ThreadPoolExecutor"})
PROCESS_EXECUTOR_CLASSES = frozenset({"concurrent.futures.ProcessPoolExecutor",
                                      "concurrent.futures.process.ProcessPoolExecutor"})
CLICK_COMMANDS = frozenset({"click.command", "click.group", "flask.cli.with_appcontext"})
TASK_DECORATORS = frozenset({"celery.shared_task", "celery.task"})
# methods that queue or schedule a function to run in a worker or a scheduler's thread, by
# method name (rq's Queue, APScheduler's schedulers): method -> the index of the function
# among the positional arguments, and its keyword
JOB_METHODS = {"enqueue": (0, "f"), "enqueue_call": (0, "func"), "enqueue_in": (1, "func"),
               "enqueue_at": (1, "f"), "add_job": (0, "func")}
JOB_DECORATOR_METHODS = frozenset({"scheduled_job"})  # APScheduler's @scheduler.scheduled_job(...)
# the method of a Socket.IO server (Flask-SocketIO's `SocketIO`, python-socketio's `Server`)
# that runs a function in a background thread or greenlet, with no Flask context
BACKGROUND_TASK_METHOD = "start_background_task"
# calls registering a function the interpreter runs later, outside any request and with
# no app context: the registrar -> (the kind of start, the function's index among the
# positional arguments). `atexit.register` is also a decorator.
CALLBACK_REGISTRARS = {"atexit.register": ("exit", 0), "signal.signal": ("signal", 1)}
_CALLBACK_NAMES = frozenset(registrar.rpartition(".")[2] for registrar in CALLBACK_REGISTRARS)
# What a file that starts a function elsewhere (a thread, process, job, task, Socket.IO
# background task, exit or signal handler) must name: a cheap test before the call graph
# is asked about such starts.
START_NEEDLES = tuple(sorted(
    {qualified.rpartition(".")[2] for qualified in THREAD_CLASSES | PROCESS_CLASSES | EXECUTOR_CLASSES
     | PROCESS_EXECUTOR_CLASSES | TASK_DECORATORS} | set(JOB_METHODS) | JOB_DECORATOR_METHODS | {"task"}
    | {BACKGROUND_TASK_METHOD}
    | {registrar.partition(".")[0] for registrar in CALLBACK_REGISTRARS}))
# Roles whose functions run outside requests with no app context from Flask or from
# thread-context (which wraps the thread targets started in requests): a Thread
# subclass's run method, a queued or scheduled job, an exit or signal handler. Views,
# hooks, commands and thread targets have one, and tasks where Celery is set up in a
# factory (app-factory's own check, `run_in_background`, finds the tasks and threads of a
# module-level app).
NO_CONTEXT_ROLES = frozenset({"run-method", "job", "callback"})


@dataclass(frozen=True)
class FunctionRef:
    """A function of the project: its file and dotted name inside the module
    (`index`, `create_app.load_user`, `UserAPI.get`)."""

    path: str
    qualname: str

    def __str__(self) -> str:
        return f"{self.qualname}() in {self.path}"


@dataclass
class FunctionFacts:
    ref: FunctionRef
    # its line, looked up only when asked: positions cost more than a parse, and most
    # functions of a project are never reported on
    locate: Callable[[], int] = lambda: 0
    # "view", "hook:<method>", "cli", "task", "thread-target", "run-method" (a Thread subclass's
    # run), "job" (queued or scheduled), "callback" (an exit or signal handler:
    # `CALLBACK_REGISTRARS`)
    roles: set[str] = field(default_factory=set)
    owners: dict[str, str] = field(default_factory=dict)  # role -> the registering object's text
    calls: set[FunctionRef] = field(default_factory=set)
    # what runs it in another thread or process, or queues it: (the function doing so, or
    # None for the module's top level at import time; "thread", "timer", "submit",
    # "background", "process", "job", or a callback's "exit" or "signal")
    started_by: set[tuple[FunctionRef | None, str]] = field(default_factory=set)
    nested_in: str | None = None  # qualname of the enclosing function
    is_generator: bool = False

    @property
    def line(self) -> int:
        return self.locate()


@dataclass
class ContextMap:
    functions: dict[FunctionRef, FunctionFacts]
    request: dict[FunctionRef, str]  # function -> why it runs in a request
    background: dict[FunctionRef, str]  # function -> why it runs outside any request
    blueprints: dict[str, set[str]]  # path -> names bound to Blueprint objects there
    # what each module's code said, and what that depended on outside the module: the
    # next build reads again only the modules a codemod has changed since (`_build`)
    modules: "_ModuleReadings | None" = field(default=None, repr=False, compare=False)

    def in_request(self, ref: FunctionRef) -> bool:
        return ref in self.request

    def facts(self, ref: FunctionRef) -> FunctionFacts | None:
        return self.functions.get(ref)


def context_map(project: Project) -> ContextMap:
    return project.fact("context.map", _build, update=_build)


# -- walking functions -----------------------------------------------------------------

@per_tree
def iter_functions(module: cst.Module) -> tuple[tuple[str, cst.FunctionDef, str | None], ...]:
    """Every function of a module as (qualname, node, enclosing function qualname). (Asked
    of every module of the app by each build of the map, most of them unchanged since.)"""
    found: list[tuple[str, cst.FunctionDef, str | None]] = []

    def walk(body, prefix: str, enclosing: str | None) -> None:
        for stmt in body:
            if isinstance(stmt, cst.FunctionDef):
                qualname = f"{prefix}{stmt.name.value}"
                found.append((qualname, stmt, enclosing))
                walk(_block(stmt.body), qualname + ".", qualname)
            elif isinstance(stmt, cst.ClassDef):
                walk(_block(stmt.body), f"{prefix}{stmt.name.value}.", enclosing)
            elif isinstance(stmt, (cst.If, cst.Try, cst.With, cst.For, cst.While)):
                for block in _compound_blocks(stmt):
                    walk(block, prefix, enclosing)

    walk(module.body, "", None)
    return tuple(found)


def _block(body: cst.BaseSuite) -> list:
    return list(body.body) if isinstance(body, cst.IndentedBlock) else []


def _compound_blocks(stmt: cst.CSTNode) -> list[list]:
    blocks = [_block(stmt.body)]
    orelse = getattr(stmt, "orelse", None)
    while orelse is not None:
        if isinstance(orelse, cst.If):
            blocks.append(_block(orelse.body))
            orelse = orelse.orelse
        else:
            blocks.append(_block(orelse.body))
            orelse = None
    for handler in getattr(stmt, "handlers", ()):
        blocks.append(_block(handler.body))
    final = getattr(stmt, "finalbody", None)
    if final is not None:
        blocks.append(_block(final.body))
    return blocks


@per_tree
def body_calls(module: cst.Module) -> dict[cst.FunctionDef, BodyCalls]:
    """Each function of the module (at any depth) -> the calls its own body makes: from
    the surveys of its top-level statements, kept per statement, which the call graph's
    reading of the module has usually made already. Not to be changed."""
    return {function: calls for statement in module.body
            for function, calls in statement_survey(statement).bodies.items()}


# -- resolving what a name refers to ----------------------------------------------------

class Resolver:
    """Finds the project function a name refers to, from inside a module."""

    def __init__(self, project: Project, path: str, module_functions: dict[str, set[str]]) -> None:
        self.project = project
        self.path = path
        self.imports = import_map(project, path) or ImportMap()
        self.module_functions = module_functions  # path -> qualnames defined there
        self.consulted: set[str] = set()  # the paths whose functions answers were looked up in

    def function(self, expr: cst.BaseExpression, scope: str | None = None) -> FunctionRef | None:
        """The function `expr` names, looked up from inside function `scope` (a qualname)."""
        dotted = get_full_name_for_node(expr)
        if not dotted:
            return None
        local = self.module_functions.get(self.path, set())
        self.consulted.add(self.path)
        # a function nested in the current one, or in one enclosing it
        while scope:
            if f"{scope}.{dotted}" in local:
                return FunctionRef(self.path, f"{scope}.{dotted}")
            scope = scope.rpartition(".")[0] or None
        if dotted in local:
            return FunctionRef(self.path, dotted)
        qualified = self.imports.resolve(expr)
        if qualified:
            return self.qualified_function(qualified)
        return None

    def qualified_function(self, qualified: str) -> FunctionRef | None:
        parts = qualified.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            path = self.project.path_of_module(".".join(parts[:cut]))
            if path:
                self.consulted.add(path)
                name = ".".join(parts[cut:])
                if name in self.module_functions.get(path, set()):
                    return FunctionRef(path, name)
                return None
        return None


def call_target(call: cst.Call, imports: ImportMap, executors: set[str] = frozenset(),
                process_executors: set[str] = frozenset()) -> tuple[str, cst.Arg] | None:
    """For a call that runs a function in another thread or process, (kind, the Arg holding
    the function): kind is "thread", "timer", "submit" (executor submit or map),
    "background" (a Socket.IO server's background task) or "process"."""
    qualified = imports.resolve(call.func)
    if qualified in THREAD_CLASSES or qualified in PROCESS_CLASSES:
        kind = "timer" if qualified.endswith("Timer") else "process" if qualified in PROCESS_CLASSES else "thread"
        keyword = "function" if kind == "timer" else "target"
        position = 1  # Thread(group, target, ...), Timer(interval, function, ...)
        for arg in call.args:
            if arg.keyword and arg.keyword.value == keyword:
                return kind, arg
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if len(positional) > position:
            return kind, positional[position]
        return None
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in ("submit", "map") and call.args \
            and not call.args[0].keyword:
        receiver = get_full_name_for_node(func.value)
        if receiver in executors:
            return "submit", call.args[0]
        if receiver in process_executors:
            return "process", call.args[0]
    if isinstance(func, cst.Attribute) and func.attr.value == BACKGROUND_TASK_METHOD and call.args \
            and not call.args[0].keyword:
        return "background", call.args[0]
    return None


def _run_by(target: cst.BaseExpression, resolver: Resolver, imports: ImportMap,
           scope: str | None = None) -> tuple[FunctionRef, ...]:
    """The project functions a started thread or process runs, from inside function `scope`:
    the one its target names (in code, or by dotted path: rq takes `"app.jobs.send"`), the
    one a `functools.partial` target wraps, or those a `lambda` target calls
    (`Thread(target=lambda: work(user_id))`)."""
    if isinstance(target, cst.SimpleString):
        path = target.evaluated_value
        ref = resolver.qualified_function(path) if isinstance(path, str) else None
        return (ref,) if ref else ()
    if isinstance(target, cst.Lambda):
        calls = (node for node in iter_nodes(target.body, descend=lambda node: not isinstance(node, cst.Lambda),
                                             skip=WHITESPACE) if isinstance(node, cst.Call))
        return tuple(dict.fromkeys(ref for call in calls if (ref := resolver.function(call.func, scope))))
    ref = resolver.function(partial_function(target, imports), scope)
    return (ref,) if ref else ()


def partial_function(target: cst.BaseExpression, imports: ImportMap) -> cst.BaseExpression:
    """The function a `functools.partial(f, ...)` target wraps; any other target itself."""
    if isinstance(target, cst.Call) and imports.resolve(target.func) == "functools.partial" and target.args:
        return target.args[0].value
    return target


def executor_names(module: cst.Module, imports: ImportMap, classes: frozenset[str] = EXECUTOR_CLASSES) -> set[str]:
    """Names bound anywhere in the module to a new executor of the given classes
    (`pool = ThreadPoolExecutor(...)`, `with ThreadPoolExecutor() as pool`)."""
    found: set[str] = set()

    class Visitor(ReadOnlyVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            if isinstance(node.value, cst.Call) and imports.resolve(node.value.func) in classes:
                for target in node.targets:
                    name = get_full_name_for_node(target.target)
                    if name:
                        found.add(name)

        def visit_WithItem(self, node: cst.WithItem) -> None:
            if (isinstance(node.item, cst.Call) and imports.resolve(node.item.func) in classes
                    and node.asname is not None):
                name = get_full_name_for_node(node.asname.name)
                if name:
                    found.add(name)

    Visitor().walk(module)
    return found


def executors_in(project: Project, path: str, module: cst.Module) -> tuple[set[str], set[str]]:
    """(thread-pool names, process-pool names) usable in a module: bound there, or
    imported from the project module that binds them."""
    imports = import_map(project, path) or ImportMap()
    if "Executor" in (project.text(path) or ""):  # every executor class is named so
        threads = executor_names(module, imports)
        processes = executor_names(module, imports, PROCESS_EXECUTOR_CLASSES)
    else:
        threads, processes = set(), set()
    shared_threads, shared_processes = _project_executors(project)
    for local, qualified in imports.names.items():
        if qualified in shared_threads:
            threads.add(local)
        elif qualified in shared_processes:
            processes.add(local)
    return threads, processes


def _project_executors(project: Project) -> tuple[set[str], set[str]]:
    def compute(proj: Project) -> tuple[set[str], set[str]]:
        threads: set[str] = set()
        processes: set[str] = set()
        for path, module in app_modules(proj, ("Executor",)):
            name = proj.module_name(path)
            if not name:
                continue
            imports = import_map(proj, path) or ImportMap()
            threads |= {f"{name}.{n}" for n in executor_names(module, imports) if "." not in n}
            processes |= {f"{name}.{n}" for n in executor_names(module, imports, PROCESS_EXECUTOR_CLASSES)
                          if "." not in n}
        return threads, processes
    return project.fact("context.executors", compute)


# -- building the map --------------------------------------------------------------------

def _decorator_roles(func: cst.FunctionDef, imports: ImportMap) -> list[tuple[str, str]]:
    roles = []
    for decorator in func.decorators:
        qualified = imports.resolve(decorator_callee(decorator))
        if qualified in CLICK_COMMANDS:
            roles.append(("cli", qualified))
            continue
        if qualified in TASK_DECORATORS:
            roles.append(("task", qualified))
            continue
        if qualified in CALLBACK_REGISTRARS:  # @atexit.register
            roles.append(("callback", qualified))
            continue
        registration = decorator_registration(decorator)
        if registration is not None:
            if registration.is_route:
                roles.append(("view", registration.owner))
            elif registration.method in REQUEST_HOOKS:
                roles.append((f"hook:{registration.method}", registration.owner))
            continue
        method = decorator_method(decorator)
        if method and method[1] in ("command", "group"):
            roles.append(("cli", method[0]))
        elif method and method[1] == "task":
            roles.append(("task", method[0]))
        elif method and method[1] in JOB_DECORATOR_METHODS:
            roles.append(("job", method[0]))
    return roles


def _call_roles(module: cst.Module) -> list[tuple[str, str, cst.BaseExpression]]:
    """(role, owner, function expression) for registrations in call form:
    `app.before_request(fn)`, `bp.add_url_rule("/", view_func=fn)`,
    `app.register_error_handler(404, fn)`, `app.errorhandler(404)(fn)`."""
    found = []
    for registration in call_registrations(module):
        if not registration.owner or registration.function is None:
            continue
        if registration.is_route:
            found.append(("view", registration.owner, registration.function))
        elif registration.method in REQUEST_HOOKS:
            found.append((f"hook:{registration.method}", registration.owner, registration.function))
    return found


@dataclass(frozen=True)
class Start:
    """A function a call runs in another thread or process, or queues as a job: its role
    there ("thread-target" or "job") and how it is started (`FunctionFacts.started_by`)."""

    function: FunctionRef
    role: str
    kind: str


@dataclass(frozen=True)
class _FunctionReading:
    """What one function of a module says (one per function, in `iter_functions`' order):
    its decorators' roles, whether it is a view class's method, whether it yields, and per
    call, the project function called (or None) and those it starts elsewhere (`Start`)."""

    roles: tuple[tuple[str, str], ...]
    view_method: bool
    is_generator: bool
    calls: tuple[tuple[FunctionRef | None, tuple[Start, ...]], ...]


@dataclass(frozen=True)
class _ModuleReading:
    """What one module's code says about the project's functions: its functions; the
    functions it registers in call form (role, owner); the thread targets it starts at
    import time; and the modules whose functions its names were looked up in. Applied
    to the map in module order; kept for the next build (`_build`)."""

    functions: tuple[_FunctionReading, ...]
    registered: tuple[tuple[FunctionRef, str, str], ...]
    started_on_import: tuple[Start, ...]
    consulted: frozenset[str]


@dataclass(frozen=True)
class _ModuleReadings:
    """The readings of one build, each with the tree it was read from, and what the
    readings depended on outside their modules: the project's files (`layout`), the
    functions each module defines (a reading depends on its `consulted` modules'), the
    executors modules share."""

    layout: int
    module_functions: dict[str, frozenset[str]]
    executors: tuple[frozenset[str], frozenset[str]]
    by_path: dict[str, tuple[cst.Module, _ModuleReading]]


def _build(project: Project, previous: ContextMap | None = None) -> ContextMap:
    # the app scope's modules (nothing outside it can call or be called from the app), less
    # those that define and call nothing: they have no function, call or registration
    parsed = dict(app_code_modules(project))
    listed = {path: iter_functions(module) for path, module in parsed.items()}
    module_functions = {path: frozenset(q for q, _, _ in functions) for path, functions in listed.items()}
    executors = tuple(frozenset(names) for names in _project_executors(project))
    reusable = {}
    old = previous.modules if previous is not None else None
    if old is not None and (old.layout, old.executors) == (project.layout, executors):
        # a module a codemod left alone says the same, unless a module it looked names up in
        # now defines other functions (teardown adds a function to the app's module)
        reusable = {path: reading for path, (tree, reading) in old.by_path.items()
                    if parsed.get(path) is tree and all(module_functions.get(consulted) == old.module_functions.get(
                        consulted) for consulted in reading.consulted)}
    # Read here, not shared with workers: what reading computes per statement (calls,
    # registrations) is then inherited by the workers of the codemod's next round, which
    # would otherwise compute it again (shared, the reading took 2-3% more CPU, no less time).
    readings = {path: reusable.get(path) or _read_module(project, listed, module_functions, path)
                for path in parsed}

    functions: dict[FunctionRef, FunctionFacts] = {}
    for path in parsed:
        _apply(readings[path], path, listed[path], project.position_lookup(path), functions)
    blueprints = blueprint_variables(project)
    request = reach(functions, lambda f: _request_reason(f))
    background = reach(functions, lambda f: _background_reason(f))
    modules = _ModuleReadings(project.layout, module_functions, executors,
                              {path: (module, readings[path]) for path, module in parsed.items()})
    return ContextMap(functions, request, background, blueprints, modules)


def _read_module(project: Project, listed: dict[str, tuple[tuple[str, cst.FunctionDef, str | None], ...]],
                 module_functions: dict[str, frozenset[str]], path: str) -> _ModuleReading:
    module = project.parse(path)
    imports = import_map(project, path) or ImportMap()
    resolver = Resolver(project, path, module_functions)
    executors, process_executors = executors_in(project, path, module)
    view_methods = view_class_methods(module, imports)
    thread_runs = _thread_run_methods(module, imports)
    functions = []

    def foreign(role: tuple[str, str]) -> bool:
        """A view or hook on another framework's object: no Flask request runs it."""
        kind, owner = role
        return (kind == "view" or kind.startswith("hook:")) and of_another_framework(owner, module, imports, project)

    def started(call: cst.Call, scope: str | None = None) -> tuple[Start, ...]:
        """The project functions `call` runs in a thread or process, queues as a job, or
        registers as an exit or signal handler."""
        start = start_of(call, imports, executors, process_executors)
        if start is None:
            return ()
        role, kind, function = start
        return tuple(Start(ref, role, kind) for ref in _run_by(function, resolver, imports, scope))

    bodies = body_calls(module)
    for qualname, node, _ in listed[path]:
        body = bodies[node]
        calls = []
        for call in body.calls:
            callee, threads = resolver.function(call.func, qualname), started(call, qualname)
            if callee or threads:
                calls.append((callee, threads))
        roles = tuple(role for role in _decorator_roles(node, imports) if not foreign(role))
        if qualname in thread_runs:
            roles += (("run-method", qualname.rpartition(".")[0]),)
        functions.append(_FunctionReading(roles, qualname in view_methods, body.is_generator, tuple(calls)))
    registered = tuple((ref, role, owner) for role, owner, expr in _call_roles(module)
                       if not foreign((role, owner)) and (ref := resolver.function(expr)))
    # module-level thread starts and jobs (import time)
    started_on_import = [found for call in _module_level_calls(module) for found in started(call)]
    return _ModuleReading(tuple(functions), registered, tuple(started_on_import), frozenset(resolver.consulted))


def started_lambdas(project: Project, path: str, module: cst.Module) -> list[tuple[cst.Lambda, str, str]]:
    """(lambda, how it is started, the qualname of the function starting it) for each
    lambda a function of the module runs in another thread or process, queues as a job
    or registers as an exit or signal handler (`Thread(target=lambda: notify(app.name))`):
    code the map holds no facts of, since it follows a lambda target only into the
    functions it calls (`_run_by`). The kinds are `call_target`'s, `CALLBACK_REGISTRARS`'
    and "job"."""
    imports = import_map(project, path) or ImportMap()
    executors, process_executors = executors_in(project, path, module)
    bodies = body_calls(module)
    found = []
    for qualname, function, _ in iter_functions(module):
        for call in bodies[function].calls if function in bodies else ():
            start = start_of(call, imports, executors, process_executors)
            if start is not None and isinstance(start[2], cst.Lambda):
                found.append((start[2], start[1], qualname))
    return found


def start_of(call: cst.Call, imports: ImportMap, executors: set[str] = frozenset(),
             process_executors: set[str] = frozenset()) -> tuple[str, str, cst.BaseExpression] | None:
    """(role, kind, the function) for a call that runs a function elsewhere: in a thread
    or process ("thread-target", with `call_target`'s kinds), as an exit or signal handler
    ("callback", "exit" or "signal"), or as a queued or scheduled job ("job", "job")."""
    target = call_target(call, imports, executors, process_executors)
    if target:
        return "thread-target", target[0], target[1].value
    callback = _callback_function(call, imports)
    if callback is not None:
        return "callback", *callback
    job = _job_function(call)
    return None if job is None else ("job", "job", job)


def _thread_run_methods(module: cst.Module, imports: ImportMap) -> frozenset[str]:
    """Qualnames (`Mailer.run`) of the `run` methods of module-level subclasses of Thread
    or Process: what `Mailer().start()` runs in the new thread or process."""
    return frozenset(f"{cls.name.value}.run"
                     for cls in module_subclasses(module, imports, THREAD_CLASSES | PROCESS_CLASSES))


def _callback_function(call: cst.Call, imports: ImportMap) -> tuple[str, cst.BaseExpression] | None:
    """(kind, the function) for a call registering an exit or signal handler
    (`atexit.register(flush)`, `signal.signal(signal.SIGTERM, stop)`)."""
    name = last_name(call.func)
    if name not in _CALLBACK_NAMES and imports.names.get(name) not in CALLBACK_REGISTRARS:
        return None  # (asked of every call the app makes: no name resolved for most)
    registrar = CALLBACK_REGISTRARS.get(imports.resolve(call.func) or "")
    if registrar is None:
        return None
    kind, position = registrar
    positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
    return (kind, positional[position].value) if len(positional) > position else None


def _job_function(call: cst.Call) -> cst.BaseExpression | None:
    """The function a call queues or schedules as a job (`queue.enqueue(send_mail, to)`,
    `scheduler.add_job(func=cleanup)`), if it is such a call."""
    if not isinstance(call.func, cst.Attribute) or call.func.attr.value not in JOB_METHODS:
        return None
    position, keyword = JOB_METHODS[call.func.attr.value]
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
    return positional[position].value if len(positional) > position else None


def _apply(reading: _ModuleReading, path: str, listed: tuple[tuple[str, cst.FunctionDef, str | None], ...],
           positions: Callable, functions: dict[FunctionRef, FunctionFacts]) -> None:
    """Add what a module's code says to `functions`, in the order it says it: a function
    is first met as a callee or where it is defined, whichever comes first."""
    for found, (qualname, node, enclosing) in zip(reading.functions, listed):
        ref = FunctionRef(path, qualname)
        facts = functions.setdefault(ref, FunctionFacts(ref))  # maybe already seen as a callee
        facts.locate, facts.nested_in = functools.partial(_line_of, positions, node), enclosing
        for role, owner in found.roles:
            facts.roles.add(role)
            facts.owners[role] = owner
        if found.view_method:
            facts.roles.add("view")
        facts.is_generator = found.is_generator
        for callee, started in found.calls:
            if callee:
                facts.calls.add(callee)
            for start in started:
                _add_start(functions, start, ref)
    for ref, role, owner in reading.registered:
        facts = functions.setdefault(ref, FunctionFacts(ref))
        facts.roles.add(role)
        facts.owners.setdefault(role, owner)
    for start in reading.started_on_import:
        _add_start(functions, start, None)


def _add_start(functions: dict[FunctionRef, FunctionFacts], start: Start, starter: FunctionRef | None) -> None:
    facts = functions.setdefault(start.function, FunctionFacts(start.function))
    facts.roles.add(start.role)
    facts.started_by.add((starter, start.kind))


def _line_of(positions, node: cst.CSTNode) -> int:
    return positions(node)[0]


@per_tree
def _module_level_calls(module: cst.Module) -> tuple[cst.Call, ...]:
    return tuple(call for statement in module.body for call in statement_survey(statement).outside_functions)


def _request_reason(facts: FunctionFacts) -> str | None:
    if "view" in facts.roles:
        return "a view"
    hooks = sorted(r.split(":", 1)[1] for r in facts.roles if r.startswith("hook:"))
    return f"a {hooks[0]} hook" if hooks else None


def _background_reason(facts: FunctionFacts) -> str | None:
    for role, text in (("thread-target", "a thread target"),
                       ("run-method", "the run method of a thread or process class"),
                       ("job", "a queued or scheduled job"),
                       ("task", "a task"), ("cli", "a CLI command")):
        if role in facts.roles:
            return text
    return None


def reach(functions: dict[FunctionRef, FunctionFacts],
          root_reason: Callable[[FunctionFacts], str | None]) -> dict[FunctionRef, str]:
    """Each function a root (one `root_reason` gives a reason for) is or calls,
    transitively -> why it is reached."""
    reached: dict[FunctionRef, str] = {}
    stack = []
    for ref, facts in functions.items():
        reason = root_reason(facts)
        if reason:
            reached[ref] = reason
            stack.append(ref)
    while stack:
        ref = stack.pop()
        for callee in sorted(functions[ref].calls, key=lambda r: (r.path, r.qualname)):
            if callee not in reached and callee in functions:
                reached[callee] = f"called from {ref.qualname}() ({reached[ref]})"
                stack.append(callee)
    return reached


def is_before_request_hook(facts: FunctionFacts, blueprints: set[str]) -> str | None:
    """For a before-request hook: "app" when it runs before every request of the app, or
    "blueprint:<name>" when only before the requests of one blueprint; else None."""
    for role in facts.roles:
        if role.startswith("hook:") and role[5:] in BEFORE_REQUEST_HOOKS:
            owner = facts.owners.get(role, "")
            if role[5:] == "before_request" and owner in blueprints:
                return f"blueprint:{owner}"
            return "app"
    return None


def view_blueprint(facts: FunctionFacts, blueprints: set[str]) -> str | None:
    owner = facts.owners.get("view")
    return owner if owner in blueprints else None
