"""support/context.py: which functions run in a request and which outside one. The map
is built again after each codemod, reading again only the modules that changed."""

from __future__ import annotations

import pytest

from flask_refactor.codemods.support import context
from flask_refactor.codemods.support.context import FunctionRef, context_map
from flask_refactor.project import Project

TEXTS = {
    "app.py": ("from flask import Flask\nfrom helpers import work\nimport tasks\n"
               "app = Flask(__name__)\n\n@app.route('/')\ndef index():\n    work()\n    return 'ok'\n\n"
               "def hook():\n    tasks.run()\n\napp.before_request(hook)\n"),
    "helpers.py": ("import threading\n\ndef work():\n    helper()\n\ndef helper():\n    pass\n\n"
                   "def spawn():\n    threading.Thread(target=job).start()\n\ndef job():\n    later()\n"),
    "tasks.py": "import helpers\nfrom helpers import work\n\ndef run():\n    work()\n    helpers.later()\n",
    "alone.py": "import flask\n\ndef own():\n    mine()\n\ndef mine():\n    pass\n",
}


def snapshot(cmap: context.ContextMap) -> list:
    """Everything the map says, in its order (lines rather than the functions finding them)."""
    functions = [(ref, sorted(f.roles), sorted(f.owners.items()), sorted(f.calls, key=str), f.nested_in,
                  f.is_generator, f.line) for ref, f in cmap.functions.items()]
    return [functions, list(cmap.request.items()), list(cmap.background.items()), cmap.blueprints]


@pytest.fixture
def reads(monkeypatch):
    """The paths `_build` reads, in order."""
    read = []
    real = context._read_module

    def counting(project, listed, module_functions, path):
        read.append(path)
        return real(project, listed, module_functions, path)

    monkeypatch.setattr(context, "_read_module", counting)
    return read


@pytest.mark.parametrize("path, text, read_again", [
    # a module's own change: only it is read again
    ("tasks.py", "from helpers import work, helper\n\ndef run():\n    helper()\n", ["tasks.py"]),
    # a new function where others look names up: they are read again (`helpers.later()` in
    # tasks.py now calls it), `alone.py` is not
    ("helpers.py", TEXTS["helpers.py"] + "\ndef later():\n    pass\n", ["app.py", "helpers.py", "tasks.py"]),
])
def test_after_a_change_the_map_reads_only_what_it_may_say_differently(reads, path, text, read_again):
    project = Project.from_texts(TEXTS)
    context_map(project)
    assert sorted(reads) == sorted(TEXTS)
    reads.clear()
    project.update(path, text)
    updated = context_map(project)
    assert sorted(reads) == read_again
    fresh = Project.from_texts({**TEXTS, path: text})
    assert snapshot(updated) == snapshot(context_map(fresh))


def test_the_map_follows_calls_hooks_and_thread_targets():
    cmap = context_map(Project.from_texts(TEXTS))
    assert cmap.request[FunctionRef("helpers.py", "helper")].startswith("called from work() (called from ")
    assert cmap.in_request(FunctionRef("tasks.py", "run"))  # called from a before_request hook
    assert cmap.background == {FunctionRef("helpers.py", "job"): "a thread target"}
    assert not cmap.in_request(FunctionRef("alone.py", "mine"))


def test_a_thread_started_with_a_lambda_a_partial_or_a_subclass_runs_what_it_calls():
    source = ("import functools\nimport threading\n\nimport flask\n\ndef a():\n    pass\n\ndef b(x):\n    pass\n\n"
              "def later():\n    pass\n\ndef c():\n    pass\n\n"
              "class Mailer(threading.Thread):\n    def run(self):\n        c()\n\n"
              "    def other(self):\n        pass\n\n"
              "def start():\n"
              "    threading.Thread(target=lambda: a() or b(lambda: later())).start()\n"
              "    threading.Thread(target=functools.partial(b, 1)).start()\n"
              "    Mailer().start()\n")
    cmap = context_map(Project.from_texts({"jobs.py": source}))
    # not later(): the lambda passed to b() runs only if b() calls it
    assert cmap.background == {FunctionRef("jobs.py", "a"): "a thread target",
                               FunctionRef("jobs.py", "b"): "a thread target",
                               FunctionRef("jobs.py", "Mailer.run"): "the run method of a thread or process class",
                               FunctionRef("jobs.py", "c"): "called from Mailer.run() (the run method of a thread or "
                                                            "process class)"}


def test_each_start_of_a_function_elsewhere_is_kept_with_its_kind():
    source = ("import multiprocessing\nimport threading\nfrom concurrent.futures import ThreadPoolExecutor\n\n"
              "import flask\n\npool = ThreadPoolExecutor()\n\n"
              "def work():\n    pass\n\n"
              "def start():\n"
              "    threading.Thread(target=work).start()\n    threading.Timer(1, work).start()\n"
              "    pool.submit(work)\n    multiprocessing.Process(target=work).start()\n    queue.enqueue(work)\n"
              "    socketio.start_background_task(work)\n\n"
              "threading.Thread(target=work).start()\n")
    cmap = context_map(Project.from_texts({"jobs.py": source}))
    start = FunctionRef("jobs.py", "start")
    assert cmap.functions[FunctionRef("jobs.py", "work")].started_by == {
        (start, "thread"), (start, "timer"), (start, "submit"), (start, "process"), (start, "job"),
        (start, "background"), (None, "thread")}
    assert cmap.functions[start].started_by == set()


def test_exit_and_signal_handlers_are_callbacks_kept_with_their_kind():
    """Registered with atexit (as a decorator too) or signal: run by the interpreter,
    outside requests. Not "background" work: nothing of theirs goes to g."""
    source = ("import atexit\nimport signal as sig\n\nimport flask\n\n"
              "@atexit.register\ndef flush():\n    pass\n\n"
              "def stop(signum, frame):\n    pass\n\n"
              "def install():\n    sig.signal(sig.SIGTERM, stop)\n    atexit.register(stop, 0, None)\n")
    cmap = context_map(Project.from_texts({"jobs.py": source}))
    flush, stop, install = (cmap.functions[FunctionRef("jobs.py", name)] for name in ("flush", "stop", "install"))
    assert (flush.roles, flush.owners, flush.started_by) == ({"callback"}, {"callback": "atexit.register"}, set())
    assert stop.roles == {"callback"} and stop.started_by == {(install.ref, "signal"), (install.ref, "exit")}
    assert install.roles == set() and not cmap.background


def test_queued_and_scheduled_jobs_run_outside_requests():
    source = ("import flask\nfrom rq import Queue\n\nqueue = Queue()\n\n"
              + "".join(f"def {name}():\n    pass\n\n" for name in "abcdefg")
              + "@scheduler.scheduled_job('interval', minutes=5)\ndef tick():\n    pass\n\n"
              "def start(delta, item):\n"
              "    queue.enqueue(a, 1)\n    queue.enqueue_call(func=b)\n    queue.enqueue_in(delta, c)\n"
              "    queue.enqueue_at(delta, f=d)\n    scheduler.add_job(e, 'interval')\n"
              "    scheduler.add_job(func=f)\n    queue.enqueue('jobs.g')\n"
              "    queue.enqueue(item)\n    other.enqueue(start_later)\n")
    cmap = context_map(Project.from_texts({"jobs.py": source}))
    assert cmap.background == {FunctionRef("jobs.py", name): "a queued or scheduled job"
                               for name in [*"abcdefg", "tick"]}
