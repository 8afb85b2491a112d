"""Configuration pitfalls: debug mode and the secret key (FR101, FR102)."""

from __future__ import annotations

from typing import Iterable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.audit import Rule
from flask_refactor.codemod import Finding, Severity
from flask_refactor.project import Project

from .audit_common import (
    Where, app_names, config_call_keywords, config_subscript_key, dev_only, is_config_module, is_true,
    launched_directly, production_modules, string_value,
)
from .audit_views import nodes_of
from .flask import import_map
from .imports import ImportMap
from .versions import Pin, Version, flask_pin


# -- FR101 -----------------------------------------------------------------------------

class DebugMode(Rule):
    id = "FR101"
    name = "debug-mode"
    severity = Severity.ERROR
    summary = "Debug mode switched on in code that production runs."
    explain = '''\
Debug mode turns on Werkzeug's interactive debugger, which lets anyone who can reach an
error page run Python code on the server, and it makes Flask propagate exceptions past
your 500 handlers. Set in code, it is on wherever that code runs: `app.debug = True` or
`app.config["DEBUG"] = True` at import time applies under gunicorn too, and
`app.run(debug=True)` in the `__main__` block is production whenever a Procfile or
Dockerfile starts the app with `python app.py`. `DEBUG = True` in a config module or
class that is not clearly for development (its name says dev, local or test) is
reported too. Switch debug mode on from the command line instead.

Bad:

    app = Flask(__name__)
    app.debug = True
    ...
    if __name__ == "__main__":
        app.run(debug=True)

Good (development: `flask --app app run --debug`, or FLASK_DEBUG=1):

    app = Flask(__name__)
    ...
    if __name__ == "__main__":
        app.run()
'''

    def check(self, project: Project) -> Iterable[Finding]:
        for path, module in production_modules(project, ("debug", "DEBUG")):
            dev_module = dev_only(path.rsplit("/", 1)[-1])
            visitor = _DebugVisitor(app_names(project, path, module), is_config_module(path) and not dev_module,
                                    dev_module)
            visitor.walk(module)
            positions = project.position_lookup(path)
            for node, kind, where, owner in visitor.found:
                yield self._finding(project, path, positions(node)[0], kind, where, owner)

    def _finding(self, project: Project, path: str, line: int, kind: str, where: str, owner: str) -> Finding:
        if kind == "run":
            if where == "import":
                return self.finding(path, line, f"{owner}.run(debug=True) at import time: importing this module (gunicorn, a test, "
                                    "any script) starts the development server with the interactive debugger; "
                                    "remove it and start the app with `flask run --debug` in development")
            launcher = launched_directly(project, path)
            if launcher:
                return self.finding(path, line, f"{owner}.run(debug=True) runs in production: {launcher} starts this file "
                                    "with python, so the interactive debugger (remote code execution) is on; serve "
                                    "with gunicorn and use `flask run --debug` in development")
            return self.finding(path, line, f"{owner}.run(debug=True): anyone who starts this file with python gets the "
                                "interactive debugger; drop debug=True and use `flask --app ... run --debug` "
                                "(or FLASK_DEBUG=1) in development", Severity.WARNING)
        what = f"{owner}.debug = True" if kind == "attribute" else 'config["DEBUG"] = True' if kind == "config" else "DEBUG = True"
        if kind == "setting":
            place = f"class {owner}" if owner else "this config module"
            return self.finding(path, line, f"DEBUG = True in {place}, which is not marked development-only: if "
                                "production loads it, the interactive debugger is on; read it from the environment "
                                "(FLASK_DEBUG) or move it to a DevelopmentConfig", Severity.WARNING)
        if where == "main":
            return self.finding(path, line, f"{what} when this file is run with python: the interactive debugger is on "
                                "wherever it is started that way; use `flask run --debug` instead", Severity.WARNING)
        return self.finding(path, line, f"{what} applies wherever this code runs, gunicorn included: the interactive "
                            "debugger is on in production; use `flask run --debug` / FLASK_DEBUG in development")


