"""The README's example, end to end as a user runs it: `apply --all` on the bundled
legacy app, then the app answers as before, its own tests pass, every entry point
serves it, and a second run has nothing to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, copy_tree, serve_requests

EXAMPLE = ROOT / "examples" / "legacy_shop"
ENV = {"SHOP_DATABASE_URL": "sqlite://", "SHOP_ANALYTICS_URL": "sqlite://"}
REQUESTS = [
    {"path": "/"},
    {"path": "/products/1"},
    {"path": "/orders", "method": "POST", "json": {"product_id": 1}},
    {"path": "/orders", "method": "POST", "json": {"product_id": 7},
     "headers": {"X-Customer-Email": "ann@example.com"}},
    {"path": "/orders", "method": "GET"},
    {"path": "/nowhere"},
]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **ENV, "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    tree = copy_tree(EXAMPLE, tmp_path_factory.mktemp("example") / "shop")
    done = run("-m", "flask_refactor", "apply", "--all", ".", cwd=tree)
    assert done.returncode == 0, done.stderr  # findings here are all informational
    assert ": error: " not in done.stderr and "5 files changed, 2 created" in done.stderr
    return tree


def test_every_codemod_left_its_mark(migrated):
    views = (migrated / "views.py").read_text()
    assert "bp = Blueprint(" in views  # app-factory
    assert "g.current_email" in views  # globals-to-g
    assert "_with_app_context(send_receipt)" in views  # thread-context
    assert 'abort(404, description="no such product")' in views  # error-handling
    assert "def create_app(config=None):" in (migrated / "app.py").read_text()
    assert "Session.remove()" in (migrated / "app.py").read_text()  # teardown


def test_the_migrated_app_answers_exactly_as_before(migrated, tmp_path):
    before = serve_requests(copy_tree(EXAMPLE, tmp_path / "before"), "app:app", REQUESTS, env=ENV)
    after = serve_requests(migrated, "wsgi:app", REQUESTS, env=ENV)
    assert [r["status"] for r in before] == [200, 404, 401, 404, 405, 404]
    assert after == before


def test_its_own_test_suite_still_passes(migrated):
    done = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=migrated)
    assert done.returncode == 0, done.stdout + done.stderr


def test_entry_points_serve_it(migrated):
    routes = subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app()", "routes"], cwd=migrated,
                            capture_output=True, text=True, env={**os.environ, **ENV}, timeout=120)
    assert routes.returncode == 0, routes.stderr
    assert "main.create_order" in routes.stdout and "/products/<int:product_id>" in routes.stdout
    bare = subprocess.run([sys.executable, "-m", "flask", "routes"], cwd=migrated, capture_output=True, text=True,
                          env={**os.environ, **ENV}, timeout=120)  # finds wsgi.py by itself
    assert bare.returncode == 0 and "main.index" in bare.stdout, bare.stderr


def test_a_second_run_has_nothing_to_do(migrated):
    done = run("-m", "flask_refactor", "check", "--all", ".", cwd=migrated)
    assert done.returncode == 0, done.stderr
    assert "0 files would be changed" in done.stderr


def test_gunicorn_imports_every_documented_target(migrated):
    script = ("import gunicorn.util as u\n"
              "for target in ('wsgi:app', 'wsgi', 'app:create_app()'):\n"
              "    print(target, type(u.import_app(target)).__name__)\n")
    done = run("-c", script, cwd=migrated)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["wsgi:app", "Flask", "wsgi", "Flask", "app:create_app()", "Flask"]


def test_python_app_py_still_starts_the_server(migrated):
    # `app.run` is replaced so the check does not bind a port; it records what would be served
    script = ("import runpy, flask\n"
              "flask.Flask.run = lambda self, **kw: print('serving', sorted(self.view_functions), kw)\n"
              "runpy.run_path('app.py', run_name='__main__')\n")
    done = run("-c", script, cwd=migrated)
    assert done.returncode == 0, done.stderr
    assert "serving ['main.create_order', 'main.index', 'main.product', 'static'] {'debug': True}" in done.stdout
