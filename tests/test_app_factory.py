"""app-factory beyond the fixture pairs: each fixture app's own test suite passes on the
migrated tree, the Flask CLI lists the same rules (with qualified endpoints), and the
migrated app imports in a fresh interpreter without an import cycle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flask_refactor import pipeline, verify
from flask_refactor.codemod import Severity
from flask_refactor.codemods._app_factory_syntax import indent_code
from flask_refactor.project import Project
from flask_refactor.registry import get
from helpers import FIXTURES, copy_tree, serve_requests

CASES = FIXTURES / "app-factory"
FLASK = Path(sys.executable).with_name("flask")
WITH_SUITES = sorted(p.name for p in CASES.iterdir()
                     if (p / "after").is_dir() and any((p / "before").rglob("test_*.py")))


def run(args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("FLASK_APP", None)
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def pytest_in(tree: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"], tree)


@pytest.mark.parametrize("case", WITH_SUITES)
def test_the_apps_own_suite_passes_before_and_after(case: str, tmp_path):
    for side in ("before", "after"):
        tree = copy_tree(CASES / case / side, tmp_path / side)
        result = pytest_in(tree)
        assert result.returncode == 0, f"{side}:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
        assert " passed" in result.stdout


def routes(tree: Path, target: str | None) -> list[tuple[str, str, str]]:
    args = [str(FLASK), *(["--app", target] if target else []), "routes", "--sort", "rule"]
    result = run(args, tree)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines()[2:] if line.strip()]
    return [(row[0], row[1], row[-1]) for row in rows]


@pytest.mark.parametrize("case, target, blueprints", [
    ("single-module", "app", {"": "main"}),
    ("package-circular", "myapp", {"": "views", "login": "auth", "logout": "auth"}),
    ("flat-extensions", "app", {"": "views", "login": "auth", "logout": "auth"}),
])
def test_flask_routes_lists_the_same_rules_with_qualified_endpoints(case, target, blueprints, tmp_path):
    before = routes(copy_tree(CASES / case / "before", tmp_path / "before"), target)
    after_tree = copy_tree(CASES / case / "after", tmp_path / "after")
    after = routes(after_tree, target)
    assert [rule for _, _, rule in after] == [rule for _, _, rule in before]
    expected = [(endpoint if endpoint == "static" else f"{blueprints.get(endpoint, blueprints[''])}.{endpoint}",
                 methods, rule) for endpoint, methods, rule in before]
    assert after == expected
    # bare `flask routes` finds the generated wsgi.py; the factory can be named too
    assert routes(after_tree, None) == expected
    assert routes(after_tree, f"{target}:create_app()") == expected


@pytest.mark.parametrize("case, module", [
    ("single-module", "app"),
    ("package-circular", "myapp"),
    ("flat-extensions", "app"),
])
def test_migrated_app_imports_in_a_fresh_interpreter(case, module, tmp_path):
    tree = copy_tree(CASES / case / "after", tmp_path / "after")
    code = (f"import {module}, wsgi, flask\n"
            f"assert not any(isinstance(v, flask.Flask) for v in vars({module}).values())\n"
            f"assert isinstance({module}.create_app(), flask.Flask)\n"
            "assert isinstance(wsgi.app, flask.Flask) and wsgi.application is wsgi.app\n")
    result = run([sys.executable, "-c", code], tree)
    assert result.returncode == 0, result.stderr[-2000:]


def test_python_app_py_still_starts_the_app(tmp_path):
    """The `__main__` block builds the app with the factory (FLASK_RUN_FROM_CLI makes
    app.run() return at once instead of serving)."""
    tree = copy_tree(CASES / "single-module" / "after", tmp_path / "after")
    env_run = subprocess.run([sys.executable, "app.py"], cwd=tree, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "FLASK_RUN_FROM_CLI": "true", "PYTHONDONTWRITEBYTECODE": "1"})
    assert env_run.returncode == 0, env_run.stderr[-2000:]
    assert "Ignoring a call to 'app.run()'" in env_run.stdout + env_run.stderr


# -- in-memory cases: one property each ------------------------------------------------



def migrate(texts: dict[str, str], broken: tuple[str, ...] = (), then: tuple[str, ...] = (), **options):
    """The outputs and findings of app-factory (then the codemods named in `then`, in the run)."""
    codemods = [get("app-factory")(**options), *(get(name)() for name in then)]
    result = pipeline.run_on_project(Project.from_texts(texts), codemods, jobs=1)
    assert [path for path, _ in result.errors] == list(broken)
    return {o.path: o.new for o in result.outcomes}, result.findings


HEADER = "from flask import Flask, url_for\n\napp = Flask(__name__)\n"


def refused(texts: dict[str, str], broken: tuple[str, ...] = ()) -> list[str]:
    outputs, findings = migrate(texts, broken)
    assert outputs == {}
    assert any(f.severity.value == "error" and "no file was changed" in f.message for f in findings)
    return [f.message for f in findings if f.severity.value == "warning"]


def test_a_value_read_from_the_app_at_import_time_is_refused():
    messages = refused({"app.py": HEADER + "PER_PAGE = app.config['PER_PAGE']\n"})
    assert len(messages) == 1 and "used at import time" in messages[0]


def test_wrapping_the_app_object_is_refused_with_the_fix():
    messages = refused({"app.py": "from werkzeug.middleware.proxy_fix import ProxyFix\n" + HEADER
                        + "app = ProxyFix(app)\n"})
    assert "app.wsgi_app = ProxyFix(app.wsgi_app)" in messages[0]


def test_positional_extension_arguments_are_refused():
    messages = refused({"app.py": "from flask_sqlalchemy import SQLAlchemy\n" + HEADER
                        + "db = SQLAlchemy(app, None)\n"})
    assert "positional arguments" in messages[0]


def test_several_module_level_apps_are_left_alone():
    outputs, findings = migrate({"a.py": HEADER, "b.py": HEADER})
    assert outputs == {}
    assert sorted(f.path for f in findings) == ["a.py", "b.py"]


def test_sqlalchemy_2_style_create_all_runs_in_an_app_context_in_the_factory():
    outputs, _ = migrate({"app.py": "from flask_sqlalchemy import SQLAlchemy\n" + HEADER
                          + "db = SQLAlchemy(app)\ndb.create_all()\n"})
    assert ("    db.init_app(app)\n    with app.app_context():\n        db.create_all()\n"
            "    return app\n") in outputs["app.py"]
    assert "db.create_all()\n\n" not in outputs["app.py"].split("def create_app")[0]


def test_relative_endpoints_and_existing_blueprint_names():
    outputs, _ = migrate({
        "app.py": HEADER + "from admin import admin\napp.register_blueprint(admin)\n\n"
                  "@app.route('/')\ndef index():\n    return url_for('.index')\n",
        "admin.py": "from flask import Blueprint\nadmin = Blueprint('main', __name__)\n",
    })
    app = outputs["app.py"]
    assert 'bp = Blueprint("main_views", __name__)' in app
    assert "url_for('main_views.index')" in app
    assert "    app.register_blueprint(admin)\n    app.register_blueprint(bp)\n" in app


def test_functions_with_their_own_app_are_untouched():
    outputs, _ = migrate({"app.py": HEADER + "\ndef configure(app):\n    app.debug = True\n\n"
                          "@app.route('/')\ndef index():\n    return str(app.debug)\n"})
    app = outputs["app.py"]
    assert "def configure(app):\n    app.debug = True\n" in app
    assert "return str(current_app.debug)" in app


def test_second_run_is_a_no_op():
    texts = {"app.py": "from flask_sqlalchemy import SQLAlchemy\n" + HEADER
             + "db = SQLAlchemy(app)\n\n@app.route('/')\ndef index():\n    return url_for('index')\n",
             "models.py": "from app import db\n"}
    outputs, _ = migrate(texts)
    again, findings = migrate({**texts, **outputs})
    assert again == {} and findings == []


def test_modules_importing_only_extensions_are_rewritten_in_the_shared_per_module_work(monkeypatch):
    # their imports are fixed module by module, independently, as the app's users are
    # migrated: in the same `Project.map` (forked workers, when worth it), not here after it
    mapped: list[list[str]] = []
    real_map = Project.map
    monkeypatch.setattr(Project, "map", lambda self, items, *args, **kwargs: mapped.append(
        [item[0] if isinstance(item, tuple) else item for item in items]) or real_map(self, items, *args, **kwargs))
    outputs, _ = migrate({"app.py": "from flask_sqlalchemy import SQLAlchemy\n" + HEADER + "db = SQLAlchemy(app)\n",
                          "views.py": "from app import app\n\n@app.route('/')\ndef index():\n    return 'hi'\n",
                          "models.py": "from app import db\n"})
    assert outputs["models.py"] == "from extensions import db\n"
    assert ["views.py", "models.py"] in mapped


def test_endpoint_names_are_qualified_wherever_python_holds_them():
    outputs, _ = migrate({"app.py": "from flask import Flask, request, url_for\n\napp = Flask(__name__)\n\n"
                          "@app.route('/')\ndef index():\n"
                          "    if request.endpoint == 'index' or request.endpoint in ('index', 'other'):\n"
                          "        return app.view_functions['index'].__name__\n"
                          "    return url_for(endpoint='index', _external=True)\n"})
    app = outputs["app.py"]
    assert "request.endpoint == 'main.index' or request.endpoint in ('main.index', 'other')" in app
    assert "current_app.view_functions['main.index']" in app
    assert "url_for(endpoint='main.index', _external=True)" in app


def test_module_level_logger_becomes_the_same_named_logger():
    outputs, _ = migrate({"app.py": HEADER + "log = app.logger\n\n@app.route('/')\ndef index():\n"
                          "    log.info('x')\n    return ''\n"})
    app = outputs["app.py"]
    assert "log = logging.getLogger(__name__)" in app and "import logging" in app
    assert "    app.logger  # noqa: B018" in app


# Old releases the generated code must run on (DESIGN: Flask 1.1 to 3.x, Flask-SQLAlchemy
# 2.x/3.x; the test environment itself has the newest). Each set also pins the extensions
# the fixture apps import, at releases that support that Flask, and the pins that keep
# these Flasks importable on Python 3.11 (Jinja2 2.11 needs MarkupSafe < 2.1, etc.).
LEGACY_RELEASES = {
    "flask-1.1": ["Flask==1.1.4", "Werkzeug==1.0.1", "Jinja2==2.11.3", "itsdangerous==1.1.0",
                  "MarkupSafe==2.0.1", "click==7.1.2", "Flask-SQLAlchemy==2.5.1", "SQLAlchemy==1.4.54",
                  "Flask-Migrate==2.7.0", "alembic==1.13.3", "Flask-Login==0.5.0", "Flask-Mail==0.9.1",
                  "Flask-WTF==0.14.3", "WTForms==2.3.3"],
    "flask-2.0": ["Flask==2.0.3", "Werkzeug==2.0.3", "Jinja2==3.0.3", "itsdangerous==2.0.1",
                  "MarkupSafe==2.1.5", "click==8.0.4", "Flask-SQLAlchemy==2.5.1", "SQLAlchemy==1.4.54",
                  "Flask-Migrate==3.1.0", "alembic==1.13.3", "Flask-Login==0.6.3", "Flask-Mail==0.9.1",
                  "Flask-WTF==1.0.1", "WTForms==3.0.1"],
}
PIP_TIMEOUT = 600


def installed_versions(python: Path, pins: list[str]) -> list[str]:
    names = [pin.partition("==")[0] for pin in pins]
    code = ("import sys\nfrom importlib.metadata import version\n"
            "print(' '.join(f'{n}=={version(n)}' for n in sys.argv[1:]))\n")
    return run([str(python), "-c", code, *names], python.parent).stdout.split()


def build_virtualenv(directory: Path, pins: list[str]) -> Path:
    """A virtualenv with exactly `pins` (and this pytest) installed; raises RuntimeError
    saying why when it cannot be built (typically: no access to the package index)."""
    steps = [[sys.executable, "-m", "venv", str(directory)],
             [str(directory / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-input",
              "--disable-pip-version-check", *pins, f"pytest=={pytest.__version__}"]]
    for step in steps:
        try:
            result = run(step, directory.parent, timeout=PIP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"`{' '.join(step[:4])} ...` took over {PIP_TIMEOUT}s") from None
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(step[:4])} ...` failed (is the package index reachable?):\n"
                               f"{result.stderr[-3000:]}")
    python = directory / "bin" / "python"
    if installed_versions(python, pins) != pins:  # a resolver surprise would test the wrong releases
        raise AssertionError(f"{directory.name}: installed {installed_versions(python, pins)}, wanted {pins}")
    return python


@pytest.fixture(scope="session")
def legacy_python(tmp_path_factory):
    """`legacy_python(release)` -> the interpreter of that release's virtualenv, built once
    per session. Unbuildable: fails under CI (the claim must be proven there), else skips."""
    built: dict[str, Path | str] = {}

    def python_for(release: str) -> Path:
        if release not in built:
            directory = tmp_path_factory.mktemp("venvs") / release
            try:
                built[release] = build_virtualenv(directory, LEGACY_RELEASES[release])
            except RuntimeError as error:
                built[release] = f"cannot build the {release} virtualenv to test against: {error}"
        if isinstance(built[release], str):
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(built[release], pytrace=False)
            pytest.skip(built[release])
        return built[release]

    return python_for


@pytest.mark.parametrize("release", sorted(LEGACY_RELEASES))
@pytest.mark.parametrize("case", WITH_SUITES)
def test_the_migrated_suite_passes_on_older_flask_releases(case, release, legacy_python, tmp_path):
    python = legacy_python(release)
    tree = copy_tree(CASES / case / "after", tmp_path / "after")
    result = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"], tree)
    assert result.returncode == 0, f"{release}:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    assert " passed" in result.stdout


@pytest.mark.parametrize("case", ["package-circular", "flat-extensions", "single-module",
                                  "view-import-side-effects"])
def test_every_migrated_module_imports_first_in_a_fresh_interpreter(case, tmp_path):
    """Whatever module is imported first, no import cycle is left (legacy models.py could
    not be imported before app.py)."""
    tree = copy_tree(CASES / case / "after", tmp_path / "after")
    modules = sorted(".".join(p.relative_to(tree).with_suffix("").parts).removesuffix(".__init__")
                     for p in tree.rglob("*.py") if "tests" not in p.parts)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for module in modules:
        result = run([sys.executable, "-c", code, module, *modules], tree)
        assert result.returncode == 0, f"importing {module} first:\n{result.stderr[-2000:]}"


HOOKS = {  # legacy decorator -> what it becomes (None: registered by create_app)
    "before_request": "@bp.before_app_request", "after_request": "@bp.after_app_request",
    "teardown_request": "@bp.teardown_app_request", "context_processor": "@bp.app_context_processor",
    "url_value_preprocessor": "@bp.app_url_value_preprocessor", "url_defaults": "@bp.app_url_defaults",
    "errorhandler(404)": "@bp.app_errorhandler(404)", "template_filter()": "@bp.app_template_filter()",
    "template_test('odd')": "@bp.app_template_test('odd')", "template_global()": "@bp.app_template_global()",
    "teardown_appcontext": None, "shell_context_processor": None, "before_first_request": None,
}


def test_app_wide_hooks_stay_app_wide():
    source = HEADER + "".join(f"\n@app.{hook}\ndef hook_{i}(*args):\n    return args\n"
                              for i, hook in enumerate(HOOKS))
    source += "\n@app.cli.command('init-db')\ndef init_db():\n    pass\n"
    app = migrate({"app.py": source})[0]["app.py"]
    for i, (hook, new) in enumerate(HOOKS.items()):
        if new is None:
            assert f"\ndef hook_{i}(*args):" in app and f"    app.{hook}(hook_{i})\n" in app
        else:
            assert f"{new}\ndef hook_{i}(*args):" in app
    assert 'bp = Blueprint("main", __name__, cli_group=None)' in app and "@bp.cli.command('init-db')" in app


def test_a_factory_hook_under_another_decorator_is_refused():
    messages = refused({"app.py": HEADER + "import functools\n\n@functools.lru_cache()\n@app.teardown_appcontext\n"
                        "def close(exc):\n    pass\n"})
    assert "outermost" in messages[0]


def test_an_unparseable_module_that_may_import_the_app_stops_the_migration():
    messages = refused({"app.py": HEADER + "\n@app.route('/')\ndef index():\n    return ''\n",
                        "views.py": "from app import app\nprint 'python 2'\n"}, broken=("views.py",))
    assert any("views.py cannot be read or parsed" in m for m in messages)


def test_calls_that_configure_the_app_move_into_the_factory_in_order():
    outputs, _ = migrate({"app.py": "from flask_cors import CORS\nfrom ext import cache\n" + HEADER
                          + "app.config['A'] = 1\nCORS(app, origins='*')\ncache.init_app(app)\n"
                          "app.jinja_env.globals['year'] = 2024\n"})
    assert ("    app.config['A'] = 1\n    if config is not None:\n        app.config.from_mapping(config)\n"
            "    CORS(app, origins='*')\n    cache.init_app(app)\n    app.jinja_env.globals['year'] = 2024\n"
            "    return app\n") in outputs["app.py"]


def test_url_building_fields_are_qualified():
    outputs, _ = migrate({"app.py": "from flask_marshmallow import Marshmallow\nfrom flask_restful import fields\n"
                          + HEADER + "ma = Marshmallow(app)\n\n@app.route('/u/<int:id>')\ndef user(id):\n"
                          "    return ''\n\nclass UserSchema(ma.Schema):\n"
                          "    url = ma.URLFor('user', values={'id': '<id>'})\n"
                          "\nuser_fields = {'uri': fields.Url('user')}\n"})
    app = outputs["app.py"]
    assert "ma.URLFor('main.user'" in app and "fields.Url('main.user')" in app


def test_main_block_builds_the_app_and_gives_create_all_a_context():
    source = ("from flask_sqlalchemy import SQLAlchemy\n" + HEADER + "db = SQLAlchemy(app)\n\n"
              "if __name__ == '__main__':\n    db.create_all()\n    app.run()\n")
    app = migrate({"app.py": source})[0]["app.py"]
    assert app.endswith("if __name__ == '__main__':\n    app = create_app()\n"
                        "    with app.app_context():\n        db.create_all()\n    app.run()\n")


def test_a_server_started_outside_the_main_block_is_refused_and_one_it_calls_is_not():
    """Starting the app's server never happens in a request: a function doing it runs in
    an app context only if the `__main__` block (which gets one) reaches it, directly or
    through the module's functions; a Flask command gets one from Flask."""
    reached = ("\ndef main():\n    serve(5001)\n\ndef serve(port):\n    app.config['NAME'] = 'x'\n"
               "    app.run(port=port)\n\nif __name__ == '__main__':\n    main()\n")
    app = migrate({"app.py": HEADER + reached})[0]["app.py"]
    assert "    current_app.run(port=port)\n" in app
    assert app.endswith("    app = create_app()\n    with app.app_context():\n        main()\n")
    command = "\n@app.cli.command()\ndef serve():\n    app.run()\n"
    assert "    current_app.run()\n" in migrate({"app.py": HEADER + command})[0]["app.py"]
    own_app = "\ndef serve():\n    app = Flask('other')\n    app.run()\n"
    assert "    app.run()\n" in migrate({"app.py": HEADER + own_app})[0]["app.py"]
    for unreached in ("\ndef serve():\n    app.run()\n",  # called by nothing here: a plugin host, a script
                      "\nclass Plugin:\n    def command(self):\n        return lambda: app.run()\n\n"
                      "    def serve(self):\n        app.run()\n"):
        messages = refused({"app.py": HEADER + unreached})
        assert messages == ["serve() starts the app's server (`app.run()`) outside any app context (the "
                            "module's `__main__` block does not call it), where current_app would fail; have it "
                            "build the app (`app = create_app()`) and run that"]


