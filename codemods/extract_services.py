"""`extract-services`: the business logic of fat views moves into service functions.

Only a run of statements whose move provably keeps behaviour is extracted (data flow
from libcst's scope metadata, see `_extract_services_flow`); everything else stays and
each fat view that keeps its bulk gets a finding saying why.
"""

from __future__ import annotations

import builtins
import functools
import keyword
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import CodeRange, ImportAssignment

from flask_refactor.codemod import ChangeSet, Codemod, Option, Severity
from flask_refactor.positions import code_ranges, lines_spanned, statement_line_count
from flask_refactor.project import Project
from flask_refactor.scopes import scope_map
from flask_refactor.snippets import parse_statement, parsing_config
from flask_refactor.walk import TargetedTransformer, all_calls, node_finder

from ._extract_services_flow import Blocker, ModuleFacts, Region, ViewFlow, count_statements, routine
from .support.cache import per_statement, per_tree
from .support.flask import app_modules, import_map, is_package, project_module_of
from .support.imports import ImportMap, resolve_relative
from .support.names import names_used
from .support.routes import is_view
from .support.views import (
    is_request_bound, is_request_free_object, module_reads_request, patched_attributes, reaches_on_import,
)

LINE_LIMIT = 88  # wrap generated calls and signatures longer than this
SERVICES_ALIASES = ("services", "services_module", "view_services")
MAX_REASONS = 4


@dataclass
class _ServicesFile:
    """The services module beside one or more views modules: what it binds, what this
    run adds to it."""

    path: str
    module_name: str
    existing: cst.Module | None
    style: cst.Module  # the module whose indentation and newlines new code follows
    bound: dict[str, str] = field(default_factory=dict)  # name -> qualified ("" for a definition)
    new_imports: dict[str, list[str]] = field(default_factory=dict)  # "from x" / "import" -> names
    functions: list[cst.FunctionDef] = field(default_factory=list)
    views: list[str] = field(default_factory=list)
    # service -> (the views module it was extracted from, what it returns, the views that
    # call it)
    extracted: dict[str, tuple[str, tuple[str, ...], list[str]]] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)  # service -> `_service_code`, once asked
    futures: set[str] = field(default_factory=set)  # `from __future__` features it has
    # what the views module being extracted read of it and added to it (`_Ledger`)
    ledger: "_Ledger | None" = None

    @property
    def package(self) -> bool:
        return is_package(self.path)

    def conflict(self, region: Region) -> str | None:
        for name, use in region.globals.items():
            if self._clashes(name, use.qualified):
                return f"`{name}` already means something else in {self.path}"
        for name in sorted(region.builtins_used):
            if self._clashes(name, None):
                return f"{self.path} defines `{name}`, which would shadow the builtin the code uses"
        return None

    def free(self, name: str) -> bool:
        return not self._clashes(name, None) and not keyword.iskeyword(name) and not hasattr(builtins, name)

    def _clashes(self, name: str, qualified: str | None) -> bool:
        """Whether `name` is bound here to anything but `qualified` (to anything at all,
        for None): every question the extraction asks of what earlier views bound."""
        answer = self.bound.get(name) not in (None, qualified)
        if self.ledger is not None:
            self.ledger.asked.append((name, qualified, answer))
        return answer

    def bind_global(self, name: str, qualified: str, imports: list[tuple[str, str]]) -> None:
        """Bind a global the moved code reads, importing it as the views module does,
        unless an earlier extraction did (`conflict` said it means the same here)."""
        self._log("bind_global", name, qualified, imports)
        if name in self.bound:
            return
        for key, text in imports:
            names = self.new_imports.setdefault(key, [])
            if text not in names:
                names.append(text)
        self.bound[name] = qualified

    def bind_service(self, name: str) -> None:
        self._log("bind_service", name)
        self.bound[name] = ""

    def add_function(self, function: cst.FunctionDef, views_path: str, view: str, outputs: tuple[str, ...]) -> None:
        self._log("add_function", function, views_path, view, outputs)
        self.functions.append(function)
        self.views.append(views_path)
        self.extracted[function.name.value] = (views_path, outputs, [view])

    def same_service(self, views_path: str, function: Callable[[], cst.FunctionDef]) -> str | None:
        """The service an earlier view of this views module was given with the code of
        `function()` (its name and docstring aside), if any: views often repeat a few lines
        (a pagination, a timestamp difference), and one service does for all. (Rendered
        only for a module's second extraction on: most have one.)"""
        earlier = [service for service, (path, _, _) in self.extracted.items() if path == views_path]
        if not earlier:
            return None
        code = _service_code(function())
        by_name = {f.name.value: f for f in self.functions}
        for service in earlier:
            if service not in self.codes:  # (a docstring `share` changes is not part of it)
                self.codes[service] = _service_code(by_name[service])
        return next((service for service in earlier if self.codes[service] == code), None)

    def share(self, service: str, view: str) -> None:
        """`view` calls `service` too: its docstring names every view that does."""
        self._log("share", service, view)
        _, outputs, views = self.extracted[service]
        views.append(view)
        index = next(i for i, function in enumerate(self.functions) if function.name.value == service)
        self.functions[index] = _naming_views(self.functions[index], views, outputs)

    def _log(self, method: str, *args: Any) -> None:
        if self.ledger is not None:
            self.ledger.done.append((method, args))


