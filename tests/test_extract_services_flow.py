"""`extract-services` on small in-memory projects: what moves, what is refused and why.

Every view here is "fat" (max_statements=0) so each test is about one rule of the data
flow; the fixture apps under fixtures/extract-services/ show whole apps end to end.
"""

from __future__ import annotations

import textwrap
from unittest import mock

import libcst as cst
import pytest

from flask_refactor import pipeline
from flask_refactor.codemods._extract_services_flow import count_statements
from flask_refactor.codemod import Severity
from flask_refactor.project import Project
from flask_refactor.registry import get
from flask_refactor.walk import iter_nodes
from helpers import all_work_forked, rendered_for_positions, sample_modules, take_turns

HEADER = """\
from flask import Blueprint, flash, g, jsonify, redirect, request, url_for

from .extensions import db
from .models import Order

bp = Blueprint("shop", __name__)
"""

SUPPORT = {
    "app/__init__.py": "",
    "app/extensions.py": "from flask_sqlalchemy import SQLAlchemy\n\ndb = SQLAlchemy()\n",
    "app/models.py": "from .extensions import db\n\n\nclass Order(db.Model):\n    pass\n",
}


def run(views: str, files: dict[str, str] | None = None, header: str = HEADER, **options):
    options = {"max_statements": 0, "max_lines": 1000, "min_statements": 2, **options}
    texts = {**SUPPORT, "app/views.py": header + textwrap.dedent(views), **(files or {})}
    project = Project.from_texts(texts)
    result = pipeline.run_on_project(project, [get("extract-services")(**options)], jobs=1)
    assert not len(result.errors), list(result.errors)
    outputs = {o.path: o.new for o in result.outcomes}
    for text in outputs.values():
        compile(text, "<output>", "exec")
    return outputs, result.findings


def view_line(source: str, needle: str) -> int:
    text = HEADER + textwrap.dedent(source)
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def only_finding(findings):
    assert len(findings) == 1, findings
    return findings[0]


FORM_VIEW = """
@bp.route("/orders", methods=["POST"])
def create():
    sku = request.form["sku"]
    qty = int(request.form.get("qty", 1))

    order = Order(sku=sku, qty=qty)  # new order
    db.session.add(order)
    db.session.commit()
    flash("saved")
    return redirect(url_for("shop.show", order_id=order.id))
"""


def test_form_view_keeps_request_and_response_and_moves_the_db_work():
    outputs, findings = run(FORM_VIEW)
    assert findings == []
    assert outputs["app/views.py"] == HEADER.replace(
        "from .models import Order\n", "from .models import Order\nfrom . import services\n") + textwrap.dedent("""
        @bp.route("/orders", methods=["POST"])
        def create():
            sku = request.form["sku"]
            qty = int(request.form.get("qty", 1))

            order = services.create(sku, qty)
            flash("saved")
            return redirect(url_for("shop.show", order_id=order.id))
        """)
    assert outputs["app/services.py"] == (
        '"""Business logic moved out of the views by flask-refactor: plain values in, plain values out."""\n'
        "from .extensions import db\n"
        "from .models import Order\n"
        "\n\n"
        "def create(sku, qty):\n"
        '    """Run the business logic of the create view and return order."""\n'
        "    order = Order(sku=sku, qty=qty)  # new order\n"
        "    db.session.add(order)\n"
        "    db.session.commit()\n"
        "    return order\n"
    )


def test_second_run_changes_nothing():
    outputs, _ = run(FORM_VIEW)
    project = Project.from_texts({**SUPPORT, **outputs})
    options = {"max_statements": 0, "max_lines": 1000, "min_statements": 2}
    again = pipeline.run_on_project(project, [get("extract-services")(**options)], jobs=1)
    assert again.outcomes == [] and again.findings == []


def test_early_return_between_business_statements_is_a_finding():
    source = """
    @bp.post("/pay")
    def pay():
        amount = request.json["amount"]
        order = Order.query.get(amount)
        if order is None:
            return jsonify(error="no order"), 404
        order.paid = True
        db.session.commit()
        return jsonify(ok=True)
    """
    outputs, findings = run(source, min_statements=3)
    assert outputs == {}
    finding = only_finding(findings)
    assert finding.severity == Severity.INFO
    assert f"early return at line {view_line(source, 'no order')}" in finding.message
    assert finding.line == view_line(source, "def pay")