class _DebugVisitor(Where):
    def __init__(self, apps: set[str], config_module: bool, dev_module: bool) -> None:
        super().__init__()
        self.apps = apps
        self.config_module = config_module  # module-level DEBUG = True counts
        self.dev_module = dev_module  # nothing in config classes counts
        self.found: list[tuple[cst.CSTNode, str, str, str]] = []  # node, kind, context, owner class

    def visit_Call(self, node: cst.Call) -> None:
        if self.in_dev_function:
            return
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "run":
            debug = next((a for a in node.args if a.keyword and a.keyword.value == "debug"), None)
            first = node.args[0].value if node.args and node.args[0].keyword is None else None
            app_call = isinstance(func.value, cst.Call)  # create_app().run(debug=True)
            if debug is not None and is_true(debug.value) and (
                    get_full_name_for_node(func.value) in self.apps or app_call
                    or (first is not None and get_full_name_for_node(first) in self.apps)):
                receiver = func.value.func if isinstance(func.value, cst.Call) else func.value
                called = "()" if isinstance(func.value, cst.Call) else ""
                self.found.append((node, "run", self.context, (get_full_name_for_node(receiver) or "app") + called))
        for arg in config_call_keywords(node):
            if arg.keyword.value == "DEBUG" and is_true(arg.value):
                self.found.append((node, "config", self.context, ""))

    def visit_Assign(self, node: cst.Assign) -> None:
        if not is_true(node.value) or self.in_dev_function:
            return
        for target in node.targets:
            t = target.target
            if isinstance(t, cst.Attribute) and t.attr.value == "debug" and get_full_name_for_node(t.value) in self.apps:
                self.found.append((node, "attribute", self.context, get_full_name_for_node(t.value) or "app"))
            elif config_subscript_key(t) == "DEBUG":
                self.found.append((node, "config", self.context, ""))
            elif isinstance(t, cst.Name) and t.value == "DEBUG" and not self.functions:
                owner = self.classes[-1].name.value if self.classes else ""
                if owner and not self.dev_module and not dev_only(owner) and _looks_like_config_class(self.classes[-1]):
                    self.found.append((node, "setting", self.context, owner))
                elif not owner and self.config_module:
                    self.found.append((node, "setting", self.context, ""))


def _looks_like_config_class(node: cst.ClassDef) -> bool:
    """A class whose body is mostly UPPER_CASE settings."""
    names = []
    for stmt in node.body.body if isinstance(node.body, cst.IndentedBlock) else []:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, (cst.Assign, cst.AnnAssign)):
                    target = small.targets[0].target if isinstance(small, cst.Assign) else small.target
                    if isinstance(target, cst.Name):
                        names.append(target.value)
    return bool(names) and sum(n.isupper() for n in names) * 2 >= len(names)

# -- FR102 -----------------------------------------------------------------------------

RANDOM_SOURCES = frozenset({
    "os.urandom", "secrets.token_hex", "secrets.token_bytes", "secrets.token_urlsafe", "uuid.uuid4",
    "uuid.uuid1", "random.random", "random.getrandbits", "random.randbytes", "random.choice", "random.choices",
})
ENV_READERS = frozenset({"os.environ.get", "os.getenv", "os.environ.setdefault"})
CONFIG_LOADERS = frozenset({"from_envvar", "from_pyfile", "from_prefixed_env", "from_object", "from_file", "from_json"})
FALLBACKS_VERSION: Version = (3, 1)


class SecretKey(Rule):
    id = "FR102"
    name = "secret-key"
    severity = Severity.ERROR
    summary = "SECRET_KEY hard-coded, defaulted in code, or random per process."
    explain = '''\
The secret key signs the session cookie and every token made with it. Hard-coded in
the repository, anyone who reads the code can forge sessions. Generated at import time
(`os.urandom`, `secrets`, `uuid4`), every worker process gets its own key: a session
signed by one gunicorn worker is rejected by the next, users are logged out at random,
and all sessions end at each restart. A hard-coded fallback
(`os.environ.get("SECRET_KEY", "dev")`) silently signs with the public value when the
variable is missing in production.

Never generate a new key to fix this: that logs everyone out and invalidates every
signed token. Move the value production uses today into its secret store unchanged
(environment variable or instance config), and rotate later with
`SECRET_KEY_FALLBACKS` (Flask 3.1+), which keeps the old key valid for verification.

Bad:

    app.secret_key = os.urandom(24)
    app.config["SECRET_KEY"] = "s3cr3t"

Good:

    app.config.from_prefixed_env()          # FLASK_SECRET_KEY from the environment
    # rotating: SECRET_KEY = new key, SECRET_KEY_FALLBACKS = [old key]
'''

    def check(self, project: Project) -> Iterable[Finding]:
        pin = flask_pin(project)
        for path, module in production_modules(project, ("SECRET_KEY", "secret_key")):
            visitor = _SecretVisitor(import_map(project, path) or ImportMap(), path)
            visitor.walk(module)
            positions = project.position_lookup(path)
            for node, value, scope in visitor.found:
                finding = self._classify(path, positions(node)[0], value, visitor.imports, pin,
                                         overridden=_loads_config_after(scope, node))
                if finding is not None:
                    yield finding

    def _classify(self, path: str, line: int, value: cst.BaseExpression, imports: ImportMap, pin: Pin | None,
                  overridden: bool) -> Finding | None:
        keep = _keep_key_advice(pin)
        random_call = _first_call(value, imports, RANDOM_SOURCES)
        if random_call and not _first_call(value, imports, ENV_READERS):
            return self.finding(path, line, f"SECRET_KEY from {random_call}() at start-up: each worker process gets a "
                                "different key, so sessions signed by one worker fail on another and all end at "
                                "every restart; set one stable key in the environment (FLASK_SECRET_KEY)")
        literal = string_value(value)
        if literal:
            if overridden:
                return self.finding(path, line, "hard-coded SECRET_KEY placeholder, overridden by configuration "
                                    "loaded later: make sure production always provides the real key (a missing "
                                    "file or variable silently leaves this public one in use)", Severity.INFO)
            return self.finding(path, line, "hard-coded SECRET_KEY: anyone with the source can forge sessions; "
                                f"move this exact value to the environment or instance config. {keep}")
        default = _env_fallback(value, imports)
        if default is not None:
            kind = (f"a per-process random key ({default})" if default in RANDOM_SOURCES
                    else "a hard-coded key")
            return self.finding(path, line, f"SECRET_KEY falls back to {kind} when the environment variable is "
                                "missing: read it with os.environ[\"...\"] so a missing key fails at start-up; if production "
                                "runs on this fallback today, set the variable to this same value first (a new key "
                                "logs everyone out)", Severity.WARNING)
        return None