@dataclass
class _Ledger:
    """One views module's dealings with its services module, so that an extraction done
    in a worker, against the services module as it was when the worker started, can be
    checked and replayed in order: it holds if every question it asked about the names
    bound there gets the same answer now. (A name it bound itself answers the same, or
    makes it be done again: correct either way.)"""

    asked: list[tuple[str, str | None, bool]] = field(default_factory=list)  # `_clashes` calls, answers
    done: list[tuple[str, tuple]] = field(default_factory=list)  # the `_ServicesFile` calls that changed it

    def holds_for(self, services_file: _ServicesFile) -> bool:
        return all((services_file.bound.get(name) not in (None, qualified)) == answer
                   for name, qualified, answer in self.asked)

    def replay(self, services_file: _ServicesFile) -> None:
        for method, args in self.done:
            getattr(services_file, method)(*args)


class ExtractServices(Codemod):
    name = "extract-services"
    summary = "Move the business logic of fat views into service functions, where behaviour provably stays the same."
    order = 60
    safety = "safe"
    needles = ("route", ".get(", ".post(", ".put(", ".delete(", ".patch(")
    uses_index = True
    options = (
        Option("max_statements", int, 25, "a view with more statements than this is fat"),
        Option("max_lines", int, 40, "a view with more lines than this is fat"),
        Option("min_statements", int, 3,
               "smallest run of statements worth a service function (bindings of literals not counted)"),
        Option("names", list, [], "service names: VIEW=SERVICE or MODULE.VIEW=SERVICE, comma-separated"),
    )
    explain = '''\
A view longer than `max_statements` statements or `max_lines` lines is split. Reading the
request (`request`, `session`, `g`, `current_app`, Flask-Login's `current_user`, forms)
and building the response (`render_template`, `redirect`, `jsonify`, `flash`, `abort`,
`url_for`) stay in the view; the largest run of statements between them - queries,
computation, commits - moves into a function in `services.py` beside the views module
(created or extended). Its parameters are the view's values it reads (what the view
imported for it, the service imports too, in its body as the view does), its return value
the values the view still uses; the view calls it (`await`s it for an `async def` view).
Decorators stay on the view. The service needs no request context when called.

A run is moved only when that provably keeps behaviour, from libcst's scope analysis:
no `return`, `yield`, `break`/`continue`, `global`/`nonlocal` or `del` in it; every value
it reads is certainly bound before it and every value it sets that the view reads later
is certainly bound after it; no closure shares its variables; no request-context proxy,
not even through a local (`user = current_user`), an import inside the view (`from flask
import request` in a blueprint factory) or a project module that reads the request; no
import whose name the view still uses after it (a service returns values, not what it
imported); module-level names it uses are imports that `services.py` can repeat without
an import cycle, and that no test patches on the views module (`mock.patch("app.views.x")`).
A run must hold `min_statements` statements of work: bindings of literals (`rows = []`,
`page = None`) move along but do not count.
Only top-level statements of the view and of its `if`/`else` branches are candidates
(never inside loops, `try` or `with`), so commits and rollbacks keep their order
relative to the view's returns. Otherwise the view is left alone with a finding listing
the reasons ("early return at line 31", "uses `request.form` inside a loop at line 40").

Services are named after their view (`create_order` -> `services.create_order`), or
`<view>_service` when that name is taken; set names with
`names = ["create_order=place_order"]`. Views of one module that would move the same code
(the same lines, reading and returning the same names) call one service, whose docstring
names them all. A view that already calls its services module is not split again.

Before (shop/views.py):

    @bp.post("/orders")
    def create_order():
        sku = request.form["sku"]
        qty = int(request.form.get("qty", 1))
        product = Product.query.filter_by(sku=sku).one()
        order = Order(product=product, quantity=qty, total=product.price * qty)
        db.session.add(order)
        db.session.commit()
        flash("Order placed")
        return redirect(url_for("shop.order", order_id=order.id))

After:

    @bp.post("/orders")
    def create_order():
        sku = request.form["sku"]
        qty = int(request.form.get("qty", 1))
        order = services.create_order(sku, qty)
        flash("Order placed")
        return redirect(url_for("shop.order", order_id=order.id))

    # shop/services.py
    def create_order(sku, qty):
        """Run the business logic of the create_order view and return order."""
        product = Product.query.filter_by(sku=sku).one()
        ...
        return order
'''

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.service_names: dict[str, str] = {}
        for item in self.config["names"]:
            view, sep, service = (part.strip() for part in item.partition("="))
            if not sep or not service.isidentifier() or keyword.iskeyword(service) or not view:
                raise ValueError(f"{self.name}: option 'names': expected VIEW=SERVICE, got {item!r}")
            self.service_names[view] = service

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        changes.unit = True  # a view calling a service that was not written would be broken
        services: dict[str, _ServicesFile] = {}
        modules = [_ViewsModule(self, project, path, module, services)
                   for path, module in app_modules(project, self.needles)]
        with_views = [views_module for views_module in modules if views_module.find_views()]
        ready = [views_module for views_module in with_views if views_module.prepare()]
        results = project.map(ready, _extract, project.sizes(views_module.path for views_module in ready))
        for views_module, (part, ledger) in zip(ready, results):
            if views_module.ledger is None:  # extracted in a worker, against the services files of then
                services_file = services[views_module.services_path]  # each was created here, in `prepare`
                if ledger.holds_for(services_file):
                    ledger.replay(services_file)
                    views_module.changes = part
                else:  # an earlier module took a name it relied on: again, here, in order
                    _extract(views_module)
        for views_module in modules:
            changes.changes.update(views_module.changes.changes)
            changes.findings.extend(views_module.changes.findings)
        for services_file in services.values():
            if not services_file.functions:
                continue
            new = _render_services(services_file)
            reason = "service functions extracted from " + ", ".join(sorted(set(services_file.views)))
            if services_file.existing is None:
                changes.create(services_file.path, new, reason)
            else:
                changes.modify(services_file.path, new, reason)
        return changes


