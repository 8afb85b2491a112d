"""What in a view needs the request: the Flask knowledge behind moving view code
elsewhere (extract-services), kept apart from `flask.py`. What a view is: `routes.py`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from flask_refactor.project import Project

from .flask import assigned_name, files_naming, import_map, import_reach, is_call_to, project_module_of
from .imports import ImportMap

# Packages whose objects are bound to the request (or app) context or build the
# response: code using any of their names stays in the view. Flask itself is here as a
# whole (request, session, g, current_app, flash, url_for, render_template, redirect,
# jsonify, abort, make_response, ...).
REQUEST_BOUND_PACKAGES = frozenset({
    "flask", "flask_login", "flask_wtf", "flask_babel", "flask_principal",
    "flask_jwt_extended", "flask_restful", "flask_restx", "werkzeug.local",
})

# Names that, imported by a project module, make that module's functions read the
# request context when called: calling into such a module is a hidden request read.
REQUEST_READING_NAMES = frozenset({
    "flask.request", "flask.session", "flask.g", "flask.current_app", "flask.globals",
    "flask.flash", "flask.get_flashed_messages", "flask.url_for", "flask.render_template",
    "flask.render_template_string", "flask.stream_template", "flask.jsonify", "flask.make_response",
    "flask.after_this_request", "flask.copy_current_request_context", "flask.has_request_context",
    "flask_login.current_user", "flask_login.login_user", "flask_login.logout_user",
    "flask_login.utils", "flask_wtf.FlaskForm", "flask_wtf.Form", "flask_babel.gettext",
    "flask_babel.ngettext", "flask_babel.lazy_gettext", "flask_babel.get_locale",
    "flask_restful.reqparse", "flask_jwt_extended.get_jwt_identity", "flask_jwt_extended.get_jwt",
    "flask_jwt_extended.current_user", "werkzeug.local",
})

# Methods that read the request when called: Flask-SQLAlchemy's `paginate()` takes
# `page`/`per_page` from `request.args` unless they are given.
REQUEST_READING_METHODS = frozenset({"paginate", "validate_on_submit", "is_submitted"})


def is_request_bound(qualified: str) -> bool:
    return any(qualified == pkg or qualified.startswith(pkg + ".") for pkg in REQUEST_BOUND_PACKAGES)


# Extension objects whose use in business logic reads nothing of the request (a module
# creating `db = SQLAlchemy(app)` does not make `db.session` request-bound).
REQUEST_FREE_EXTENSIONS = frozenset({
    "flask_sqlalchemy.SQLAlchemy", "flask_mail.Mail", "flask_bcrypt.Bcrypt", "flask_caching.Cache",
    "flask_marshmallow.Marshmallow", "flask_migrate.Migrate",
})


def module_reads_request(project: Project, module_name: str) -> str | None:
    """Why calling into the project module `module_name` may read the request context
    (it, or a module it imports something other than a request-free extension object
    from, imports a request-reading name), or None. Only the modules reachable from it
    are parsed."""
    cache = project.fact("views.reads-request", lambda proj: {})
    if module_name not in cache:
        # Most modules asked about reach none that imports a request-reading name, even
        # through every import: known from what each module reaches, found for all at
        # once (`_close`), from the import maps alone. The search, which names the way
        # to such a module (and may parse a module to see whether what it imports is a
        # request-free extension object), is made only for the others.
        reach = project.fact("views.import-reach", lambda proj: {})
        if module_name not in reach:
            _close(module_name, lambda module: [target for target, _ in _module_edges(project, module)], reach)
        reading = project.fact("views.imports-request", lambda proj: {})
        if any(_imports_request(project, module, reading) for module in reach[module_name]):
            cache[module_name] = _reads_request_from(project, module_name)
        else:
            cache[module_name] = None
    return cache[module_name]


def _reads_request_from(project: Project, start: str) -> str | None:
    why: dict[str, str] = {start: ""}
    queue = [start]
    while queue:
        current = queue.pop(0)
        imports = _imports_of(project, current)
        if imports is None:
            continue
        qualified = _request_import(imports)
        if qualified:
            return f"{why[current]}imports {qualified}"
        for target, attribute in _module_edges(project, current):
            if target not in why and not is_request_free_object(project, target, attribute):
                why[target] = f"{why[current]}imports {target}, which "
                queue.append(target)
    return None


def _imports_request(project: Project, module_name: str, known: dict[str, bool]) -> bool:
    """Whether the module imports a request-reading name itself (`known`: answers so far)."""
    if module_name not in known:
        imports = _imports_of(project, module_name)
        known[module_name] = imports is not None and _request_import(imports) is not None
    return known[module_name]


def _request_import(imports: ImportMap) -> str | None:
    """The first request-reading name (or whole module) these imports bring in."""
    return next((qualified for qualified in [*imports.names.values(), *imports.star_modules]
                 if _reads_request(qualified)), None)


def _imports_of(project: Project, module_name: str) -> ImportMap | None:
    path = project.path_of_module(module_name)
    return import_map(project, path) if path else None


def _module_edges(project: Project, module_name: str) -> list[tuple[str, str | None]]:
    """(project module, attribute imported from it or None) for each module-level import.
    Every search from every module walks these: kept per project revision."""
    cache = project.fact("views.module-edges", lambda proj: {})
    if module_name not in cache:
        cache[module_name] = _find_module_edges(project, module_name)
    return cache[module_name]


def _find_module_edges(project: Project, module_name: str) -> list[tuple[str, str | None]]:
    imports = _imports_of(project, module_name)
    edges = []
    for qualified in [*(imports.names.values() if imports else ()), *(imports.star_modules if imports else ())]:
        target = project_module_of(project, qualified)
        if target and target != module_name:
            edges.append((target, qualified[len(target) + 1:].split(".")[0] or None))
    return edges


def is_request_free_object(project: Project, module_name: str, attribute: str | None) -> bool:
    """Whether `module_name.attribute` is bound at module level to a request-free
    extension object (`db = SQLAlchemy(app)`). Kept per project revision."""
    cache = project.fact("views.request-free", lambda proj: {})
    if (module_name, attribute) not in cache:
        cache[module_name, attribute] = _find_request_free_object(project, module_name, attribute)
    return cache[module_name, attribute]


def _find_request_free_object(project: Project, module_name: str, attribute: str | None) -> bool:
    path = project.path_of_module(module_name)
    module = project.parse(path) if path and attribute else None
    if module is None:
        return False
    imports = import_map(project, path)
    for stmt in module.body:
        found = assigned_name(stmt)
        if found and found[0] == attribute:
            return is_call_to(found[1], imports, REQUEST_FREE_EXTENSIONS)
    return False


@functools.lru_cache(maxsize=4096)  # asked for every import on every search path
def _reads_request(qualified: str) -> bool:
    if qualified in ("flask", "flask_login", "flask_wtf", "flask_babel", "flask_jwt_extended"):
        return True  # the whole package: any attribute may be read
    return any(qualified == name or qualified.startswith(name + ".") for name in REQUEST_READING_NAMES)


def reaches_on_import(project: Project, source: str, target: str, loaded: frozenset[str] = frozenset()) -> bool:
    """Whether importing `source` (project modules, dotted) executes `target`'s import.

    `loaded` are modules known to be initialised already (e.g. the parent packages of
    the importing module): importing them runs nothing, so they are not followed. Nothing
    is parsed: imports come from the project index."""
    return target in _run_on_import(project, source, loaded)


def _run_on_import(project: Project, source: str, loaded: frozenset[str]) -> frozenset[str]:
    """Every module whose import starts when `source` is imported. Asked for many
    sources: what each module reaches is kept for the project revision, found for every
    module a search meets at once (`_close`)."""
    reached = project.memo(("run-on-import", loaded, project.revision), dict)
    if source not in reached:
        _close(source, lambda module: _imports_run(project, module, loaded), reached)
    return reached[source]


def _imports_run(project: Project, module: str, loaded: frozenset[str]) -> list[str]:
    """The modules whose import starts right away when `module` is imported: its project
    imports and its parent packages (importing a.b.c imports a and a.b first); none for
    a module `loaded` already."""
    if module in loaded:
        return []
    parts = module.split(".")
    return [target for target, _ in _module_edges(project, module)] + [".".join(parts[:i]) for i in range(1, len(parts))]


def _close(source: str, successors: Callable[[str], list[str]], reached: dict[str, frozenset[str]]) -> None:
    """Put in `reached` what `source`, and every module its `successors` lead to, reach
    (itself included). Modules leading to each other (a package and its modules) reach
    the same: each group of them (a strongly connected component, found by Tarjan's
    depth-first search) reaches itself and what the groups it leads to reach, which are
    complete before it is. A search from each module alone went over the same modules
    again for each: 197 searches of about 75 modules each on the benchmark's big app."""
    order: dict[str, int] = {source: 0}
    low: dict[str, int] = {source: 0}
    pending: list[str] = [source]  # met, not yet in a complete group
    frames = [(source, iter(successors(source)))]
    while frames:
        module, targets = frames[-1]
        for target in targets:
            if target in reached:
                continue  # in a group completed before
            if target not in order:
                order[target] = low[target] = len(order)
                pending.append(target)
                frames.append((target, iter(successors(target))))
                break
            low[module] = min(low[module], order[target])  # pending: in this module's group or one above
        else:
            frames.pop()
            if frames:
                above = frames[-1][0]
                low[above] = min(low[above], low[module])
            if low[module] == order[module]:  # the first met of its group: the group is complete
                group = pending[pending.index(module):]
                del pending[len(pending) - len(group):]
                found = set(group)
                for member in group:
                    for target in successors(member):
                        if target not in found:
                            found |= reached[target]
                closure = frozenset(found)
                for member in group:
                    reached[member] = closure