@pytest.mark.parametrize("worker, caller", [
    ("import threading\n\nfrom app import configure\n\n\n"
     "class Refresher(threading.Thread):\n    def run(self):\n        configure()\n", "Refresher.run()"),
    ("from rq import Queue\n\nfrom app import configure\n\nqueue = Queue()\n\n\n"
     "def refresh():\n    configure()\n\n\ndef later():\n    queue.enqueue(refresh)\n", "refresh()"),
])
def test_a_function_a_thread_class_or_a_queued_job_calls_is_refused(worker, caller):
    """`Refresher().start()` runs `run()` in a thread, and rq runs `refresh()` in its worker,
    where nobody gives a context (thread-context wraps only the targets it is handed):
    `configure()`'s app as current_app would fail there."""
    messages = refused({"app.py": HEADER + "\ndef configure():\n    app.config['READY'] = True\n", "worker.py": worker})
    assert messages == [f"configure() uses the app and runs outside any app context ({caller} in worker.py "
                        "calls it): as current_app it would fail there; have it build the app (`app = create_app()`) "
                        "and run inside `with app.app_context():`"]


def test_helpers_the_app_imports_use_current_app():
    outputs, _ = migrate({
        "app.py": HEADER + "import helpers\n\n@app.route('/')\ndef index():\n    return helpers.title()\n",
        "helpers.py": "from app import app as application  # the app\n\n\ndef title():\n"
                      "    from app import app\n    return application.config['TITLE'] + app.name\n",
    })
    assert outputs["helpers.py"] == (
        "from flask import current_app\n\n# the app\n\n\ndef title():\n"
        "    from flask import current_app as app\n    return current_app.config['TITLE'] + app.name\n")