class _ViewsModule:
    """One module with views: plans its extractions, then rewrites it once."""

    def __init__(self, codemod: ExtractServices, project: Project, path: str, module: cst.Module,
                 services: dict[str, _ServicesFile]) -> None:
        self.codemod = codemod
        self.config = codemod.config
        self.project = project
        self.path = path
        self.module = module
        self.services = services
        self.changes = codemod.new_changeset()  # this module's part, merged in module order
        self.replacements: dict[int, cst.IndentedBlock] = {}
        self.verdicts: dict[tuple[str, str], str | None] = {}  # asked per read of a name: kept
        self.ledger: _Ledger | None = None  # set when extracted in this process
        self.views: list[cst.FunctionDef] = []  # (`find_views`)

    def report(self, func: cst.FunctionDef, message: str, severity: Severity = Severity.INFO) -> None:
        self.changes.report(self.path, self.positions[func.name].start.line, message, severity)

    def find_views(self) -> bool:
        """Whether the module has views (kept in `views`)."""
        imports = import_map(self.project, self.path)
        self.views = [f for f in _functions(self.module) if is_view(f, imports, self.project, self.module)]
        return bool(self.views)

    @functools.cached_property
    def positions(self) -> Mapping[cst.CSTNode, CodeRange]:
        return code_ranges(self.module, self.path)

    def prepare(self) -> bool:
        """Whether this module may have fat views to extract. Its services module is
        created here, in module order: by the first views module with fat views. Once an
        earlier module created it, which views are fat (and whether the services module
        takes them) is decided where the module is extracted."""
        imports = import_map(self.project, self.path)
        self.fat = None
        if self.services_path in self.services:
            self._ask_verdicts(imports, self.views)
            return True
        if not self._settle(self.views):
            return False
        self._ask_verdicts(imports, self.fat)
        return True

    def _settle(self, views: list[cst.FunctionDef]) -> bool:
        """Find the fat views and the services module that takes them, reporting why
        none can be extracted: False then."""
        self.fat = [v for v in views if self._is_fat(v)]
        if not self.fat:
            return False
        if self.module_name is None:
            for view in self.fat:
                self.report(view, f"view `{view.name.value}` not extracted: {self.path} is not importable "
                            "as a module, so no services module can sit beside it")
            return False
        services_file, problem = self._services_file()
        if services_file is None:
            for view in self.fat:
                self.report(view, f"view `{view.name.value}` not extracted: {problem}")
            return False
        self.services_file = services_file
        return True

    def _ask_verdicts(self, imports: ImportMap, views: list[cst.FunctionDef]) -> None:
        """Answer, here, what the extraction will ask of the project about the imported
        names these views read: in a worker, the answers (and the files parsed for them)
        would be lost."""
        read = frozenset().union(*(names_used(view.body) for view in views))
        for name in sorted(read & imports.names.keys()):
            qualified = imports.names[name]
            if not is_request_bound(qualified):
                self._verdict(name, qualified)

    def extract(self) -> tuple[ChangeSet, _Ledger]:
        """Plan and rewrite the fat views (`prepare` said there may be some). What it does
        to the services module is kept in its ledger."""
        self.ledger = _Ledger()
        if self.fat is None and not self._settle(self.views):
            return self.changes, self.ledger
        self.services_file.ledger = self.ledger
        try:
            self._extract_all()
        finally:
            self.services_file.ledger = None
        return self.changes, self.ledger

    def _extract_all(self) -> None:
        self.scopes = scope_map(self.module)
        self.imports = import_map(self.project, self.path)
        self.global_scope = self.scopes[self.module]
        facts = ModuleFacts(self.path, self.module_name, self.imports, self.scopes, self.positions, self._verdict)
        self.facts = facts
        self.top_level_index = _top_level_imports(self.module)
        self.alias, self.import_index = self._services_alias()
        for view in self.fat:
            self._extract(view, ViewFlow(view, facts))
        if self.replacements:
            new = self.module.visit(_ReplaceBlocks(self.module, self.replacements))
            if self.import_needed:
                new = _insert_statement(new, self.import_index, self._services_import())
            self.changes.modify(self.path, new, "view business logic moved to " + self.services_file.path)

    # -- deciding -----------------------------------------------------------------------
    def _is_fat(self, func: cst.FunctionDef) -> bool:
        return (count_statements(func.body) > self.config["max_statements"]
                or self._spans_more_than(func, self.config["max_lines"]))

    def _spans_more_than(self, view: cst.FunctionDef, limit: int) -> bool:
        """Whether the view spans more than `limit` lines, from its `def` to its end. A
        top-level view spans at most the lines of its statement's text, which is cheap to
        have: positions, which render with far more bookkeeping, only for views that
        might be longer. A view inside a class or a function is rendered alone, not with
        what holds it (asked before the work is shared out: a class of forty methods
        rendered for each views module kept a core idle on OctoPrint)."""
        if not any(statement is view for statement in self.module.body):
            return lines_spanned(self.module, view, view.name) > limit
        if statement_line_count(self.module, view, self.path) <= limit:
            return False
        positions = self.positions
        return positions[view].end.line - positions[view.name].start.line + 1 > limit

    def _extract(self, view: cst.FunctionDef, flow: ViewFlow) -> None:
        name = view.name.value
        if self._delegates(view):
            return  # extracted before (or by hand): splitting it again would not be idempotent
        refusals = flow.view_blockers()
        if refusals:
            self.report(view, f"view `{name}` not extracted: " + _reasons(refusals))
            return
        min_weight = self.config["min_statements"]
        candidates, statement_blockers = flow.candidates(min_weight)
        region_blockers: list[Blocker] = []
        # largest first; a run that fails is retried without its first or last statement
        queue = list(candidates)
        tried: set[tuple[int, int, int]] = set()
        while queue:
            queue.sort(key=lambda c: -c.weight)
            candidate = queue.pop(0)
            key = (id(candidate.block), candidate.start, candidate.stop)
            if key in tried:
                continue
            tried.add(key)
            region = flow.region(candidate)
            if isinstance(region, Region):
                problem = self._module_problem(region)
                if problem is None:
                    self._apply(view, flow, region)
                    return
                region = Blocker(lambda region=region, problem=problem: (region.first_line, problem))
            region_blockers.append(region)  # (`_reasons` drops repeats: comparing now would render positions)
            queue.extend(flow.shrink(candidate, min_weight))
        if not candidates:
            why = (f"no run of {self.config['min_statements']} or more statements is free of request "
                   "handling and response building")
            reasons = ": " + _reasons(statement_blockers) if statement_blockers else ""
            self.report(view, f"view `{name}` not extracted: {why}{reasons}")
        else:
            self.report(view, f"view `{name}` not extracted: " + _reasons(region_blockers + statement_blockers))

    def _delegates(self, view: cst.FunctionDef) -> bool:
        prefix = self.services_module + "."
        for call in all_calls(view.body):
            target = self.imports.resolve(call.func) or ""
            if target.startswith(prefix):
                return True
        return False

    def _verdict(self, name: str, qualified: str) -> str | None:
        """Why the import of `name` (`qualified`) cannot be repeated in the services module.
        Asked for every read of the name in every statement: answered once per module."""
        if (name, qualified) not in self.verdicts:
            self.verdicts[name, qualified] = self._find_verdict(name, qualified)
        return self.verdicts[name, qualified]

    def _find_verdict(self, name: str, qualified: str) -> str | None:
        target = project_module_of(self.project, qualified)
        if target == self.module_name:
            return f"defined in {self.path} itself"
        patched = patched_attributes(self.project, self.module_name)
        if name in patched:
            return (f"which {patched[name]} patches as `{self.module_name}.{name}` "
                    "(the moved code would escape the patch)")
        if target is None:
            return None
        loaded = frozenset(".".join(self.module_name.split(".")[:i]) for i in range(1, self.module_name.count(".") + 1))
        if reaches_on_import(self.project, target, self.module_name, loaded):
            return f"from {target}, which imports {self.module_name} (an import cycle)"
        reading = module_reads_request(self.project, target)
        attribute = qualified[len(target) + 1:].split(".")[0] or None
        if reading and not is_request_free_object(self.project, target, attribute):
            return f"from {target}, which may read the request context ({reading})"
        return None

    def _module_problem(self, region: Region) -> str | None:
        conflict = self.services_file.conflict(region)
        if conflict:
            return conflict
        for use in region.globals.values():
            for stmt, _alias in use.imports:
                index = self.top_level_index.get(id(stmt))
                if index is None:
                    return f"the import of `{use.name}` is not a plain top-level import"
                if self.import_index is not None and index >= self.import_index:
                    return f"`{use.name}` is imported after the place the services import would go"
        return None

    # -- the services module --------------------------------------------------------------
    @functools.cached_property
    def module_name(self) -> str | None:
        return self.project.module_name(self.path)

    @functools.cached_property
    def services_module(self) -> str | None:
        """The dotted name of the services module beside this one (None if this one
        cannot be imported)."""
        if self.module_name is None:
            return None
        package = self.module_name if is_package(self.path) else self.module_name.rpartition(".")[0]
        return f"{package}.services" if package else "services"

    @functools.cached_property
    def existing_services_path(self) -> str | None:
        """The file of that services module, if the project has it."""
        return None if self.services_module is None else self.project.path_of_module(self.services_module)

    @functools.cached_property
    def services_path(self) -> str | None:
        """Where that services module is, or goes."""
        if self.services_module is None:
            return None
        parent = PurePosixPath(self.path).parent
        return self.existing_services_path or (str(parent / "services.py") if str(parent) != "." else "services.py")

    def _services_file(self) -> tuple[_ServicesFile | None, str]:
        services_module, existing_path, path = self.services_module, self.existing_services_path, self.services_path
        if path in self.services:  # another views module of this run extends it too
            services_file = self.services[path]
            features = _future_features(self.module)
            if features != services_file.futures and (services_file.existing is None
                                                      or not features <= services_file.futures):
                return None, (f"{path} gets code compiled with other `from __future__` imports "
                              f"than {self.path}'s")
            return services_file, ""
        if path == self.path:
            return None, f"{self.path} is itself the services module"
        if existing_path is None:
            if self.project.exists(path) or self.project.on_disk(path):
                return None, f"{path} exists but is not a Python module of this run"
            services_file = _ServicesFile(path, services_module, None, self.module)
            services_file.futures = _future_features(self.module)
        else:
            existing = self.project.parse(existing_path)
            if existing is None:
                return None, f"{existing_path} cannot be parsed"
            loaded = frozenset(".".join(services_module.split(".")[:i]) for i in range(1, services_module.count(".") + 1))
            if reaches_on_import(self.project, services_module, self.module_name, loaded):
                return None, f"{existing_path} imports {self.module_name}, so the views cannot import it"
            already_imported = any(q == services_module or q.startswith(services_module + ".")
                                   for q in import_map(self.project, self.path).names.values())
            action = _module_level_action(existing)
            if action is not None and not already_imported:
                return None, (f"importing {existing_path} from the views would run its module-level code "
                              f"(line {self.project.position_lookup(existing_path)(action)[0]}) at a new time")
            services_file = _ServicesFile(path, services_module, existing, existing)
            bound = _module_bindings(existing, services_module, is_package(path))
            if bound is None:
                return None, f"{existing_path} has a star import, so its names are unknown"
            services_file.bound = bound
            services_file.futures = _future_features(existing)
            missing = _future_features(self.module) - services_file.futures
            if missing:
                return None, (f"{self.path} uses `from __future__ import {', '.join(sorted(missing))}` "
                              f"and {existing_path} does not")
        self.services[path] = services_file
        return services_file, ""

    def _services_alias(self) -> tuple[str, int | None]:
        """The name the views module knows the services module by, and where its import
        goes (None when it is already imported)."""
        self.import_needed = False
        taken: set[str] = set()
        for scope in self.facts.unique_scopes():
            taken |= {a.name for a in scope.assignments}
            taken |= {a.node.value for a in scope.accesses if isinstance(a.node, cst.Name)}
        for alias in SERVICES_ALIASES:
            if self.imports.names.get(alias) == self.services_module:
                index = self.top_level_index.get(id(_binding_statement(self.global_scope, alias)))
                if index is not None:
                    return alias, index
        self.import_needed = True
        alias = next((a for a in SERVICES_ALIASES if a not in taken), None) or _numbered("services", taken)
        return alias, _import_insertion_index(self.module)

    def _services_import(self) -> cst.SimpleStatementLine:
        """`from . import services`, or `from pkg import services` in a module that uses
        only absolute imports, or `import services` beside a top-level module."""
        package, _, last = self.services_module.rpartition(".")
        suffix = f" as {self.alias}" if self.alias != last else ""
        if not package:
            code = f"import {last}{suffix}\n"
        else:
            source = "." if _uses_relative_imports(self.module) else package
            code = f"from {source} import {last}{suffix}\n"
        return parse_statement(code, config=parsing_config(self.module))

    # -- rewriting ---------------------------------------------------------------------------
    def _apply(self, view: cst.FunctionDef, flow: ViewFlow, region: Region) -> None:
        services_file = self.services_file
        view_name = view.name.value
        wanted = (self.codemod.service_names.get(f"{self.module_name}.{view_name}")
                  or self.codemod.service_names.get(view_name))
        used = set(region.globals) | region.builtins_used
        is_async = view.asynchronous is not None
        imports = _grouped_imports([_import_text(stmt, alias, self.module_name, is_package(self.path),
                                                 services_file.package)
                                    for stmt, alias in region.local_imports.values()])
        shared = None if wanted else services_file.same_service(self.path, lambda: _service_function(
            "_", view_name, region, is_async, services_file.style, imports))
        if shared is not None:
            services_file.share(shared, view_name)
            self.report(view, f"view `{view_name}` calls the service `{shared}` extracted from an earlier view "
                              f"of this module: the moved code is the same")
            self._replace_region(region, f"{self.alias}.{shared}", is_async)
            return
        if wanted:
            if not services_file.free(wanted) or wanted in used:
                self.report(view, f"view `{view_name}` not extracted: the service name `{wanted}` you chose is "
                            f"already taken in {services_file.path}", Severity.ERROR)
                return
            service = wanted
        else:
            service = next(n for n in [view_name, f"{view_name}_service", *(f"{view_name}_service_{i}" for i in range(2, 100))]
                           if services_file.free(n) and n not in used)
        for name, use in region.globals.items():
            lines = [_import_text(stmt, alias, self.module_name, is_package(self.path), services_file.package)
                     for stmt, alias in use.imports]
            services_file.bind_global(name, use.qualified, lines)
        services_file.bind_service(service)
        services_file.add_function(_service_function(service, view_name, region, is_async, services_file.style,
                                                     imports), self.path, view_name, tuple(region.outputs))
        self._replace_region(region, f"{self.alias}.{service}", is_async)

    def _replace_region(self, region: Region, service: str, is_async: bool) -> None:
        """The region's statements become the call of `service` (`alias.name`)."""
        call = _call_statement(service, region, is_async, self.module)
        stmts = region.statements
        call = call.with_changes(leading_lines=_leading_blanks(stmts[0]))
        body = list(region.block.body)
        body[region.start:region.stop] = [call]
        self.replacements[id(region.block)] = region.block.with_changes(body=body)


