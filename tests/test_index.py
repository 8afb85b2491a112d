"""The project index: `ast` facts that match what libcst would say, a disk cache that is
reused and survives corruption, and the scaling guarantee it exists for: files that
mention nothing of Flask are never parsed by libcst, and no file is parsed twice.

Speed itself is measured in benchmarks/, never timed here: these tests count parses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import libcst as cst
import pytest

from flask_refactor import index, pipeline, registry
from flask_refactor.codemods.support.flask import app_scope, flask_files, import_reach, imported_paths
from flask_refactor.codemods.support.imports import ImportMap
from flask_refactor.index import IndexCache, scan_text
from flask_refactor.project import Project
from helpers import all_work_forked

IMPORT_SOURCES = {
    "plain": "import os\nimport os.path\nimport a.b.c as abc\nfrom x import y, z as w\n",
    "relative": "from . import sibling\nfrom .. import parent_thing\nfrom .mod import name as alias\nfrom ...too import far\n",
    "nested blocks": textwrap.dedent("""\
        try:
            import json
        except ImportError:
            import simplejson as json
        else:
            from fast import thing
        finally:
            import atexit
        if TYPE_CHECKING:
            from typing import Any
        elif OTHER:
            from other import Other
        else:
            from third import Third
        with ctx():
            from inside_with import w
        """),
    "not module level": textwrap.dedent("""\
        def f():
            from app import app
            import inner
        class C:
            import in_class
        for x in y:
            import in_loop
        while True:
            import in_while
        """),
    "star and rebinding": "from flask import *\nfrom a import x\nfrom b import x\nimport c as x\n",
}


@pytest.mark.parametrize("module_name,package", [("pkg.sub.mod", False), ("pkg.sub", True), (None, False)])
@pytest.mark.parametrize("case", sorted(IMPORT_SOURCES))
def test_import_map_from_the_index_is_libcsts(case, module_name, package):
    source = IMPORT_SOURCES[case]
    expected = ImportMap.of(cst.parse_module(source), module_name, package)
    got = ImportMap.from_index(scan_text(source).imports, module_name, package)
    assert list(got.names.items()) == list(expected.names.items())
    assert got.star_modules == expected.star_modules


def test_strings_naming_dotted_names_are_indexed():
    entry = scan_text('monkeypatch.setattr("pkg.state.user", None)\nlabel = "just words"\nkey = {"a.b": 1, "c.d e": 2}\n')
    assert entry.dotted_strings == ("pkg.state.user", "a.b", "c.d")


def test_a_file_ast_cannot_read_has_an_error_and_no_facts():
    entry = scan_text("def broken(:\n")
    assert entry.error and entry.imports == () and entry.dotted_strings == ()


@pytest.mark.parametrize("source,expected", [
    ('"""Names."""\nimport os\nNAMES = {"es": ("uno", "dos")}\nclass Plain:\n    x: int = 1\n', False),
    ("from typing import List\nIDS: List[int] = [1, 2]\nif IDS:\n    LAST = IDS[-1]\n", False),
    ("def f():\n    pass\n", True),
    ("async def f():\n    pass\n", True),
    ("class A:\n    def m(self):\n        pass\n", True),
    ("key = lambda item: item[0]\n", True),
    ("TABLE = {'a': dict(b=1)}\n", True),
    ("@decorate\nclass A:\n    pass\n", False),
    ("label = f'{name()}'\n", True),
])
def test_the_index_tells_whether_a_file_defines_or_calls_anything(source, expected):
    """A file with no function, lambda or call (data: literals, imports, plain classes)
    is told apart before any parse; its libcst tree says the same (`scan_tree`)."""
    assert scan_text(source).defines_or_calls is expected
    assert index.scan_tree(cst.parse_module(source), source).defines_or_calls is expected


# -- the scaling guarantee ------------------------------------------------------------------

APP = {
    "shop/__init__.py": "",
    "shop/app.py": textwrap.dedent("""\
        import threading

        from flask import Flask, jsonify, request

        from shop.database import Session
        from shop.helpers import load_name

        app = Flask(__name__)
        current_user = None


        @app.before_request
        def remember_user():
            global current_user
            current_user = load_name(request.headers.get("X-User"))


        def report(user):
            print(user, Session.query_rows())


        @app.route("/items/<int:item_id>")
        def get_item(item_id):
            if item_id > 10:
                return jsonify({"error": "not found"}), 404
            return jsonify(id=item_id, user=current_user)


        @app.route("/report", methods=["POST"])
        def start_report():
            threading.Thread(target=report, args=(current_user,)).start()
            return jsonify(status="started")
        """),
    "shop/database.py": textwrap.dedent("""\
        from sqlalchemy import create_engine
        from sqlalchemy.orm import scoped_session, sessionmaker

        engine = create_engine("sqlite://")
        Session = scoped_session(sessionmaker(bind=engine))
        """),
    # mentions nothing of Flask, but the app imports it: it is part of the app
    "shop/helpers.py": "CACHE = {}\n\n\ndef load_name(raw):\n    CACHE.setdefault(raw, raw)\n    return raw\n",
}

# Library code full of what the codemods' cheap prefilters look for, and nothing of Flask.
LIBRARY = {
    "vendored/__init__.py": "",
    "vendored/state.py": textwrap.dedent("""\
        import threading
        from concurrent.futures import ThreadPoolExecutor

        counter = 0
        items = []
        pool = ThreadPoolExecutor()


        def bump():
            global counter
            counter += 1
            items.append(counter)
            threading.Thread(target=bump).start()
            pool.submit(bump)
            raise ValueError("abort(")
        """),
    "vendored/models.py": textwrap.dedent("""\
        from sqlalchemy.orm import scoped_session, sessionmaker

        class Base: pass
        class Model(Base): pass
        Session = scoped_session(sessionmaker())


        def route(data):
            data.get("x"); data.update(y=1); del data["x"]
            Session.remove()
            return data
        """),
    "vendored/broken_import.py": "from vendored.state import bump\nfrom vendored import models\n",
    # what error-handling's and teardown's text tests look for, in a library of its own
    "vendored/jobs.py": textwrap.dedent("""\
        from vendored.models import Session


        def abort(code):
            return code


        def teardown_job():
            Session.remove()
            return abort(418)
        """),
}


def _all_codemods():
    known = registry.all_codemods()
    return [known[name]() for name in sorted(known, key=lambda name: known[name].order)]


@pytest.mark.parametrize("jobs", [1, 2])
def test_files_outside_the_app_are_never_parsed_and_each_file_once(tmp_path, monkeypatch, jobs):
    for rel, text in {**APP, **LIBRARY}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.chdir(tmp_path)
    all_work_forked(monkeypatch)  # with 2 jobs, modules go to forked workers
    result = pipeline.run(["."], _all_codemods(), jobs=jobs, index_cache=None)

    assert not result.errors.entries
    changed = {outcome.path for outcome in result.outcomes}
    assert {"shop/app.py", "wsgi.py"} <= changed  # the run did rewrite the app
    parsed = result.project.parse_counts
    assert not [path for path in parsed if path.startswith("vendored/")]
    assert "shop/helpers.py" in app_scope(result.project)
    assert {path: count for path, count in parsed.items() if count != 1} == {}


# what the prefilters look for, in strings: a generated table's text can hold anything
LANGUAGES = 'NAMES = {\n    "es": "Mail del ] = + .update( .append( global Thread( SQLAlchemy(",\n    "it": ("a", "b"),\n}\n'


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_module_of_data_in_the_app_is_never_parsed(tmp_path, monkeypatch, jobs):
    """A module that defines no function and calls nothing (a generated table) holds no
    function, call or state for the app's analyses: they leave it unparsed, though it is
    in the app and its text holds their needles, and the run says what it says with it
    parsed."""
    files = {**APP, "shop/helpers.py": "from shop.languages import NAMES\n" + APP["shop/helpers.py"],
             "shop/languages.py": LANGUAGES}
    _write_tree(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    all_work_forked(monkeypatch)
    result = pipeline.run(["."], _all_codemods(), jobs=jobs, index_cache=None)
    assert "shop/languages.py" in app_scope(result.project)
    assert result.outcomes and "shop/languages.py" not in result.project.parse_counts

    monkeypatch.setattr(Project, "may_define_or_call", lambda project, path: True)
    parsed = pipeline.run(["."], _all_codemods(), jobs=jobs, index_cache=None)
    assert "shop/languages.py" in parsed.project.parse_counts  # what the test would catch
    assert _snapshot(parsed) == _snapshot(result)


def test_the_bytes_of_files_the_run_does_not_work_on_are_not_kept(tmp_path, monkeypatch):
    """Memory follows the files a run works on, not the tree: a file that is only
    searched (a library's) is read for each search and dropped."""
    for rel, text in {**APP, **LIBRARY}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.chdir(tmp_path)
    result = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=None)

    project = result.project
    assert result.outcomes and not result.errors.entries
    kept = {file.path for file in project.files() if file.data is not None}
    worked_on = set(project.parse_counts) | {path for path in project.paths() if project.file(path).text is not None}
    assert "shop/app.py" in kept
    assert "vendored/jobs.py" not in kept  # searched (it holds "abort" and "Session"), never read as text
    assert kept - worked_on <= set(project._index)  # read to be indexed (what the app imports)