def test_region_inside_the_post_branch_returns_what_the_view_reads_after_the_if():
    source = """
    @bp.route("/new", methods=["GET", "POST"])
    def new():
        created = None
        if request.method == "POST":
            name = request.form["name"]
            created = Order(name=name)
            db.session.add(created)
            db.session.commit()
            flash("created")
        return jsonify(id=created.id if created else None)
    """
    outputs, findings = run(source)
    assert findings == []
    assert "        created = services.new(name)\n        flash(\"created\")" in outputs["app/views.py"]
    assert "def new(name):\n" in outputs["app/services.py"]
    assert outputs["app/services.py"].endswith("    db.session.commit()\n    return created\n")


def test_value_assigned_only_conditionally_and_read_later_is_refused():
    source = """
    @bp.post("/x")
    def x():
        n = request.json["n"]
        if n > 1:
            total = n * 2
        db.session.commit()
        return jsonify(total=total)
    """
    outputs, findings = run(source)
    assert outputs == {}
    assert "`total` is assigned only conditionally" in only_finding(findings).message


def test_value_bound_before_and_maybe_reassigned_is_passed_in_and_returned():
    source = """
    @bp.post("/x")
    def x():
        n = request.json["n"]
        total = request.json.get("start", 0)
        if n > 1:
            total = n * 2
        db.session.commit()
        return jsonify(total=total)
    """
    outputs, findings = run(source, min_statements=3)
    assert findings == []
    assert "    total = services.x(n, total)\n" in outputs["app/views.py"]


def test_input_that_may_be_unbound_is_refused():
    source = """
    @bp.post("/x")
    def x():
        if request.args:
            n = 1
        total = n * 2
        db.session.commit()
        return jsonify(total=total)
    """
    outputs, findings = run(source)
    assert outputs == {}
    assert "`n` may be unbound" in only_finding(findings).message


def test_closure_defined_before_the_region_is_refused():
    source = """
    @bp.post("/x")
    def x():
        def describe():
            return f"{order}"
        name = request.args["name"]
        order = Order(name=name)
        db.session.add(order)
        db.session.commit()
        return jsonify(text=describe())
    """
    outputs, findings = run(source, min_statements=3)
    assert outputs == {}
    assert "read by a function defined at line" in only_finding(findings).message


def test_late_binding_lambda_in_the_region_is_refused():
    source = """
    @bp.post("/x")
    def x():
        factor = int(request.args["f"])
        scale = lambda v: v * factor
        db.session.commit()
        flash("scaled")
        factor = 0
        return jsonify(v=scale(2))
    """
    outputs, findings = run(source)
    assert outputs == {}
    assert "late binding" in only_finding(findings).message


def test_proxy_held_in_a_local_is_a_hidden_request_read():
    source = """
    @bp.post("/x")
    def x():
        user = g.user
        box = g
        name = box.name
        order = Order(name=name)
        db.session.add(order)
        return jsonify(id=order.id)
    """
    outputs, findings = run(source, min_statements=3)
    assert outputs == {}
    message = only_finding(findings).message
    assert "`box` holds a request-context proxy" in message


@pytest.mark.parametrize("binding, read", [
    ("from flask import request", "request.args"),
    ("from flask import request as req", "req.args"),
    ("import flask", "flask.request.args"),
])
def test_a_proxy_imported_inside_the_view_is_a_request_read(binding, read):
    # views defined in a blueprint factory often import `request` where they use it
    source = f"""
    @bp.get("/x")
    def x():
        {binding}
        name = {read}.get("name", "").strip()
        order = Order(name=name)
        db.session.add(order)
        db.session.commit()
        return jsonify(id=order.id)
    """
    outputs, findings = run(source, min_statements=3)
    assert findings == []
    views, services = outputs["app/views.py"], outputs["app/services.py"]
    assert f'    name = {read}.get("name", "").strip()\n    order = services.x(name)\n' in views
    assert f"{binding}\n" in views and binding not in services and read not in services


def test_a_proxy_imported_inside_the_view_and_passed_on_is_a_request_read():
    source = """
    @bp.get("/x")
    def x():
        from flask import request
        order = Order(name="x")
        db.session.add(order)
        print(request)
        return jsonify(id=order.id)
    """
    outputs, findings = run(source, min_statements=3)
    assert outputs == {}
    assert f"reads `request` at line {view_line(source, 'print(request)')}" in only_finding(findings).message