# -- helpers -------------------------------------------------------------------------------

def _extract(views_module: _ViewsModule) -> tuple[ChangeSet, _Ledger]:
    return views_module.extract()


@per_tree
def _functions(module: cst.Module) -> tuple[cst.FunctionDef, ...]:
    """Every function of the module, nested ones too, in source order."""
    return tuple(function for statement in module.body for function in _functions_in(statement))


# (no def inside a statement line: the bulk of the tree is not walked)
_functions_in = per_statement(node_finder(cst.FunctionDef, stop_at=(cst.SimpleStatementLine,)))


def _reasons(blockers: list[Blocker]) -> str:
    """The reasons, the unusual ones (early returns, loops, globals) before the
    request reads and response calls every view has."""
    seen: list[str] = []
    for blocker in sorted(blockers, key=routine):
        if blocker.reason not in seen:
            seen.append(blocker.reason)
    text = "; ".join(seen[:MAX_REASONS])
    if len(seen) > MAX_REASONS:
        text += f"; and {len(seen) - MAX_REASONS} more"
    return text


def _numbered(base: str, taken: set[str]) -> str:
    counter = 2
    while f"{base}_{counter}" in taken:
        counter += 1
    return f"{base}_{counter}"


def _top_level_imports(module: cst.Module) -> dict[int, int]:
    """id(import node) -> index in module.body, for imports directly at module level."""
    index = {}
    for position, stmt in enumerate(module.body):
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, (cst.Import, cst.ImportFrom)):
                    index[id(small)] = position
    return index


