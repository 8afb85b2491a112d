"""`error-handling` beyond the fixture pairs: the fixture apps' own test suites pass
before and after, routing 405s keep their Allow header, the handler reproduces jsonify's
debug-mode bytes, raise-to-abort keeps every constructor argument, and the Exception
handler logs with the traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from werkzeug.exceptions import default_exceptions

from helpers import FIXTURES, copy_tree, rendered_for_positions, run_app_suite, run_codemods, serve_requests

from flask_refactor.codemods.support.errors import http_errors

CASES = FIXTURES / "error-handling"
SUITES = ["json_api", "html_app", "mixed"]
FIXED_HASH = {"PYTHONHASHSEED": "0"}  # Allow lists a set: fix its order across interpreters


@pytest.mark.parametrize("case", SUITES)
def test_fixture_apps_own_suites_pass_before_and_after(case, tmp_path):
    for side in ("before", "after"):
        tree = copy_tree(CASES / case / side, tmp_path / side)
        completed = run_app_suite(tree, env={"PYTHONPATH": str(tree)})
        assert completed.returncode == 0, f"{case}/{side}:\n{completed.stdout[-3000:]}{completed.stderr[-2000:]}"


def test_the_codemod_output_is_what_the_after_suite_ran(tmp_path):
    tree = copy_tree(CASES / "json_api" / "before", tmp_path / "tree")
    run_codemods(tree, ["error-handling"])
    completed = run_app_suite(tree, env={"PYTHONPATH": str(tree)})
    assert completed.returncode == 0, completed.stdout[-3000:]


def test_routing_errors_and_unauthorized_keep_headers(tmp_path):
    requests = [
        {"method": "PATCH", "path": "/api/items"},
        {"method": "PUT", "path": "/api/items/1"},
        {"method": "GET", "path": "/api/nowhere"},
        {"method": "POST", "path": "/api/items", "json": {"name": "x"}},
    ]
    before = serve_requests(copy_tree(CASES / "json_api" / "before", tmp_path / "b"), "inventory:create_app()",
                            requests, env=FIXED_HASH)
    after = serve_requests(copy_tree(CASES / "json_api" / "after", tmp_path / "a"), "inventory:create_app()",
                           requests, env=FIXED_HASH)
    assert after == before
    assert before[0]["status"] == 405 and "GET" in before[0]["headers"]["Allow"]
    assert before[3]["status"] == 401


def write_app(root: Path, source: str) -> Path:
    root.mkdir(parents=True)
    (root / "app.py").write_text(textwrap.dedent(source).lstrip())
    return root


def converted(tmp_path: Path, source: str) -> tuple[Path, Path, str]:
    before = write_app(tmp_path / "before", source)
    after = copy_tree(before, tmp_path / "after")
    run_codemods(after, ["error-handling"])
    return before, after, (after / "app.py").read_text()


def test_handler_reproduces_jsonify_debug_indentation(tmp_path):
    before, after, text = converted(tmp_path, '''
        from flask import Flask, jsonify

        app = Flask(__name__)
        app.config["DEBUG"] = True


        @app.route("/things/<int:thing_id>")
        def thing(thing_id):
            return jsonify({"error": f"no thing {thing_id}"}), 404
    ''')
    assert 'abort(404, description=f"no thing {thing_id}")' in text
    requests = [{"path": "/things/3"}, {"path": "/missing"}]
    old, new = serve_requests(before, "app:app", requests), serve_requests(after, "app:app", requests)
    assert new == old
    assert old[0]["body"] == '{\n  "error": "no thing 3"\n}\n'


def test_raise_becomes_abort_with_every_argument_by_keyword(tmp_path):
    before, after, text = converted(tmp_path, '''
        from flask import Flask
        from werkzeug.datastructures import WWWAuthenticate
        from werkzeug.exceptions import MethodNotAllowed, NotFound, Unauthorized

        app = Flask(__name__)


        @app.route("/gone")
        def gone():
            raise NotFound("this page moved away")


        @app.route("/only-get")
        def only_get():
            raise MethodNotAllowed(["GET"], "use GET")


        @app.route("/private")
        def private():
            raise Unauthorized("log in first", www_authenticate=WWWAuthenticate("basic", {"realm": "x"}))
    ''')
    assert 'abort(404, description="this page moved away")' in text
    assert 'abort(405, valid_methods=["GET"], description="use GET")' in text
    assert 'abort(401, description="log in first", www_authenticate=WWWAuthenticate(' in text
    assert "MethodNotAllowed" not in text and "from werkzeug.exceptions" not in text
    requests = [{"path": "/gone"}, {"path": "/only-get"}, {"path": "/private"}]
    old, new = serve_requests(before, "app:app", requests), serve_requests(after, "app:app", requests)
    assert new == old
    assert old[1]["headers"]["Allow"] == "GET" and "use GET" in old[1]["body"]
    assert old[2]["headers"]["WWW-Authenticate"].startswith("Basic")


def test_existing_abort_in_another_view_of_the_scope_keeps_its_page(tmp_path):
    before, after, text = converted(tmp_path, '''
        import flask as f

        app = f.Flask(__name__)
        NAMES = {"ana"}


        @app.route("/users/<name>")
        def user(name):
            if name not in NAMES:
                return f.jsonify(error="no such user"), 404
            return f.jsonify(name=name)


        @app.route("/legacy/<name>")
        def legacy(name):
            f.abort(404, description="legacy page")
    ''')
    assert 'f.abort(404, description="no such user")' in text
    requests = [{"path": "/users/bob"}, {"path": "/legacy/x"}, {"path": "/nothing"}]
    old, new = serve_requests(before, "app:app", requests), serve_requests(after, "app:app", requests)
    assert new == old
    assert old[0]["content_type"] == "application/json" and old[1]["content_type"].startswith("text/html")


def test_abort_codes_come_from_werkzeug():
    errors = http_errors()
    assert errors.abort_codes == frozenset(default_exceptions)
    assert 402 not in errors.abort_codes and 404 in errors.abort_codes
    assert errors.constructor_parameters[405][0] == "valid_methods"
    assert errors.constructor_parameters[404][0] == "description"
    assert errors.exception_codes["werkzeug.exceptions.NotFound"] == 404


def test_unexpected_error_handler_logs_the_traceback(tmp_path):
    tree = copy_tree(CASES / "unexpected_errors_option" / "after", tmp_path / "app")
    script = textwrap.dedent('''
        import logging, sys
        sys.path.insert(0, ".")
        from app import app
        records = []
        handler = logging.Handler()
        handler.emit = records.append
        app.logger.addHandler(handler)
        app.testing = False
        app.config["PROPAGATE_EXCEPTIONS"] = False
        client = app.test_client()
        response = client.get("/ratio/coffee")
        assert response.status_code == 500 and b"Internal Server Error" in response.data
        assert client.get("/secret").status_code == 403
        assert len(records) == 1 and records[0].exc_info[0] is ZeroDivisionError
        assert "/ratio/coffee [GET]" in records[0].getMessage()
        app.config["PROPAGATE_EXCEPTIONS"] = None
        app.testing = True
        try:
            client.get("/ratio/coffee")
        except ZeroDivisionError:
            print("propagated")
    ''')
    completed = subprocess.run([sys.executable, "-c", script], cwd=tree, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == "propagated"


SITE_CASES = [
    ('return jsonify({"error": m}), 404', None),
    ("return jsonify(error=m), 400", None),
    ('return {"error": m}, 409', None),
    ("return make_response(jsonify(error=m), 422)", None),
    ('return "Not found", 404', None),
    ("return f'no {m}', 410", None),
    ("return jsonify(error=m), 402", "abort() cannot raise 402"),
    ('return jsonify(error=m), 404, {"X-A": "1"}', "headers"),
    ("return jsonify(error=m, field=f), 400", "2 keys"),
    ('return jsonify(error=m), "404 NOT FOUND"', "status is a string"),
    ("return jsonify(error=m), status", "not a literal"),
    ("return jsonify(payload), 400", "not a dict literal"),
    ("return jsonify(error=lookup(m)), 400", "may be None"),
]


@pytest.mark.parametrize("statement, problem", SITE_CASES)
def test_site_classification(statement, problem):
    import libcst as cst

    from flask_refactor.codemods._error_handling_sites import analyse_function
    from flask_refactor.codemods.support.imports import ImportMap

    source = f"from flask import jsonify, make_response\n\ndef view(m, f, status):\n    if m:\n        {statement}\n"
    module = cst.parse_module(source)
    sites = analyse_function(module.body[1], ImportMap.of(module), lambda node: (1, 0))
    assert len(sites) == 1
    if problem is None:
        assert sites[0].skip is None and sites[0].replacement_args[0][0] == "description"
    else:
        assert problem in sites[0].skip


@pytest.mark.parametrize("wrapper, blocked", [
    ("try:\n{body}\nexcept Exception:\n    pass", True),
    ("try:\n{body}\nexcept:\n    pass", True),
    ("try:\n{body}\nexcept HTTPException:\n    pass", True),
    ("try:\n{body}\nexcept (KeyError, ValueError):\n    pass", False),
    ("try:\n{body}\nexcept IntegrityError:\n    pass", False),
    ("try:\n    pass\nexcept Exception:\n{body}", False),
    ("try:\n{body}\nfinally:\n    log()", True),
    ("with db.session.begin():\n{body}", True),
    ("for x in m:\n{body}", False),
])
def test_enclosing_blocks(wrapper, blocked):
    import libcst as cst

    from flask_refactor.codemods._error_handling_sites import analyse_function
    from flask_refactor.codemods.support.imports import ImportMap

    block = textwrap.indent(wrapper.format(body="    return jsonify(error='x'), 404"), "    ")
    source = ("from flask import jsonify\nfrom sqlalchemy.exc import IntegrityError\n"
              "from werkzeug.exceptions import HTTPException\n\n"
              f"def view(m):\n{block}\n")
    module = cst.parse_module(source)
    sites = analyse_function(module.body[3], ImportMap.of(module), lambda node: (1, 0))
    assert len(sites) == 1
    assert (sites[0].skip is not None) == blocked, sites[0].skip


@pytest.mark.parametrize("decorator, handler", [
    # the wrapped view called inside the try: what it raises, an abort() too, ends there
    ("def d(view):\n    def w(*a):\n        try:\n            return view(*a)\n        except Exception:\n"
     "            return 'x', 500\n    return w", "except Exception"),
    ("def d(view):\n    def w(*a):\n        try:\n            return view(*a)\n        except (KeyError, HTTPException):\n"
     "            raise\n    return w", "except HTTPException"),
    # a decorator factory: the view is the parameter of the function it returns
    ("def d(level):\n    def deco(f):\n        def w(*a):\n            try:\n                result = f(*a)\n"
     "            except:\n                result = None\n            return result\n        return w\n    return deco",
     "except:"),
    # handed on rather than called: `ensure_sync(view)(...)`
    ("def d(view):\n    def w(*a):\n        try:\n            return ensure_sync(view)(*a)\n        except Exception:\n"
     "            return 'x', 500\n    return w", "except Exception"),
    # narrow handlers, or a try that does not hold the call, catch nothing an abort raises
    ("def d(view):\n    def w(*a):\n        try:\n            return view(*a)\n        except ValueError:\n"
     "            return view(*a)\n    return w", None),
    ("def d(view):\n    def w(*a):\n        try:\n            log()\n        except Exception:\n            pass\n"
     "        return view(*a)\n    return w", None),
    ("def d(view):\n    def w(*a):\n        try:\n            return view(*a)\n        except IntegrityError:\n"
     "            return 'x', 409\n    return w", None),
    # a parameter named, not called: a decorator registering the view in a table
    ("def d(view):\n    def w(*a):\n        try:\n            TABLE[view.__name__] = view\n        except Exception:\n"
     "            pass\n        return view(*a)\n    return w", None),
    # the try runs when the view is decorated, not at a request
    ("def d(view):\n    try:\n        check(view)\n    except Exception:\n        pass\n    return view", None),
    # a plain function catching around a call of its argument is no decorator's wrapper
    ("def parse(text, loads):\n    try:\n        return loads(text)\n    except Exception:\n        return None", None),
])
def test_decorators_calling_the_view_inside_a_broad_try_are_found(decorator, handler):
    import libcst as cst

    from flask_refactor.codemods._error_handling_sites import catches_around_parameters
    from flask_refactor.codemods.support.imports import ImportMap

    module = cst.parse_module("from sqlalchemy.exc import IntegrityError\n"
                              f"from werkzeug.exceptions import HTTPException\n\n{decorator}\n")
    assert catches_around_parameters(module.body[-1], ImportMap.of(module)) == handler


def test_without_werkzeug_the_codemod_imports_and_refuses():
    script = textwrap.dedent('''
        import sys
        sys.modules["werkzeug"] = None  # as if flask-refactor ran where Flask is not installed
        from flask_refactor.codemods.error_handling import ErrorHandling
        from flask_refactor.project import Project
        codemod = ErrorHandling()
        changes = codemod.run(Project.from_texts({"app.py": "from flask import jsonify\\n"}))
        assert not changes.changes
        [finding] = changes.findings
        print(finding.severity.value, "Werkzeug is not installed" in finding.message)
    ''')
    # -P: the source tree (the working directory) must not shadow the installed package
    completed = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.split() == ["error", "True"]


def test_a_module_without_error_returns_is_not_rendered_for_lines(monkeypatch):
    # positions render a whole module: only modules with something to report pay for them
    from flask_refactor.codemods.error_handling import ErrorHandling
    from flask_refactor.project import Project

    rendered = rendered_for_positions(monkeypatch)
    project = Project.from_texts({
        "app.py": "from flask import Flask, jsonify\n\napp = Flask(__name__)\n\n\n@app.route('/items/<int:i>')\n"
                  "def item(i):\n    if i > 9:\n        return jsonify(error='no such item'), 404\n    return jsonify(i)\n\n\n"
                  "import views  # noqa: E402\n",
        "views.py": "from flask import jsonify\n\nfrom app import app\n\n\ndef total(items):\n    if not items:\n"
                    "        return 0\n    return sum(items)\n\n\n@app.route('/sum')\ndef sum_view():\n"
                    "    return jsonify(total([1, 2]))\n",
    })
    views = project.parse("views.py")
    changes = ErrorHandling().run(project)
    assert "abort(404" in changes.changes["app.py"].text
    assert rendered and not any(module is views for module in rendered)


def test_werkzeug_facts_read_without_its_package_are_those_of_a_plain_import(tmp_path):
    """error-handling loads `werkzeug.exceptions` without running Werkzeug's package (its
    server and test client): the facts are the same as after `import werkzeug`, and no
    Werkzeug module is left behind for the process's own imports."""
    code = textwrap.dedent("""
        import sys
        from flask_refactor.codemods.support import errors
        quick = errors.http_errors()
        assert not [name for name in sys.modules if name.split(".")[0] == "werkzeug"]
        import werkzeug
        errors.http_errors.cache_clear()
        plain = errors.http_errors()
        assert quick == plain and len(quick.abort_codes) > 20, (quick, plain)
        assert werkzeug.exceptions.NotFound.code == 404
        print("same")
    """)
    # (run outside the source tree: the installed package, as the tool runs)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.strip() == "same", done.stderr