def test_what_a_region_imports_for_the_view_stays_in_the_view():
    # a service handing back what it imported (modules, functions, the request proxy)
    # moves nothing of the view's work
    source = """
    @bp.get("/feed")
    def feed():
        from datetime import datetime
        import json
        from .models import Order
        now = datetime.now()
        return json.dumps([o.id for o in Order.query.all()] + [str(now)])
    """
    outputs, findings = run(source, min_statements=3)
    assert outputs == {}
    message = only_finding(findings).message
    assert "`json` is imported in lines" in message and "and used after them" in message


def test_a_function_the_region_defines_for_the_view_stays_in_the_view():
    source = """
    @bp.get("/x")
    def x():
        orders = Order.query.all()
        def etag():
            digest = hash(tuple(orders))
            digest += 1
            return str(digest)
        return jsonify(n=len(orders), etag=etag())
    """
    outputs, findings = run(source, min_statements=3)
    assert outputs == {}
    assert "`etag` is defined in lines" in only_finding(findings).message


def test_what_the_view_imported_for_the_moved_code_is_imported_in_the_service_too():
    # a view of a blueprint factory importing where it works: the service imports the
    # same names where it runs, rather than taking modules and classes as parameters
    source = """
    @bp.get("/export")
    def export():
        import zipfile
        from io import BytesIO as Buffer
        from .models import Order, Total
        name = request.args["name"]
        memory = Buffer()
        with zipfile.ZipFile(memory, "w") as archive:
            archive.writestr(name, str(Order.query.count()))
        memory.seek(0)
        return jsonify(size=len(memory.getvalue()), total=Total)
    """
    outputs, findings = run(source, min_statements=3)
    assert findings == []
    views, services = outputs["app/views.py"], outputs["app/services.py"]
    assert "    memory = services.export(name)\n" in views
    assert ('def export(name):\n    """Run the business logic of the export view and return memory."""\n'
            "    import zipfile\n    from io import BytesIO as Buffer\n    from .models import Order\n"
            "    memory = Buffer()\n") in services


def test_an_import_used_only_by_the_moved_code_moves_with_it():
    source = """
    @bp.post("/x")
    def x():
        name = request.form["name"]
        from collections import Counter
        counts = Counter(name)
        order = Order(name=name, top=counts.most_common(1))
        db.session.add(order)
        return jsonify(id=order.id)
    """
    outputs, findings = run(source, min_statements=3)
    assert findings == []
    assert "    from collections import Counter\n    counts = Counter(name)\n" in outputs["app/services.py"]
    assert "Counter" not in outputs["app/views.py"]


def test_bindings_of_literals_do_not_make_a_run_worth_a_service():
    source = """
    @bp.get("/x")
    def x():
        name = request.args["name"]
        rows = []
        total = 0
        label: str = "none"
        rows.append(name)
        return jsonify(rows=rows, total=total, label=label)
    """
    outputs, findings = run(source, min_statements=2)
    assert outputs == {}
    assert "no run of 2 or more statements" in only_finding(findings).message
    # with one statement of work more, the same literals move along with it
    outputs, findings = run(source.replace("rows.append(name)", "rows.append(name)\n        rows.sort()"),
                            min_statements=2)
    assert findings == []
    assert "    rows = []\n    total = 0\n" in outputs["app/services.py"]


def test_the_services_import_above_a_def_leaves_two_blank_lines():
    # views defined in a blueprint factory, in a module with no import above it
    source = """
    def construct_routes(bp):
        @bp.post("/x")
        def x():
            name = request.form["name"]
            order = Order(name=name)
            db.session.add(order)
            db.session.commit()
            return jsonify(id=order.id)
    """
    outputs, findings = run(source, min_statements=3, header="\n\nfrom flask import jsonify, request\n"
                            "from .extensions import db\nfrom .models import Order\ndef helper():\n    pass\n")
    assert findings == []
    assert "from .models import Order\nfrom . import services\n\n\ndef helper():\n" in outputs["app/views.py"]


def test_request_read_inside_a_loop_is_named():
    source = """
    @bp.post("/x")
    def x():
        orders = []
        for key in ("a", "b"):
            orders.append(Order(name=request.form[key]))
        db.session.add_all(orders)
        return jsonify(n=len(orders))
    """
    outputs, findings = run(source, min_statements=3)
    assert outputs == {}
    assert f"reads `request.form` inside a loop at line {view_line(source, 'request.form[key]')}" in \
        only_finding(findings).message


