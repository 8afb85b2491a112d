"""Where a function whose `app` becomes `current_app` would run without an app context.

The migration rewrites `app.x` to `current_app.x` inside every function of the modules
that use the app. That is right for what runs in a request (views, hooks and what they
call) or in a Flask command, and for the `__main__` block, which gets a context; it
breaks a function that runs in none: a console-script entry point (`main` of
`sqlite_web = sqlite_web.sqlite_web:main`), or one called by a function of another
module that no view, hook, command, task or thread reaches (a server script's
`main()`). Before the migration those worked, reading the module's app; after it they
would raise "Working outside of application context". So does any function that
starts the app's server (`app.run(...)`) unless the module's `__main__` block reaches
it: servers are started from scripts, commands and plugins' entry points, never in a
request (beets' web plugin starts its app from a method's nested function, which beets
calls). Such a function is a problem: nothing is migrated. Callers in tests are left to
the user's suite (`--verify`), which shows them failing.

The same goes for a function run in another thread or process, by a job queue or as a
Celery task, or registered as an exit or signal handler, and for a `lambda` started or
registered so whose own code reads the app (`run_in_background`): the module's app
reached it there, current_app does not. Only a thread started in a request can get the
request's app, and that is what thread-context does: such a thread is no problem when
thread-context runs after app-factory.

A generator is run when it is iterated: Flask iterates the one a view returns in a
`Response` (or a view that yields) after the view has returned and the app context is
popped, where the module's app worked and current_app does not (`streamed_generators`),
unless `stream_with_context` keeps the request's context for it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.project import Project
from flask_refactor.walk import WHITESPACE, iter_nodes, parent_map

from ._app_factory_appmodule import is_main_block
from ._app_factory_syntax import binds_locally, calls_to, uses_name
from .support.context import (
    NO_CONTEXT_ROLES, START_NEEDLES, ContextMap, FunctionFacts, FunctionRef, body_calls, context_map, iter_functions,
    reach, started_lambdas,
)
from .support.flask import STREAM_WITH_CONTEXT, app_scope, decorator_callee, import_map, stream_wrapper
from .support.imports import last_name

# Files that name console-script entry points (`name = module:function`).
ENTRY_POINT_DECLARATIONS = ("entry_points.txt", "setup.cfg", "pyproject.toml", "setup.py")
# what starts a function elsewhere, by the kind of its start (`FunctionFacts.started_by`)
_START_NOUNS = {"thread": "thread", "timer": "timer", "submit": "thread pool", "background": "background task",
                "process": "process", "job": "job queue"}
# why an exit or signal handler has no app, by the kind of its registration
_CALLBACK_REASONS = {"exit": "run by the interpreter at exit (atexit)", "signal": "a signal handler"}
THREAD_CONTEXT = "thread-context"  # the codemod that runs threads started in requests in their app


def run_in_background(project: Project, apps: dict[str, tuple[cst.Module, str, set[str]]]) -> list[
        tuple[str, cst.FunctionDef | cst.Lambda, str, str, bool]]:
    """(path, function or lambda, what to call it in a finding, why, whether only threads
    started in requests run it) for each function, at any depth, of the modules in `apps`
    (path -> (its tree, its name for the app, its module-level functions that use the
    app)) that uses the app and runs in another thread or process or as a job, or is
    called from such a function; and for each lambda such a function of theirs starts so
    (`Thread(target=lambda: ...)`) whose own code uses the app. thread-context, run after
    app-factory, gives the threads started in requests the request's app.

    The call graph is asked only when a function or class body uses the app and a file
    of the app's scope may start something."""
    if not any(names or any(isinstance(stmt, cst.ClassDef) and uses_name(stmt.body, app) for stmt in module.body)
               for module, app, names in apps.values()):
        return []
    scope = set(app_scope(project))
    if not any(path in scope for path in project.candidates(START_NEEDLES)):
        return []
    cmap = context_map(project)
    without_app = reach(cmap.functions, lambda facts: _started_without_app(facts, cmap, True))
    request_threads = reach(cmap.functions, lambda facts: _started_without_app(facts, cmap, False))
    found = []
    for path, (module, app, _) in apps.items():
        using = {qualname: function for qualname, function, _ in iter_functions(module)
                 if uses_name(function.body, app) and not binds_locally(function, app)}
        for qualname, function in using.items():
            ref = FunctionRef(path, qualname)
            why = without_app.get(ref) or request_threads.get(ref)
            if why:
                found.append((path, function, f"{function.name.value}()", why, ref not in without_app))
        if "lambda" in (project.text(path) or ""):
            for lambda_, kind, starter in started_lambdas(project, path, module):
                if starter in using and uses_name(lambda_.body, app) and not binds_locally(lambda_, app):
                    why, in_request = _lambda_started(kind, FunctionRef(path, starter), cmap)
                    found.append((path, lambda_, f"the lambda in {starter}()", why, in_request))
    return found


