"""The whole-project migration behind `app-factory`: plans every file's change, and
writes nothing when any part cannot be done (the problems are reported instead)."""

from __future__ import annotations

import functools
import re
from pathlib import PurePosixPath

import libcst as cst
from libcst.helpers import get_full_name_for_node

from flask_refactor.codemod import ChangeSet, FileChange, Severity
from flask_refactor.positions import code_of
from flask_refactor.project import Project
from flask_refactor.snippets import parse_statement, parsing_config
from flask_refactor.walk import all_calls, node_finder

from .support.flask import (
    BLUEPRINT_CLASSES, AppSite, app_modules, assigned_name, import_map, import_reach, imports_transitively,
    in_import_reach, is_package,
    module_defines,
)
from .support.imports import ImportMap, add_import, binds_module, resolve_relative
from ._app_factory_appmodule import AppModuleSplit, AppModuleSplitter, is_main_block
from ._app_factory_contexts import (
    THREAD_CONTEXT, outside_context, run_in_background, servers_outside_context, streamed_generators,
)
from ._app_factory_endpoints import DynamicEndpointFinder, EndpointQualifier
from ._app_factory_syntax import (
    LINT_PRAGMAS, calls_to, functions_using, import_from_flask, indent_code, name_uses,
    refs_outside_function_bodies, reindents_cleanly, statement_code,
)
from ._app_factory_redundant import RemovedImports, drop_module_imports
from ._app_factory_templates import (
    ENTRY_POINT_FILES, TEMPLATE_SUFFIXES, dynamic_url_for_lines, qualify_template, rewrite_entry_points,
)
from ._app_factory_views import BlueprintPlan, Problem, RegistrationMover, needs_blueprint

FACTORY = "create_app"
EXTENSIONS_MODULE = "extensions"
WSGI_MODULE = "wsgi"
FLASK_CURRENT_APP = frozenset({"flask.current_app", "flask.globals.current_app"})