def test_global_and_generator_views_are_refused():
    source = """
    COUNT = 0

    @bp.get("/count")
    def count():
        global COUNT
        COUNT += 1
        total = COUNT * 2
        half = total // 2
        return jsonify(total=total, half=half)

    @bp.get("/stream")
    def stream():
        rows = Order.query.all()
        names = [r.name for r in rows]
        yield ",".join(names)
    """
    outputs, findings = run(source)
    assert outputs == {}
    messages = sorted(f.message for f in findings)
    assert "`global` statement" in messages[0]
    assert "yield (a generator view)" in messages[1]


@pytest.mark.parametrize("at_module_level", [True, False])
def test_helper_from_a_module_that_reads_the_request_is_refused(at_module_level):
    # imported by the views module, or inside the view (as views of blueprint factories do)
    files = {"app/auth.py": "from flask import session\n\n\ndef owner():\n    return session['user']\n"}
    module_import, view_import = ("from .auth import owner", "") if at_module_level else ("", "from .auth import owner")
    source = f"""
    {module_import}

    @bp.post("/x")
    def x():
        {view_import}
        name = request.form["name"]
        order = Order(name=name, owner=owner())
        db.session.add(order)
        return jsonify(id=order.id)
    """
    outputs, findings = run(source, files)
    assert outputs == {}
    assert "from app.auth, which may read the request context (imports flask.session)" in \
        only_finding(findings).message


def test_module_that_imports_the_views_would_close_a_cycle():
    files = {"app/reports.py": "from .views import bp\n\n\ndef total(orders):\n    return len(orders)\n"}
    source = """
    from .reports import total

    @bp.get("/x")
    def x():
        orders = Order.query.all()
        count = total(orders)
        return jsonify(count=count)
    """
    outputs, findings = run(source, files)
    assert outputs == {}
    assert "which imports app.views (an import cycle)" in only_finding(findings).message


def _searched_from(project: Project, source: str, loaded: frozenset[str]) -> frozenset[str]:
    """What importing `source` runs, by a search from it alone: the reference."""
    from flask_refactor.codemods.support import views

    reached, stack = set(), [source]
    while stack:
        current = stack.pop()
        if current not in reached:
            reached.add(current)
            stack.extend(views._imports_run(project, current, loaded))
    return frozenset(reached)


@pytest.mark.parametrize("backwards", [False, True])
def test_what_an_import_runs_is_what_a_search_from_each_module_alone_finds(backwards):
    # found for every module a search meets at once, through modules importing each
    # other (a package and its modules, a cycle through a module outside the package)
    from flask_refactor.codemods.support import views

    texts = {"pkg/__init__.py": "from pkg import a\n", "pkg/a.py": "from pkg.b import x\n",
             "pkg/b.py": "from pkg.sub.c import y\nx = 1\n", "pkg/sub/__init__.py": "",
             "pkg/sub/c.py": "import pkg.a\ny = 2\n", "pkg/d.py": "import other\n",
             "other.py": "from pkg import d\nimport lone\n", "lone.py": ""}
    modules = ["pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.d", "other", "lone"]
    project = Project.from_texts(texts)
    for loaded in (frozenset(), frozenset({"pkg"}), frozenset({"pkg", "pkg.sub"}), frozenset({"pkg.b", "other"})):
        for source in reversed(modules) if backwards else modules:
            assert views._run_on_import(project, source, loaded) == _searched_from(project, source, loaded), \
                (source, loaded)
    assert views._run_on_import(project, "lone", frozenset()) == {"lone"}
    assert views._run_on_import(project, "other", frozenset()) == set(modules)  # through pkg.d, back to other


def test_whether_a_module_may_read_the_request_is_what_the_search_from_it_says():
    # the search runs only for modules that reach a request-reading import at all
    from flask_refactor.codemods.support import views

    texts = {"app/__init__.py": "", "app/ext.py": "from flask import request\nfrom flask_sqlalchemy import SQLAlchemy\n"
             "db = SQLAlchemy()\n", "app/models.py": "from app.ext import db\n",
             "app/auth.py": "from app.ext import request\n", "app/service.py": "from app.models import db\n"
             "from app import util\n", "app/util.py": "import app.service\n", "app/login.py": "from app.auth import x\n"}
    project = Project.from_texts(texts)
    searched = []
    real_search = views._reads_request_from
    views_search = lambda proj, start: searched.append(start) or real_search(proj, start)
    with mock.patch.object(views, "_reads_request_from", views_search):
        answers = {name: views.module_reads_request(project, name)
                   for name in ("app.models", "app.service", "app.util", "app.login", "app.auth", "app.ext", "app")}
    assert answers == {name: real_search(project, name) for name in answers}
    assert answers["app.login"] == "imports app.auth, which imports app.ext, which imports flask.request"
    assert answers["app.models"] is None  # reaches app.ext, but only for its request-free `db`
    # `app` and `app.util` (whose `import app.service` binds the package) reach no such import
    assert sorted(searched) == ["app.auth", "app.ext", "app.login", "app.models", "app.service"]