def test_app_module_inside_a_package_with_relative_imports():
    outputs, _ = migrate({
        "myapp/__init__.py": "",
        "myapp/app.py": "from flask import Flask\nfrom flask_sqlalchemy import SQLAlchemy\n\n"
                        "app = Flask(__name__)\ndb = SQLAlchemy(app)\n\nfrom . import views  # noqa: E402\n",
        "myapp/views.py": "from flask import url_for\n\nfrom .app import app, db\n\n\n@app.route('/')\n"
                          "def index():\n    return url_for('index')\n",
    })
    assert "from .extensions import db\n" in outputs["myapp/app.py"]
    assert "    from myapp import views\n    app.register_blueprint(views.bp)\n" in outputs["myapp/app.py"]
    assert outputs["myapp/views.py"] == (
        "from flask import Blueprint, url_for\n\nfrom .extensions import db\n\n"
        "bp = Blueprint(\"main\", __name__)\n\n\n@bp.route('/')\ndef index():\n    return url_for('main.index')\n")
    assert outputs["myapp/extensions.py"].endswith("db = SQLAlchemy()\n")
    assert outputs["wsgi.py"].startswith('"""') and "from myapp.app import create_app\n" in outputs["wsgi.py"]


def test_computed_endpoints_can_be_allowed_and_are_then_each_reported():
    texts = {"app.py": HEADER + "\n@app.route('/')\ndef index():\n    return url_for(request_name())\n",
             "templates/nav.html": "{% macro link(endpoint) %}{{ url_for(endpoint) }}{% endmacro %}\n"}
    assert refused(texts)
    outputs, findings = migrate(texts, allow_dynamic_endpoints="true")
    assert "def create_app(config=None):" in outputs["app.py"]
    assert sorted((f.path, f.line, f.severity.value) for f in findings) == [
        ("app.py", 7, "warning"), ("templates/nav.html", 1, "warning")]


