"""globals-to-g: the fixture apps' own suites fail before the rewrite and pass after it
(concurrent requests through a real threaded server on loopback), plus focused cases."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import FIXTURES, copy_tree, run_app_suite
from flask_refactor.project import Project
from flask_refactor.codemod import Severity
from flask_refactor.codemods.globals_to_g import GlobalsToG

SUITES = {
    # fixture case -> the test that shows the shared-global bug before the rewrite
    "legacy-request-user": "tests/test_concurrency.py::test_concurrent_requests_keep_their_own_user",
    "factory-blueprint": "tests/test_cart.py::test_concurrent_carts_stay_apart",
    "connection-per-request": "tests/test_threads.py::test_concurrent_readers_use_their_own_connection",
    "streaming-report": "tests/test_stream.py::test_concurrent_downloads_keep_their_own_viewer",
}


@pytest.mark.parametrize("case", sorted(SUITES))
def test_fixture_suite_fails_before_and_passes_after(case, tmp_path):
    directory = FIXTURES / "globals-to-g" / case
    before = run_app_suite(copy_tree(directory / "before", tmp_path / "before"))
    assert before.returncode == 1, before.stdout[-3000:]
    assert f"FAILED {SUITES[case]}" in before.stdout
    assert before.stdout.count("FAILED") == 1, before.stdout[-3000:]
    after = run_app_suite(copy_tree(directory / "after", tmp_path / "after"))
    assert after.returncode == 0, after.stdout[-3000:] + after.stderr[-2000:]


def rewrite(files: dict[str, str]):
    project = Project.from_texts(files)
    changes = GlobalsToG().run(project)
    return {path: change.text for path, change in changes.changes.items()}, changes.findings


APP_HEAD = "from flask import Flask, request\n\napp = Flask(__name__)\n"


def test_view_that_writes_first_uses_plain_attribute():
    source = APP_HEAD + (
        "lang = None\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    global lang\n"
        "    lang = request.args.get('lang', 'en')\n"
        "    return lang.upper()\n"
    )
    out, findings = rewrite({"app_one.py": source})
    assert findings == []
    text = out["app_one.py"]
    assert "g.lang = request.args.get('lang', 'en')" in text
    assert "return g.lang.upper()" in text
    assert "global" not in text and "lang = None" not in text


def test_value_written_in_one_view_and_read_in_another_is_left_alone():
    source = APP_HEAD + (
        "last_seen = None\n\n"
        "@app.route('/visit')\n"
        "def visit():\n"
        "    global last_seen\n"
        "    last_seen = request.args['who']\n"
        "    return 'ok'\n\n"
        "@app.route('/last')\n"
        "def last():\n"
        "    return last_seen or ''\n"
    )
    out, findings = rewrite({"app_two.py": source})
    assert out == {}
    assert len(findings) == 1 and "carried from one request to another" in findings[0].message
    assert findings[0].severity is Severity.WARNING


def test_g_already_bound_gets_an_alias():
    source = APP_HEAD + (
        "user = None\n\n"
        "@app.before_request\n"
        "def load():\n"
        "    global user\n"
        "    user = request.headers.get('X-User')\n\n"
        "@app.route('/groups')\n"
        "def groups():\n"
        "    return ','.join(g + user for g in ['a', 'b'])\n"
    )
    out, findings = rewrite({"app_three.py": source})
    text = out["app_three.py"]
    assert "from flask import Flask, request, g as flask_g" in text
    assert "flask_g.user = request.headers.get('X-User')" in text
    assert "g + flask_g.user for g in" in text
    compile(text, "app_three.py", "exec")


def test_conditional_hook_write_without_literal_default_is_reported():
    source = APP_HEAD + (
        "user = object()\n\n"
        "@app.before_request\n"
        "def load():\n"
        "    global user\n"
        "    if 'X-User' in request.headers:\n"
        "        user = request.headers['X-User']\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    return str(user)\n"
    )
    out, findings = rewrite({"app_four.py": source})
    assert out == {}
    assert "no literal module default" in findings[0].message


def test_hook_writing_in_every_branch_counts_as_always_writing():
    source = APP_HEAD + (
        "user = None\n\n"
        "@app.before_request\n"
        "def load():\n"
        "    global user\n"
        "    try:\n"
        "        user = request.headers['X-User']\n"
        "    except KeyError:\n"
        "        user = 'anonymous'\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    return user\n"
    )
    out, findings = rewrite({"app_five.py": source})
    assert findings == []
    assert "return g.user" in out["app_five.py"]


USER_APP = APP_HEAD + (
    "user = None\n\n"
    "@app.before_request\n"
    "def load():\n"
    "    global user\n"
    "    user = request.headers.get('X-User')\n"
)


def test_global_imported_by_another_module_is_left_alone():
    out, findings = rewrite({"app_six.py": USER_APP, "mailer.py": "import os\nfrom app_six import user\n"})
    assert out == {}
    assert "imported or patched by another module (mailer.py:2)" in findings[0].message


# Each way another module can reach `pkg.state.user`: what `external_references` must
# still find once it walks only the files whose imports lead to the globals' modules.
REACHING = {
    "pkg/via_package.py": "import pkg.state\n\ndef who():\n    return pkg.state.user\n",
    "pkg/via_parent.py": "from pkg import state\n\ndef who():\n    return state.user\n",
    "pkg/via_alias.py": "import pkg.state as s\n\ndef who():\n    return s.user\n",
    "pkg/via_relative.py": "from .state import user\n",
    "pkg/via_function.py": "def who():\n    from pkg.state import user\n    return user\n",
    "pkg/via_setattr.py": "from pkg import state\n\ndef reset():\n    setattr(state, 'user', None)\n",
    "pkg/via_string.py": "from pkg import helpers\n\nPATCHED = 'pkg.state.user'\n",
}


@pytest.mark.parametrize("path", sorted(REACHING))
def test_global_reached_from_another_module_of_its_package_is_left_alone(path):
    files = {"pkg/__init__.py": "", "pkg/state.py": USER_APP, "pkg/helpers.py": "from pkg import state\n",
             path: REACHING[path]}
    out, findings = rewrite(files)
    assert out == {}
    assert f"imported or patched by another module ({path}:" in findings[0].message


def test_external_references_walk_only_files_whose_imports_lead_to_the_modules():
    """A file importing other parts of the package (`from pkg import db`, `pkg.other`)
    cannot spell a global of `pkg.state` but in a string: it is not walked."""
    from flask_refactor.codemods.globals_to_g import _referencing_paths

    files = {"pkg/__init__.py": "db = None\n", "pkg/state.py": USER_APP, "pkg/other.py": "from pkg import db\n",
             "pkg/deeper.py": "from pkg.other import db\nfrom . import other\n",
             "pkg/whole.py": "import pkg.other\n", **REACHING}
    project = Project.from_texts(files)
    walked = _referencing_paths(project, frozenset({"pkg.state"}))
    assert set(REACHING) <= set(walked)
    assert "pkg/other.py" not in walked and "pkg/deeper.py" not in walked
    # `import pkg.other` binds `pkg`, through which `pkg.state.user` can be read too
    assert "pkg/whole.py" in walked
    assert {"pkg/deeper.py", "pkg/whole.py"} <= set(_referencing_paths(project, frozenset({"pkg.other"})))


def test_global_named_in_a_string_by_an_unconnected_file_is_left_alone():
    """A file that imports nothing of the app can still patch a global by its dotted
    name; one whose strings only look alike ("app_six.users", "app_six.user.x") is not
    even parsed."""
    lookalike = "KEYS = ['app_six.users', 'app_six.user.x']\n"
    patcher = "def test_it(monkeypatch):\n    monkeypatch.setattr('app_six.user', 'ada')\n"
    project = Project.from_texts({"app_six.py": USER_APP, "keys.py": lookalike, "test_patch.py": patcher})
    changes = GlobalsToG().run(project)
    assert changes.changes == {}
    assert "imported or patched by another module (test_patch.py:2)" in changes.findings[0].message
    assert "keys.py" not in project.parse_counts

    out, findings = rewrite({"app_six.py": USER_APP, "keys.py": lookalike})
    assert "g.user = request.headers" in out["app_six.py"]


def test_after_app_factory_in_one_run(tmp_path):
    """app-factory moves the hooks onto a blueprint (`before_app_request`); globals-to-g,
    run next in the same chain, still finds and converts the per-request globals."""
    from flask_refactor import registry
    from helpers import Case, read_tree, run_codemods, serve_requests

    try:
        registry.get("app-factory")
    except Exception:  # noqa: BLE001 - the other codemod is optional here
        pytest.skip("app-factory is not available")
    case = Case.load(FIXTURES / "globals-to-g" / "legacy-request-user")
    tree = copy_tree(case.before, tmp_path / "tree")
    for test_file in (tree / "tests").iterdir():
        test_file.unlink()  # the suite reads app_module.app, which app-factory refuses to move
    (tree / "tests").rmdir()
    result = run_codemods(tree, ["app-factory", "globals-to-g"])
    assert not len(result.errors), list(result.errors)
    if "create_app" not in (tree / "app.py").read_text():
        pytest.skip(f"app-factory left the app alone: {[f.message for f in result.findings]}")
    text = (tree / "app.py").read_text()
    assert "global " not in text
    assert "g.current_user = request.headers" in text
    assert "before_app_request" in text
    assert read_tree(tree) != read_tree(case.before)
    before = serve_requests(copy_tree(case.before, tmp_path / "before"), "app:app", case.behaviour["requests"])
    after = serve_requests(tree, "app:create_app()", case.behaviour["requests"])
    assert after == before


def test_requests_inside_an_outer_app_context_share_g(tmp_path):
    """Flask <= 3.1 reuses an app context that is already pushed, so requests made inside
    `with app.app_context():` (test fixtures, CLI commands) share one g. A value a hook
    sets only on some requests then survives into the next one, as the global did."""
    from importlib.metadata import version

    tree = copy_tree(FIXTURES / "globals-to-g" / "legacy-request-user" / "after", tmp_path / "after")
    script = (
        "import json, app\n"
        "ada, bob = app.app.test_client(), app.app.test_client()\n"
        "ada.post('/login', query_string={'tenant': 'initech'})\n"
        "with app.app.app_context():\n"
        "    ada.get('/me')\n"
        "    inside = bob.get('/me').get_json()['tenant']\n"
        "ada.get('/me')\n"
        "outside = bob.get('/me').get_json()['tenant']\n"
        "print(json.dumps([inside, outside]))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=tree, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr[-2000:]
    inside, outside = __import__("json").loads(completed.stdout.splitlines()[-1])
    assert outside == "public"
    major, minor = (int(part) for part in version("flask").split(".")[:2])
    reuses_context = (major, minor) <= (3, 1)
    assert inside == ("initech" if reuses_context else "public")


def test_star_import_partial_global_and_error_handler_default():
    source = (
        "from flask import *\n\n"
        "app = Flask(__name__)\n"
        "user = None\n"
        "hits = 0\n\n"
        "@app.before_request\n"
        "def load():\n"
        "    global user, hits\n"
        "    hits += 1\n"
        "    user = request.headers.get('X-User'); print('loaded')\n\n"
        "@app.errorhandler(500)\n"
        "def failed(error):\n"
        "    return 'sorry %s' % user, 500\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    return user or ''\n"
    )
    out, findings = rewrite({"star_globals.py": source})
    text = out["star_globals.py"]
    assert "    global hits\n    hits += 1\n" in text
    assert "g.user = request.headers.get('X-User'); print('loaded')" in text
    assert "'sorry %s' % g.get('user', None)" in text  # may run when the hook failed first
    assert "return g.user or ''" in text
    assert "from flask import *\n\napp" in text  # g comes from the star import
    assert sorted(f.message.split(" ")[0] for f in findings) == ["hits", "user"]
    compile(text, "star_globals.py", "exec")


def test_blueprint_hook_only_covers_its_own_views():
    source = (
        "from flask import Blueprint, request\n\n"
        "admin = Blueprint('admin', __name__)\n"
        "shop = Blueprint('shop', __name__)\n"
        "role = None\n\n"
        "@admin.before_request\n"
        "def load_role():\n"
        "    global role\n"
        "    role = request.headers.get('X-Role')\n\n"
        "@admin.route('/panel')\n"
        "def panel():\n"
        "    return role\n\n"
        "@shop.route('/basket')\n"
        "def basket():\n"
        "    return role\n"
    )
    out, findings = rewrite({"two_blueprints.py": source})
    text = out["two_blueprints.py"]
    # the admin hook does not run for shop requests: there it used to be a stale value
    # left by some admin request, now the default
    assert "def panel():\n    return g.role\n" in text
    assert "def basket():\n    return g.get('role', None)\n" in text
    assert [f.severity for f in findings] == [Severity.INFO]
    without_default = source.replace("role = None\n", "")
    out, findings = rewrite({"two_blueprints.py": without_default})
    assert out == {}
    assert "basket() may read it before any hook writes it" in findings[0].message
    own_views_only = without_default.replace("@shop.route('/basket')\ndef basket():\n    return role\n", "")
    out, findings = rewrite({"two_blueprints.py": own_views_only})
    assert "return g.role" in out["two_blueprints.py"] and findings == []


def test_globals_of_tasks_cli_commands_and_clients_are_left_alone():
    source = (
        "import click\n"
        "import requests\n"
        "from celery import shared_task\n"
        "from flask import Flask, request\n\n"
        "app = Flask(__name__)\n"
        "batch = None\n"
        "operator = None\n"
        "http = None\n\n"
        "@shared_task\n"
        "def import_batch(name):\n"
        "    global batch\n"
        "    batch = name\n\n"
        "@app.cli.command('whoami')\n"
        "@click.argument('name')\n"
        "def whoami(name):\n"
        "    global operator\n"
        "    operator = name\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    global http\n"
        "    http = requests.Session()\n"
        "    return http.get(request.args['url']).text + str(batch) + str(operator)\n"
    )
    out, findings = rewrite({"jobs_app.py": source})
    assert out == {}
    reasons = {f.message.split(" ")[0]: f.message for f in findings}
    assert "import_batch() (line 14), a task, which runs outside any request" in reasons["batch"]
    assert "whoami() (line 20), a CLI command" in reasons["operator"]
    assert "holds a Session object" in reasons["http"]


@pytest.mark.parametrize("start, reason", [
    # a function written on one line (`def report(): ...`) calls what its line calls
    ("threading.Thread(target=report).start()", "called from report() (a thread target)"),
    ("threading.Thread(target=lambda: print(describe())).start()", "a thread target"),
    ("threading.Thread(target=functools.partial(report_to, print)).start()",
     "called from report_to() (a thread target)"),
    ("queue.enqueue(report)", "called from report() (a queued or scheduled job)"),
])
def test_a_global_read_outside_requests_is_left_alone_however_it_gets_there(start, reason):
    """On `g`, the global would fail in the thread or the job, outside any app context."""
    source = (
        "import functools\n"
        "import threading\n"
        "from flask import Flask, jsonify\n"
        "from rq import Queue\n\n"
        "app = Flask(__name__)\n"
        "queue = Queue()\n"
        "current_user = None\n\n"
        "@app.before_request\n"
        "def load_user():\n"
        "    global current_user\n"
        "    current_user = 'alice'\n\n"
        "def describe():\n"
        "    return f'user={current_user}'\n\n"
        "def report(): print(describe())\n\n"
        "def report_to(write):\n"
        "    write(describe())\n\n"
        "@app.route('/')\n"
        "def index():\n"
        f"    {start}\n"
        "    return jsonify(text=describe())\n"
    )
    out, [finding] = rewrite({"app.py": source})
    assert out == {}
    assert finding.message == (f"current_user left as a module global: used in describe() (line 16), {reason}, "
                               "which runs outside any request")


def test_name_already_used_on_g_is_left_alone():
    source = APP_HEAD + (
        "from flask import g\n"
        "user = None\n\n"
        "@app.before_request\n"
        "def load():\n"
        "    global user\n"
        "    user = request.headers.get('X-User')\n"
        "    g.user = {'name': user}\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    return user\n"
    )
    out, findings = rewrite({"clash_app.py": source})
    assert out == {}
    assert "g.user is already used (clash_app.py)" in findings[0].message


@pytest.mark.parametrize("use", ["from flask import g\n\ndef who():\n    return g.user\n",
                                 "from flask import g as flask_g2\n\ndef who():\n    return flask_g2.user\n",
                                 "from flask import g\n\ndef who():\n    return g.get( 'user')\n",
                                 # an alias ending in a digit that is not ASCII (found in the file's bytes too)
                                 "from flask import g as flask_g\u0663\n\ndef who():\n    return flask_g\u0663.user\n"])
def test_name_used_on_g_by_another_module_is_left_alone(use):
    """Each module's work asks only the files that read some attribute of `g` (found
    once, before the work is shared out) whether they read this one."""
    files = {"user_app.py": USER_APP, "helpers.py": use, "other.py": "from flask import g\nuser = g.other\n"}
    out, findings = rewrite(files)
    assert out == {}
    assert "g.user is already used (helpers.py)" in findings[0].message
    out, _ = rewrite({"user_app.py": USER_APP, "other.py": files["other.py"]})
    assert "g.user = request.headers" in out["user_app.py"]


def test_name_used_on_g_by_a_template_is_left_alone():
    files = {"user_app.py": USER_APP, "templates/base.html": "<p>{{ g.user }}</p>\n",
             "templates/other.html": "<p>{{ user }}</p>\n"}
    out, findings = rewrite(files)
    assert out == {}
    assert "g.user is already used (templates/base.html)" in findings[0].message
    del files["templates/base.html"]
    out, _ = rewrite(files)
    assert "g.user = request.headers" in out["user_app.py"]


def test_global_computed_from_its_previous_value_is_left_alone():
    source = APP_HEAD + (
        "hits = 0\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    global hits\n"
        "    hits = hits + 1\n"
        "    return str(hits)\n"
    )
    out, findings = rewrite({"counter_app.py": source})
    assert out == {}
    assert "index() computes it from its previous value (line 9)" in findings[0].message
    out, findings = rewrite({"counter_app.py": source.replace("hits = hits + 1", "hits = len(request.args)")})
    assert findings == [] and "g.hits = len(request.args)" in out["counter_app.py"]


def test_default_read_inside_an_f_string_uses_the_other_quote():
    source = APP_HEAD + (
        'tenant = "public"\n\n'
        "@app.before_request\n"
        "def pick():\n"
        "    global tenant\n"
        "    if 'X-Tenant' in request.headers:\n"
        "        tenant = request.headers['X-Tenant']\n\n"
        "@app.route('/')\n"
        "def index():\n"
        '    return f"tenant: {tenant}"\n'
    )
    out, findings = rewrite({"fstring_app.py": source})
    # f"{g.get('tenant', "public")}" is invalid before Python 3.12: left alone
    assert out == {}
    assert "read inside an f-string (line 14)" in findings[0].message
    single_default = source.replace('tenant = "public"', "tenant = 'public'")
    out, findings = rewrite({"fstring_app.py": single_default})
    assert "return f\"tenant: {g.get('tenant', 'public')}\"" in out["fstring_app.py"]
    compile(out["fstring_app.py"], "fstring_app.py", "exec")


def test_after_request_and_its_helpers_fall_back_to_the_default():
    source = APP_HEAD + (
        "user = None\n\n"
        "@app.before_request\n"
        "def auth():\n"
        "    global user\n"
        "    if 'X-Token' not in request.headers:\n"
        "        return 'denied', 401\n"
        "    user = request.headers['X-Token']\n\n"
        "def who():\n"
        "    return str(user)\n\n"
        "@app.after_request\n"
        "def stamp(response):\n"
        "    response.headers['X-User'] = who()\n"
        "    return response\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    return user\n"
    )
    out, findings = rewrite({"late_hooks.py": source})
    text = out["late_hooks.py"]
    assert "return str(g.get('user', None))" in text  # after_request runs after the early return too
    assert "def index():\n    return g.user\n" in text
    assert "in who()" in findings[0].message


def test_global_statement_inside_a_block_is_removed_too():
    source = APP_HEAD + (
        "user = None\n\n"
        "@app.before_request\n"
        "def load():\n"
        "    if request.path:\n"
        "        global user\n"
        "    user = request.path\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    return user\n"
    )
    out, findings = rewrite({"nested_global.py": source})
    text = out["nested_global.py"]
    assert "global" not in text
    assert "    if request.path:\n        pass\n    g.user = request.path\n" in text
    compile(text, "nested_global.py", "exec")


def test_method_views_and_async_views_are_request_code():
    source = (
        "from flask import Flask, request\n"
        "from flask.views import MethodView\n\n"
        "app = Flask(__name__)\n"
        "locale = None\n\n"
        "@app.before_request\n"
        "def pick_locale():\n"
        "    global locale\n"
        "    locale = request.accept_languages.best_match(['en', 'de']) or 'en'\n\n"
        "class GreetingAPI(MethodView):\n"
        "    def get(self):\n"
        "        return {'hello': locale}\n\n"
        "app.add_url_rule('/greeting', view_func=GreetingAPI.as_view('greeting'))\n\n"
        "@app.get('/async')\n"
        "async def greet_async():\n"
        "    return locale\n"
    )
    out, findings = rewrite({"method_views.py": source})
    text = out["method_views.py"]
    assert "return {'hello': g.locale}" in text and "    return g.locale\n" in text
    assert findings == []


def test_module_importing_only_flask_uses_its_g():
    source = (
        "import flask as f\n\n"
        "app = f.Flask(__name__)\n"
        "g = 9.81  # gravity, not flask.g\n"
        "user = None\n\n"
        "@app.before_request\n"
        "def load():\n"
        "    global user\n"
        "    user = f.request.headers.get('X-User')\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    return '%s %s' % (user, g)\n"
    )
    out, findings = rewrite({"alias_app.py": source})
    text = out["alias_app.py"]
    assert "    f.g.user = f.request.headers.get('X-User')\n" in text
    assert "return '%s %s' % (f.g.user, g)" in text
    assert text.startswith("import flask as f\n\napp") and findings == []


def rewrite_once(files: dict[str, str]):
    """rewrite(), checking that a second run on the output changes nothing."""
    out, findings = rewrite(files)
    for path, text in out.items():
        compile(text, path, "exec")
        assert rewrite({**files, **out})[0] == {}, f"second run changed {path}"
    return out, findings


DB_HEAD = "import sqlite3\nfrom flask import Flask, request\n\napp = Flask(__name__)\nconn = None\n\n"
OPEN_DB = "@app.before_request\ndef open_db():\n    global conn\n    conn = sqlite3.connect('x.db')\n\n"
CLOSE_DB = ("@app.teardown_appcontext\ndef close_db(exc):\n    '''Give the connection back.'''\n"
            "    if conn:\n        conn.close()\n\n")
DB_VIEW = "@app.route('/')\ndef index():\n    return str(conn.execute('select 1').fetchone())\n"


def test_connection_closed_in_teardown_appcontext_becomes_a_get_function():
    out, findings = rewrite_once({"db_app.py": DB_HEAD + OPEN_DB + CLOSE_DB + DB_VIEW})
    text = out["db_app.py"]
    assert ("def get_conn():\n    if 'conn' not in g:\n        g.conn = sqlite3.connect('x.db')\n"
            "    return g.conn\n\n@app.before_request\ndef open_db():\n    get_conn()\n") in text
    assert ("'''Give the connection back.'''\n    conn = g.pop('conn', None)\n"
            "    if conn:\n        conn.close()\n") in text
    assert "return str(get_conn().execute('select 1').fetchone())" in text
    messages = [f.message for f in findings]
    assert "conn is now opened by get_conn() (called from open_db()) and closed in close_db()" in messages[0]
    assert "outer `with app.app_context():` (Flask <= 3.1) now share one conn" in messages[1]


def test_connection_read_by_an_error_handler_stays_a_g_attribute():
    late_reader = ("\n@app.errorhandler(500)\ndef failed(error):\n    if conn is not None:\n"
                   "        conn.rollback()\n    return 'sorry', 500\n")
    close_request = CLOSE_DB.replace("teardown_appcontext", "teardown_request")
    out, findings = rewrite_once({"db_app.py": DB_HEAD + OPEN_DB + close_request + DB_VIEW + late_reader})
    text = out["db_app.py"]
    assert "get_conn" not in text and "if g.get('conn', None):\n        g.get('conn', None).close()" in text
    assert any("conn is kept as g.conn, not a get_conn() function: failed() may read it when open_db() has not "
               "opened it" in f.message for f in findings)
    # with teardown_appcontext there is no fallback: that teardown also runs outside requests
    out, findings = rewrite({"db_app.py": DB_HEAD + OPEN_DB + CLOSE_DB + DB_VIEW + late_reader})
    assert out == {}
    assert "a teardown_appcontext, which also runs when an app context without a request ends; and it " \
           "cannot become a get_conn() function: failed() may read it" in findings[0].message


def test_connection_opened_from_a_local_of_the_hook_is_not_moved_into_a_getter():
    opened_from_local = OPEN_DB.replace("    conn = sqlite3.connect('x.db')",
                                        "    path = request.args.get('db', 'x.db')\n    conn = sqlite3.connect(path)")
    out, findings = rewrite({"db_app.py": DB_HEAD + opened_from_local + CLOSE_DB + DB_VIEW})
    assert out == {}
    assert "cannot become a get_conn() function: opening it uses path, local to open_db()" in findings[0].message
    taken = DB_HEAD + OPEN_DB + CLOSE_DB.replace("teardown_appcontext", "teardown_request") + DB_VIEW + (
        "\ndef get_conn():\n    return None\n")
    out, findings = rewrite_once({"db_app.py": taken})
    assert "g.conn = sqlite3.connect('x.db')" in out["db_app.py"]
    assert any("not a get_conn() function: the name get_conn is already used" in f.message for f in findings)


def test_connection_pattern_answers_failed_opens_and_early_returns_alike(tmp_path):
    """A request whose before_request fails to connect, one answered by an earlier hook
    (the connection never opened: the teardown still runs), then normal requests: the
    get_conn()/g.pop version answers exactly as the global did."""
    script = (
        "import json, sqlite3, app\n"
        "real, failing = sqlite3.connect, [False]\n"
        "def connect(*args, **kwargs):\n"
        "    if failing[0]:\n"
        "        raise sqlite3.OperationalError('unable to open database file')\n"
        "    return real(*args, **kwargs)\n"
        "sqlite3.connect = connect\n"
        "app.app.config['PROPAGATE_EXCEPTIONS'] = False\n"
        "client, out = app.app.test_client(), []\n"
        "out.append(client.post('/notes', json={'author': 'ada', 'body': 'one'}).status_code)\n"
        "failing[0] = True\n"
        "out.append(client.get('/notes/ada').status_code)\n"
        "failing[0] = False\n"
        "out.append(client.post('/notes', data='author=ada').status_code)\n"
        "out.append(client.get('/notes/ada').get_json())\n"
        "print(json.dumps(out))\n"
    )
    answers = {}
    for side in ("before", "after"):
        tree = copy_tree(FIXTURES / "globals-to-g" / "connection-per-request" / side, tmp_path / side)
        completed = subprocess.run([sys.executable, "-c", script], cwd=tree, capture_output=True, text=True,
                                   timeout=60, env={**os.environ, "NOTES_DB": str(tmp_path / f"{side}.db")})
        assert completed.returncode == 0, completed.stderr[-2000:]
        answers[side] = completed.stdout.splitlines()[-1]
    assert answers["after"] == answers["before"]
    assert answers["after"].startswith("[201, 500, 415, ")


STREAM_HEAD = (
    "from flask import Flask, Response, request, stream_with_context as swc\n\n"
    "app = Flask(__name__)\nuser = None\n\n"
    "@app.before_request\ndef load():\n    global user\n    user = request.headers.get('X-User')\n\n"
)


def test_generator_returned_bare_is_wrapped_and_so_is_what_it_calls():
    source = STREAM_HEAD + (
        "def label():\n    return 'user ' + str(user)\n\n"
        "@app.route('/')\ndef index():\n"
        "    def gen():\n        yield label()\n        yield ''.join(c for c in user)\n"
        "    return gen()\n"
    )
    out, findings = rewrite_once({"stream_app.py": source})
    text = out["stream_app.py"]
    assert "return 'user ' + str(g.user)" in text and "''.join(c for c in g.user)" in text
    assert "    return swc(gen())\n" in text  # the module's own alias of stream_with_context
    assert [f.line for f in findings] == [16] and "index() now streams gen()" in findings[0].message


def test_generator_already_streamed_with_context_is_not_wrapped_again():
    source = STREAM_HEAD + (
        "@app.route('/')\ndef index():\n"
        "    def gen():\n        yield user\n"
        "    return Response(response=swc(gen()), mimetype='text/plain'), 201\n"
    )
    out, findings = rewrite_once({"stream_app.py": source})
    assert "return Response(response=swc(gen()), mimetype='text/plain'), 201" in out["stream_app.py"]
    assert "yield g.user" in out["stream_app.py"] and findings == []


@pytest.mark.parametrize("view, reason", [
    ("@app.route('/')\ndef index():\n    def gen():\n        yield user\n    resp = Response(gen())\n    return resp\n",
     "used in a generator, lambda or nested function (line 14)"),
    ("@app.route('/')\ndef index():\n    yield user\n", "used in a generator, lambda or nested function (line 13)"),
    ("@app.route('/')\ndef index():\n    def gen():\n        yield (lambda: user)()\n    return Response(gen())\n",
     "used in a generator, lambda or nested function (line 14)"),
    ("def label():\n    return str(user)\n\ndef rows():\n    yield label()\n\n"
     "@app.route('/')\ndef index():\n    return Response(rows())\n",
     "used in label() (line 12), which a generator calls while the response streams"),
    ("@app.teardown_request\ndef reset(exc):\n    global user\n    user = None\n\n"
     "@app.route('/')\ndef index():\n    def gen():\n        yield str(user)\n    return Response(gen())\n",
     "written in reset(), which runs before the stream today but after it"),
])
def test_generators_that_cannot_be_streamed_in_their_request_are_reported(view, reason):
    out, findings = rewrite({"stream_app.py": STREAM_HEAD + view})
    assert out == {}
    assert len(findings) == 1 and reason in findings[0].message, findings