@pytest.mark.parametrize("test_code", [
    'from unittest import mock\n\n@mock.patch("app.views.db")\ndef test_it(db):\n    pass\n',
    'from app import views\n\ndef test_it(monkeypatch):\n    monkeypatch.setattr(views, "db", None)\n',
])
def test_names_the_tests_patch_on_the_views_module_stay(test_code):
    outputs, findings = run(FORM_VIEW, {"tests/test_views.py": test_code})
    assert outputs == {}
    assert "patches as `app.views.db` (the moved code would escape the patch)" in only_finding(findings).message


def test_names_defined_in_the_views_module_and_module_dunders_stay():
    source = """
    import logging
    TAX = 21
    log = logging.getLogger(__name__)

    @bp.get("/x")
    def x():
        orders = Order.query.all()
        total = sum(o.total for o in orders) * TAX
        name = __name__
        return jsonify(total=total, name=name)
    """
    outputs, findings = run(source, min_statements=3)
    assert outputs == {}
    message = only_finding(findings).message
    assert "uses `TAX`, defined in app/views.py itself" in message


def test_frame_builtins_del_and_paginate_stay():
    source = """
    @bp.get("/x")
    def x():
        rows = Order.query.paginate()
        data = locals()
        tmp = 1
        del tmp
        return jsonify(n=len(data))
    """
    outputs, findings = run(source)
    assert outputs == {}
    message = only_finding(findings).message
    assert "calls .paginate(), which reads the request," in message
    assert "calls `locals`" in message and "`del`" in message


def test_async_view_gets_an_awaited_async_service():
    source = """
    import asyncio

    @bp.post("/x")
    async def x():
        n = request.json["n"]
        await asyncio.sleep(0)
        order = Order(n=n)
        db.session.add(order)
        return jsonify(id=order.id)
    """
    outputs, findings = run(source)
    assert findings == []
    assert "    order = await services.x(n)\n" in outputs["app/views.py"]
    assert "async def x(n):\n" in outputs["app/services.py"]
    assert "import asyncio\n" in outputs["app/services.py"]


def test_existing_services_module_is_extended_without_collisions():
    existing = ('"""Hand-written services."""\nfrom .extensions import db\n\n\n'
                'def create(sku):\n    return sku\n')
    outputs, findings = run(FORM_VIEW, {"app/services.py": existing})
    assert findings == []
    services = outputs["app/services.py"]
    assert services.startswith('"""Hand-written services."""\nfrom .extensions import db\n'
                               'from .models import Order\n\n\ndef create(sku):\n    return sku\n')
    assert "\n\n\ndef create_service(sku, qty):\n" in services
    assert "services.create_service(sku, qty)" in outputs["app/views.py"]


def test_a_name_meaning_something_else_in_services_blocks_the_move():
    existing = "from .legacy import Order\n"
    outputs, findings = run(FORM_VIEW, {"app/services.py": existing, "app/legacy.py": "Order = dict\n"},
                            min_statements=3)
    assert outputs == {}
    assert "`Order` already means something else in app/services.py" in only_finding(findings).message


def test_service_names_from_the_option_and_a_taken_one_is_an_error():
    outputs, findings = run(FORM_VIEW, names=["create=place_order"])
    assert "order = services.place_order(sku, qty)" in outputs["app/views.py"]
    outputs, findings = run(FORM_VIEW, {"app/services.py": "def place_order():\n    pass\n"},
                            names=["app.views.create=place_order"])
    assert outputs == {}
    assert only_finding(findings).severity == Severity.ERROR


def test_option_names_must_be_view_equals_service():
    with pytest.raises(ValueError, match="expected VIEW=SERVICE"):
        get("extract-services")(names=["create"])


def test_taken_services_name_in_the_views_module_gets_an_alias():
    source = "services = ['shipping']\n" + FORM_VIEW
    outputs, _ = run(source)
    assert "from . import services as services_module\n" in outputs["app/views.py"]
    assert "order = services_module.create(sku, qty)" in outputs["app/views.py"]