def _keep_key_advice(pin: Pin | None) -> str:
    if pin is not None and pin.always_below(FALLBACKS_VERSION):
        return (f"Do not generate a new key (that logs everyone out); Flask {pin.spec} has no "
                "SECRET_KEY_FALLBACKS, so rotate only after upgrading to 3.1 or in a quiet window.")
    return ("Do not generate a new key (that logs everyone out); to rotate later, put the old key in "
            "SECRET_KEY_FALLBACKS.")


class _SecretVisitor(Where):
    def __init__(self, imports: ImportMap, path: str) -> None:
        super().__init__()
        self.imports = imports
        self.dev_module = dev_only(path.rsplit("/", 1)[-1])
        self.found: list[tuple[cst.CSTNode, cst.BaseExpression, cst.CSTNode]] = []
        self.module: cst.Module | None = None

    def visit_Module(self, node: cst.Module) -> None:
        self.module = node

    def _scope(self) -> cst.CSTNode:
        return self.functions[-1] if self.functions else self.module

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            t = target.target
            if isinstance(t, cst.Attribute) and t.attr.value == "secret_key":
                self.found.append((node, node.value, self._scope()))
            elif config_subscript_key(t) == "SECRET_KEY":
                self.found.append((node, node.value, self._scope()))
            elif isinstance(t, cst.Name) and t.value == "SECRET_KEY" and not self.functions:
                owner = self.classes[-1].name.value if self.classes else ""
                if not self.dev_module and not (owner and dev_only(owner)):
                    self.found.append((node, node.value, self._scope()))

    def visit_Call(self, node: cst.Call) -> None:
        for arg in config_call_keywords(node):
            if arg.keyword.value == "SECRET_KEY":
                self.found.append((node, arg.value, self._scope()))


def _first_call(value: cst.BaseExpression, imports: ImportMap, wanted: frozenset[str]) -> str | None:
    for node in nodes_of(value):
        if isinstance(node, cst.Call):
            qualified = imports.resolve(node.func)
            if qualified in wanted:
                return qualified
    return None


def _env_fallback(value: cst.BaseExpression, imports: ImportMap) -> str | None:
    """What `os.environ.get(K, default)` / `os.getenv(K) or default` falls back to: `literal`,
    a random source's name, or None when there is no fallback in code."""
    if isinstance(value, cst.BooleanOperation) and isinstance(value.operator, cst.Or):
        if _first_call(value.left, imports, ENV_READERS):
            if string_value(value.right):
                return "literal"
            return _first_call(value.right, imports, RANDOM_SOURCES)
        return None
    if isinstance(value, cst.Call) and imports.resolve(value.func) in ENV_READERS and len(value.args) >= 2:
        default = value.args[1].value
        if string_value(default):
            return "literal"
        return _first_call(default, imports, RANDOM_SOURCES)
    return None


def _loads_config_after(scope: cst.CSTNode | None, node: cst.CSTNode) -> bool:
    """Whether `app.config.from_*()` runs after `node` in the same function or module."""
    if scope is None:
        return False
    seen = False
    for current in nodes_of(scope):
        if current is node:
            seen = True
        elif seen and isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute) \
                and current.func.attr.value in CONFIG_LOADERS:
            return True
    return False