def test_searches_that_only_keep_app_files_never_search_the_tree(tmp_path, monkeypatch):
    """A byte search over every file costs with the tree: questions about the app's code
    (its abort() calls, hooks removing sessions, session factories, patches of its
    modules) search the app's files only."""
    for rel, text in {**APP, **LIBRARY}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.chdir(tmp_path)
    searched = []
    original = Project._files_holding
    monkeypatch.setattr(Project, "_files_holding",
                        lambda self, needles: searched.append(needles) or original(self, needles))
    result = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=None)
    assert result.outcomes and searched
    asked = {needle for needles in searched for needle in needles}
    assert not asked & {"abort(", ".remove(", "sessionmaker", "setattr", "patch.object"}


def test_a_library_importing_the_app_is_part_of_it(tmp_path, monkeypatch):
    """What imports an app module may call into it (a CLI, a thread): it is in scope."""
    files = {**APP, "tools/__init__.py": "", "tools/cli.py": "from shop.helpers import load_name\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.chdir(tmp_path)
    result = pipeline.run(["."], _all_codemods()[:1], jobs=1, index_cache=None)
    assert "tools/cli.py" in app_scope(result.project)


REACH_EXTRAS = {
    # imports the app on a continued line, and inside a function: still connected
    "tools/__init__.py": "",
    "report.py": "import os, \\\n    shop.helpers\n",
    "tools/late.py": "def run():\n    from shop.app import app\n    return app\n",
    # a relative import from inside the app's package
    "shop/admin.py": "from . import helpers\nfrom .database import Session\n",
    # mentions Flask only in text: no import, so no part of any app
    "docs_lexer.py": '"""Highlights Flask templates."""\nKEYWORDS = ["flask", "Flask", "route"]\n',
}


def _scope_from_every_file(project) -> set[str]:
    """The app scope as if every file were indexed: what the import reach must not change."""
    paths = project.paths()
    project.index_many(paths)
    forward, backward = {}, {}
    for path in paths:
        named, packages = imported_paths(project, path)
        forward[path] = named | packages
        for target in named:
            backward.setdefault(target, set()).add(path)
    scope, pending = set(), list(flask_files(project))
    while pending:
        path = pending.pop()
        if path not in scope:
            scope.add(path)
            pending += [*forward.get(path, ()), *backward.get(path, ())]
    return scope


def test_only_files_imports_can_connect_to_flask_are_indexed(tmp_path, monkeypatch):
    _write_tree(tmp_path, {**APP, **LIBRARY, **REACH_EXTRAS})
    monkeypatch.chdir(tmp_path)
    scans = _record_scans(monkeypatch)
    result = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=None)
    scope = app_scope(result.project)
    assert {"report.py", "tools/late.py", "shop/admin.py", "shop/helpers.py"} <= set(scope)
    assert "docs_lexer.py" not in scope and "docs_lexer.py" not in import_reach(result.project)
    # library code nothing imports from the app, with every prefilter word: never read
    assert not {LIBRARY["vendored/state.py"], LIBRARY["vendored/jobs.py"]} & set(scans)
    assert set(scope) == _scope_from_every_file(result.project)