def test_cli_commands_keep_their_top_level_names(tmp_path):
    outputs = []
    for side in ("before", "after"):
        tree = copy_tree(CASES / "single-module" / side, tmp_path / side)
        result = run([str(FLASK), "--app", "app", "seed", "2"], tree)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(result.stdout)
        assert "db" in run([str(FLASK), "--app", "app", "--help"], tree).stdout  # Flask-Migrate's group
    assert outputs[0] == outputs[1] == "added 2\n"


def test_functions_that_use_the_app_called_at_import_time_run_in_the_factory():
    source = (HEADER + "\ndef connect():\n    return app.config['DB']\n\n\ndef init_db():\n    connect()\n\n\n"
              "init_db()\n\nif __name__ == '__main__':\n    init_db()\n    app.run()\n")
    app = migrate({"app.py": source})[0]["app.py"]
    assert "    with app.app_context():\n        init_db()\n    return app\n" in app
    assert "    app = create_app()\n    with app.app_context():\n        init_db()\n    app.run()\n" in app
    assert "\ninit_db()\n" not in app


def test_a_value_computed_at_import_time_by_such_a_function_is_refused():
    messages = refused({"app.py": HEADER + "\ndef db_path():\n    return app.config['DB']\n\n\nPATH = db_path()\n"})
    assert "db_path() uses `app` and is called at import time" in messages[0]


