"""thread-context: the fixture apps' own suites fail before the rewrite (their background
threads die outside any context) and pass after it, plus focused cases."""

from __future__ import annotations

import pytest

from helpers import FIXTURES, copy_tree, rendered_for_positions, run_app_suite
from flask_refactor.project import Project
from flask_refactor.codemods.thread_context import ThreadContext

SUITES = {
    # fixture case -> (tests that fail before, what the dying thread said)
    "legacy-background-work": (3, "RuntimeError: Working outside of application context."),
    "factory-blueprint-jobs": (2, "RuntimeError: Working outside of application context."),
}


@pytest.mark.parametrize("case", sorted(SUITES))
def test_fixture_suite_fails_before_and_passes_after(case, tmp_path):
    failing, message = SUITES[case]
    directory = FIXTURES / "thread-context" / case
    before = run_app_suite(copy_tree(directory / "before", tmp_path / "before"))
    assert before.returncode == 1, before.stdout[-3000:]
    assert f"{failing} failed" in before.stdout
    assert message in before.stdout + before.stderr
    after = run_app_suite(copy_tree(directory / "after", tmp_path / "after"))
    assert after.returncode == 0, after.stdout[-3000:] + after.stderr[-2000:]
    assert "Working outside of" not in after.stdout + after.stderr


def rewrite(files: dict[str, str]):
    project = Project.from_texts(files)
    changes = ThreadContext().run(project)
    return {path: change.text for path, change in changes.changes.items()}, changes.findings


VIEW_HEAD = (
    "import threading\n"
    "from concurrent.futures import ThreadPoolExecutor\n\n"
    "from flask import Flask, current_app, g\n"
    "from flask_mail import Mail, Message\n\n"
    "app = Flask(__name__)\n"
    "mail = Mail(app)\n"
)


def test_nested_target_and_with_executor_and_extension_use():
    source = VIEW_HEAD + (
        "\n\n@app.route('/notify')\n"
        "def notify():\n"
        "    def send(to):\n"
        "        mail.send(Message('hi', recipients=[to]))\n"
        "    with ThreadPoolExecutor() as pool:\n"
        "        pool.submit(send, 'a@example.com')\n"
        "        list(pool.map(send, ['c@example.com']))\n"
        "    threading.Timer(1.0, function=send, args=('b@example.com',)).start()\n"
        "    return 'ok'\n"
    )
    out, findings = rewrite({"mailer_app.py": source})
    text = out["mailer_app.py"]
    assert "pool.submit(_with_app_context(send), 'a@example.com')" in text
    assert "list(pool.map(_with_app_context(send), ['c@example.com']))" in text
    assert "threading.Timer(1.0, function=_with_app_context(send), args=('b@example.com',))" in text
    assert text.count("def _with_app_context(") == 1
    assert "import functools\nimport threading\n" in text
    assert findings == []
    compile(text, "mailer_app.py", "exec")
    # a second run changes nothing
    again, findings = rewrite({"mailer_app.py": text})
    assert again == {} and findings == []


def test_target_reading_g_is_wrapped_and_reported():
    source = VIEW_HEAD + (
        "\n\ndef audit():\n"
        "    current_app.logger.info('by %s', g.user)\n\n"
        "@app.post('/orders')\n"
        "def order():\n"
        "    threading.Thread(target=audit).start()\n"
        "    return 'ok'\n"
    )
    out, findings = rewrite({"audit_app.py": source})
    assert "threading.Thread(target=_with_app_context(audit)).start()" in out["audit_app.py"]
    assert [f.line for f in findings] == [16]
    assert "the thread gets a new, empty g" in findings[0].message


def test_threads_outside_requests_are_left_alone():
    source = VIEW_HEAD + (
        "\n\ndef warm():\n"
        "    current_app.logger.info('warming')\n\n"
        "threading.Thread(target=warm, daemon=True).start()\n\n"
        "def start_workers():\n"
        "    threading.Thread(target=warm).start()\n\n"
        "start_workers()\n"
    )
    out, findings = rewrite({"startup_app.py": source})
    assert out == {} and findings == []