class Migration:
    def __init__(self, project: Project, site: AppSite, changes: ChangeSet,
                 allow_dynamic_endpoints: bool = False) -> None:
        self.project = project
        self.allow_dynamic_endpoints = allow_dynamic_endpoints
        self.site = site
        self.changes = changes
        self.problems: list[Problem] = []
        self.app_module = site.module_name
        self.modules: dict[str, cst.Module] = {}  # path -> new module
        self.plans: list[BlueprintPlan] = []
        self.endpoints: dict[str, str] = {}
        self.split: AppModuleSplit | None = None
        self.view_plans: list[BlueprintPlan] = []  # other modules the factory imports
        self.removed_imports = RemovedImports([])  # their module-level imports, now redundant
        self.templates: dict[str, str] = {}
        self.users: dict[str, tuple[str, str]] = {}
        # path -> (its tree, its module-level functions that use the app): the app module
        # and the modules whose functions' `app` becomes current_app
        self.app_functions: dict[str, tuple[cst.Module, set[str]]] = {}

    def problem(self, path: str, node: cst.CSTNode | int, message: str) -> None:
        line = node if isinstance(node, int) else self.project.position_lookup(path)(node)[0]
        self.problems.append(Problem(path, line, message))

    # -- the plan ----------------------------------------------------------------------
    def run(self) -> None:
        site = self.site
        module = self.project.parse(site.path)
        self.ext_module = _sibling_module(self.app_module, is_package(site.path), EXTENSIONS_MODULE)
        self.ext_path = str(PurePosixPath(site.path).parent / f"{EXTENSIONS_MODULE}.py")
        self.wsgi_path = _wsgi_path(site.path, self.app_module)
        self._check_unreadable_files()
        self.users = self._app_users()
        names = self._blueprint_names(module, self.users)
        self._split_app_module(module, names.get(site.path))
        if self.split is None:
            return self._report()
        ext_vars = {e.var for e in self.split.extensions}
        self._migrate_modules(names, ext_vars)
        self._check_contexts()
        self._check_new_files()
        self._check_dynamic_endpoints()
        if self.problems:
            return self._report()
        self._build_app_module(module)
        if self.problems:
            return self._report()
        self._qualify_endpoints()
        self._write()
        self._report_double_import()

    def _check_contexts(self) -> None:
        """Each function whose `app` becomes current_app must run in an app context
        (`outside_context`, `servers_outside_context`): else it is a problem, and nothing
        is migrated."""
        reported = set()
        for path, function, why in outside_context(self.project, self.app_functions):
            reported.add(function)
            self.problem(path, function, f"{function.name.value}() uses the app and runs outside any app context "
                                         f"({why}): as current_app it would fail there; have it build the app "
                                         f"(`app = {FACTORY}()`) and run inside `with app.app_context():`")
        self._check_background_work(reported)
        for path, generator, why in streamed_generators(self.project, self._modules_using_the_app()):
            self.problem(path, generator, f"{generator.name.value}() uses the app and is a generator {why}: Flask "
                                          "iterates a streamed response after the view has returned and its app "
                                          "context is gone, where current_app fails; call it inside "
                                          "`stream_with_context(...)` (from flask) or decorate it with "
                                          "`@stream_with_context`, and run again")
        for path, (module, _) in self.app_functions.items():
            local = self._app_name_in(path)
            if not re.search(rf"\b{re.escape(local)}\s*\.\s*run\b", self.project.text(path) or ""):
                continue  # no `app.run` in the file: not walked (a walk of every view module was 84 ms on (b))
            for function in servers_outside_context(module, local):
                self.problem(path, function, f"{function.name.value}() starts the app's server (`{local}.run()`) "
                                             "outside any app context (the module's `__main__` block does not "
                                             "call it), where current_app would fail; have it build the app "
                                             f"(`app = {FACTORY}()`) and run that")

    def _check_background_work(self, reported: set[cst.FunctionDef]) -> None:
        """The functions using the app that run in other threads or processes, or as jobs
        (`run_in_background`), are problems too, but for those that only threads started in
        requests run when thread-context runs later: it gives them the request's app."""
        threads_wrapped = THREAD_CONTEXT in self.project.later_codemods
        for path, node, name, why, left_to_threads in run_in_background(self.project, self._modules_using_the_app()):
            if node in reported:
                continue
            if left_to_threads and threads_wrapped:
                self.changes.relies_on.add(THREAD_CONTEXT)
            elif left_to_threads:
                self.problem(path, node, f"{name} uses the app and is {why}: as current_app it would fail there "
                                         f"unless {THREAD_CONTEXT} runs it in the request's app context; run both "
                                         f"(`-c app-factory,{THREAD_CONTEXT}`, or `--all`)")
            else:
                self.problem(path, node, f"{name} uses the app and is {why}, with no app context: as current_app "
                                         f"it would fail there; have it build the app (`app = {FACTORY}()`) and "
                                         "run inside `with app.app_context():`")

    def _modules_using_the_app(self) -> dict[str, tuple[cst.Module, str, set[str]]]:
        """path -> (its tree, its name for the app, its module-level functions using it), for
        the modules whose functions' `app` becomes current_app."""
        return {path: (module, self._app_name_in(path), names) for path, (module, names) in self.app_functions.items()}

    def _app_name_in(self, path: str) -> str:
        return self.site.var if path == self.site.path else self.users[path][0]

    def _report_double_import(self) -> None:
        """`python app.py` used to import app.py a second time through the view modules."""
        importers = ", ".join(sorted(p for p, (_, role) in self.users.items() if role in ("views", "inner")))
        if self.split.main_block is None or not importers:
            return
        line = self.project.position_lookup(self.site.path)(self.split.main_block)[0]
        self.changes.report(self.site.path, line,
                            f"running {self.site.path} as a script imported it a second time (from {importers}), "
                            "so views were registered on a second app; the factory removes this bug, which "
                            "changes what `python " + PurePosixPath(self.site.path).name + "` serves", Severity.INFO)

    def _report(self) -> None:
        for problem in self.problems:
            self.changes.report(problem.path, problem.line, problem.message, Severity.WARNING)
        self.changes.report(self.site.path, self.site.line,
                            f"`{self.site.var}` was not converted to an app factory: the problems reported "
                            f"for this run must be fixed first, so no file was changed", Severity.ERROR)

    # -- who uses the app ------------------------------------------------------------------
    def _app_users(self) -> dict[str, tuple[str, str]]:
        """Modules importing the app object: path -> (local name, role).

        Roles: "views" registers on it (gets a blueprint); "inner" is imported by the app
        and only uses it inside functions (current_app); "outer" is a script, test or
        server entry point (imports it from wsgi.py)."""
        qualified = f"{self.app_module}.{self.site.var}"
        users = {}
        for path in self._rewritable:
            if path == self.site.path or self.project.parse(path) is None:
                continue
            imports = import_map(self.project, path)
            if self.app_module in imports.star_modules:
                self.problem(path, self._star_import_line(path), f"`from {self.app_module} import *`: the names "
                                                                 "it brings cannot be followed")
                continue
            locals_ = [name for name, target in imports.names.items() if target == qualified]
            if not locals_:
                continue
            if len(locals_) > 1:
                self.problem(path, 1, f"the app is imported under several names ({', '.join(locals_)})")
                continue
            module = self.project.parse(path)
            name = self.project.module_name(path)
            if needs_blueprint(module, locals_[0]):
                role = "views"
            elif path == self.wsgi_path:
                role = "wsgi"
            elif name and imports_transitively(self.project, self.app_module, name):
                role = "inner"
            else:
                role = "outer"
            users[path] = (locals_[0], role)
        return users

    def _check_unreadable_files(self) -> None:
        """A Python file the engine could not read or parse may import the app: it could
        not be rewritten with the rest, so the migration must wait for it. (Only files
        the migration may rewrite are parsed: the others are only read for their imports.)"""
        self.project.parse_many(self._rewritable)
        for path, _ in self.project.errors:
            if not path.endswith(".py") or not self.project.exists(path):
                continue
            text = self.project.file(path).text
            if text is None or self.app_module.rsplit(".", 1)[-1] in text or "from ." in text:
                self.problem(path, 1, f"{path} cannot be read or parsed and may import the app; "
                                      "fix it (or exclude it) and run again")

    @functools.cached_property
    def _rewritable(self) -> list[str]:
        """The files the migration may rewrite (`_may_rewrite`), in the project's order:
        parsed, searched for users of the app, and the others' imports fixed."""
        return [path for path in self.project.paths() if self._may_rewrite(path)]

    def _may_rewrite(self, path: str) -> bool:
        """Cheap test before parsing, on the project index: whether an import of the file
        (at any depth, relative ones resolved) may bind a name to the app module or to
        something in it, which is all the migration changes outside the app module. A
        module that only imports other modules of the app's package (running the
        package's `__init__`, and so the app module, first) keeps every line. A file the
        index cannot read may: the caller's parse then reports it."""
        if not in_import_reach(self.project, path):
            return False  # neither names the app's package nor sits in it
        entry = self.project.index(path)
        if entry is None or entry.error:
            return True
        module_name, package = self.project.module_name(path), is_package(path)
        return any(binds_module(record, module_name, package, self.app_module) for record in entry.imports)

    def _star_import_line(self, path: str) -> int:
        module = self.project.parse(path)
        for stmt in module.body:
            small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) else None
            if (isinstance(small, cst.ImportFrom) and isinstance(small.names, cst.ImportStar)
                    and _import_source(small, self.project.module_name(path), is_package(path)) == self.app_module):
                return self.project.position_lookup(path)(stmt)[0]
        return 1

    def _blueprint_names(self, module: cst.Module, users: dict[str, tuple[str, str]]) -> dict[str, str]:
        with_views = [self.site.path] if needs_blueprint(module, self.site.var) else []
        with_views += [p for p, (_, role) in sorted(users.items()) if role == "views"]
        taken = self._existing_blueprint_names()
        names = {}
        for path in with_views:
            stem = (self.project.module_name(path) or "main").rsplit(".", 1)[-1]
            name = "main" if len(with_views) == 1 or path == self.site.path else stem
            while name in taken:
                name += "_views"
            taken.add(name)
            names[path] = name
        return names

    def _existing_blueprint_names(self) -> set[str]:
        names = set()
        for path, module in app_modules(self.project, ("Blueprint",)):
            imports = import_map(self.project, path)
            for node in all_calls(module):
                if imports.resolve(node.func) in BLUEPRINT_CLASSES and node.args:
                    value = node.args[0].value
                    if isinstance(value, cst.SimpleString) and isinstance(value.evaluated_value, str):
                        names.add(value.evaluated_value)
        return names

    # -- the app module --------------------------------------------------------------------
    def _split_app_module(self, module: cst.Module, bp_name: str | None) -> None:
        path, app = self.site.path, self.site.var
        if module_defines(module, FACTORY):
            self.problem(path, self.site.line, f"`{FACTORY}` is already defined in {path}")
            return
        plan = self._blueprint_plan(path, self.app_module, app, bp_name, module)
        mover = RegistrationMover(plan, lambda node: self.project.position_lookup(path)(node)[0], self.problems)
        creation = next(s for s in module.body if (assigned_name(s) or ("",))[0] == app)
        reported = len(self.problems)
        self.splitter = AppModuleSplitter(module, app, import_map(self.project, path), mover)
        self.app_functions[path] = (module, self.splitter.app_functions)
        split = self.splitter.run(creation)
        if len(self.problems) == reported:
            self.split, self.app_plan = split, plan

    def _build_app_module(self, module: cst.Module) -> None:
        split, plan, path = self.split, self.app_plan, self.site.path
        body: list[cst.CSTNode] = []
        ext_import = None
        if split.extensions:
            names = ", ".join(e.var for e in split.extensions)
            source = f".{EXTENSIONS_MODULE}" if "." in self.ext_module else self.ext_module
            ext_import = parse_statement(f"from {source} import {names}\n", config=parsing_config(module))
        self.removed_imports = drop_module_imports(split.body, self._redundant_imports(split), self.app_module,
                                                   is_package(path))
        for item in self.removed_imports.body:
            if item in ("BLUEPRINT", "EXTENSIONS") and ext_import is not None:
                # the extensions import goes where the app or the first extension was,
                # whichever came first (importing extensions.py earlier changes nothing)
                leading = split.creation.leading_lines if item == "BLUEPRINT" else split.extensions_leading
                body.append(ext_import.with_changes(leading_lines=[l for l in leading if l.comment is None]))
                ext_import = None
                if item == "BLUEPRINT" and plan.bp_name:
                    body.append(self._blueprint_statement(module, plan, [cst.EmptyLine()]))
            elif item == "BLUEPRINT" and plan.bp_name:
                body.append(self._blueprint_statement(module, plan, split.creation.leading_lines))
            elif item in ("BLUEPRINT", "EXTENSIONS"):
                continue
            elif is_main_block(item):
                body.append(self._main_block(item))
            else:
                body.append(item)
        try:
            factory = self._factory(module, split, plan)
        except ValueError as exc:
            self.problem(path, self.site.line, str(exc))
            return
        # before the `__main__` block, which calls it
        index = next((i for i, stmt in enumerate(body) if is_main_block(stmt)), len(body))
        blank = [cst.EmptyLine(), cst.EmptyLine()]
        body.insert(index, factory.with_changes(leading_lines=blank))
        if index + 1 < len(body) and not any(line.comment for line in body[index + 1].leading_lines):
            body[index + 1] = body[index + 1].with_changes(leading_lines=blank)
        new = module.with_changes(body=body)
        new = _drop_unused_imports(new, {n for e in split.extensions for n in e.names})
        new = self._add_flask_imports(path, new, import_map(self.project, path), plan)
        if new is not None and split.needs_logging and "logging" not in import_map(self.project, path).names:
            new = add_import(new, "logging")
        if new is not None:
            self.modules[path] = new
            self.plans.append(plan)

    def _redundant_imports(self, split: AppModuleSplit) -> set[str]:
        """View modules create_app imports that the app module also imported only for their
        side effects: nothing left at module level names them, nor do other files reach
        them through the app module (`from app import views`, `app_module.views`)."""
        kept = [s for s in split.body if not isinstance(s, str) and not _is_import_line(s)]
        used = {n.value for stmt in [*kept, split.creation, *split.config] for n in name_uses(stmt)}
        imported, attribute_texts = self._uses_of_app_module() if self.view_plans else (set(), [])
        return {plan.module_name for plan in self.view_plans
                if (stem := plan.module_name.rsplit(".", 1)[-1]) not in used
                and self._factory_local(plan) == stem and stem not in imported
                and not any(f"{local}.{stem}" in text for local, text in attribute_texts)}

    def _uses_of_app_module(self) -> tuple[set[str], list[tuple[str, str]]]:
        """How other files may reach a view module through the app module: (the names they
        import from it, `from app import views`; (a local name bound to the app module,
        the text of the file binding it), for `app_module.views`). Gathered once: asked of
        every view module, file by file it made the question cost views times files."""
        imported: set[str] = set()
        attribute_texts: list[tuple[str, str]] = []
        prefix = f"{self.app_module}."
        for path in import_reach(self.project):  # an importer of the app module is in it
            imports = import_map(self.project, path) if path.endswith(".py") and path != self.site.path else None
            if imports is None:
                continue
            if not is_package(self.site.path):
                imported.update(target[len(prefix):] for target in imports.names.values() if target.startswith(prefix))
            locals_ = [local for local, target in imports.names.items() if target == self.app_module]
            if locals_:
                text = self.project.text(path) or ""
                attribute_texts.extend((local, text) for local in locals_)
        return imported, attribute_texts

    def _blueprint_plan(self, path, module_name, app_var, bp_name, module) -> BlueprintPlan:
        bp_var = "bp"
        if bp_name and module_defines(module, bp_var):
            bp_var = f"{bp_name}_bp"
            if module_defines(module, bp_var):
                self.problem(path, 1, f"no free name for the blueprint in {path} (`bp` and `{bp_var}` are taken)")
        return BlueprintPlan(path, module_name, app_var, bp_var, bp_name or "")

    def _blueprint_statement(self, module: cst.Module, plan: BlueprintPlan, leading) -> cst.SimpleStatementLine:
        cli = ", cli_group=None" if plan.uses_cli else ""
        stmt = parse_statement(f'{plan.bp_var} = Blueprint("{plan.bp_name}", __name__{cli})\n',
                               config=parsing_config(module))
        return stmt.with_changes(leading_lines=[line for line in leading if line.comment is None])

    def _main_block(self, block: cst.If) -> cst.If:
        """`python app.py`: build the app first; `db.create_all()` there, which a bound
        Flask-SQLAlchemy 2.x object allowed without a context, gets the app's context."""
        statements = []
        for stmt in block.body.body:
            if self.splitter.context_call(stmt):
                wrapper = parse_statement(f"with {self.site.var}.app_context():\n    pass\n")
                stmt = wrapper.with_changes(leading_lines=stmt.leading_lines, body=wrapper.body.with_changes(
                    body=[stmt.with_changes(leading_lines=[])]))
            statements.append(stmt)
        if not any(n.value == self.site.var for n in name_uses(cst.IndentedBlock(body=statements))):
            return block
        line = parse_statement(f"{self.site.var} = {FACTORY}()\n")
        return block.with_changes(body=block.body.with_changes(body=[line, *statements]))

    def _factory(self, module: cst.Module, split: AppModuleSplit, plan: BlueprintPlan) -> cst.FunctionDef:
        app = self.site.var
        indent = module.default_indent
        parts = [f"def {FACTORY}(config=None):\n",
                 f'{indent}"""Create and configure the app; `config` (a mapping) overrides the settings."""\n']
        parts += [self._moved(module, stmt, indent) for stmt in [split.creation, *split.config]]
        parts.append(f"{indent}if config is not None:\n{indent}{indent}{app}.config.from_mapping(config)\n")
        parts += [f"{indent}{call}\n" for call in split.init_order]
        imported: set[str] = set()
        # A module the app module no longer imports is imported before the moved setup: its
        # import side effects (e.g. its models, for db.create_all()) came first before.
        early = self.removed_imports.modules if split.setup or split.context_setup else set()
        for other in sorted(self.view_plans, key=self._import_position):
            if other.module_name in early:
                parts.append(self._import_in_factory(other, indent, imported))
            if other.extension_inits:  # extensions other modules bound: in the legacy order
                parts.append(self._import_in_factory(other, indent, imported))
                local = self._factory_local(other)
                parts += [f"{indent}{local}.{var}.init_app({', '.join([app, *(f'{local}.{x}' for x in extras)])})\n"
                          for var, extras in other.extension_inits]
        parts += [self._moved(module, stmt, indent) for stmt in split.setup]
        if split.needs_logging:
            parts.append(f"{indent}{app}.logger  # noqa: B018  reading it installs Flask's log handler, "
                         "as the legacy module did\n")
        if split.context_setup:
            parts.append(f"{indent}with {app}.app_context():\n")
            parts += [self._moved(module, stmt, indent * 2) for stmt in split.context_setup]
        hooks = list(self._hooks(plan, None))
        if plan.bp_name:
            parts.append(f"{indent}{app}.register_blueprint({plan.bp_var})\n")
        for other in sorted(self.view_plans, key=self._import_position):
            local = self._factory_local(other)
            parts.append(self._import_in_factory(other, indent, imported))
            if other.bp_name:
                parts.append(f"{indent}{app}.register_blueprint({local}.{other.bp_var})\n")
            hooks += self._hooks(other, local)
        parts += [f"{indent}{app}.{method}({target})\n" for method, target in hooks]
        parts.append(f"{indent}return {app}\n")
        return parse_statement("".join(parts), config=parsing_config(module))

    def _import_in_factory(self, plan: BlueprintPlan, indent: str, imported: set[str]) -> str:
        """The import of a module inside create_app, once."""
        local = self._factory_local(plan)
        if local in imported:
            return ""
        imported.add(local)
        package, _, stem = plan.module_name.rpartition(".")
        alias = "" if local == stem else f" as {local}"
        moved_comments = self.removed_imports.comments.get(plan.module_name, [])
        comments = "".join(f"{indent}{comment}\n" for comment in moved_comments)
        return comments + (f"{indent}from {package} import {stem}{alias}\n" if package
                           else f"{indent}import {stem}{alias}\n")

    def _import_position(self, plan: BlueprintPlan) -> tuple[int, str]:
        """Register blueprints in the order the legacy app module imported their modules."""
        targets = list(import_map(self.project, self.site.path).names.values())
        for index, target in enumerate(targets):
            if target == plan.module_name or target.startswith(plan.module_name + "."):
                return index, plan.module_name
        return len(targets), plan.module_name

    def _hooks(self, plan: BlueprintPlan, local: str | None) -> list[tuple[str, str]]:
        return [(method, f"{local}.{func}" if local else func) for method, func in plan.factory_hooks]

    def _factory_local(self, plan: BlueprintPlan) -> str:
        stem = plan.module_name.rsplit(".", 1)[-1]
        return f"{stem}_module" if stem in (self.site.var, "config", FACTORY) else stem

    def _moved(self, module: cst.Module, stmt: cst.CSTNode, indent: str) -> str:
        code = statement_code(module, stmt)
        indented = indent_code(code, indent)
        if not reindents_cleanly(code, indented):
            raise ValueError(f"cannot re-indent a statement of {self.site.path} safely")
        return indented

    def _add_flask_imports(self, path: str, module: cst.Module, imports: ImportMap,
                           plan: BlueprintPlan) -> cst.Module | None:
        if plan.bp_name:
            if not self._free_or_flask(path, module, imports, "Blueprint", BLUEPRINT_CLASSES):
                return None
            module = import_from_flask(module, "Blueprint")
        if plan.current_app_uses:
            if not self._free_or_flask(path, module, imports, "current_app", FLASK_CURRENT_APP):
                return None
            module = import_from_flask(module, "current_app")
        return module

    def _free_or_flask(self, path, module, imports, name, qualified) -> bool:
        target = imports.names.get(name)
        if target in qualified or (target is None and not module_defines(module, name)):
            return True
        self.problem(path, 1, f"`{name}` already means something else in {path}")
        return False

    # -- other modules -----------------------------------------------------------------------
    def _migrate_modules(self, names: dict[str, str], ext_vars: set[str]) -> None:
        """`_migrate_user` for every module importing the app, then `_fix_imports_only` for
        the other modules the migration may rewrite: each is independent work
        (`Project.map`), whose problems, new module and plans are merged in that order."""
        def one(item: tuple[str, tuple[str, str] | None]) -> tuple[list, list[FileChange], list, list, set[str] | None]:
            path, user = item
            kept = self.problems, self.modules, self.plans, self.view_plans
            self.problems, self.modules, self.plans, self.view_plans = [], {}, [], []
            try:
                if user is None:
                    self._fix_imports_only(path, ext_vars)
                else:
                    self._migrate_user(path, *user, names.get(path), ext_vars)
                # as changes: one made in a worker comes back with its text, rendered there
                modules = [FileChange(path, module, "") for path, module in self.modules.items()]
                functions = self.app_functions[path][1] if path in self.app_functions else None
                return self.problems, modules, self.plans, self.view_plans, functions
            finally:
                self.problems, self.modules, self.plans, self.view_plans = kept

        items: list[tuple[str, tuple[str, str] | None]] = sorted(self.users.items())
        items += [(path, None) for path in self._rewritable if path != self.site.path and path not in self.users]
        sizes = self.project.sizes(path for path, _ in items)
        for (path, _), (problems, modules, plans, view_plans, functions) in zip(items, self.project.map(items, one,
                                                                                                        sizes)):
            self.problems += problems
            self.modules.update((change.path, change.new) for change in modules)
            self.plans += plans
            self.view_plans += view_plans
            if functions is not None:  # (set in a worker, when the module was migrated there)
                self.app_functions[path] = (self.project.parse(path), functions)

    def _migrate_user(self, path: str, local: str, role: str, bp_name: str | None, ext_vars: set[str]) -> None:
        parsed = module = self.project.parse(path)
        imports = import_map(self.project, path)
        name = self.project.module_name(path)
        module = self._rewrite_imports(path, module, ext_vars, role)
        if role in ("outer", "wsgi"):
            self.modules[path] = self._rewrite_nested_imports(path, module, ext_vars, role)
            return
        plan = self._blueprint_plan(path, name or "", local, bp_name, module)
        mover = RegistrationMover(plan, lambda node: self.project.position_lookup(path)(node)[0], self.problems)
        body = []
        reported = len(self.problems)
        app_functions = functions_using(module.body, local)
        self.app_functions[path] = (parsed, app_functions)
        extensions = AppModuleSplitter(module, local, imports, mover, moves_extensions=False)
        for stmt in module.body:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                new = mover.convert_def(stmt)
                body.append(stmt if new is None else new)
            elif role == "views" and (moved := mover.convert_add_url_rule(stmt)) is not None:
                body.append(moved)
            elif self._bind_extension_later(extensions, stmt, plan, body):
                continue
            else:
                calls = calls_to(stmt, app_functions)
                if calls:
                    self.problem(path, stmt, f"{calls[0].func.value}() uses the app and is called at import "
                                             "time here, where no app exists any more")
                if refs_outside_function_bodies(stmt, local):
                    self.problem(path, stmt, f"`{local}` (the app) is used at import time here; "
                                             "it cannot become current_app")
                body.append(stmt)
        if len(self.problems) > reported:
            return
        body = list(self._rewrite_nested_imports(path, module.with_changes(body=body), ext_vars, role).body)
        if bp_name:
            index = _after_imports(body)
            body.insert(index, self._blueprint_statement(module, plan, [cst.EmptyLine()] if index else []))
        new = module.with_changes(body=body)
        new = self._add_flask_imports(path, new, imports, plan)
        if new is None:
            return
        self.modules[path] = new
        if bp_name or plan.factory_hooks or plan.extension_inits:
            self.view_plans.append(plan)
        self.plans.append(plan)

    def _bind_extension_later(self, splitter: AppModuleSplitter, stmt: cst.CSTNode, plan: BlueprintPlan,
                              body: list[cst.CSTNode]) -> bool:
        """`db = SQLAlchemy(app)` in another module: the object stays there, unbound, and
        create_app calls its init_app. Handled: the constructor form, `x.init_app(app)`."""
        before = len(splitter.split.extensions), len(splitter.split.init_order)
        if not splitter.extension_statement(stmt):
            return False
        new_exts = splitter.split.extensions[before[0]:]
        if new_exts and new_exts[0].statement is not None and new_exts[0].bound_at_import:
            ext = new_exts[0]
            extras = [arg.strip() for arg in ext.init_args.split(",")[1:]]
            plan.extension_inits.append((ext.var, extras))
            body.append(ext.statement.with_changes(leading_lines=stmt.leading_lines))
        elif len(splitter.split.init_order) > before[1]:
            call = stmt.body[0].value
            ext = next(e for e in splitter.split.extensions if e.var == call.func.value.value)
            if len(call.args) != 1:
                self.problem(plan.path, stmt, f"{ext.var}.init_app with more arguments than the app: not migrated")
            plan.extension_inits.append((ext.var, []))
        else:
            body.append(stmt)  # an extension created without the app: nothing to change
        return True

    def _fix_imports_only(self, path: str, ext_vars: set[str]) -> None:
        """A module that does not import the app at module level, which the migration may
        rewrite (`_rewritable`): extension imports, and imports inside functions (a
        test's `from app import app`)."""
        module = self.project.parse(path)
        if module is None:
            return
        name = self.project.module_name(path)
        role = "inner" if name and imports_transitively(self.project, self.app_module, name) else "outer"
        new = self._rewrite_imports(path, module, ext_vars, role)
        new = self._rewrite_nested_imports(path, new, ext_vars, role)
        # rendering costs: only when something changed, and the new version's unchanged
        # statements are not rendered again (`code_of` with the path, the module first)
        if new is not module and code_of(module, path) != code_of(new, path):
            self.modules[path] = new

    def _rewrite_nested_imports(self, path: str, module: cst.Module, ext_vars: set[str], role: str) -> cst.Module:
        if not _has_nested_import_from(module):
            return module  # cheap test first: a transform rebuilds the whole tree
        migration = self
        name = self.project.module_name(path)

        class Nested(cst.CSTTransformer):
            depth = 0

            def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
                self.depth += 1

            def leave_IndentedBlock(self, original, updated):
                self.depth -= 1
                return updated

            def leave_SimpleStatementLine(self, original, updated):
                if self.depth == 0:
                    return updated
                out = migration._rewrite_import_line(path, module, updated, name, ext_vars, role, nested=True)
                if len(out) == 1 and out[0] is updated:
                    return updated
                return cst.FlattenSentinel(out) if out else cst.RemovalSentinel.REMOVE

        return module.visit(Nested())

    def _module_attribute_uses(self, module: cst.Module, imports: ImportMap) -> tuple[set[str], list[cst.Attribute]]:
        """`import app as app_module` then `app_module.app`: the app read through the module.
        (Extensions read that way still work: the app module imports them.)"""
        locals_ = {n for n, target in imports.names.items() if target == self.app_module}
        if not locals_:
            return locals_, []  # the module is not imported whole: no walk
        uses = [node for node in _attributes(module) if isinstance(node.value, cst.Name)
                and node.value.value in locals_ and node.attr.value == self.site.var]
        return locals_, uses

    def _redirect_module_attributes(self, path: str, module: cst.Module, role: str) -> cst.Module:
        """In scripts and tests, `app_module.app` -> `wsgi.app`; elsewhere it is a problem."""
        locals_, uses = self._module_attribute_uses(self.project.parse(path), import_map(self.project, path))
        if not uses:
            return module
        if role != "outer" or (module_defines(module, WSGI_MODULE)
                               and import_map(self.project, path).names.get(WSGI_MODULE) != WSGI_MODULE):
            for node in uses:
                self.problem(path, node, f"`{node.value.value}.{node.attr.value}` reads the app through its module, "
                                         "which will not have it; not followed")
            return module
        app = self.site.var

        class Redirect(cst.CSTTransformer):
            def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
                if (isinstance(updated.value, cst.Name) and updated.value.value in locals_
                        and updated.attr.value == app):
                    return updated.with_changes(value=cst.Name(WSGI_MODULE))
                return updated

        return add_import(module.visit(Redirect()), WSGI_MODULE)

    def _rewrite_imports(self, path: str, module: cst.Module, ext_vars: set[str], role: str) -> cst.Module:
        """Module-level imports from the app module; lines that imported only the app go."""
        name = self.project.module_name(path)
        body = []
        carried: list[cst.EmptyLine] = []
        for stmt in module.body:
            replaced = self._rewrite_import_line(path, module, stmt, name, ext_vars, role)
            if not replaced:
                carried += [line for line in stmt.leading_lines if line.comment is not None]
                comment = stmt.trailing_whitespace.comment
                if comment is not None and not comment.value.startswith(LINT_PRAGMAS):
                    carried.append(cst.EmptyLine(comment=comment))
                continue
            if carried:
                replaced[0] = replaced[0].with_changes(leading_lines=[*carried, *replaced[0].leading_lines])
                carried = []
            body.extend(replaced)
        if len(body) != len(module.body) or any(new is not old for new, old in zip(body, module.body)):
            module = module.with_changes(body=body)  # else the same tree: callers see nothing changed
        return self._redirect_module_attributes(path, module, role)

    def _rewrite_import_line(self, path, module, stmt, module_name, ext_vars, role, nested=False) -> list[cst.CSTNode]:
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.ImportFrom) and not isinstance(stmt.body[0].names, cst.ImportStar)):
            return [stmt]
        node = stmt.body[0]
        source = _import_source(node, module_name, is_package(path))
        if source != self.app_module:
            return [stmt]
        keep, to_ext, to_app = [], [], []
        for alias in node.names:
            imported = alias.name.value if isinstance(alias.name, cst.Name) else None
            if imported == self.site.var:
                to_app.append(alias)
            elif imported in ext_vars:
                to_ext.append(alias)
            else:
                keep.append(alias)
        if not to_ext and not to_app:
            return [stmt]
        lines: list[str] = []
        if to_ext:
            target = self._relative_or_absolute(node, module_name, is_package(path), self.ext_module)
            lines.append(f"from {target} import {_alias_list(to_ext)}")
        if to_app and role == "outer":
            lines.append(f"from {WSGI_MODULE} import {_alias_list(to_app)}")
        elif to_app and role == "wsgi":
            target = self._relative_or_absolute(node, module_name, is_package(path), self.app_module)
            lines.append(f"from {target} import {FACTORY}")
        elif to_app and nested:  # runs inside the app: the app of the current context
            lines += [f"from flask import current_app as {a.asname.name.value if a.asname else self.site.var}"
                      for a in to_app]
        out: list[cst.CSTNode] = []
        if keep:
            keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            out.append(stmt.with_changes(body=[node.with_changes(names=keep)]))
        for line in lines:
            out.append(parse_statement(line + "\n", config=parsing_config(module)))
        if to_app and role == "wsgi":
            # the server's name for the app, and `app` for scripts and tests importing it from here
            app = self.site.var
            aliases = {a.asname.name.value if a.asname else app for a in to_app} - {app}
            code = f"\n{app} = {FACTORY}()\n" + "".join(f"{alias} = {app}\n" for alias in sorted(aliases))
            created = list(cst.parse_module(code, config=parsing_config(module)).body)
            out += [created[0].with_changes(leading_lines=[cst.EmptyLine()]), *created[1:]]
        if not out:  # the line imported only the app
            return []
        out[0] = out[0].with_changes(leading_lines=stmt.leading_lines, trailing_whitespace=stmt.trailing_whitespace)
        return out

    def _relative_or_absolute(self, node: cst.ImportFrom, module_name, package: bool, target: str) -> str:
        level = len(node.relative)
        if level:
            base = resolve_relative(module_name, level, None, package)
            if base and target.startswith(base + "."):
                return "." * level + target[len(base) + 1:]
        return target

    # -- new files -------------------------------------------------------------------------
    def _check_new_files(self) -> None:
        if self.split is None:
            return
        for path in ([self.ext_path] if self.split.extensions else []) + [self.wsgi_path]:
            if self.project.exists(path) or self.project.on_disk(path):
                if path == self.wsgi_path and path in self.modules:
                    continue  # an existing wsgi.py that imported the app: rewritten to call the factory
                self.problem(path, 1, f"{path} already exists; the migration would need to create it")

    def _extensions_text(self) -> str:
        module = self.project.parse(self.site.path)
        imports: list[str] = []
        for ext in self.split.extensions:
            imports += [line for line in ext.imports if line not in imports]
        statements = [statement_code(module, ext.statement) for ext in self.split.extensions]
        return ('"""Extension objects, created without an app: `create_app()` binds them with init_app()."""\n'
                + "".join(f"{line}\n" for line in imports) + "\n" + "".join(statements))

    def _wsgi_text(self) -> str:
        app = self.site.var
        aliases = "".join(f"{name} = {app}\n" for name in ("application",) if name != app)
        return ('"""Entry point for WSGI servers and `flask run`: `gunicorn wsgi:app`, `gunicorn wsgi`."""\n'
                f"from {self.app_module} import {FACTORY}\n\n{app} = {FACTORY}()\n{aliases}")

    # -- endpoints -----------------------------------------------------------------------------
    def _qualify_endpoints(self) -> None:
        for plan in self.plans:
            self.endpoints.update(plan.endpoints)
        if not self.endpoints:
            return
        # (the byte search, as every prefilter: decoding the whole tree's text costs more)
        for path in self.project.candidates(("url_for", "login_view", "refresh_view", "endpoint")):
            if not self._belongs_to_app(path):
                continue
            original = self.project.parse(path)
            current = self.modules.get(path, original)
            imports = import_map(self.project, path)
            qualifier = EndpointQualifier(imports, self.endpoints)
            new = current.visit(qualifier)
            if qualifier.count:
                self.modules[path] = new
        self._rewrite_entry_points()
        for path in self.project.other_paths(TEMPLATE_SUFFIXES):
            text = self.project.text(path)
            if text is None or ("url_for" not in text and "endpoint" not in text):
                continue
            new_text, count = qualify_template(text, self.endpoints)
            if count:
                self.templates[path] = new_text

    def _rewrite_entry_points(self) -> None:
        """Procfile, Dockerfile, .flaskenv...: `app:app` has no app any more; `wsgi:app` has."""
        for path in self.project.other_paths(ENTRY_POINT_FILES):
            text = self.project.text(path)
            if not text or f"{self.app_module}:{self.site.var}" not in text:
                continue
            new, lines = rewrite_entry_points(text, self.app_module, self.site.var, WSGI_MODULE)
            if lines:
                self.templates[path] = new
                self.changes.report(path, lines[0], f"entry point {self.app_module}:{self.site.var} -> "
                                                    f"{WSGI_MODULE}:{self.site.var} (the app is now built by "
                                                    f"{FACTORY}() in {self.wsgi_path})", Severity.INFO)

    def _belongs_to_app(self, path: str) -> bool:
        """Whether the module can see this app's endpoints: it is the app, one the app
        imports, or one that imports the app (tests, scripts). Other apps' code is not."""
        name = self.project.module_name(path)
        if path == self.site.path or path in self.modules or path in self.users:
            return True
        return bool(name) and (imports_transitively(self.project, self.app_module, name)
                               or imports_transitively(self.project, name, self.app_module))

    def _check_dynamic_endpoints(self) -> None:
        """`url_for(name)` may name a view that is about to get a blueprint prefix: the
        migration stops, unless the user allowed it (then each one is a warning to fix)."""
        if not any(plan.bp_name for plan in [self.app_plan, *self.view_plans]):
            return
        allowed = self.allow_dynamic_endpoints
        message = ("url_for() with a computed endpoint: it may name a view that moves onto a blueprint and "
                   + ("then fails with BuildError; qualify the names it receives by hand (e.g. 'main.index')"
                      if allowed else "would then fail with BuildError; nothing was changed. Make it a literal, "
                      "or run with --option app-factory.allow-dynamic-endpoints=true and qualify the names by hand"))
        found: list[tuple[str, int]] = []
        for path, module in app_modules(self.project, ("url_for",)):
            if self._belongs_to_app(path):
                finder = DynamicEndpointFinder(import_map(self.project, path))
                finder.walk(module)
                found += [(path, self.project.position_lookup(path)(call)[0]) for call in finder.found]
        for path in self.project.other_paths(TEMPLATE_SUFFIXES):
            text = self.project.text(path) or ""
            found += [(path, line) for line in (dynamic_url_for_lines(text) if "url_for" in text else ())]
        for path, line in found:
            if allowed:
                self.changes.report(path, line, message, Severity.WARNING)
            else:
                self.problem(path, line, message)

    def _write(self) -> None:
        for path, module in sorted(self.modules.items()):
            if path == self.site.path:
                reason = f"create_app() factory; views on a blueprint; extensions in {self.ext_module}"
            else:
                reason = "imports and registrations follow the app factory"
            self.changes.modify(path, module, reason)
        for path, text in sorted(self.templates.items()):
            self.changes.modify(path, text, "endpoint names qualified with their blueprint")
        if self.split.extensions:
            self.changes.create(self.ext_path, self._extensions_text(), "extension objects without an app")
        if not self.project.exists(self.wsgi_path):
            self.changes.create(self.wsgi_path, self._wsgi_text(), "entry point: app = create_app()")
        self.changes.unit = True