def test_future_imports_follow_the_code():
    header = "from __future__ import annotations\n\n" + HEADER
    outputs, _ = run(FORM_VIEW, header=header)
    assert outputs["app/services.py"].splitlines()[1] == "from __future__ import annotations"
    assert outputs["app/views.py"].startswith("from __future__ import annotations\n")


def test_flat_layout_imports_the_services_module_by_name():
    views = ("from flask import Flask, request, jsonify\nfrom models import Order, db\n\n"
             "app = Flask(__name__)\n\n\n@app.post('/x')\ndef x():\n    n = request.json['n']\n"
             "    order = Order(n=n)\n    db.session.add(order)\n    db.session.commit()\n"
             "    return jsonify(id=order.id)\n")
    project = Project.from_texts({"web.py": views, "models.py": "db = None\nOrder = dict\n"})
    result = pipeline.run_on_project(project, [get("extract-services")(max_statements=0)], jobs=1)
    outputs = {o.path: o.new for o in result.outcomes}
    assert "from models import Order, db\nimport services\n" in outputs["web.py"]
    assert outputs["services.py"].splitlines()[1] == "from models import Order, db"


def test_small_views_are_left_alone():
    outputs, findings = run(FORM_VIEW, max_statements=25, max_lines=40)
    assert outputs == {} and findings == []


LONG_VIEW = """
@bp.route("/long", methods=["POST"])
def long_view():
    order = Order(
        sku="A",
        qty=2,
    )
    db.session.add(order)
    db.session.commit()
    return jsonify(id=order.id)
"""


@pytest.mark.parametrize("nested", [False, True])
def test_a_view_is_fat_by_its_lines_from_def_to_end(nested):
    # 8 lines from `def` to its end; nested in an `if`, the view is not a top-level
    # statement, whose text bounds the count
    views = LONG_VIEW if not nested else "\nif True:\n" + textwrap.indent(textwrap.dedent(LONG_VIEW), "    ")
    outputs, _ = run(views, max_statements=100, max_lines=7)
    assert "services.long_view(" in outputs["app/views.py"]
    assert run(views, max_statements=100, max_lines=8) == ({}, [])


def test_two_views_modules_share_one_services_module():
    second = HEADER.replace('Blueprint("shop"', 'Blueprint("admin"') + textwrap.dedent("""
    @bp.post("/archive")
    def archive():
        sku = request.form["sku"]
        order = Order.query.filter_by(sku=sku).one()
        order.archived = True
        db.session.commit()
        return redirect(url_for("admin.list"))

    @bp.post("/create")
    def create():
        qty = request.form["qty"]
        order = Order(qty=qty)
        db.session.add(order)
        return jsonify(id=order.id)
    """)
    outputs, findings = run(FORM_VIEW, {"app/admin.py": second})
    assert findings == []
    services = outputs["app/services.py"]
    assert services.count("from .models import Order\n") == 1
    assert [line for line in services.splitlines() if line.startswith("def ")] == [
        "def archive(sku):", "def create(qty):", "def create_service(sku, qty):"]
    assert "order = services.create(qty)" in outputs["app/admin.py"]
    assert "order = services.create_service(sku, qty)" in outputs["app/views.py"]


def test_existing_services_module_with_import_time_work_is_not_imported_newly():
    existing = "import logging\n\nlogging.basicConfig()\n\n\ndef helper():\n    pass\n"
    outputs, findings = run(FORM_VIEW, {"app/services.py": existing})
    assert outputs == {}
    assert "would run its module-level code (line 3)" in only_finding(findings).message


RETRIED_VIEW = """
@bp.post("/x")
def x():
    n = request.json["n"]
    order = Order(n=n)
    db.session.add(order)
    db.session.commit()
    if n > 1:
        note = "bulk"
    return jsonify(id=order.id, note=note)
"""


def test_a_region_that_fails_is_retried_smaller():
    outputs, findings = run(RETRIED_VIEW, min_statements=3)
    assert findings == []
    assert "    order = services.x(n)\n    if n > 1:\n        note = \"bulk\"\n" in outputs["app/views.py"]