def test_tests_reading_the_app_through_its_module_read_it_from_wsgi():
    outputs, _ = migrate({"app.py": HEADER + "VISITS = []\n",
                          "tests/test_it.py": "import app as app_module\n\n\ndef test_it(monkeypatch):\n"
                                              "    monkeypatch.setattr(app_module, 'VISITS', [])\n"
                                              "    assert app_module.app.test_client()\n"})
    assert outputs["tests/test_it.py"] == (
        "import app as app_module\nimport wsgi\n\n\ndef test_it(monkeypatch):\n"
        "    monkeypatch.setattr(app_module, 'VISITS', [])\n    assert wsgi.app.test_client()\n")


def test_a_tests_own_app_does_not_block_the_migration():
    outputs, findings = migrate({"app.py": HEADER, "tests/test_util.py": HEADER})
    assert "def create_app(config=None):" in outputs["app.py"] and "tests/test_util.py" not in outputs
    assert [(f.path, f.severity.value) for f in findings] == [("tests/test_util.py", "info")]


def test_an_extension_bound_in_another_module_stays_there_unbound():
    outputs, _ = migrate({
        "app.py": HEADER + "from flask_migrate import Migrate\n\nimport models  # noqa: E402\n\n"
                  "@app.route('/')\ndef index():\n    return str(models.User.query.count())\n",
        "models.py": "from flask_sqlalchemy import SQLAlchemy\nfrom flask_migrate import Migrate\n\n"
                     "from app import app\n\nBase = object\n"
                     "db = SQLAlchemy(app, model_class=Base)  # bound here\nmigrate = Migrate(app, db)\n\n\n"
                     "class User(db.Model):\n    id = db.Column(db.Integer, primary_key=True)\n",
    })
    assert outputs["models.py"] == (
        "from flask_sqlalchemy import SQLAlchemy\nfrom flask_migrate import Migrate\n\n"
        "Base = object\ndb = SQLAlchemy(model_class=Base)  # bound here\nmigrate = Migrate()\n\n\n"
        "class User(db.Model):\n    id = db.Column(db.Integer, primary_key=True)\n")
    assert ("        app.config.from_mapping(config)\n    import models\n    models.db.init_app(app)\n"
            "    models.migrate.init_app(app, models.db)\n    app.register_blueprint(bp)\n    return app\n"
            ) in outputs["app.py"]