# -- small helpers --------------------------------------------------------------------------------

def assigned_name_in(module: cst.Module, name: str) -> bool:
    return any((assigned_name(s) or ("",))[0] == name for s in module.body)


def _drop_unused_imports(module: cst.Module, candidates: set[str]) -> cst.Module:
    """Remove top-level imports of `candidates` that nothing in the module uses any more."""
    unused = candidates - {n.value for n in name_uses(module)}
    if not unused:
        return module
    body = []
    for stmt in module.body:
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        if isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
            keep = [a for a in small.names if _bound_name(a) not in unused]
            if not keep:
                continue
            if len(keep) < len(small.names):
                keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                stmt = stmt.with_changes(body=[small.with_changes(names=keep)])
        body.append(stmt)
    return module.with_changes(body=body)


def _is_import_line(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)


def _bound_name(alias: cst.ImportAlias) -> str:
    if alias.asname is not None:
        return alias.asname.name.value
    return (get_full_name_for_node(alias.name) or "").split(".")[0]


def _sibling_module(module_name: str, package: bool, name: str) -> str:
    if package:
        return f"{module_name}.{name}"
    parent = module_name.rpartition(".")[0]
    return f"{parent}.{name}" if parent else name


def _wsgi_path(path: str, module_name: str) -> str:
    directory = PurePosixPath(path).parent
    ups = module_name.count(".") + (1 if is_package(path) else 0)
    for _ in range(ups):
        directory = directory.parent
    return str(directory / f"{WSGI_MODULE}.py")


def _import_source(node: cst.ImportFrom, module_name: str | None, package: bool) -> str | None:
    source = get_full_name_for_node(node.module) if node.module else None
    return resolve_relative(module_name, len(node.relative), source, package)


def _alias_list(aliases: list[cst.ImportAlias]) -> str:
    parts = []
    for alias in aliases:
        name = alias.name.value
        parts.append(f"{name} as {alias.asname.name.value}" if alias.asname else name)
    return ", ".join(parts)


def _after_imports(body: list[cst.CSTNode]) -> int:
    """Index after the leading run of imports (and docstring)."""
    index = 0
    for i, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and all(
                isinstance(s, (cst.Import, cst.ImportFrom)) or (i == 0 and isinstance(s, cst.Expr)) for s in stmt.body):
            index = i + 1
        else:
            break
    return index


def _has_nested_import_from(module: cst.Module) -> bool:
    """Whether a `from ... import` sits inside a compound statement (a function, an if).
    (The finder's walk enters no expression: none can hold a statement.)"""
    return any(_imports_from(stmt) for stmt in module.body if isinstance(stmt, cst.BaseCompoundStatement))


_imports_from = node_finder(cst.ImportFrom)


_attributes = node_finder(cst.Attribute)