def _import_insertion_index(module: cst.Module) -> int:
    """After the last import that comes before the first def, class or block."""
    insert = 0
    for position, stmt in enumerate(module.body):
        if not isinstance(stmt, cst.SimpleStatementLine):
            break
        if any(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body):
            insert = position + 1
        elif position == 0 and isinstance(stmt.body[0], cst.Expr) and isinstance(stmt.body[0].value, cst.SimpleString):
            insert = 1  # the module docstring
    return insert


def _binding_statement(scope, name: str) -> cst.CSTNode | None:
    for assignment in scope.assignments:
        if assignment.name == name and isinstance(assignment, ImportAssignment):
            return assignment.node
    return None


def _insert_statement(module: cst.Module, index: int, stmt: cst.SimpleStatementLine) -> cst.Module:
    body = list(module.body)
    _insert_imports(body, index, [stmt])
    return module.with_changes(body=body)


def _insert_imports(body: list[cst.BaseStatement], index: int, imports: list[cst.SimpleStatementLine]) -> None:
    """Put `imports` at `index` of a module's `body`. A def or class they now stand right
    above gets the two blank lines PEP 8 puts between them."""
    following = body[index] if index < len(body) else None
    if imports and isinstance(following, (cst.FunctionDef, cst.ClassDef)):
        lines = following.leading_lines
        if not (lines and lines[0].comment is None):  # (not already apart from what is above)
            body[index] = following.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine(), *lines])
    body[index:index] = imports


