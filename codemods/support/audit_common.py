"""Small Flask facts the audit rules share: which local names are the app, what runs at
import time versus under `if __name__ == "__main__"`, literal values, config classes."""

from __future__ import annotations

import re
from typing import Iterable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.project import Project
from flask_refactor.walk import ReadOnlyVisitor

from .audit_views import is_test_path, nodes_of
from .flask import app_scope, find_apps, import_map

DEV_ONLY = re.compile(r"(?i)(dev|local|test|debug|example|sample)")
CONFIG_MODULE = re.compile(r"(?i)(^|/)(config|settings|configuration|conf)(/|\.py$|_[a-z0-9_]*\.py$)")
# Files that start a process in production, and how they start Python files.
DEPLOY_FILES = ("Procfile", "Dockerfile", "docker-compose.yml", "docker-compose.yaml", "compose.yml",
                "compose.yaml", "app.yaml", "fly.toml", "render.yaml", "supervisord.conf")


def app_names(project: Project, path: str, module: cst.Module) -> set[str]:
    """Local names bound to a Flask app in this module: created here, imported from the
    module that creates it, or assigned from a call to an app factory."""
    imports = import_map(project, path)
    names: set[str] = set()
    factories: set[str] = set()
    for site in find_apps(project):
        if site.path == path:
            names.add(site.var)
            if site.factory:
                factories.add(site.factory)
        if site.module_name and imports is not None:
            target = f"{site.module_name}.{site.factory or site.var}"
            for local in imports.local_names_for(target):
                (factories if site.factory else names).add(local)
    for node in walk_module(module):
        if (isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name)
                and isinstance(node.value, cst.Call) and get_full_name_for_node(node.value.func) in factories):
            names.add(node.targets[0].target.value)
    return names


def is_true(node: cst.BaseExpression | None) -> bool:
    return (isinstance(node, cst.Name) and node.value == "True") or (isinstance(node, cst.Integer) and node.value == "1")


def string_value(node: cst.BaseExpression | None) -> str | bytes | None:
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        value = node.evaluated_value
        return value if isinstance(value, (str, bytes)) else None
    return None


def is_main_guard(stmt: cst.CSTNode) -> bool:
    """`if __name__ == "__main__":` (either order, either quotes)."""
    if not isinstance(stmt, cst.If) or not isinstance(stmt.test, cst.Comparison):
        return False
    test = stmt.test
    if len(test.comparisons) != 1 or not isinstance(test.comparisons[0].operator, cst.Equal):
        return False
    sides = [test.left, test.comparisons[0].comparator]
    names = [s for s in sides if isinstance(s, cst.Name) and s.value == "__name__"]
    strings = [s for s in sides if string_value(s) == "__main__"]
    return bool(names and strings)


class Where(ReadOnlyVisitor):
    """Visitor base that knows whether it is at import time, inside the main guard, in a
    function, or in a class body (and which)."""

    def __init__(self) -> None:
        self.functions: list[cst.FunctionDef] = []
        self.classes: list[cst.ClassDef] = []
        self.main_guard = 0

    @property
    def in_dev_function(self) -> bool:
        """Inside a function whose name says development or tests (`run_dev_server`)."""
        return any(dev_only(f.name.value) for f in self.functions)

    @property
    def context(self) -> str:
        if self.functions:
            return "function"
        if self.main_guard:
            return "main"
        return "import"

    def visit_If(self, node: cst.If) -> None:
        if is_main_guard(node):
            self.main_guard += 1

    def leave_If(self, original_node: cst.If) -> None:
        if is_main_guard(original_node):
            self.main_guard -= 1

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.append(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.functions.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.classes.pop()


def is_config_module(path: str) -> bool:
    return bool(CONFIG_MODULE.search(path))


def dev_only(name: str) -> bool:
    """A config class or module that says it is for development or tests only."""
    return bool(DEV_ONLY.search(name))


def deploy_files(project: Project) -> list[str]:
    return [p for p in project.other_paths() if p.rsplit("/", 1)[-1] in DEPLOY_FILES
            or p.endswith((".service", ".ini")) and "supervisor" in p]


def launched_directly(project: Project, path: str) -> str | None:
    """The deploy file (path:line) that runs `python <path>` in production, if any."""
    name = path.rsplit("/", 1)[-1]
    pattern = re.compile(r"python[0-9.]*\s+(?:-u\s+)?(?:\S*/)?" + re.escape(name) + r"\b")
    for deploy in deploy_files(project):
        for number, line in enumerate((project.text(deploy) or "").splitlines(), 1):
            if pattern.search(line):
                return f"{deploy}:{number}"
    return None


def production_modules(project: Project, needles: tuple[str, ...]) -> Iterable[tuple[str, cst.Module]]:
    """The app's modules (see `app_modules`) and the configuration modules (loaded by
    name, `from_object("settings.Production")`, so not always imported) that contain a
    needle, tests left out."""
    scope = set(app_scope(project))
    return project.parsed([path for path in project.candidates(needles)
                           if (path in scope or is_config_module(path)) and not is_test_path(path)])


def config_subscript_key(node: cst.BaseExpression) -> str | None:
    """`KEY` for `<x>.config["KEY"]`."""
    if (isinstance(node, cst.Subscript) and isinstance(node.value, cst.Attribute)
            and node.value.attr.value == "config" and len(node.slice) == 1
            and isinstance(node.slice[0].slice, cst.Index)):
        value = string_value(node.slice[0].slice.value)
        return value if isinstance(value, str) else None
    return None


def config_call_keywords(call: cst.Call) -> list[cst.Arg]:
    """Keyword arguments of `<x>.config.update(...)` / `.from_mapping(...)`."""
    func = call.func
    if (isinstance(func, cst.Attribute) and func.attr.value in ("update", "from_mapping", "setdefault")
            and isinstance(func.value, cst.Attribute) and func.value.attr.value == "config"):
        return [arg for arg in call.args if arg.keyword is not None]
    return []


def walk_module(module: cst.Module) -> tuple[cst.CSTNode, ...]:
    """Every node of a module, in source order, parents before their children."""
    return nodes_of(module)