def _lambda_started(kind: str, starter: FunctionRef, cmap: ContextMap) -> tuple[str, bool]:
    """(why a lambda `starter` starts so runs without the app after the migration,
    whether only a thread started in a request runs it: thread-context gives it the app)."""
    if kind == "job":
        return "queued or scheduled as a job", False
    if kind in _CALLBACK_REASONS:
        return _CALLBACK_REASONS[kind], False
    if kind != "process" and cmap.in_request(starter):
        return f"run by a {_START_NOUNS[kind]} started during a request", True
    return f"run by a {_START_NOUNS[kind]}", False


def _started_without_app(facts: FunctionFacts, cmap: ContextMap, threads_wrapped: bool) -> str | None:
    """Why `facts`' function has no app after the migration where it is run: in another
    thread or process, as a job or as a task (None if it is not run so, or only by threads
    started in requests and `threads_wrapped`: thread-context will give them the app)."""
    if "run-method" in facts.roles:
        return f"the run method of {facts.owners.get('run-method', 'a thread class')}, run in its own thread or process"
    if "job" in facts.roles:
        return "a queued or scheduled job"
    if "task" in facts.roles:  # (Flask's Celery set-up, which gives tasks the app, is made in a factory)
        return "a task, which its worker runs"
    if "callback" in facts.roles:
        exits = facts.owners.get("callback") == "atexit.register" or any(kind == "exit" for _, kind in facts.started_by)
        return _CALLBACK_REASONS["exit" if exits else "signal"]
    for starter, kind in sorted(facts.started_by, key=lambda start: (str(start[0]), start[1])):
        if starter is None:
            return f"run by a {_START_NOUNS[kind]} started at import time"
        if kind == "process" or not cmap.in_request(starter):
            return f"run by a {_START_NOUNS[kind]} started in {starter.qualname}()"
        if not threads_wrapped:
            return f"run by a {_START_NOUNS[kind]} started in {starter.qualname}() during a request"
    return None


def outside_context(project: Project, using: dict[str, tuple[cst.Module, set[str]]]) -> list[
        tuple[str, cst.FunctionDef, str]]:
    """(path, function, why it runs outside any app context) for each of the functions
    named in `using` (path -> (its module, the names of its functions that use the app)).

    The call graph of the app (`context_map`, which parses every module of its scope)
    is asked only when an entry point declared names a function of such a module, or another
    module imports one or the module (from the index): else nothing outside the module
    calls them, and its `__main__` block gets a context."""
    if not any(names for _, names in using.values()):
        return []
    entry_points = _entry_points(project)
    if not _may_be_called_from_outside(project, using, entry_points):
        return []
    cmap = context_map(project)
    callers = _callers(cmap)
    found = []
    for path, (module, names) in using.items():
        module_name = project.module_name(path) or ""
        for stmt in module.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value in names:
                why = _why_outside(FunctionRef(path, stmt.name.value), module_name, cmap, callers, entry_points, set())
                if why:
                    found.append((path, stmt, why))
    return found


def servers_outside_context(module: cst.Module, app: str) -> list[cst.FunctionDef]:
    """The functions of `module`, at any depth (methods, nested functions), that start the
    server of the module's app (`app.run(...)` on the name `app` they do not bind
    themselves) and are not reached from the module's `__main__` block by calls of its
    top-level functions: they run outside any app context."""
    reached = _reached_from_main(module)
    found = []
    for node in iter_nodes(module, skip=WHITESPACE):
        if isinstance(node, cst.FunctionDef) and _starts_server(node, app) \
                and not (node in module.body and node.name.value in reached):
            found.append(node)
    return found