def test_a_target_pushing_a_context_through_current_app_is_still_wrapped():
    """`current_app.app_context()` (what app-factory makes of `app.app_context()`) raises
    in a thread started with no context: it pushes none, so the target is wrapped; a
    target pushing its own app's context is left alone."""
    source = VIEW_HEAD + (
        "\n\ndef build(n):\n"
        "    with current_app.app_context():\n"
        "        current_app.logger.info(n)\n\n"
        "def build_own(n):\n"
        "    with app.app_context():\n"
        "        current_app.logger.info(n)\n\n"
        "@app.route('/build')\n"
        "def start():\n"
        "    threading.Thread(target=build, args=(1,)).start()\n"
        "    threading.Thread(target=build_own, args=(2,)).start()\n"
        "    return 'ok'\n"
    )
    out, findings = rewrite({"builder.py": source})
    assert "threading.Thread(target=_with_app_context(build), args=(1,))" in out["builder.py"]
    assert "threading.Thread(target=build_own, args=(2,))" in out["builder.py"]
    assert findings == []


def test_star_import_and_a_new_call_site_reuse_what_exists():
    source = (
        "import functools\n"
        "import threading\n"
        "from flask import *\n\n"
        "app = Flask(__name__)\n\n\n"
        "def job():\n"
        "    return url_for('index')\n\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    threading.Thread(target=job).start()\n"
        "    return ''\n"
    )
    out, findings = rewrite({"star_app.py": source})
    text = out["star_app.py"]
    assert text.startswith("import functools\nimport threading\nfrom flask import *\n")
    assert "app = current_app._get_current_object()" in text
    assert "calls url_for" in findings[0].message  # no SERVER_NAME anywhere
    second_site = text + "\n\n@app.route('/again')\ndef again():\n    threading.Thread(target=job).start()\n    return ''\n"
    out, _ = rewrite({"star_app.py": second_site})
    assert out["star_app.py"].count("def _with_app_context(") == 1
    assert out["star_app.py"].count("target=_with_app_context(job)") == 2


def test_model_query_needs_the_app_and_orm_instances_are_reported():
    models = (
        "from flask_sqlalchemy import SQLAlchemy\n\n"
        "db = SQLAlchemy()\n\n\n"
        "class User(db.Model):\n"
        "    id = db.Column(db.Integer, primary_key=True)\n"
    )
    views = (
        "import threading\n\n"
        "from flask import Blueprint\n\n"
        "from models import User, db\n\n"
        "bp = Blueprint('users', __name__)\n\n\n"
        "def count_users():\n"
        "    return User.query.count()\n\n\n"
        "def shout(user):\n"
        "    print(user)\n\n\n"
        "@bp.post('/users')\n"
        "def create():\n"
        "    user = User()\n"
        "    db.session.add(user)\n"
        "    threading.Thread(target=count_users).start()\n"
        "    threading.Thread(target=shout, args=(user,)).start()\n"
        "    return '', 201\n"
    )
    out, findings = rewrite({"models.py": models, "views.py": views})
    text = out["views.py"]
    assert "threading.Thread(target=_with_app_context(count_users)).start()" in text
    assert "threading.Thread(target=shout, args=(user,)).start()" in text  # needs no context
    assert [(f.path, f.line) for f in findings] == [("views.py", 23)]
    assert "user is an ORM instance loaded in the request and passed to shout" in findings[0].message


def test_lambda_and_partial_targets_are_followed():
    source = VIEW_HEAD + (
        "import functools\n\n\n"
        "def send(to, subject):\n"
        "    mail.send(Message(subject, recipients=[to]))\n\n\n"
        "@app.post('/invite')\n"
        "def invite():\n"
        "    threading.Thread(target=lambda: send('a@example.com', 'hi')).start()\n"
        "    threading.Thread(target=functools.partial(send, 'b@example.com'), args=('hey',)).start()\n"
        "    threading.Thread(target=lambda: print('no context needed')).start()\n"
        "    return ''\n"
    )
    out, findings = rewrite({"invite_app.py": source})
    text = out["invite_app.py"]
    assert "target=_with_app_context(lambda: send('a@example.com', 'hi'))" in text
    assert "target=_with_app_context(functools.partial(send, 'b@example.com')), args=('hey',)" in text
    assert "target=lambda: print('no context needed')" in text
    assert findings == []
    compile(text, "invite_app.py", "exec")