VIEWS = "from app import app\n\n\n@app.route('/')\ndef index():\n    return ''\n"


def test_a_view_module_imported_for_its_routes_is_imported_by_the_factory_only():
    outputs, _ = migrate({"app.py": HEADER + "\n# routes\nimport views  # noqa: E402  (registers them)\n",
                          "views.py": VIEWS})
    assert outputs["app.py"] == (
        "from flask import Flask, url_for\n\n\ndef create_app(config=None):\n"
        '    """Create and configure the app; `config` (a mapping) overrides the settings."""\n'
        "    app = Flask(__name__)\n    if config is not None:\n        app.config.from_mapping(config)\n"
        "    # routes\n    # (registers them)\n    import views\n    app.register_blueprint(views.bp)\n"
        "    return app\n")


@pytest.mark.parametrize("reader", ["from app import views\n", "import app as web\n\nprint(web.views.index)\n"])
def test_a_view_module_reached_through_the_app_module_stays_imported_there(reader):
    outputs, _ = migrate({"app.py": HEADER + "\n# routes\nimport views  # noqa: E402\n",
                          "views.py": VIEWS, "cli.py": reader})
    assert "\n# routes\nimport views  # noqa: E402\n\n\ndef create_app(" in outputs["app.py"]


def test_the_behaviour_harness_takes_a_relative_app_directory(tmp_path, monkeypatch):
    copy_tree(CASES / "single-module" / "after", tmp_path / "after")
    monkeypatch.chdir(tmp_path)
    [response] = serve_requests(Path("after"), "app:create_app()", [{"method": "GET", "path": "/"}])
    assert response["status"] == 200


GUNICORN_LOAD = """\
import json, sys
from gunicorn.util import import_app
sys.path.insert(0, ".")
answers = {}
for target in sys.argv[2:]:
    response = import_app(target).test_client().get(sys.argv[1])
    answers[target] = [response.status_code, response.get_data(as_text=True)]
print(json.dumps(answers))
"""


@pytest.mark.parametrize("case, module, path", [
    ("single-module", "app", "/"), ("package-circular", "myapp", "/login"), ("view-import-side-effects", "app", "/"),
])
def test_gunicorn_loads_the_migrated_app_by_every_usual_name(case, module, path, tmp_path):
    """`gunicorn wsgi:app`, `gunicorn wsgi` (which looks for `application`) and
    `gunicorn 'myapp:create_app()'` all serve what `gunicorn myapp:app` served."""
    answers = {}
    for side, targets in (("before", [f"{module}:app"]), ("after", ["wsgi:app", "wsgi", f"{module}:create_app()"])):
        tree = copy_tree(CASES / case / side, tmp_path / side)
        result = run([sys.executable, "-c", GUNICORN_LOAD, path, *targets], tree)
        assert result.returncode == 0, result.stderr[-2000:]
        answers.update(json.loads(result.stdout.splitlines()[-1]))
    legacy = answers.pop(f"{module}:app")
    assert legacy[0] == 200 and answers == dict.fromkeys(answers, legacy)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_moved_code_is_indented_except_inside_strings_that_span_lines(newline):
    code = ('x = 1\n'
            'doc = """first\nsecond"""\n'
            "other = '''a\nb'''\n"
            "joined = 'a\\\nb'\n"
            'y = "one line"\n').replace("\n", newline)
    expected = ('    x = 1\n'
                '    doc = """first\nsecond"""\n'
                "    other = '''a\nb'''\n"
                "    joined = 'a\\\nb'\n"
                '    y = "one line"\n').replace("\n", newline)
    assert indent_code(code, "    ") == expected
    # with none of those strings, every line is indented
    plain = 'a = "x"\nif a:\n    b = \'y\'\n'.replace("\n", newline)
    assert indent_code(plain, "  ") == '  a = "x"\n  if a:\n      b = \'y\'\n'.replace("\n", newline)