# -- the cache ------------------------------------------------------------------------------

def _record_scans(monkeypatch) -> list[str]:
    scanned: list[str] = []
    real = index.scan_text

    def recording(text):
        scanned.append(text)
        return real(text)

    monkeypatch.setattr(index, "scan_text", recording)
    return scanned


def test_a_second_run_reads_the_index_from_the_cache(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    for rel, text in {**APP, **LIBRARY}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    monkeypatch.chdir(tree)
    cache = IndexCache(tmp_path / "cache")
    scans = _record_scans(monkeypatch)
    originals = set(APP.values())

    first = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)
    assert originals <= set(scans)  # cold: every file of the app scanned
    assert LIBRARY["vendored/state.py"] not in scans  # nothing of Flask reaches it: never read
    scanned_first = set(scans)
    scans.clear()
    edited = "# edited\n"  # so that the whole run is not cached
    (tree / "shop/__init__.py").write_text(edited)
    second = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)
    # warm: of the files on disk only the edited one is scanned, besides what codemods wrote
    assert second.project.parse_counts and edited in scans and not originals & set(scans)
    assert [o.diff for o in first.outcomes] == [o.diff for o in second.outcomes]

    entries = sorted(cache.dir.rglob("*.json"))
    on_disk = scanned_first & set({**APP, **LIBRARY}.values())  # not what codemods wrote: never cached
    assert len(entries) == len(on_disk) + 1  # one per content indexed (empty files share one), and the edit
    key = index.content_key(APP["shop/helpers.py"].encode())
    corrupt = cache.dir / key[:2] / f"{key}.json"
    corrupt.write_text("{not json")
    scans.clear()
    (tree / "shop/__init__.py").write_text(edited + "# again\n")
    third = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)
    assert originals & set(scans) == {APP["shop/helpers.py"]}  # the corrupt entry, rebuilt
    assert index.FileIndex.from_json(json.loads(corrupt.read_text())) == index.scan_text(APP["shop/helpers.py"])
    assert [o.diff for o in third.outcomes] == [o.diff for o in first.outcomes]