def test_a_view_whose_code_moves_is_not_rendered_for_the_lines_its_blockers_name(monkeypatch):
    # every statement the run leaves behind, and the larger region that failed first,
    # has a reason naming its line: positions render the view for them, but only a view
    # that keeps its code shows them
    rendered = rendered_for_positions(monkeypatch)
    outputs, findings = run(RETRIED_VIEW, min_statements=3)
    assert findings == [] and "services.x(n)" in outputs["app/views.py"]
    assert rendered == []
    kept = RETRIED_VIEW.replace("db.session.commit()", "return db.session.commit()")
    _, findings = run(kept, min_statements=3)
    message = only_finding(findings).message
    assert f"early return at line {view_line(kept, 'return db.session')}" in message
    assert f"reads `request.json` at line {view_line(kept, 'request.json')}" in message
    assert rendered


def test_crlf_and_tab_indentation_are_kept_in_both_files():
    views = (HEADER + textwrap.dedent(FORM_VIEW)).replace("    ", "\t").replace("\n", "\r\n")
    outputs, findings = run("", {"app/views.py": views})
    assert findings == []
    assert "\r\n\torder = services.create(sku, qty)\r\n" in outputs["app/views.py"]
    services = outputs["app/services.py"]
    assert "\n" not in services.replace("\r\n", "")
    assert "\r\n\tdb.session.commit()\r\n\treturn order\r\n" in services


def test_statements_are_counted_like_an_isinstance_test_of_every_node():
    for _where, module in sample_modules(("flask",)):
        for node in [module, *module.body]:
            expected = sum(isinstance(n, (cst.BaseSmallStatement, cst.BaseCompoundStatement)) for n in iter_nodes(node))
            assert count_statements(node) == expected


SAME_NAMED_VIEW = """
@bp.route("/order/{n}", methods=["POST"])
def create():
    sku = request.form["sku"]
    order = Order(sku=sku, quantity={n})
    order.total = order.quantity * {n}
    db.session.add(order)
    db.session.commit()
    return jsonify(id=order.id)
"""


def extracted(texts: dict[str, str], jobs: int, **options):
    """(outputs, findings) of extract-services on these files, in `jobs` processes."""
    options = {"max_statements": 0, "max_lines": 1000, "min_statements": 2, **options}
    result = pipeline.run_on_project(Project.from_texts(texts), [get("extract-services")(**options)], jobs=jobs)
    assert not len(result.errors), list(result.errors)
    return {o.path: o.new for o in result.outcomes}, [(f.path, f.line, f.message) for f in result.findings]


@pytest.mark.parametrize("modules", [2, 6])
def test_views_modules_extracted_in_workers_name_services_as_one_after_another(monkeypatch, modules):
    """Views modules sharing a services module are extracted in forked workers, each
    against the services module as it was when its worker started; one whose name was
    taken meanwhile by an earlier module is done again in order. The outputs are the
    ones of a run in one process."""
    texts = {**SUPPORT, **{f"app/views_{n}.py": HEADER + textwrap.dedent(SAME_NAMED_VIEW.format(n=n))
                           for n in range(modules)}}
    # decided in the workers too: a module whose views are not fat, one compiled with
    # other `__future__` features than the services module (refused), one not importable
    texts["app/views_thin.py"] = HEADER + '@bp.route("/thin")\ndef thin():\n    return jsonify(ok=True)\n'
    texts["app/views_future.py"] = "from __future__ import annotations\n" + texts["app/views_0.py"]
    texts["app/views-odd.py"] = texts["app/views_0.py"]
    serial = extracted(texts, jobs=1, max_statements=1)
    redone = []
    module = __import__("flask_refactor.codemods.extract_services", fromlist=["_Ledger"])
    holds_for = module._Ledger.holds_for
    monkeypatch.setattr(module._Ledger, "holds_for", lambda self, f: holds_for(self, f) or redone.append(1) or False)
    all_work_forked(monkeypatch)  # every module goes to a worker
    assert extracted(texts, jobs=2, max_statements=1) == serial
    assert redone  # a worker's `create` clashed with an earlier module's, and was redone here
    names = ["create", "create_service", *(f"create_service_{i}" for i in range(2, modules))]
    assert [line[4:line.index("(")] for line in serial[0]["app/services.py"].splitlines()
            if line.startswith("def ")] == names


def test_views_modules_shared_between_this_process_and_a_worker_come_out_as_in_one(monkeypatch):
    """The first modules extracted here (applied at once), the last ones in a worker
    (replayed after them, or done again): the outputs of a run in one process."""
    texts = {**SUPPORT, **{f"app/views_{n}.py": HEADER + textwrap.dedent(SAME_NAMED_VIEW.format(n=n))
                           for n in range(8)}}
    serial = extracted(texts, jobs=1, max_statements=1)
    from flask_refactor import forking

    monkeypatch.setattr(forking, "RUN_HERE_FIRST_SECONDS", 0)
    taken_here = take_turns(monkeypatch)
    assert extracted(texts, jobs=2, max_statements=1) == serial
    assert any(0 < len(done) < 8 for done in taken_here.values())  # some extracted here, some in the worker
    assert all(done == list(range(len(done))) for done in taken_here.values())