THREAD_APP = ("import threading\n\nfrom flask import Flask\n\napp = Flask(__name__)\n\n"
              "def send(n):\n    app.logger.info(n)\n\n"
              "@app.route('/<int:n>')\ndef index(n):\n    threading.Thread(target=send, args=(n,)).start()\n"
              "    return ''\n")


def test_a_thread_started_in_a_request_is_left_to_thread_context_when_it_runs_later(tmp_path, monkeypatch):
    """Alone, app-factory refuses to leave send() with a current_app its thread lacks;
    with thread-context after it (in the run, or as the next step of `--verify` and
    review), it migrates and thread-context wraps the target."""
    messages = refused({"app.py": THREAD_APP})
    assert messages == ["send() uses the app and is run by a thread started in index() during a request: as "
                        "current_app it would fail there unless thread-context runs it in the request's app context; "
                        "run both (`-c app-factory,thread-context`, or `--all`)"]
    texts = migrate({"app.py": THREAD_APP}, then=("thread-context",))[0]
    assert "target=_with_app_context(send)" in texts["app.py"] and "wsgi.py" in texts
    (tmp_path / "app.py").write_text(THREAD_APP)
    monkeypatch.chdir(tmp_path)
    steps = verify.apply_in_steps(["."], [get("app-factory")(), get("thread-context")()], command=None, jobs=1)
    assert [sorted(step.written) for step in steps.steps] == [["app.py", "wsgi.py"], ["app.py"]]
    assert "target=_with_app_context(send)" in (tmp_path / "app.py").read_text()


def test_kept_app_factory_is_reported_when_the_thread_context_it_counts_on_is_rolled_back(tmp_path, monkeypatch):
    (tmp_path / "app.py").write_text(THREAD_APP)
    monkeypatch.chdir(tmp_path)
    breaks_on_wrap = "! grep -q _with_app_context app.py"  # passes before and after app-factory only
    steps = verify.apply_in_steps(["."], [get("app-factory")(), get("thread-context")()], command=breaks_on_wrap,
                                  jobs=1)
    assert [(step.codemod, bool(step.kept), step.rolled_back) for step in steps.steps] == [
        ("app-factory", True, False), ("thread-context", False, True)]
    errors = [f for f in steps.findings if f.severity.value == "error"]
    assert [(f.path, f.codemod) for f in errors] == [("app.py", "app-factory")]
    assert "count on thread-context, just rolled back" in errors[0].message


def test_what_app_factory_counts_on_is_kept_in_the_result_cache(tmp_path, monkeypatch):
    """`--verify` steps are answered from the cache on an unchanged tree: the replayed
    result still says that app-factory counts on thread-context."""
    from flask_refactor.index import IndexCache

    (tmp_path / "app.py").write_text(THREAD_APP)
    monkeypatch.chdir(tmp_path)
    cache = IndexCache(tmp_path.parent / f"{tmp_path.name}-cache")
    runs = [pipeline.run(["."], [get("app-factory")()], jobs=1, index_cache=cache, then=["thread-context"])
            for _ in range(2)]
    assert runs[1].changesets == []  # replayed
    assert [run.relies_on for run in runs] == [{"app-factory": {"thread-context"}}] * 2


LAMBDA_APP = ("import multiprocessing\nimport threading\n\nfrom flask import Flask\n\napp = Flask(__name__)\n\n"
              "@app.route('/a')\ndef a():\n    threading.Thread(target=lambda: app.logger.info('a')).start()\n"
              "    return ''\n\n"
              "@app.route('/b')\ndef b():\n    threading.Thread(target=lambda app: app.logger.info('b'), args=(app,)).start()\n"
              "    return ''\n")


def test_a_lambda_a_request_starts_in_a_thread_is_left_to_thread_context_when_it_runs_later():
    """A lambda target's own code is no function of the call graph: its `app` becomes
    current_app with its view's, and runs in the thread. One given the app as its
    parameter (b) reads no current_app."""
    assert refused({"app.py": LAMBDA_APP}) == [
        "the lambda in a() uses the app and is run by a thread started during a request: as current_app it "
        "would fail there unless thread-context runs it in the request's app context; run both "
        "(`-c app-factory,thread-context`, or `--all`)"]
    texts, findings = migrate({"app.py": LAMBDA_APP}, then=("thread-context",))
    assert not [f for f in findings if f.severity in (Severity.WARNING, Severity.ERROR)]
    assert "threading.Thread(target=_with_app_context(lambda: current_app.logger.info('a'))).start()" in texts["app.py"]