def _module_level_action(module: cst.Module) -> cst.CSTNode | None:
    """The first module-level statement that does something when imported beyond binding
    names (a call, a loop, a `with`), if any."""
    for stmt in module.body:
        if isinstance(stmt, (cst.For, cst.While, cst.With)):
            return stmt
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Expr) and not isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString)):
                    return stmt
    return None


def _future_features(module: cst.Module) -> set[str]:
    features = set()
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if (isinstance(small, cst.ImportFrom) and small.module is not None and not small.relative
                        and get_full_name_for_node(small.module) == "__future__"
                        and not isinstance(small.names, cst.ImportStar)):
                    features |= {get_full_name_for_node(alias.name) for alias in small.names}
    return features


def _module_bindings(module: cst.Module, module_name: str, package: bool) -> dict[str, str] | None:
    """Module-level names of an existing services module: imports to their qualified
    names, everything else to "". None when a star import hides what it binds."""
    imports = ImportMap.of(module, module_name, package)
    if imports.star_modules:
        return None
    scope = scope_map(module)[module]
    bound = {}
    for assignment in scope.assignments:
        if isinstance(assignment, ImportAssignment) and assignment.name in imports.names:
            bound.setdefault(assignment.name, imports.names[assignment.name])
        else:
            bound[assignment.name] = ""
    return bound