def test_no_cache_leaves_no_cache_behind(tmp_path):
    tree = tmp_path / "tree"
    for rel, text in APP.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    env = {**os.environ, index.CACHE_ENV: str(tmp_path / "cache")}
    env.pop(index.NO_CACHE_ENV, None)
    command = [sys.executable, "-m", "flask_refactor", "check", "--all", "."]
    done = subprocess.run([*command, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert not (tmp_path / "cache").exists()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert list((tmp_path / "cache").rglob("*.json"))


# -- whole-run results ------------------------------------------------------------------------

def _write_tree(root, files):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _snapshot(result):
    return ([(o.path, o.new, o.diff, o.created) for o in result.outcomes], result.findings, list(result.errors))


def test_an_unchanged_tree_is_answered_from_the_result_cache(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    _write_tree(tree, {**APP, **LIBRARY, "shop/templates/index.html": "{{ url_for('get_item', item_id=1) }}\n"})
    monkeypatch.chdir(tree)
    cache = IndexCache(tmp_path / "cache")

    first = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)
    second = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)
    assert first.project.parse_counts and not second.project.parse_counts  # nothing parsed
    assert _snapshot(second) == _snapshot(first) and first.outcomes

    # a cached result is written like a computed one
    pipeline.apply(second)
    assert not second.errors.entries
    for outcome in first.outcomes:
        assert (tree / outcome.path).read_text() == outcome.new

    # the written tree is a new tree: computed again, and nothing is left to do
    third = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)
    assert third.project.parse_counts and not third.outcomes


@pytest.mark.parametrize("change", ["file", "template", "option", "no cache"])
def test_a_changed_input_misses_the_result_cache(tmp_path, monkeypatch, change):
    tree = tmp_path / "tree"
    _write_tree(tree, {**APP, "shop/templates/index.html": "hello\n"})
    monkeypatch.chdir(tree)
    cache = IndexCache(tmp_path / "cache")
    first = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)
    codemods, use = _all_codemods(), cache
    if change == "file":
        (tree / "shop/helpers.py").write_text(APP["shop/helpers.py"] + "\nEXTRA = 1\n")
    elif change == "template":
        (tree / "shop/templates/index.html").write_text("{{ url_for('get_item', item_id=1) }}\n")
    elif change == "option":
        known = registry.all_codemods()
        codemods = [known[c.name](max_statements=3) if c.name == "extract-services" else c for c in codemods]
    else:
        use = None
    again = pipeline.run(["."], codemods, jobs=1, index_cache=use)
    assert again.project.parse_counts
    if change == "template":  # the endpoint in the template is now qualified too
        assert "shop/templates/index.html" in {o.path for o in again.outcomes}
        assert "shop/templates/index.html" not in {o.path for o in first.outcomes}