def _starts_server(function: cst.FunctionDef, app: str) -> bool:
    """Whether `function`'s own body calls `app.run(...)` on the module's app: not on an
    `app` it binds, and not in a command (`@app.cli.command()`, `@click.command()`), which
    Flask runs in an app context."""
    if any((get_full_name_for_node(decorator_callee(d)) or "").endswith("command") for d in function.decorators):
        return False
    if binds_locally(function, app):  # as the migration asks: its `app` is not the module's
        return False
    own = iter_nodes(function.body, descend=lambda node: not isinstance(node, (cst.FunctionDef, cst.ClassDef,
                                                                               cst.Lambda)),
                     skip=WHITESPACE)
    return any(isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "run"
               and isinstance(node.func.value, cst.Name) and node.func.value.value == app for node in own)


def _reached_from_main(module: cst.Module) -> set[str]:
    """The top-level functions the module's `__main__` block calls, and those they call,
    by name."""
    functions = {stmt.name.value: stmt for stmt in module.body if isinstance(stmt, cst.FunctionDef)}
    frontier = [stmt for stmt in module.body if is_main_block(stmt)]
    reached: set[str] = set()
    while frontier:
        for call in calls_to(frontier.pop(), set(functions) - reached):
            if call.func.value not in reached:
                reached.add(call.func.value)
                frontier.append(functions[call.func.value])
    return reached


def _may_be_called_from_outside(project: Project, using: dict[str, tuple[cst.Module, set[str]]],
                                entry_points: dict[tuple[str, str], str]) -> bool:
    modules = {project.module_name(path): path for path, (_, names) in using.items() if names}
    if any(module in modules for module, _ in entry_points):
        return True
    targets = {name: path for name, path in modules.items() if name}
    targets.update({f"{name}.{function}": path for name, path in modules.items() if name
                    for function in using[path][1]})
    for path in app_scope(project):
        imports = import_map(project, path)
        if imports is not None and any(targets.get(target, path) != path for target in imports.names.values()):
            return True
    return False


def _why_outside(ref: FunctionRef, module_name: str, cmap: ContextMap, callers: dict[FunctionRef, set[FunctionRef]],
                 entry_points: dict[tuple[str, str], str], seen: set[FunctionRef]) -> str | None:
    seen.add(ref)
    declared_in = entry_points.get((module_name, ref.qualname))
    if declared_in is not None:
        return f"{ref.qualname}() is a console-script entry point in {declared_in}"
    for caller in sorted(callers.get(ref, ()), key=str):
        facts = cmap.facts(caller)
        has_context = facts is not None and bool(facts.roles - NO_CONTEXT_ROLES)
        if cmap.in_request(caller) or has_context or is_test_file(caller.path):
            continue
        if caller.path != ref.path:
            return f"{caller} calls it"
        if caller not in seen:
            why = _why_outside(caller, module_name, cmap, callers, entry_points, seen)
            if why:
                return f"{caller.qualname}() calls it, and {why}"
    return None


def _callers(cmap: ContextMap) -> dict[FunctionRef, set[FunctionRef]]:
    callers: dict[FunctionRef, set[FunctionRef]] = {}
    for ref, facts in cmap.functions.items():
        for callee in facts.calls:
            callers.setdefault(callee, set()).add(ref)
    return callers


# `module:function` as an entry point names it (`name = pkg.app:main`, `"pkg.app:main"`)
_ENTRY_POINT = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*)\s*:\s*([A-Za-z_]\w*)\b")


def _entry_points(project: Project) -> dict[tuple[str, str], str]:
    """(module, function) -> the first file that may declare it a console script."""
    paths = project.other_paths(ENTRY_POINT_DECLARATIONS[:-1])
    paths += [path for path in project.paths() if PurePosixPath(path).name == "setup.py"]
    found: dict[tuple[str, str], str] = {}
    for path in paths:
        for match in _ENTRY_POINT.finditer(project.text(path) or ""):
            found.setdefault((match.group(1), match.group(2)), path)
    return found


def is_test_file(path: str) -> bool:
    pure = PurePosixPath(path)
    return (pure.name.startswith("test_") or pure.name.endswith("_test.py") or pure.name == "conftest.py"
            or any(part in ("tests", "test") for part in pure.parts[:-1]))


# Calls that iterate a generator where they are made, or (Flask's `stream_template`) in
# the request's context: a generator passed to one of these runs inside its request.
_CONSUMING_CALLS = frozenset({"list", "tuple", "set", "frozenset", "dict", "sorted", "sum", "min", "max", "any",
                              "all", "next", "join", "render_template", "render_template_string",
                              "stream_template", "stream_template_string"})