def test_views_modules_extracted_in_workers_without_a_clash_are_not_redone(monkeypatch):
    """What a module's own earlier views bound in the services module (the service
    names, the imports they share) is no clash: nothing is redone."""
    second = SAME_NAMED_VIEW.replace("def create(", "def restock(").replace("/order/", "/restock/").replace(
        "* {n}", "* {n} * 2")  # (not the same code: a service of its own)
    texts = {**SUPPORT, **{f"app/views_{n}.py": HEADER + textwrap.dedent(
        SAME_NAMED_VIEW.replace("def create(", f"def create_{n}(").format(n=n) + second.format(n=n).replace(
            "def restock(", f"def restock_{n}(")) for n in range(4)}}
    serial = extracted(texts, jobs=1)
    module = __import__("flask_refactor.codemods.extract_services", fromlist=["_Ledger"])
    holds_for, checked = module._Ledger.holds_for, []
    monkeypatch.setattr(module._Ledger, "holds_for", lambda self, f: checked.append(holds_for(self, f)) or checked[-1])
    all_work_forked(monkeypatch)
    assert extracted(texts, jobs=2) == serial
    assert checked == [True] * 4
    assert serial[0]["app/services.py"].count("\ndef ") == 8


def test_a_global_imported_by_an_earlier_views_module_is_imported_once(monkeypatch):
    """The second views module reads `Order` through another import of the same class:
    the services module, which already imports it, does not import it again."""
    absolute = HEADER.replace("from .models import Order", "from app.models import Order")
    texts = {**SUPPORT, "app/views_a.py": HEADER + textwrap.dedent(SAME_NAMED_VIEW.format(n=1)),
             "app/views_b.py": absolute + textwrap.dedent(SAME_NAMED_VIEW.format(n=2))}
    all_work_forked(monkeypatch)  # with 2 jobs, in workers
    services = [extracted(texts, jobs=jobs)[0]["app/services.py"] for jobs in (1, 2)]
    assert services[0] == services[1]
    assert "from .models import Order" in services[0] and "app.models" not in services[0]


def test_the_classes_tested_by_identity_have_no_subclasses():
    """The flow analysis tests some node classes with `type(node) is ...`: right only
    while libcst has no subclass of them."""
    from flask_refactor.codemods._extract_services_flow import _BINDING_KINDS, _NESTED_SCOPE_KINDS

    assert all(not cls.__subclasses__() for cls in _BINDING_KINDS | _NESTED_SCOPE_KINDS)


REPEATED_PAGINATION = """
@bp.route("/{name}")
def {name}():
    page = request.args.get("page", 1, type=int)
    per_page = 20
    total = Order.query.count()
    pages = (total + per_page - 1) // per_page
    if page > pages:
        page = pages
    return jsonify(page=page, pages=pages)
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_views_repeating_the_same_code_share_one_service(monkeypatch, jobs):
    """Three views of a module repeat the same lines: one service, whose docstring names
    them all, called from each; a view of another module with the same lines gets its
    own (the one service would serve two modules). In workers, as in one process."""
    views = "".join(REPEATED_PAGINATION.format(name=name) for name in ("orders", "history", "changes"))
    texts = {**SUPPORT, "app/views.py": HEADER + views,
             "app/admin.py": HEADER + REPEATED_PAGINATION.format(name="audit")}
    if jobs == 2:
        all_work_forked(monkeypatch)
    outputs, findings = extracted(texts, jobs=jobs)
    services = outputs["app/services.py"]
    assert services.count("\ndef ") == 2
    assert '"""Run the business logic of the orders, history and changes views and return pages, page."""' \
        in services
    assert '"""Run the business logic of the audit view and return pages, page."""' in services
    assert outputs["app/views.py"].count("pages, page = services.orders(page)") == 3
    assert "pages, page = services.audit(page)" in outputs["app/admin.py"]
    shared = [message for _, _, message in findings if "calls the service" in message]
    assert shared == [f"view `{name}` calls the service `orders` extracted from an earlier view of this module: "
                      "the moved code is the same" for name in ("history", "changes")]