def test_a_different_answer_from_the_disk_misses_the_result_cache(tmp_path, monkeypatch):
    """`shop/__init__.py` is excluded from the run, yet it makes `shop` a package: the
    module names, and so the result, depend on it."""
    tree = tmp_path / "tree"
    _write_tree(tree, APP)
    monkeypatch.chdir(tree)
    cache = IndexCache(tmp_path / "cache")
    first = pipeline.run(["."], _all_codemods(), excludes=["shop/__init__.py"], jobs=1, index_cache=cache)
    second = pipeline.run(["."], _all_codemods(), excludes=["shop/__init__.py"], jobs=1, index_cache=cache)
    assert not second.project.parse_counts and _snapshot(second) == _snapshot(first)
    (tree / "shop/__init__.py").unlink()
    third = pipeline.run(["."], _all_codemods(), excludes=["shop/__init__.py"], jobs=1, index_cache=cache)
    assert third.project.parse_counts


def test_a_file_edited_during_the_run_keeps_the_result_out_of_the_cache(tmp_path, monkeypatch):
    """Searches read files again during the run: one edited meanwhile may have given a
    result that its key (the bytes before) does not describe."""
    tree = tmp_path / "tree"
    _write_tree(tree, APP)
    monkeypatch.chdir(tree)
    cache = IndexCache(tmp_path / "cache")
    original = pipeline.run_on_project

    def edit_then_run(project, *args, **kwargs):
        (tree / "shop/helpers.py").write_text(APP["shop/helpers.py"] + "\nEDITED = 1\n")
        return original(project, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run_on_project", edit_then_run)
    pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)
    assert not list((tmp_path / "cache").glob("results-*/*.json"))
    monkeypatch.setattr(pipeline, "run_on_project", original)
    pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)  # nothing edited: kept
    assert len(list((tmp_path / "cache").glob("results-*/*.json"))) == 1


def test_a_corrupt_result_entry_is_computed_again(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    _write_tree(tree, APP)
    monkeypatch.chdir(tree)
    cache = IndexCache(tmp_path / "cache")
    first = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)
    [entry] = (tmp_path / "cache").glob("results-*/*.json")
    entry.write_text('{"outcomes": [')
    again = pipeline.run(["."], _all_codemods(), jobs=1, index_cache=cache)
    assert again.project.parse_counts and _snapshot(again) == _snapshot(first)
    assert json.loads(entry.read_text())["outcomes"]