def test_a_lambda_run_by_a_process_or_outside_a_request_is_refused():
    code = ("\n@app.route('/c')\ndef c():\n    multiprocessing.Process(target=lambda: app.logger.info('c')).start()\n"
            "    return ''\n\n"
            "def nightly():\n    threading.Timer(5, lambda: app.logger.info('n')).start()\n")
    assert refused({"app.py": LAMBDA_APP.replace("threading.Thread(target=lambda: app", "threading.Thread(target=lambda: x")
                    + code}) == [
        f"the lambda in {name}() uses the app and is run by a {kind}, with no app context: as current_app it "
        "would fail there; have it build the app (`app = create_app()`) and run inside `with app.app_context():`"
        for name, kind in (("c", "process"), ("nightly", "timer"))]


def test_exit_and_signal_handlers_using_the_app_are_refused():
    """The interpreter runs an atexit function at exit and a signal handler when the
    signal comes, outside any request: a `current_app` there would fail. In decorator
    and call form, with the registrar imported either way; a lambda handler's own code,
    and what a handler calls, count too."""
    code = ("import signal\nfrom atexit import register\n\n" + HEADER
            + "\n@register\ndef flush():\n    app.logger.info('bye')\n\n"
            "def helper():\n    app.logger.info('helped')\n\n"
            "def install():\n    signal.signal(signal.SIGTERM, lambda signum, frame: app.logger.info('term'))\n"
            "    register(helper)\n\ninstall()\n")
    advice = ("with no app context: as current_app it would fail there; have it build the app "
              "(`app = create_app()`) and run inside `with app.app_context():`")
    assert refused({"app.py": code}) == [
        f"flush() uses the app and is run by the interpreter at exit (atexit), {advice}",
        f"helper() uses the app and is run by the interpreter at exit (atexit), {advice}",
        f"the lambda in install() uses the app and is a signal handler, {advice}"]
    for registrar, call in (("import atexit", "atexit.register"), ("from atexit import register as on_exit", "on_exit")):
        handler = HEADER + f"\n{registrar}\n\ndef flush():\n    app.logger.info('bye')\n\n{call}(flush)\n"
        assert refused({"app.py": handler}) == [
            f"flush() uses the app and is run by the interpreter at exit (atexit), {advice}"]


def test_a_socketio_background_task_started_in_a_request_is_left_to_thread_context():
    app = ("from flask import Flask\nfrom flask_socketio import SocketIO\n\napp = Flask(__name__)\n"
           "socketio = SocketIO(app)\n\ndef send(n):\n    app.logger.info(n)\n\n"
           "@app.route('/<int:n>')\ndef index(n):\n    socketio.start_background_task(send, n)\n    return ''\n")
    assert refused({"app.py": app}) == [
        "send() uses the app and is run by a background task started in index() during a request: as current_app "
        "it would fail there unless thread-context runs it in the request's app context; run both "
        "(`-c app-factory,thread-context`, or `--all`)"]
    texts = migrate({"app.py": app}, then=("thread-context",))[0]
    assert "socketio.start_background_task(_with_app_context(send), n)" in texts["app.py"]


@pytest.mark.parametrize("view, found", [
    ("@app.route('/o')\ndef o():\n    return Response(stream_with_context(outer()))\n", None),
    ("@app.route('/o')\ndef o():\n    return ''.join(outer())\n", None),
    ("@app.route('/o')\ndef o():\n    return render_template_string('{{ n }}', n=outer())\n", None),
    ("@app.route('/o')\ndef o():\n    return Response(stream_template('t.html', names=outer()))\n", None),
    ("@app.route('/o')\ndef o():\n    return Response(outer())\n", "that leaves o() at line 14 unconsumed"),
    ("@app.route('/o')\n@stream_with_context\ndef o():\n    yield from outer()\n", None),
    ("@app.route('/o')\ndef o():\n    yield from outer()\n",
     "iterated by the generator o(), that Flask streams (o() is a view)"),
])
def test_a_generator_iterated_by_another_generator_is_judged_by_where_that_one_is(view, found):
    """inner() reads the app and is iterated when outer() is, which itself reads nothing
    of the app: where outer() is iterated decides."""
    code = ("from flask import Flask, Response, render_template_string, stream_template, stream_with_context\n\n"
            "app = Flask(__name__)\n\n"
            "def inner():\n    yield app.name\n\n"
            "def outer():\n    for name in inner():\n        yield name\n\n" + view)
    expected = [] if found is None else [
        f"inner() uses the app and is a generator iterated by the generator outer(), {found}: Flask iterates a "
        "streamed response after the view has returned and its app context is gone, where current_app fails; call "
        "it inside `stream_with_context(...)` (from flask) or decorate it with `@stream_with_context`, and run again"]
    if found is None:
        assert "current_app.name" in migrate({"app.py": code})[0]["app.py"]
    else:
        assert refused({"app.py": code}) == expected