def _grouped_imports(texts: list[tuple[str, str]]) -> list[str]:
    """Import lines from `_import_text`'s (group key, name) pairs, in their order: the
    names of one `from x import` on one line."""
    grouped: dict[str, list[str]] = {}
    for key, name in texts:
        grouped.setdefault(key, []).append(name)
    return [key if key.startswith("import ") else f"{key} {', '.join(names)}" for key, names in grouped.items()]


def _import_text(stmt: cst.Import | cst.ImportFrom, alias: cst.ImportAlias, views_module: str,
                 views_is_package: bool, services_is_package: bool) -> tuple[str, str]:
    """(group key, imported name) repeating one import of the views module in the
    services module beside it; relative imports stay relative unless the services module
    is a package (then they are made absolute)."""
    name = get_full_name_for_node(alias.name)
    suffix = f" as {alias.asname.name.value}" if alias.asname else ""
    if isinstance(stmt, cst.Import):
        return f"import {name}{suffix}", ""
    module = get_full_name_for_node(stmt.module) if stmt.module else ""
    level = len(stmt.relative)
    if level and services_is_package:  # its relative imports start from itself
        source = resolve_relative(views_module, level, module or None, views_is_package) or ""
    else:
        source = "." * level + module
    return f"from {source} import", f"{name}{suffix}"


def _render_services(services_file: _ServicesFile) -> cst.Module:
    style = services_file.style
    newline = style.default_newline
    import_lines = []
    for key, names in sorted(services_file.new_imports.items(), key=_import_order):
        import_lines.append(key if key.startswith("import ") else f"{key} {', '.join(sorted(names))}")
    functions = []
    for func in services_file.functions:
        blank = cst.EmptyLine()
        functions.append(func.with_changes(leading_lines=[blank, blank]))
    if services_file.existing is None:
        header = f'"""Business logic moved out of the views by flask-refactor: plain values in, plain values out."""{newline}'
        if services_file.futures:  # the moved code was compiled with these
            header += f"from __future__ import {', '.join(sorted(services_file.futures))}{newline}"
        text = header + "".join(line + newline for line in import_lines)
        module = cst.parse_module(text).with_changes(default_indent=style.default_indent,
                                                     default_newline=newline)
        return module.with_changes(body=[*module.body, *functions])
    module = services_file.existing
    body = list(module.body)
    index = _import_insertion_index(module)
    new_imports = []
    for key, names in sorted(services_file.new_imports.items(), key=_import_order):
        merged = key.startswith("from ") and _merge_into_existing(body, key, sorted(names))
        if not merged:
            line = key if key.startswith("import ") else f"{key} {', '.join(sorted(names))}"
            new_imports.append(parse_statement(line + newline, config=parsing_config(module)))
    _insert_imports(body, index, new_imports)
    return module.with_changes(body=[*body, *functions])