def patched_attributes(project: Project, module_name: str) -> dict[str, str]:
    """Attributes of `module_name` that some file patches: by dotted string
    (`mock.patch("pkg.views.requests.get")`, `monkeypatch.setattr("pkg.views.x", ...)`) or on
    the imported module object (`monkeypatch.setattr(views, "x", ...)`,
    `mock.patch.object(views, "x")`): attribute -> the file that does it."""
    def compute(proj: Project) -> dict[str, str]:
        found: dict[str, str] = {}
        naming = set(files_naming(proj, module_name))
        patching = _patching_files(proj)
        if not naming and not patching:
            return found  # (before compiling a pattern per module asked about)
        by_string = re.compile(r"""["']""" + re.escape(module_name) + r"""\.([A-Za-z_][A-Za-z0-9_]*)""")
        for path in sorted(naming | patching):  # the order of proj.paths(): first file wins
            text = proj.text(path) or ""
            for match in by_string.finditer(text):
                found.setdefault(match.group(1), path)
            if path not in patching:
                continue
            imports = import_map(proj, path)
            for local in imports.local_names_for(module_name) if imports else []:
                by_object = re.compile(r"(?:setattr|patch\.object)\(\s*" + re.escape(local)
                                       + r"""\s*,\s*["']([A-Za-z_][A-Za-z0-9_]*)""")
                for match in by_object.finditer(text):
                    found.setdefault(match.group(1), path)
        return found
    return project.fact(f"views.patched:{module_name}", compute)


def _patching_files(project: Project) -> set[str]:
    """Files that may patch attributes of a module object: patching it needs an import
    of it, so only files in the import reach."""
    return project.fact("views.patching", lambda proj: {
        path for path in import_reach(proj) if proj.mentions(path, ("setattr", "patch.object"))})