def test_a_socketio_background_task_is_wrapped_like_a_thread():
    """Flask-SocketIO's `start_background_task(f, *args)` runs `f` in a thread or greenlet
    with no Flask context; the arguments after `f` are its own (an ORM instance there is
    reported as for a thread)."""
    models = ("from flask_sqlalchemy import SQLAlchemy\n\ndb = SQLAlchemy()\n\n\n"
              "class User(db.Model):\n    id = db.Column(db.Integer, primary_key=True)\n")
    views = ("from flask import Blueprint, current_app\nfrom flask_socketio import SocketIO\n\n"
             "from models import User\n\nbp = Blueprint('users', __name__)\nsocketio = SocketIO()\n\n\n"
             "def greet(user):\n    current_app.logger.info(user)\n\n\n"
             "@bp.post('/users/<int:id>')\ndef create(id):\n    user = User.query.get(id)\n"
             "    socketio.start_background_task(greet, user)\n    return '', 201\n")
    out, findings = rewrite({"models.py": models, "views.py": views})
    assert "    socketio.start_background_task(_with_app_context(greet), user)\n" in out["views.py"]
    assert [(f.path, f.line) for f in findings] == [("views.py", 17)]
    assert "user is an ORM instance loaded in the request and passed to greet" in findings[0].message
    compile(out["views.py"], "views.py", "exec")


def test_crlf_file_keeps_its_line_endings():
    source = (VIEW_HEAD + "\n\ndef job():\n    current_app.logger.info('x')\n\n\n"
              "@app.route('/')\ndef index():\n    threading.Thread(target=job).start()\n    return ''\n")
    out, _ = rewrite({"crlf_app.py": source.replace("\n", "\r\n")})
    text = out["crlf_app.py"]
    assert "_with_app_context(job)" in text
    assert text.count("\n") == text.count("\r\n")


def test_after_app_factory_in_one_run(tmp_path):
    """app-factory moves `db` to extensions.py and the views to a blueprint; thread-context,
    run later in the same chain, still sees that the targets need the app."""
    from flask_refactor import registry
    from helpers import Case, run_codemods, serve_requests

    try:
        registry.get("app-factory")
    except Exception:  # noqa: BLE001 - the other codemod is optional here
        pytest.skip("app-factory is not available")
    case = Case.load(FIXTURES / "thread-context" / "legacy-background-work")
    tree = copy_tree(case.before, tmp_path / "tree")
    for test_file in (tree / "tests").iterdir():
        test_file.unlink()  # the suite imports app.app, which app-factory refuses to move
    (tree / "tests").rmdir()
    (tree / "conftest.py").unlink()
    result = run_codemods(tree, ["app-factory", "thread-context"])
    assert not len(result.errors), list(result.errors)
    text = (tree / "app.py").read_text()
    if "create_app" not in text:
        pytest.skip(f"app-factory left the app alone: {[f.message for f in result.findings]}")
    assert "target=_with_app_context(notify.send_welcome)" in text
    assert "reports.submit(_with_app_context(build_report), kind)" in text
    assert "copy_current_request_context(log_visit)" in text
    before = serve_requests(copy_tree(case.before, tmp_path / "before"), "app:app", case.behaviour["requests"])
    after = serve_requests(tree, "app:create_app()", case.behaviour["requests"])
    assert after == before


@pytest.mark.parametrize("use, reported", [("current_app.logger.info('sent')", False), ("print(g.user)", True)])
def test_a_targets_module_is_rendered_for_lines_only_when_a_report_names_one(monkeypatch, use, reported):
    rendered = rendered_for_positions(monkeypatch)
    project = Project.from_texts({
        "app.py": VIEW_HEAD + "from tasks import work\n\n\n@app.route('/')\ndef index():\n"
                              "    threading.Thread(target=work).start()\n    return ''\n",
        "tasks.py": f"from flask import current_app, g\n\n\ndef work():\n    {use}\n",
    })
    tasks = project.parse("tasks.py")
    changes = ThreadContext().run(project)
    assert "target=_with_app_context(work)" in changes.changes["app.py"].text
    assert any(module is tasks for module in rendered) is reported
    if reported:
        assert "uses g (tasks.py:5)" in " ".join(f.message for f in changes.findings)