def _merge_into_existing(body: list[cst.BaseStatement], key: str, names: list[str]) -> bool:
    """Add `names` to an existing one-line `from x import a, b` at module level."""
    source = key[len("from "):-len(" import")]
    for position, stmt in enumerate(body):
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.ImportFrom)):
            continue
        node = stmt.body[0]
        if isinstance(node.names, cst.ImportStar) or node.lpar is not None:
            continue
        module = get_full_name_for_node(node.module) if node.module else ""
        if "." * len(node.relative) + module != source:
            continue
        aliases = list(node.names)
        aliases[-1] = aliases[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        for i, text in enumerate(names):
            name, _, asname = text.partition(" as ")
            alias = cst.ImportAlias(name=cst.parse_expression(name),
                                    asname=cst.AsName(name=cst.Name(asname)) if asname else None)
            if i < len(names) - 1:
                alias = alias.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            aliases.append(alias)
        body[position] = stmt.with_changes(body=[node.with_changes(names=aliases)])
        return True
    return False


def _uses_relative_imports(module: cst.Module) -> bool:
    return any(isinstance(small, cst.ImportFrom) and small.relative
               for stmt in module.body if isinstance(stmt, cst.SimpleStatementLine) for small in stmt.body)


def _import_order(item: tuple[str, list[str]]) -> tuple[int, str]:
    """`import x`, then `from x import`, then relative imports, alphabetically."""
    key = item[0]
    kind = 0 if key.startswith("import ") else 2 if key.startswith("from .") else 1
    return kind, key.lower()


def _leading_blanks(stmt: cst.BaseStatement) -> list[cst.EmptyLine]:
    blanks = []
    for line in stmt.leading_lines:
        if line.comment is not None:
            break
        blanks.append(line)
    return blanks


def _without_leading_blanks(stmt: cst.BaseStatement) -> cst.BaseStatement:
    lines = list(stmt.leading_lines)
    while lines and lines[0].comment is None:
        lines.pop(0)
    return stmt.with_changes(leading_lines=lines)


def _arguments(prefix: str, names: list[str], suffix: str, indent: str) -> str:
    one_line = f"{prefix}({', '.join(names)}){suffix}"
    if len(one_line) <= LINE_LIMIT or not names:
        return one_line
    inner = "".join(f"{indent}{name},\n" for name in names)
    return f"{prefix}(\n{inner}){suffix}"


def _service_function(service: str, view: str, region: Region, is_async: bool,
                      style: cst.Module, imports: list[str]) -> cst.FunctionDef:
    """The service: the region's statements after its docstring and the `imports` (the
    lines importing what the view imported for them)."""
    indent = style.default_indent
    header = _arguments(f"{'async ' if is_async else ''}def {service}", region.inputs, ":", indent)
    code = f'{header}\n{indent}"""{_service_doc([view], region.outputs)}"""\n'
    func = parse_statement(code, config=parsing_config(style))
    statements = region.statements
    statements[0] = _without_leading_blanks(statements[0])
    imported = [parse_statement(line + "\n", config=parsing_config(style)) for line in imports]
    body = [*func.body.body, *imported, *statements]
    if region.outputs:
        body.append(parse_statement(f"return {', '.join(region.outputs)}\n", config=parsing_config(style)))
    return func.with_changes(body=func.body.with_changes(body=body))


def _service_doc(views: list[str], outputs: Iterable[str]) -> str:
    names = views[0] if len(views) == 1 else f"{', '.join(views[:-1])} and {views[-1]}"
    doc = f"Run the business logic of the {names} view{'s' if len(views) > 1 else ''}"
    outputs = list(outputs)
    return f"{doc} and return {', '.join(outputs)}." if outputs else f"{doc}."


def _service_code(function: cst.FunctionDef) -> str:
    """A service's code but for its name and docstring: what two views' services must
    share to be one."""
    body = function.body.with_changes(body=function.body.body[1:])
    return cst.Module([]).code_for_node(function.with_changes(name=cst.Name("_"), body=body))


def _naming_views(function: cst.FunctionDef, views: list[str], outputs: tuple[str, ...]) -> cst.FunctionDef:
    """The service with its docstring naming these views."""
    doc = parse_statement(f'"""{_service_doc(views, outputs)}"""\n')
    body = list(function.body.body)
    body[0] = body[0].with_changes(body=doc.body)
    return function.with_changes(body=function.body.with_changes(body=body))


def _call_statement(target: str, region: Region, is_async: bool, module: cst.Module) -> cst.BaseStatement:
    prefix = ("await " if is_async else "") + target
    if region.outputs:
        prefix = f"{', '.join(region.outputs)} = {prefix}"
    code = _arguments(prefix, region.inputs, "", module.default_indent)
    return parse_statement(code + "\n", config=parsing_config(module))


class _ReplaceBlocks(TargetedTransformer):
    def __init__(self, module: cst.Module, replacements: dict[int, cst.IndentedBlock]) -> None:
        super().__init__(module, replacements)
        self.replacements = replacements

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock) -> cst.IndentedBlock:
        return self.replacements.get(id(original_node), updated_node)
