"""support/routes.py: the one model of what a project registers with Flask (views,
hooks, error handlers, blueprints), and the callers that read it."""

from __future__ import annotations

import textwrap

import libcst as cst

from flask_refactor.codemods.support.context import FunctionRef, context_map
from flask_refactor.codemods.support.errors import registrations_in
from flask_refactor.codemods.support.flask import import_map
from flask_refactor.codemods.support.routes import (
    blueprint_variables, endpoints_of, find_blueprints, is_view, registrations, route_owner,
)
from flask_refactor.project import Project

REGISTERING = textwrap.dedent('''\
    from flask import Flask

    app = Flask(__name__)

    @app.route("/", methods=["GET", "post"])
    def index():
        return "i"

    @app.get("/items", endpoint="items")
    def list_items():
        return "l"

    def load_user():
        pass

    def not_found(error):
        return "nf", 404

    def crashed(error):
        return "c", 500

    def create():
        return "c"

    app.before_request(load_user)
    app.errorhandler(404)(not_found)
    app.register_error_handler(500, crashed)
    app.add_url_rule("/create", view_func=create, methods=METHODS)
    app.template_filter("shout")(str.upper)
''')


def _module(text: str) -> cst.Module:
    return cst.parse_module(text)


def test_decorator_and_call_forms_are_read_once_each_in_source_order():
    found = [(r.owner, r.method, cst.Module([]).code_for_node(r.function) if r.function else r.decorated.name.value)
             for r in registrations(_module(REGISTERING))]
    assert found == [
        ("app", "route", "index"), ("app", "get", "list_items"),
        ("app", "before_request", "load_user"),
        ("app", "errorhandler", "not_found"),  # not the inner `app.errorhandler(404)` a second time
        ("app", "register_error_handler", "crashed"),
        ("app", "add_url_rule", "create"),
        ("app", "template_filter", "str.upper"),
    ]


def test_route_methods_and_endpoints():
    regs = {r.method: r for r in registrations(_module(REGISTERING))}
    assert regs["route"].methods == {"GET", "POST"}
    assert regs["get"].methods == {"GET"}
    assert regs["add_url_rule"].methods is None  # `methods=METHODS`: not a literal
    assert regs["add_url_rule"].argument("rule", 0).value == '"/create"'
    module = _module(REGISTERING)
    views = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
    owner, routes = route_owner(views["list_items"])
    assert owner == "app" and endpoints_of(views["list_items"], routes) == ["items"]
    assert route_owner(views["load_user"]) is None


def test_a_function_on_two_objects_is_not_a_simple_view_and_a_dynamic_endpoint_is_unknown():
    module = _module(textwrap.dedent('''\
        @a.route("/x")
        @b.route("/y")
        def twice():
            pass

        @a.route("/z", endpoint=NAME)
        def dynamic():
            pass
    '''))
    twice, dynamic = module.body
    assert route_owner(twice) is None
    assert endpoints_of(dynamic, route_owner(dynamic)[1]) is None


def test_is_view_given_the_project_ignores_route_like_decorators_of_other_libraries():
    text = textwrap.dedent('''\
        import responses
        from app import bp

        @responses.get("http://example.com/")
        def stubbed():
            pass

        @bp.get("/real")
        def real():
            pass
    ''')
    project = Project.from_texts({"app.py": "from flask import Blueprint\nbp = Blueprint('b', __name__)\n",
                                  "views.py": text})
    module = project.parse("views.py")
    imports = import_map(project, "views.py")
    stubbed, real = [s for s in module.body if isinstance(s, cst.FunctionDef)]
    assert is_view(stubbed)  # without the project, any route decorator counts
    assert not is_view(stubbed, imports, project)
    assert is_view(real, imports, project)


