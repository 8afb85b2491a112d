"""Where a function whose `app` becomes `current_app` would run without an app context.

The migration rewrites `app.x` to `current_app.x` inside every function of the modules
that use the app. That is right for what runs in a request (views, hooks and what they
call) or in a Flask command, and for the `__main__` block, which gets a context; it
breaks a function that runs in none: a console-script entry point (`main` of
`sqlite_web = sqlite_web.sqlite_web:main`), or one called by a function of another
module that no view, hook, command, task or thread reaches (a server script's
`main()`). Before the migration those worked, reading the module's app; after it they
would raise "Working outside of application context". Such a function is a problem:
nothing is migrated. Callers in tests are left to the user's suite (`--verify`), which
shows them failing.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import libcst as cst

from flask_refactor.project import Project

from .support.context import ContextMap, FunctionRef, context_map
from .support.flask import app_scope, import_map

# Files that name console-script entry points (`name = module:function`).
ENTRY_POINT_DECLARATIONS = ("entry_points.txt", "setup.cfg", "pyproject.toml", "setup.py")


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
        if cmap.in_request(caller) or (facts is not None and facts.roles) or is_test_file(caller.path):
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