def streamed_generators(project: Project, apps: dict[str, tuple[cst.Module, str, set[str]]]) -> list[
        tuple[str, cst.FunctionDef, str]]:
    """(path, generator, where it may be iterated too late) for each generator function
    of the modules in `apps` (as for `run_in_background`) that uses the app, runs in a
    request, and may be iterated after the request has ended: Flask streams a generator
    a view returns (`Response(generate())`, or a view that yields) once the view has
    returned and the app context is popped, so its `app` as current_app would fail there.
    Safe: a generator each caller iterates in place (`for`, `list(...)`, `"".join(...)`),
    or calls inside `stream_with_context(...)`, or one decorated with it. The others are
    reported: the user decides where each runs."""
    candidates = []
    for path, (module, app, _) in apps.items():
        if "yield" not in (project.text(path) or ""):
            continue
        bodies = body_calls(module)
        imports = import_map(project, path)
        for qualname, function, _ in iter_functions(module):
            body = bodies.get(function)
            if (body is not None and body.is_generator and uses_name(function.body, app)
                    and not binds_locally(function, app) and not _streams_with_context(function, imports)):
                candidates.append((path, qualname, function))
    if not candidates:
        return []
    cmap = context_map(project)
    found = []
    for path, qualname, function in candidates:
        ref = FunctionRef(path, qualname)
        facts = cmap.facts(ref)
        if not cmap.in_request(ref) or facts is None:
            continue
        why = _late_iteration(project, function, facts, cmap)
        if why:
            found.append((path, function, why))
    return found


def _streams_with_context(function: cst.FunctionDef, imports) -> bool:
    return any(imports.resolve(decorator_callee(decorator)) in STREAM_WITH_CONTEXT for decorator in function.decorators)


def _late_iteration(project: Project, generator: cst.FunctionDef, facts: FunctionFacts, cmap: ContextMap,
                    seen: set[FunctionRef] | None = None) -> str | None:
    """Where the generator may be iterated after its request, or None if each call of it
    (in the functions the call graph has calling it) iterates it in place: in a caller
    that is a generator itself, that is when the caller is iterated, asked the same way."""
    seen = (seen or set()) | {facts.ref}
    if "view" in facts.roles or any(role.startswith("hook:") for role in facts.roles):
        return f"that Flask streams ({generator.name.value}() is a view)"
    name = generator.name.value
    callers = sorted((caller.ref for caller in cmap.functions.values() if facts.ref in caller.calls),
                     key=lambda ref: (ref.path, ref.qualname))
    for path in dict.fromkeys(ref.path for ref in callers):
        module = project.parse(path)
        imports, parents, bodies = import_map(project, path), parent_map(module, WHITESPACE), body_calls(module)
        calling = {ref.qualname for ref in callers if ref.path == path}
        for qualname, function, _ in iter_functions(module):
            if qualname not in calling or function not in bodies:
                continue
            lazy = bodies[function].is_generator and not _streams_with_context(function, imports)
            for call in bodies[function].calls:
                if last_name(call.func) != name:
                    continue
                if not _iterated_in_place(call, parents, imports):
                    where = f"{qualname}() in {path}" if path != facts.ref.path else f"{qualname}()"
                    return f"that leaves {where} at line {project.position_lookup(path)(call)[0]} unconsumed"
                caller = FunctionRef(path, qualname)
                if lazy and caller not in seen and (why := _late_iteration(project, function, cmap.facts(caller),
                                                                           cmap, seen)):
                    return f"iterated by the generator {qualname}(), {why}"
    return None


def _iterated_in_place(call: cst.Call, parents: dict, imports) -> bool:
    """Whether the generator `call` makes is iterated where it is made (not returned nor
    kept): the iterable of a `for`, of a `yield from` or of a comprehension that is no
    generator expression, the argument of a call that consumes it (`list`, `"".join`), or
    wrapped in `stream_with_context(...)`."""
    if stream_wrapper(call, parents, imports) is not None:
        return True
    parent = parents.get(call)
    if isinstance(parent, cst.Arg) and parent.value is call:
        outer = parents.get(parent)
        return isinstance(outer, cst.Call) and last_name(outer.func) in _CONSUMING_CALLS
    if isinstance(parent, cst.For) and parent.iter is call or isinstance(parent, cst.From) and parent.item is call:
        return True  # (`yield from` iterates it as the generator holding it is)
    if isinstance(parent, cst.CompFor) and parent.iter is call:
        while isinstance(parent, cst.CompFor):
            parent = parents.get(parent)
        return not isinstance(parent, cst.GeneratorExp)  # (a generator expression is lazy)
    return False