def test_a_file_only_libcst_reads_still_connects_the_app(tmp_path, monkeypatch):
    """Syntax newer than the running Python (here faked: `ast` is made to fail on one
    file) must not cut a view module off the app: its imports come from libcst."""
    real = index.scan_text
    monkeypatch.setattr(index, "scan_text", lambda text: (
        index.FileIndex(error="SyntaxError: newer syntax") if "NEWER" in text else real(text)))
    files = {**APP, "shop/report_views.py": "# NEWER\nfrom shop.app import app\n\n\n@app.route('/r')\ndef r():\n    return 'r'\n"}
    _write_tree(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    result = pipeline.run(["."], _all_codemods()[:1], jobs=1, index_cache=None)
    assert "shop/report_views.py" in app_scope(result.project)
    assert not result.errors.entries  # libcst reads it: no error to report


def test_a_rewritten_file_is_indexed_off_its_tree_as_its_text_would_be():
    """A codemod's new version of a file is indexed from its libcst tree (`scan_tree`):
    the same import records, in the same order and with the same module-level flags, as
    `ast` gives on its text (but no line), and the same dotted strings."""
    import dataclasses

    from flask_refactor.index import scan_text, scan_tree
    from helpers import sample_modules

    def without_lines(entry):
        return ([dataclasses.replace(record, line=0) for record in entry.imports], entry.dotted_strings,
                entry.defines_or_calls)

    checked = 0
    for where, module in sample_modules(("flask", "werkzeug", "click", "jinja2")):
        code = module.code
        expected = scan_text(code)
        assert expected.error is None, where
        assert without_lines(scan_tree(module, code)) == without_lines(expected), where
        checked += len(expected.imports)
    assert checked > 1000
    module = cst.parse_module("try:\n    import a\nexcept ImportError:\n    from . import b as c\nelse:\n    import d.e\n"
                              "finally:\n    from x import *\nif t:\n    import f\nelif u:\n    import g\nelse: import h\n"
                              "with w:\n    import i\nfor j in k:\n    import l\nclass M:\n    import n\n"
                              "def o():\n    import p\nmatch q:\n    case 1:\n        import r\n")
    assert without_lines(scan_tree(module, module.code)) == without_lines(scan_text(module.code))
    assert [record.module_level for record in scan_tree(module, module.code).imports] == [True] * 8 + [False] * 4
    # a new version keeping most statements (whose records are kept) and replacing two
    changed = module.with_changes(body=[cst.parse_statement("import z\n"), *module.body[1:-1],
                                        cst.parse_statement("from .y import v\n")])
    assert without_lines(scan_tree(changed, changed.code)) == without_lines(scan_text(changed.code))


def test_a_rewritten_file_with_a_tree_is_not_parsed_again_to_be_indexed(monkeypatch):
    from flask_refactor.project import Project

    project = Project.from_texts({"a.py": "import os\n", "b.py": "import sys\n"})
    scanned = []
    scan_text = index.scan_text
    monkeypatch.setattr(index, "scan_text", lambda text: scanned.append(text) or scan_text(text))
    project.update("a.py", cst.parse_module("import json\nx = 'pkg.mod.name'\n"))
    project.update("b.py", "import re\n")  # text only: scanned
    assert [r.name for r in project.index("a.py").imports] == ["json"]
    assert project.index("a.py").dotted_strings == ("pkg.mod.name",)
    assert [r.name for r in project.index("b.py").imports] == ["re"] and scanned == ["import re\n"]


def test_app_factory_parses_only_the_modules_it_may_rewrite(tmp_path, monkeypatch):
    """Importing any module of the app's package runs the package's `__init__` (the app
    module here) first, but a module that imports nothing from it keeps every line:
    app-factory reads its imports from the index and never parses it."""
    files = {
        "shop/__init__.py": "from flask import Flask\nfrom flask_sqlalchemy import SQLAlchemy\n\n"
                            "app = Flask(__name__)\ndb = SQLAlchemy(app)\n\n"
                            "from shop import views  # noqa: E402,F401\n",
        "shop/models.py": "from shop import db\n\n\nclass Item(db.Model):\n    id = db.Column(db.Integer, primary_key=True)\n",
        "shop/services.py": "from shop.models import Item\n\n\ndef count():\n    return Item.query.count()\n",
        "shop/views.py": "from shop import app\nfrom shop.services import count\n\n\n"
                         "@app.route('/')\ndef index():\n    return str(count())\n",
        "shop/cli.py": "import shop\n\n\ndef serve():\n    shop.app.run()\n",  # reaches the app through the package
    }
    _write_tree(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    result = pipeline.run(["."], [registry.get("app-factory")()], jobs=1, index_cache=None)

    changed = {outcome.path for outcome in result.outcomes}
    assert {"shop/__init__.py", "shop/models.py", "shop/views.py", "shop/extensions.py"} <= changed
    parsed = result.project.parse_counts
    assert "shop/services.py" not in parsed and "shop/services.py" not in changed
    assert parsed["shop/cli.py"] == 1  # `import shop` binds the app module: looked at


def test_the_import_reach_is_found_again_only_when_what_it_rests_on_changes(monkeypatch):
    """Codemods rewrite the app's files one after another. The reach and the app scope
    rest on the files importing Flask, what each file reached imports, and the files
    naming its packages on an import line: an added `from flask import g` changes none
    of it, and they are not searched for again; an import of a module outside them
    does, and they are found again, with it."""
    from flask_refactor.codemods.support import flask as flask_support

    texts = {
        "shop/__init__.py": "",
        "shop/app.py": "from flask import Flask\nfrom shop import views\n\napp = Flask(__name__)\n",
        "shop/views.py": "from flask import jsonify\n\nfrom shop.helpers import load\n\n\ndef index():\n"
                         "    return jsonify(load())\n",
        "shop/helpers.py": "def load():\n    return 1\n",
        "tools/__init__.py": "",
        "tools/report.py": "def report():\n    return 2\n",
    }
    project = Project.from_texts(texts)
    computed = []
    compute = flask_support._compute_import_graph
    monkeypatch.setattr(flask_support, "_compute_import_graph", lambda proj: computed.append(proj.revision) or compute(proj))
    before = import_reach(project), app_scope(project)
    assert "shop/helpers.py" in before[1] and "tools/report.py" not in before[0]

    project.update("shop/views.py", "from flask import g\n" + texts["shop/views.py"])
    assert (import_reach(project), app_scope(project)) == before and len(computed) == 1

    project.update("shop/views.py", "from tools.report import report\n" + texts["shop/views.py"])
    assert "tools/report.py" in import_reach(project) and "tools/report.py" in app_scope(project)
    assert len(computed) == 2