def test_routes_on_another_frameworks_objects_are_no_flask_views(tmp_path):
    """mlflow's server serves FastAPI routers beside its Flask app: `@router.post(...)`
    looks like a Flask route but runs in no Flask request, so no codemod may treat it as
    a view (extract-services moved FastAPI endpoints' code, and globals-to-g would have
    moved their globals to flask.g)."""
    from helpers import run_codemods

    routers = textwrap.dedent('''\
        from fastapi import APIRouter
        from quart import Blueprint as QuartBlueprint
        from flask import Blueprint
        from app import make_blueprint

        router = APIRouter(prefix="/api")
        quart_bp = QuartBlueprint("q", __name__)
        bp = Blueprint("b", __name__)
        made = make_blueprint()
        seen = None

        @router.post("/items")
        def create_item(item: dict):
            global seen
            seen = item
            total = sum(item.values())
            label = str(total)
            name = label.upper()
            return {"name": name, "seen": seen}

        @quart_bp.before_request
        def quart_hook():
            pass

        @quart_bp.route("/q")
        def quart_view():
            return "q"

        @bp.route("/flask")
        def flask_view():
            return "f"

        @made.route("/made")
        def made_view():
            return "m"
    ''')
    factory = "from flask import Blueprint\n\ndef make_blueprint():\n    return Blueprint('m', __name__)\n"
    project = Project.from_texts({"routers.py": routers, "app.py": factory})
    module, imports = project.parse("routers.py"), import_map(project, "routers.py")
    views = {s.name.value: is_view(s, imports, project, module) for s in module.body if isinstance(s, cst.FunctionDef)}
    assert views == {"create_item": False, "quart_hook": False, "quart_view": False, "flask_view": True,
                     "made_view": True}
    cmap = context_map(project)
    for name in ("create_item", "quart_hook", "quart_view"):
        assert not cmap.in_request(FunctionRef("routers.py", name)), name
    assert cmap.in_request(FunctionRef("routers.py", "flask_view"))
    assert cmap.in_request(FunctionRef("routers.py", "made_view"))  # made by the project's code: Flask's

    (tmp_path / "routers.py").write_text(routers)
    (tmp_path / "app.py").write_text(factory)
    result = run_codemods(tmp_path, ["globals-to-g", "extract-services"], apply=False)
    assert not result.outcomes, [o.path for o in result.outcomes]


def test_call_form_hooks_and_handlers_run_in_a_request():
    project = Project.from_texts({"app.py": REGISTERING})
    cmap = context_map(project)
    for name in ("load_user", "not_found", "crashed", "create", "index"):
        assert cmap.in_request(FunctionRef("app.py", name)), name
    assert "hook:before_request" in cmap.facts(FunctionRef("app.py", "load_user")).roles


def test_error_handler_registrations_in_every_form():
    project = Project.from_texts({"app.py": REGISTERING + textwrap.dedent('''\

        @app.errorhandler(403)
        def forbidden(error):
            return "f", 403
    ''')})
    module = project.parse("app.py")
    found = registrations_in(module, "app.py", import_map(project, "app.py"), {}, project.position_lookup("app.py"))
    assert [(r.function, r.code, r.line) for r in found] == [
        ("not_found", 404, 26), ("crashed", 500, 27), ("forbidden", 403, 32)]


def test_blueprints_by_name_and_by_variable():
    project = Project.from_texts({
        "pkg/__init__.py": "",
        "pkg/views.py": "from flask import Blueprint\nmain = Blueprint('main', __name__)\n",
        "pkg/admin.py": textwrap.dedent('''\
            from flask import Blueprint
            from .views import main

            def make():
                local = Blueprint("local", __name__)
                return local
        '''),
    })
    assert find_blueprints(project) == {"pkg.views.main": "main"}
    variables = blueprint_variables(project)
    assert variables["pkg/views.py"] == {"main"}
    assert variables["pkg/admin.py"] == {"local", "main"}


def test_local_blueprints_are_those_every_blueprint_tested_in_turn_gives():
    """`local_blueprints` looks only at the blueprints under the module or its imports;
    the answer (and its order: a name bound twice keeps the last) is the one testing
    each blueprint gives."""
    from flask_refactor.codemods.support import routes
    from flask_refactor.codemods.support.imports import ImportMap

    def every_one(module_name, path, imports, blueprints):
        local, prefix = {}, f"{module_name or path}."
        for qualified in blueprints:
            if qualified.startswith(prefix) and "." not in qualified[len(prefix):]:
                local[qualified[len(prefix):]] = qualified
            for name in imports.local_names_for(qualified):
                local[name] = qualified
        return local

    blueprints = dict.fromkeys(["shop.views.bp", "shop.admin.bp", "shop.admin.nested.bp", "shop.views.api",
                                "other.bp", "app.py.bp", "shop.bp", "shopping.bp"])
    cases = [
        ("shop.views", "shop/views.py", {"bp": "shop.admin.bp", "admin": "shop.admin", "other": "other"}),
        ("shop", "shop/__init__.py", {"views": "shop.views", "x": "shop.views.api", "bp": "shopping.bp"}),
        (None, "app.py", {"shop": "shop", "bp": "other.bp"}),
        ("tools", "tools.py", {"os": "os"}),
    ]
    for module_name, path, names in cases:
        imports = ImportMap(names=names)
        found = routes.local_blueprints(None, module_name, path, imports, blueprints)
        expected = every_one(module_name, path, imports, blueprints)
        assert list(found.items()) == list(expected.items()), path
    assert routes.local_blueprints(None, "shop.views", "shop/views.py", ImportMap(names={"bp": "shop.admin.bp"}),
                                   blueprints) == {"bp": "shop.admin.bp", "api": "shop.views.api"}
