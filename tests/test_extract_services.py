"""`extract-services` on the fixture apps, beyond the generic fixture checks: each app's
own test suite passes before and after, the services module imports first without an
import cycle, and its functions run on plain values with no request context."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from helpers import FIXTURES, copy_tree

CASES = FIXTURES / "extract-services"


def python(tree, code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args] if args else [sys.executable, "-c", textwrap.dedent(code)],
                          cwd=tree, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.mark.parametrize("case", ["shop", "legacy-package"])
@pytest.mark.parametrize("side", ["before", "after"])
def test_the_apps_own_suite_passes(case, side, tmp_path):
    tree = copy_tree(CASES / case / side, tmp_path / side)
    done = python(tree, "", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout


@pytest.mark.parametrize("package", ["shop", "blog"])
def test_services_import_first_without_a_cycle(package, tmp_path):
    case = {"shop": "shop", "blog": "legacy-package"}[package]
    tree = copy_tree(CASES / case / "after", tmp_path / "after")
    done = python(tree, f"""
        import sys
        import {package}.services
        assert "{package}.views" not in sys.modules or "{package}" == "blog"  # blog/__init__ imports its views
        import {package}.views
        assert {package}.views.services is {package}.services
        print("ok")
    """)
    assert done.stdout.strip() == "ok", done.stderr[-3000:]


def test_services_run_on_plain_values_without_a_request(tmp_path):
    tree = copy_tree(CASES / "shop" / "after", tmp_path / "after")
    done = python(tree, """
        import asyncio, inspect
        import flask
        from shop import services

        # pure computation: no app, no context at all
        assert not flask.has_app_context()
        lines, subtotal, vat, shipping, total = services.quote(
            [{"sku": "A", "price": 2500, "quantity": 2}, {"sku": "B", "price": 100, "quantity": 10}], "US")
        assert lines == [{"sku": "A", "amount": 5000}, {"sku": "B", "amount": 950}]
        assert (subtotal, vat, shipping, total) == (5950, 0, 495, 6445)

        from shop import create_app
        app = create_app()
        with app.app_context():  # the database needs the app, never a request
            assert not flask.has_request_context()
            rows, grand_total, best = services.sales_report("2023-01-01", "customer")
            assert inspect.iscoroutinefunction(services.restock)
            movement, level = asyncio.run(services.restock("MN-03", 2, "counted"))
            assert level == 3 and movement.reason == "counted"
        expected = app.test_client().get("/api/report?group=customer&since=2023-01-01").get_json()
        assert (rows, grand_total, best) == (expected["rows"], expected["total"], expected["best"])
        print("ok")
    """)
    assert done.stdout.strip() == "ok", done.stderr[-3000:]


def test_patched_helper_stays_in_the_view(tmp_path):
    """tests/test_blog.py patches blog.views.notify: the call must still go through it."""
    views = (CASES / "legacy-package" / "after" / "blog" / "views.py").read_text()
    services = (CASES / "legacy-package" / "after" / "blog" / "services.py").read_text()
    assert "notify(" in views and "notify" not in services
