"""Splitting the module that creates the app (for `app-factory`): which top-level
statements build the app (they move into `create_app`), which create extensions (they
move to `extensions.py`), which register views (they move onto a Blueprint), and which
stay where they are."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node

from .support.flask import EXTENSIONS, assigned_name
from .support.imports import ImportMap
from ._app_factory_syntax import calls_to, functions_using, name_uses, uses_name
from ._app_factory_views import RegistrationMover

# Attributes of the app that only set configuration.
CONFIG_ATTRS = frozenset({
    "config", "secret_key", "debug", "testing", "env", "permanent_session_lifetime",
    "session_cookie_name", "use_x_sendfile", "send_file_max_age_default",
})
CONFIG_METHODS = frozenset({
    "from_object", "from_pyfile", "from_envvar", "from_mapping", "from_file",
    "from_prefixed_env", "update", "setdefault",
})
SQLALCHEMY = "flask_sqlalchemy.SQLAlchemy"
# Module-level calls on a bound Flask-SQLAlchemy object that need an app context once
# the object is unbound.
SQLALCHEMY_CONTEXT_METHODS = frozenset({"create_all", "drop_all", "reflect"})
CONTEXT_MANAGERS = frozenset({"app_context", "test_request_context"})


@dataclass
class ExtensionObject:
    var: str
    statement: cst.SimpleStatementLine  # for extensions.py: the constructor without the app
    imports: list[str]  # import lines the constructor needs
    init_args: str | None  # arguments of init_app (code), None when the module never binds it
    qualified: str
    bound_at_import: bool
    names: tuple[str, ...] = ()  # the app module's imported names the constructor uses


@dataclass
class AppModuleSplit:
    creation: cst.SimpleStatementLine | None = None
    config: list[cst.CSTNode] = field(default_factory=list)
    setup: list[cst.CSTNode] = field(default_factory=list)  # after init_app, in order
    context_setup: list[cst.CSTNode] = field(default_factory=list)  # needs an app context
    extensions: list[ExtensionObject] = field(default_factory=list)
    init_order: list[str] = field(default_factory=list)
    body: list[cst.CSTNode | str] = field(default_factory=list)  # markers: "BLUEPRINT", "EXTENSIONS"
    main_block: cst.If | None = None
    extensions_leading: tuple = ()  # blank lines before the first extension statement
    needs_logging: bool = False  # a module-level `x = app.logger` became logging.getLogger()


def is_main_block(stmt: cst.CSTNode) -> bool:
    """`if __name__ == "__main__":` (plain isinstance tests: importing libcst.matchers
    alone costs a fifth of a second on every run)."""
    test = stmt.test if isinstance(stmt, cst.If) else None
    return (isinstance(test, cst.Comparison) and is_name(test.left, "__name__") and len(test.comparisons) == 1
            and isinstance(test.comparisons[0].operator, cst.Equal)
            and isinstance(test.comparisons[0].comparator, cst.SimpleString))


def is_name(node: cst.CSTNode, value: str) -> bool:
    return isinstance(node, cst.Name) and node.value == value


def rooted_at(expr: cst.BaseExpression, name: str) -> list[str] | None:
    """For `app.a.b[...]`, `app.a.b(...)`: the attribute path ['a', 'b']; None otherwise."""
    path = []
    while True:
        if isinstance(expr, cst.Call):
            expr = expr.func
        elif isinstance(expr, cst.Subscript):
            expr = expr.value
        elif isinstance(expr, cst.Attribute):
            path.insert(0, expr.attr.value)
            expr = expr.value
        elif isinstance(expr, cst.Name):
            return path if expr.value == name and path else None
        else:
            return None


class AppModuleSplitter:
    def __init__(self, module: cst.Module, app_var: str, imports: ImportMap, mover: RegistrationMover,
                 moves_extensions: bool = True) -> None:
        self.moves_extensions = moves_extensions  # to extensions.py; else they stay, unbound
        self.module = module
        self.app = app_var
        self.imports = imports
        self.mover = mover
        self.split = AppModuleSplit()
        self.ext_vars: dict[str, ExtensionObject] = {}
        self.app_functions = functions_using(module.body, app_var)

    def problem(self, node: cst.CSTNode, message: str) -> None:
        self.mover.problem(node, message)

    def run(self, creation: cst.CSTNode) -> AppModuleSplit:
        body = self.split.body
        for stmt in self.module.body:
            if stmt is creation:
                self.split.creation = stmt
                body.append("BLUEPRINT")
            elif is_main_block(stmt):
                self.split.main_block = stmt
                body.append(stmt)
            elif self._extension(stmt):
                if "EXTENSIONS" not in body:
                    body.append("EXTENSIONS")
                    self.split.extensions_leading = tuple(
                        line for line in stmt.leading_lines if line.comment is None)
            elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                new = self.mover.convert_def(stmt)
                body.append(stmt if new is None else new)
            elif self.context_call(stmt):
                self.split.context_setup.append(stmt)
            elif not uses_name(stmt, self.app):
                calls = calls_to(stmt, self.app_functions)
                if calls:
                    self.problem(stmt, f"{calls[0].func.value}() uses `{self.app}` and is called at import time "
                                       "here, where no app exists any more; not migrated")
                body.append(stmt)
            else:
                self._app_statement(stmt)
        return self.split

    # -- extensions ------------------------------------------------------------------
    def extension_statement(self, stmt: cst.CSTNode) -> bool:
        """Records an extension constructor or an `ext.init_app(app)` call."""
        return self._extension(stmt)

    def _extension(self, stmt: cst.CSTNode) -> bool:
        found = assigned_name(stmt)
        if found and isinstance(found[1], cst.Call):
            qualified = self.imports.resolve(found[1].func)
            if qualified in EXTENSIONS:
                return self._constructor(stmt, found[0], found[1], qualified)
        return self._init_app_call(stmt)

    def _constructor(self, stmt: cst.SimpleStatementLine, var: str, call: cst.Call, qualified: str) -> bool:
        args = list(call.args)
        app_index = None
        for i, arg in enumerate(args):
            if _is_name(arg.value, self.app) and (arg.keyword is None and i == 0 or
                                                  arg.keyword is not None and arg.keyword.value == "app"):
                app_index = i
        rest = [a for i, a in enumerate(args) if i != app_index]
        if any(uses_name(a, self.app) for a in rest):
            self.problem(stmt, f"{var} = {qualified.rsplit('.', 1)[1]}(...) uses `{self.app}` in other "
                               "arguments; not migrated")
            return True
        init_args = None
        if app_index is not None:
            extra = [a for a in rest if a.keyword is None]
            if extra and not EXTENSIONS[qualified].extra_init_args:
                self.problem(stmt, f"{var}: positional arguments after the app would change meaning "
                                   "without it; not migrated")
                return True
            rest = [a for a in rest if a.keyword is not None or not EXTENSIONS[qualified].extra_init_args]
            init_args = ", ".join([self.app, *(self.module.code_for_node(a.value) for a in extra)])
            if extra and not all(isinstance(a.value, cst.Name) for a in extra):
                self.problem(stmt, f"{var}: init_app arguments must be plain names to move; not migrated")
                return True
        if rest:
            rest[-1] = rest[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        new_call = call.with_changes(args=rest)
        imports = self._imports_for(stmt, new_call) if self.moves_extensions else []
        if imports is None:
            return True
        new_stmt = stmt.with_changes(body=[stmt.body[0].with_changes(value=new_call)])
        names = tuple(n.value for n in name_uses(new_call) if n.value in self.imports.names)
        ext = ExtensionObject(var, new_stmt, imports, init_args, qualified, app_index is not None, names)
        self.ext_vars[var] = ext
        self.split.extensions.append(ext)
        if init_args is not None:
            self.split.init_order.append(f"{var}.init_app({init_args})")
        return True

    def _imports_for(self, stmt: cst.CSTNode, call: cst.Call) -> list[str] | None:
        """Import lines that make the constructor's names available in extensions.py."""
        lines = []
        for node in name_uses(call):
            name = node.value
            if name in self.ext_vars or hasattr(builtins, name):
                continue
            target = self.imports.names.get(name)
            if target is None:
                self.problem(stmt, f"the extension's constructor uses `{name}`, defined in the app module; "
                                   "it cannot move to extensions.py")
                return None
            source, _, attr = target.rpartition(".")
            alias = "" if (attr or target) == name else f" as {name}"
            line = f"from {source} import {attr}{alias}" if source else f"import {target}{alias}"
            if line not in lines:
                lines.append(line)
        return lines

    def _init_app_call(self, stmt: cst.CSTNode) -> bool:
        """`ext.init_app(app, ...)` at module level: moves into the factory."""
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Expr)):
            return False
        call = stmt.body[0].value
        if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)
                and call.func.attr.value == "init_app"):
            return False
        var = get_full_name_for_node(call.func.value)
        ext = self.ext_vars.get(var or "")
        if ext is None or not call.args or not _is_name(call.args[0].value, self.app):
            return False
        ext.init_args = self.module.code_for_node(call).split("(", 1)[1].rsplit(")", 1)[0].strip()
        self.split.init_order.append(f"{var}.init_app({ext.init_args})")
        return True

    def context_call(self, stmt: cst.CSTNode) -> bool:
        """Calls that need the app at import time: `db.create_all()` (legal while `db` was
        bound to the app) or a function of this module that uses the app (`init_db()`).
        The factory makes them in an app context."""
        if not (isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, cst.Expr) for s in stmt.body)):
            return False
        for small in stmt.body:
            call = small.value
            if isinstance(call, cst.Call) and isinstance(call.func, cst.Name) and call.func.value in self.app_functions:
                if any(uses_name(arg, self.app) for arg in call.args):
                    return False
                continue
            if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)):
                return False
            ext = self.ext_vars.get(get_full_name_for_node(call.func.value) or "")
            if not (ext and ext.qualified == SQLALCHEMY and ext.bound_at_import
                    and call.func.attr.value in SQLALCHEMY_CONTEXT_METHODS):
                return False
        return True

    # -- statements on the app -----------------------------------------------------------
    def _app_statement(self, stmt: cst.CSTNode) -> None:
        if isinstance(stmt, cst.SimpleStatementLine):
            moved = self.mover.convert_add_url_rule(stmt)
            if moved is not None:
                self.split.body.append(moved)
                return
            kinds = {self._small_kind(small) for small in stmt.body}
            if kinds == {"config"}:
                self.split.config.append(stmt)
                return
            if kinds <= {"config", "setup"}:
                self.split.setup.append(stmt)
                return
        elif isinstance(stmt, cst.With) and self._app_context_block(stmt):
            self.split.setup.append(stmt)
            return
        logger = self._module_logger(stmt)
        if logger is not None:
            self.split.body.append(logger)
            self.split.needs_logging = True
            return
        self.problem(stmt, self._import_time_reason(stmt))

    def _module_logger(self, stmt: cst.CSTNode) -> cst.CSTNode | None:
        """`log = app.logger` -> `log = logging.getLogger(__name__)`: the same logger
        (Flask names it after the app's import name), available at import time."""
        found = assigned_name(stmt)
        value = found[1] if found else None
        if not (isinstance(value, cst.Attribute) and is_name(value.value, self.app) and value.attr.value == "logger"):
            return None
        call = self.split.creation.body[0].value if self.split.creation is not None else None
        first = call.args[0] if isinstance(call, cst.Call) and call.args else None
        if first is None or first.keyword is not None or not (
                is_name(first.value, "__name__") or isinstance(first.value, cst.SimpleString)):
            return None
        name = self.module.code_for_node(first.value)
        small = stmt.body[0]
        return stmt.with_changes(body=[small.with_changes(value=cst.parse_expression(f"logging.getLogger({name})"))])

    def _import_time_reason(self, stmt: cst.CSTNode) -> str:
        found = assigned_name(stmt)
        if found and isinstance(found[1], cst.Call) and any(uses_name(a, self.app) for a in found[1].args):
            callee = get_full_name_for_node(found[1].func) or "the call"
            qualified = self.imports.resolve(found[1].func) or callee
            if found[0] == self.app:
                return (f"`{self.app} = {callee}({self.app})` replaces the app with a wrapper; wrap the WSGI "
                        f"callable instead (`{self.app}.wsgi_app = {callee}({self.app}.wsgi_app)`), then run again")
            if qualified.startswith("flask_restful."):
                return (f"`{found[0]} = {callee}({self.app})`: flask_restful registers nothing added with "
                        "add_resource after init_app; bind the Api to a blueprint (Api(bp)) by hand first")
            if "celery" in qualified.lower() or "celery" in found[0].lower():
                return (f"`{found[0]} = {callee}({self.app})` binds Celery to the app at import time; move it to "
                        "celery_init_app(app) in the factory and tasks to @shared_task by hand first")
            return (f"`{found[0]} = {callee}({self.app}, ...)` binds the app at import time and {qualified} is not "
                    "a known extension with init_app(); not migrated")
        if isinstance(stmt, (cst.If, cst.For, cst.While, cst.Try)):
            return (f"`{self.app}` is used in a module-level {type(stmt).__name__.lower()} block (conditional or "
                    "repeated set-up, e.g. routes added only for some config); the factory cannot take it over")
        return (f"`{self.app}` is used at import time here (a value other code reads); "
                "it does not exist at import time in a factory")

    def _small_kind(self, small: cst.BaseSmallStatement) -> str | None:
        targets: list[cst.BaseExpression] = []
        if isinstance(small, cst.Assign):
            targets = [t.target for t in small.targets]
        elif isinstance(small, (cst.AugAssign, cst.AnnAssign)):
            targets = [small.target]
        elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            path = rooted_at(small.value, self.app)
            if path is None:
                # `CORS(app)`, `other_db.init_app(app)`, `configure_logging(app)`: set-up
                # applied to the app, result unused; the factory does it for each app
                passes_app = any(_is_name(arg.value, self.app) for arg in small.value.args)
                return "setup" if passes_app and rooted_at(small.value.func, self.app) is None else None
            if path == ["run"]:
                return None
            if path[0] == "config" and (len(path) == 1 or path[-1] in CONFIG_METHODS):
                return "config" if not self._uses_extension(small) else "setup"
            return "setup"
        else:
            return None
        paths = [rooted_at(t, self.app) for t in targets]
        if not targets or any(p is None for p in paths):
            return None
        if all(p[0] in CONFIG_ATTRS and len(p) <= 2 for p in paths) and not self._uses_extension(small):
            return "config"
        return "setup"

    def _uses_extension(self, node: cst.CSTNode) -> bool:
        return any(n.value in self.ext_vars for n in name_uses(node))

    def _app_context_block(self, stmt: cst.With) -> bool:
        return (len(stmt.items) == 1
                and (rooted_at(stmt.items[0].item, self.app) or [None])[-1] in CONTEXT_MANAGERS
                and stmt.items[0].asname is None)


def _is_name(node: cst.BaseExpression, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name
