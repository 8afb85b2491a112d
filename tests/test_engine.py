"""The engine with small codemods defined here: chaining, parallel stages, validation,
atomic writes, diffs that reproduce the writes, discovery rules, the plugin registry."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path, PurePosixPath

import libcst as cst
import pytest

from flask_refactor import forking, pipeline, registry, writer
from flask_refactor.codemod import ChangeSet, Codemod, FileCodemod, FileContext, Option, Severity
from flask_refactor.discovery import discover
from flask_refactor.project import Project, _module_name
from helpers import all_work_forked, record_forks, take_turns


class RenameOld(FileCodemod):
    """Renames the name `old` to `new` everywhere: a per-file codemod."""

    name = "test-rename"
    summary = "rename old to new"
    explain = ""
    needles = ("old",)

    def transform(self, module: cst.Module, ctx: FileContext) -> cst.Module:
        class Renamer(cst.CSTTransformer):
            def leave_Name(self, original, updated):
                return updated.with_changes(value="new") if updated.value == "old" else updated

        for stmt in module.body:
            ctx.report(stmt, "seen", Severity.INFO)
            break
        return module.visit(Renamer())


class NewToNewer(FileCodemod):
    name = "test-newer"
    summary = "rename new to newer"
    explain = ""
    needles = ("new",)

    def transform(self, module: cst.Module, ctx: FileContext) -> cst.Module:
        class Renamer(cst.CSTTransformer):
            def leave_Name(self, original, updated):
                return updated.with_changes(value="newer") if updated.value == "new" else updated

        return module.visit(Renamer())


class AddsFile(Codemod):
    name = "test-adds-file"
    summary = "creates NOTES.txt and appends a line to every module"
    explain = ""

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        changes.create("NOTES.txt", "created by the codemod\n", "a new file")
        for path in project.paths():
            changes.modify(path, project.text(path) + "x = 1", "append")
        return changes


class Breaks(Codemod):
    name = "test-breaks"
    summary = "writes invalid Python"
    explain = ""

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        for path in project.paths():
            changes.modify(path, "def broken(:\n", "break it")
        return changes


class Crashes(Codemod):
    name = "test-crashes"
    summary = "raises"
    explain = ""

    def run(self, project: Project) -> ChangeSet:
        raise KeyError("boom")


class CrashesInWorkers(Codemod):
    """Hands each file to `Project.map`, whose calls raise on one of them."""

    name = "test-crashes-in-workers"
    summary = "raises in a worker"
    explain = ""

    def run(self, project: Project) -> ChangeSet:
        def look(path: str) -> str:
            if path.endswith("m7.py"):
                raise ValueError("no seven")
            return path

        project.map(project.paths(), look)
        return self.new_changeset()


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def run_in(root: Path, codemods, jobs: int = 1, do_apply: bool = False) -> pipeline.RunResult:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = pipeline.run(["."], codemods, jobs=jobs)
        if do_apply:
            pipeline.apply(result)
        return result
    finally:
        os.chdir(cwd)


def test_chain_sees_previous_output_and_diff_is_original_vs_final(tmp_path):
    write(tmp_path, {"a.py": "old = 1  # keep me\n"})
    result = run_in(tmp_path, [RenameOld(), NewToNewer()], do_apply=True)
    assert (tmp_path / "a.py").read_text() == "newer = 1  # keep me\n"
    assert "-old = 1  # keep me\n+newer = 1  # keep me\n" in result.outcomes[0].diff
    assert [f.message for f in result.findings] == ["seen"]


def test_parallel_stage_gives_the_same_result_as_serial(tmp_path):
    files = {f"pkg/m{i}.py": f"old = {i}\nunrelated = 'x'\n" for i in range(40)}
    files.update({f"pkg/other{i}.py": "nothing = 0\n" for i in range(10)})
    serial = run_in(write(tmp_path / "s", files), [RenameOld(), NewToNewer()], jobs=1)
    parallel = run_in(write(tmp_path / "p", files), [RenameOld(), NewToNewer()], jobs=2)
    assert len(parallel.outcomes) == 40
    assert [(o.path, o.new) for o in serial.outcomes] == [(o.path, o.new) for o in parallel.outcomes]
    assert [f.as_dict() for f in serial.findings] == [f.as_dict() for f in parallel.findings]


def _forks_run_here(monkeypatch) -> list[list]:
    """`work_with_forks` replaced by a loop of `there` in this process: each call's items
    are recorded."""
    forked: list[list] = []
    monkeypatch.setattr(forking, "work_with_forks",
                        lambda here, there, rest, jobs: forked.append(rest) or [there(i) for i in rest])
    return forked


def test_quick_work_is_not_forked_and_slow_work_is(monkeypatch):
    forked = _forks_run_here(monkeypatch)
    here = []

    def quick(item):
        here.append(item)
        return item

    assert pipeline.run_here_then_fork(list(range(50)), quick, lambda i: -i, jobs=2) == list(range(50))
    assert here == list(range(50)) and not forked  # done before a worker would have started

    def slow(item):
        time.sleep(0.03)
        return quick(item)

    here.clear()
    results = pipeline.run_here_then_fork(list(range(20)), slow, lambda i: -i, jobs=2)
    assert forked and forked[0] == list(range(len(here), 20))  # the rest, once the pace was known
    assert results == here + [-i for i in forked[0]]
    forked.clear()
    assert pipeline.run_here_then_fork(list(range(20)), slow, lambda i: -i, jobs=1) == list(range(20))  # one job: never
    assert not forked


def test_light_work_is_forked_sooner_than_work_on_trees(monkeypatch):
    """Work whose workers read only texts (validation) is worth a fork at a smaller size:
    a worker reading trees copies each page of them it reads."""
    forked = _forks_run_here(monkeypatch)
    # 80 ms of work: under the first threshold, over the second, however slow the machine
    monkeypatch.setattr(forking, "FORK_WORTHWHILE_SECONDS", 60.0)
    monkeypatch.setattr(forking, "LIGHT_WORK_WORTHWHILE_SECONDS", 0.01)

    def work(item):
        time.sleep(0.002)
        return item

    items = list(range(40))
    assert pipeline.run_here_then_fork(items, work, lambda i: -i, jobs=2) == items
    assert not forked
    results = pipeline.run_here_then_fork(items, work, lambda i: -i, jobs=2, light=True)
    assert forked and results[-1] == -39


def test_validation_is_light_work(tmp_path, monkeypatch):
    calls = []
    real = pipeline.run_here_then_fork
    monkeypatch.setattr(pipeline, "run_here_then_fork",
                        lambda items, here, *args, **kwargs: calls.append((here, kwargs)) or real(items, here, *args,
                                                                                                   **kwargs))
    (tmp_path / "a.py").write_text("old = 1\n")
    result = pipeline.run([str(tmp_path / "a.py")], [RenameOld()], jobs=2, index_cache=None)
    assert result.outcomes and [kwargs for here, kwargs in calls if here is pipeline._checked] == [{"light": True}]


def test_work_too_small_to_fork_builds_no_table_of_shared_statements(monkeypatch):
    # a table of every statement of the trees held costs milliseconds: only work that
    # may be forked needs it, to weigh what sending results back would cost
    entered = []
    real_sharing = forking.transfer.sharing
    monkeypatch.setattr(forking.transfer, "sharing", lambda trees: entered.append(trees) or real_sharing(trees))
    module = cst.parse_module("x = 1\n")
    # a millisecond an item: more than the sample takes, far less than is worth forking
    assert pipeline.run_here_then_fork(list(range(15)), lambda i: time.sleep(0.001) or i, lambda i: -i, jobs=2,
                                       shared=lambda: [module]) == list(range(15))
    assert entered == []


def test_pace_is_taken_per_unit_of_size_when_work_grows_with_it(monkeypatch):
    # validation runs in path order, and the first files are often the small ones
    forked = _forks_run_here(monkeypatch)
    sizes = [1] * 150 + [50] * 20  # 1 ms per unit: the small ones alone outlast RUN_HERE_FIRST_SECONDS
    results = pipeline.run_here_then_fork(sizes, lambda size: time.sleep(size / 1000) or size, lambda size: -size,
                                          jobs=2, sizes=sizes)
    assert forked and forked[0][-20:] == [50] * 20  # the large ones went to workers
    assert results[-20:] == [-50] * 20 and set(results[:150]) <= {1, -1}


def test_the_sample_stops_before_a_large_item_which_goes_to_a_worker(monkeypatch):
    # taken here, a large module would keep the workers waiting while it ran here alone;
    # the sample stays the first items, in order (extract-services relies on it)
    forked, here = _forks_run_here(monkeypatch), []

    def work(size):
        here.append(size)
        time.sleep(size / 1000)
        return size

    sizes = [2, 2, 400] + [20] * 30
    results = pipeline.run_here_then_fork(sizes, work, lambda size: -size, jobs=2, sizes=sizes)
    assert here == [2, 2] and forked == [sizes[2:]]
    assert results == [2, 2] + [-size for size in sizes[2:]]
    here.clear(), forked.clear()
    sizes = [400] + [20] * 30  # first: nothing to judge the pace by, and forking shares the rest out
    assert pipeline.run_here_then_fork(sizes, work, lambda size: -size, jobs=2, sizes=sizes) == [-s for s in sizes]
    assert here == [] and forked == [sizes]


def test_forking_is_judged_knowing_that_an_item_is_never_split():
    sample = [(None, 1)]  # nothing to pickle: only the work counts
    assert forking._forking_pays(sample, 0.001, [500, 500], jobs=2)  # 1 s here, 0.5 s shared with a worker
    assert not forking._forking_pays(sample, 0.001, [1000], jobs=2)  # whoever took it would take as long
    assert not forking._forking_pays(sample, 0.001, [950, 25, 25], jobs=2)


def test_a_share_is_judged_with_the_cost_of_sending_and_loading_its_results():
    # 1 s of work; a worker's share costs it 25% more to send, and this process 25% of
    # its work to load: the worker takes 1 / (1.25 + 0.75) of it, done in 0.625 s
    assert forking._balanced_seconds(1.0, 0.25, 0.25, jobs=2) == pytest.approx(0.625)
    assert forking._balanced_seconds(1.0, 0.0, 0.0, jobs=3) == pytest.approx(1 / 3)
    assert forking._balanced_seconds(1.0, 0.0, 1.0, jobs=2) == float("inf")  # loading costs the work itself
    assert not forking._forking_pays([(None, 1)], 0.001, [500, 500], jobs=1)


def test_pickling_costs_are_scaled_per_item_or_per_unit_whichever_says_less():
    # after an empty __init__.py, per unit of size overstates them; after a large module, per item
    assert forking._scaled(0.001, [(None, 10)], [10_000] * 10) == pytest.approx(0.01)
    assert forking._scaled(0.1, [(None, 10_000)], [10] * 10) == pytest.approx(0.001)


def test_work_is_done_here_when_no_worker_can_be_forked(monkeypatch):
    def no_fork():
        raise BlockingIOError("fork: Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    all_work_forked(monkeypatch)  # would fork everything
    assert pipeline.run_here_then_fork(list(range(5)), lambda i: i * 2, lambda i: -i, jobs=2) == [0, 2, 4, 6, 8]


def test_work_is_done_here_when_no_lock_can_be_shared_with_workers(monkeypatch):
    def no_semaphores():
        raise OSError(38, "Function not implemented")  # as on a system without /dev/shm

    monkeypatch.setattr(multiprocessing, "Lock", no_semaphores)
    all_work_forked(monkeypatch)
    assert pipeline.run_here_then_fork(list(range(5)), lambda i: i * 2, lambda i: -i, jobs=2) == [0, 2, 4, 6, 8]


@pytest.mark.skipif(not forking.can_fork(2), reason="work is forked to workers on Linux only")
def test_work_is_done_here_when_a_worker_dies(monkeypatch):
    all_work_forked(monkeypatch)  # would fork everything
    with pytest.raises(forking.WorkerLost):
        forking.work_with_forks(lambda i: i * 2, lambda i: os._exit(3), list(range(5)), 2)
    assert pipeline.run_here_then_fork(list(range(5)), lambda i: i * 2, lambda i: os._exit(3), jobs=2) == [0, 2, 4, 6, 8]


def test_work_whose_results_cost_more_to_send_back_than_to_compute_stays(monkeypatch):
    forked = _forks_run_here(monkeypatch)

    bulky = [str(i) for i in range(100_000)]

    def quick_but_bulky(item):
        time.sleep(0.005)
        return bulky  # pickling it (in a worker) takes longer than the work did

    results = pipeline.run_here_then_fork(list(range(100)), quick_but_bulky, lambda i: i, jobs=2)
    assert results == [bulky] * 100 and not forked


class PerModule(Codemod):
    """Adds a comment to every module through `Project.per_module`, reporting, logging an
    error and asking the disk from inside the work, as real codemods do."""

    name = "test-per-module"
    summary = "comment every module"
    explain = ""

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        modules = [(path, project.parse(path)) for path in project.paths() if path != "helper.py"]
        self.left_behind = []

        def one_module(item, changes: ChangeSet) -> None:
            path, module = item
            self.left_behind.append(path)  # codemod state: lost in a worker, as documented
            changes.report(path, 1, f"commented {path}", Severity.INFO)
            changes.modify(path, module.with_changes(header=[cst.EmptyLine(comment=cst.Comment("# seen"))]), "c")
            project.errors.add(path + ".log", f"logged while rewriting {path}")
            project.on_disk(path + ".missing")
            project.parse("helper.py")  # parsed in the worker: still counted

        project.per_module(modules, one_module, changes)
        return changes


@pytest.mark.skipif(not forking.can_fork(2), reason="work is shared with forked workers on Linux only")
def test_shared_work_done_here_renders_its_changes_beside_the_work(monkeypatch):
    # as a worker's are, when pickled: not afterwards, in the coordinator alone
    project = Project.from_texts({f"m{i}.py": f"x = {i}\n" for i in range(3)})
    pipeline.use_module_workers(project, 2)
    rendered_during = []

    def rewrite(path: str) -> ChangeSet:
        changes = ChangeSet("test")
        changes.modify(path, project.parse(path).with_changes(header=[cst.EmptyLine(comment=cst.Comment("# c"))]), "")
        return changes

    def rewrite_and_look(path: str) -> ChangeSet:
        changes = rewrite(path)
        rendered_during.append(changes.changes[path].rendered)  # not yet: only once the work is done
        return changes

    results = project.map(sorted(project.paths()), rewrite_and_look)  # quick: all done here
    assert rendered_during == [None] * 3
    assert [r.changes[f"m{i}.py"].rendered for i, r in enumerate(results)] == [f"# c\nx = {i}\n" for i in range(3)]


@pytest.mark.skipif(not forking.can_fork(2), reason="modules go to forked workers only where processes fork")
def test_per_module_work_in_forked_workers_comes_back_as_if_run_here(tmp_path, monkeypatch):
    files = {f"m{i}.py": f"x = {i}\n" for i in range(12)} | {"helper.py": "y = 1\n"}
    serial = run_in(write(tmp_path / "s", files), [PerModule()], jobs=1)
    all_work_forked(monkeypatch)  # quick items would all run here
    forked_calls = record_forks(monkeypatch)
    codemod = PerModule()
    forked = run_in(write(tmp_path / "p", files), [codemod], jobs=2)
    assert forked_calls  # the items did go to workers
    assert codemod.left_behind == []  # ... so what the work changed besides its change set stayed there
    assert len(forked.outcomes) == 12 and all(o.new.startswith("# seen\n") for o in forked.outcomes)
    assert [(o.path, o.new) for o in serial.outcomes] == [(o.path, o.new) for o in forked.outcomes]
    assert [f.as_dict() for f in serial.findings] == [f.as_dict() for f in forked.findings]
    assert list(serial.errors) == list(forked.errors) and len(forked.errors) == 12
    assert all(forked.project.disk_probes[f"m{i}.py.missing"] is False for i in range(12))
    counts = forked.project.parse_counts
    assert {path: counts[path] for path in files if path != "helper.py"} == {f"m{i}.py": 1 for i in range(12)}
    assert counts["helper.py"] >= 1  # once per worker that needed it


@pytest.mark.skipif(not forking.can_fork(2), reason="work goes to forked workers only where processes fork")
def test_workers_are_reaped_before_the_next_are_forked_and_when_the_run_ends(tmp_path, monkeypatch):
    """A worker that has sent all it will is not waited for at once (its exit takes a few
    milliseconds this process would spend idle), but none outlives the run."""
    all_work_forked(monkeypatch)
    assert forking.work_with_forks(lambda i: i, lambda i: -i, list(range(8)), 2) == [-i for i in range(8)]
    left = list(forking._EXITING)
    assert left  # not waited for yet
    forking.work_with_forks(lambda i: i, lambda i: -i, list(range(8)), 2)
    assert not set(left) & set(forking._EXITING)  # reaped before the next were forked
    forking.reap_exited()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child left, zombie or not
    files = {f"m{i}.py": f"x = {i}\n" for i in range(12)} | {"helper.py": "y = 1\n"}
    assert len(run_in(write(tmp_path, files), [PerModule()], jobs=2).outcomes) == 12  # through workers
    assert forking._EXITING == []
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_prefilter_keeps_unrelated_files_unparsed(tmp_path):
    write(tmp_path, {"a.py": "old = 1\n", "b.py": "this is not python at all (\n"})
    result = run_in(tmp_path, [RenameOld()])
    assert not len(result.errors)  # b.py has no "old": never parsed, so no syntax error
    assert result.project.file("b.py").tree is None


def test_unchanged_files_are_parsed_once_across_codemods(tmp_path, monkeypatch):
    write(tmp_path, {"a.py": "old = 1\n"})
    calls = []
    original = cst.parse_module
    monkeypatch.setattr(cst, "parse_module", lambda *a, **k: calls.append(1) or original(*a, **k))

    class Reads(Codemod):
        name, summary, explain = "test-reads", "", ""

        def run(self, project):
            for _ in project.modules():
                pass
            return self.new_changeset()

    run_in(tmp_path, [Reads(), Reads(), Reads()])
    assert len(calls) == 1


@pytest.mark.parametrize("jobs", [1, 2])
def test_invalid_output_is_not_written_and_is_reported(tmp_path, monkeypatch, jobs):
    all_work_forked(monkeypatch)  # with 2 jobs, validated in forked workers
    write(tmp_path, {"a.py": "x = 1\n"})
    result = run_in(tmp_path, [Breaks()], jobs=jobs, do_apply=True)
    assert (tmp_path / "a.py").read_text() == "x = 1\n"
    assert result.outcomes == []
    [(path, message)] = list(result.errors)
    assert path == "a.py" and "does not parse, not written" in message


class HalfBrokenUnit(Codemod):
    name = "test-half-broken-unit"
    summary = "two files that only make sense together, one of them invalid"
    explain = ""

    def run(self, project: Project) -> ChangeSet:
        changes = self.new_changeset()
        changes.unit = True
        changes.modify("a.py", "from b import helper\n", "uses the new helper")
        changes.modify("b.py", "def helper(:\n", "defines the helper, badly")
        return changes


def test_a_unit_change_set_is_written_whole_or_not_at_all(tmp_path):
    write(tmp_path, {"a.py": "x = 1\n", "b.py": "y = 2\n"})
    result = run_in(tmp_path, [HalfBrokenUnit()], do_apply=True)
    assert (tmp_path / "a.py").read_text() == "x = 1\n" and (tmp_path / "b.py").read_text() == "y = 2\n"
    errors = dict(result.errors)
    assert "does not parse" in errors["b.py"] and "belongs with b.py" in errors["a.py"]


def test_a_crashing_codemod_loses_only_its_own_changes(tmp_path):
    write(tmp_path, {"a.py": "old = 1\n"})
    result = run_in(tmp_path, [Crashes(), RenameOld()], do_apply=True)
    assert (tmp_path / "a.py").read_text() == "new = 1\n"
    [(where, message)] = list(result.errors)
    assert where == "<test-crashes>" and "KeyError" in message


@pytest.mark.skipif(not forking.can_fork(2), reason="work is forked to workers on Linux only")
def test_a_codemod_crashing_in_a_worker_is_reported_where_it_raised(tmp_path, monkeypatch):
    all_work_forked(monkeypatch)  # every call goes to a worker
    write(tmp_path, {f"m{i}.py": "x = 1\n" for i in range(10)})
    result = run_in(tmp_path, [CrashesInWorkers()], jobs=2)
    [(where, message)] = list(result.errors)
    assert where == "<test-crashes-in-workers>" and "ValueError: no seven" in message
    assert "(test_engine.py:" in message  # not the pool's own frame, where it was raised again


def test_diff_applied_with_git_reproduces_exactly_what_apply_writes(tmp_path):
    files = {
        "crlf.py": b"import os\r\nold = 1\r\n",
        "no_newline.py": b"y = 2",
        "latin.py": "# -*- coding: latin-1 -*-\nold = 'caf\xe9'\n".encode("latin-1"),
        "bom.py": b"\xef\xbb\xbfold = 3\n",
    }
    applied = write(tmp_path / "applied", files)
    patched = write(tmp_path / "patched", files)
    result = run_in(applied, [RenameOld(), AddsFile()], do_apply=True)
    patch = b"".join(o.diff.encode(result.project.file(o.path).encoding.name) for o in result.outcomes)
    (tmp_path / "change.patch").write_bytes(patch)
    subprocess.run(["git", "apply", "--unsafe-paths", str(tmp_path / "change.patch")], cwd=patched, check=True)
    for rel in [*files, "NOTES.txt"]:
        assert (patched / rel).read_bytes() == (applied / rel).read_bytes(), rel
    assert (applied / "crlf.py").read_bytes() == b"import os\r\nnew = 1\r\nx = 1"
    assert (applied / "bom.py").read_bytes().startswith(b"\xef\xbb\xbfnew = 3\n")
    assert (applied / "latin.py").read_bytes().decode("latin-1").endswith("new = 'caf\xe9'\nx = 1")


def test_patch_p1_accepts_the_diff_too(tmp_path):
    if not shutil.which("patch"):
        pytest.skip("patch is not installed")
    files = {"a.py": "old = 1\n"}
    applied = write(tmp_path / "applied", files)
    patched = write(tmp_path / "patched", files)
    result = run_in(applied, [RenameOld()], do_apply=True)
    subprocess.run(["patch", "-p1"], input=result.outcomes[0].diff.encode(), cwd=patched, check=True,
                   capture_output=True)
    assert (patched / "a.py").read_bytes() == (applied / "a.py").read_bytes()


def test_writes_keep_the_file_mode(tmp_path):
    write(tmp_path, {"tool.py": "old = 1\n"})
    os.chmod(tmp_path / "tool.py", 0o750)
    run_in(tmp_path, [RenameOld()], do_apply=True)
    assert stat.S_IMODE((tmp_path / "tool.py").stat().st_mode) == 0o750


def test_interrupt_while_staging_leaves_every_file_old_and_no_temp_files(tmp_path, monkeypatch):
    write(tmp_path, {f"m{i}.py": "old = 1\n" for i in range(3)})
    result = run_in(tmp_path, [RenameOld()])
    staged = []
    real_stage = writer._stage

    def stage_then_interrupt(item, made_dirs):
        if staged:
            raise KeyboardInterrupt
        staged.append(real_stage(item, made_dirs))
        return staged[-1]

    monkeypatch.setattr(writer, "_stage", stage_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        pipeline.apply(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m0.py", "m1.py", "m2.py"]
    assert all((tmp_path / f"m{i}.py").read_text() == "old = 1\n" for i in range(3))


def test_sigint_during_renames_is_held_until_every_file_is_new(tmp_path, monkeypatch):
    write(tmp_path, {f"m{i}.py": "old = 1\n" for i in range(3)})
    result = run_in(tmp_path, [RenameOld()])
    real_replace = os.replace
    count = []

    def replace_and_signal(src, dst):
        real_replace(src, dst)
        count.append(dst)
        if len(count) == 1:
            os.kill(os.getpid(), 2)  # Ctrl-C after the first rename

    monkeypatch.setattr(writer.os, "replace", replace_and_signal)
    with pytest.raises(KeyboardInterrupt):
        pipeline.apply(result)
    assert all((tmp_path / f"m{i}.py").read_text() == "new = 1\n" for i in range(3))


def test_discovery_skips_what_users_expect(tmp_path):
    write(tmp_path, {
        ".gitignore": "ignored_dir/\n*.gen.py\n",
        "app.py": "x = 1\n",
        "ignored_dir/a.py": "x = 1\n",
        "b.gen.py": "x = 1\n",
        "venv/lib/c.py": "x = 1\n",
        "myenv/pyvenv.cfg": "home = /usr\n",
        "myenv/lib/d.py": "x = 1\n",
        "node_modules/e.py": "x = 1\n",
        "migrations/versions/f.py": "x = 1\n",
        ".hidden/g.py": "x = 1\n",
        "generated.py": "# @" "generated by protoc\nx = 1\n",
        "pkg/sub/.gitignore": "local.py\n",
        "pkg/sub/local.py": "x = 1\n",
        "pkg/sub/kept.py": "x = 1\n",
    })
    (tmp_path / ".git").mkdir()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        found = discover(["."], ["pkg/sub/kept.py"])
        explicit = discover(["generated.py"])
    finally:
        os.chdir(cwd)
    assert sorted(f.path for f in found.files if f.python) == ["app.py"]
    assert found.skipped_generated == ["generated.py"]
    assert [f.path for f in explicit.files] == ["generated.py"]  # named explicitly: taken


def test_symlink_loops_and_duplicate_links_are_survived(tmp_path):
    write(tmp_path, {"pkg/a.py": "old = 1\n"})
    os.symlink(tmp_path / "pkg", tmp_path / "pkg" / "loop")
    os.symlink(tmp_path / "pkg" / "a.py", tmp_path / "alias.py")
    result = run_in(tmp_path, [RenameOld()], do_apply=True)
    assert len(result.outcomes) == 1
    assert (tmp_path / "pkg" / "a.py").read_text() == "new = 1\n"
    assert (tmp_path / "alias.py").is_symlink()  # the link itself is kept, its target written


def test_option_parsing_and_unknown_options():
    class WithOptions(Codemod):
        name, summary, explain = "test-options", "", ""
        options = (Option("limit", int, 25, ""), Option("strict", bool, False, ""), Option("names", list, [], ""))

    codemod = WithOptions(limit="30", strict="yes", names="a, b")
    assert codemod.config == {"limit": 30, "strict": True, "names": ["a", "b"]}
    with pytest.raises(ValueError, match="unknown option 'nope'"):
        WithOptions(nope=1)
    with pytest.raises(ValueError, match="expected int"):
        WithOptions(limit="many")


def test_entry_point_plugins_are_registered(monkeypatch):
    class FakeEntryPoint:
        name, value = "rename", "tests:RenameOld"

        def load(self):
            return RenameOld

    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()])
    registry.all_codemods.cache_clear()
    try:
        assert registry.get("test-rename") is RenameOld
        assert "teardown" in registry.all_codemods()
    finally:
        registry.all_codemods.cache_clear()


def test_module_names_follow_packages():
    project = Project.from_texts({"src/pkg/__init__.py": "", "src/pkg/mod.py": "", "src/flat.py": ""})
    assert project.module_name("src/pkg/mod.py") == "pkg.mod"
    assert project.module_name("src/pkg/__init__.py") == "pkg"
    assert project.module_name("src/flat.py") == "flat"
    assert project.path_of_module("pkg.mod") == "src/pkg/mod.py"


@pytest.mark.parametrize(("texts", "path", "name"), [
    # a repository's stray root `__init__.py`; the code imports its own modules as `app.*`
    ({"repo/__init__.py": "", "repo/app/__init__.py": "", "repo/app/database.py": "",
      "repo/app/views.py": "from app.database import db_session\n", "repo/run.py": ""},
     "repo/app/database.py", "app.database"),
    ({"repo/__init__.py": "", "repo/app/__init__.py": "", "repo/run.py": "def main():\n    import app\n"},
     "repo/run.py", "run"),
    # calibreweb's shape: its `__init__` puts its directory on sys.path for `cps`
    ({"cw/__init__.py": "import sys\nsys.path.insert(0, 'here')\nfrom cps.main import main\n",
      "cw/cps/__init__.py": "", "cw/cps/main.py": "from . import web\n", "cw/cps/web.py": ""},
     "cw/cps/web.py", "cps.web"),
    ({"cw/__init__.py": "from cps.main import main\n", "cw/cps/__init__.py": "", "cw/cps/main.py": ""},
     "cw/__init__.py", "cw"),
    # imports start at the package: it is imported by its name, or only relatively, or
    # what looks like its own module is the standard library's, or is in a comment
    ({"pkg/__init__.py": "", "pkg/models.py": "", "pkg/views.py": "from models import User\nfrom pkg import models\n"},
     "pkg/views.py", "pkg.views"),
    ({"pkg/__init__.py": "from .views import bp\n", "pkg/views.py": "from . import models\n", "pkg/models.py": ""},
     "pkg/views.py", "pkg.views"),
    ({"pkg/__init__.py": "", "pkg/logging.py": "", "pkg/views.py": "import logging\n"}, "pkg/views.py", "pkg.views"),
    ({"pkg/__init__.py": "", "pkg/app/__init__.py": "", "pkg/views.py": "x = 1  # from app import y\n"},
     "pkg/views.py", "pkg.views"),
])
def test_module_names_start_where_the_codes_own_imports_do(texts, path, name):
    project = Project.from_texts(texts)
    assert project.module_name(path) == name
    assert project.path_of_module(name) == path


def _module_name_by_pathlib(path, is_package):
    """The rule, written with pathlib's objects (what `_module_name` reads off the string)."""
    pure = PurePosixPath(path)
    name = [] if pure.stem == "__init__" else [pure.stem]
    directory = pure.parent
    if pure.stem == "__init__":
        name, directory = [directory.name], directory.parent
    while directory.name not in ("", "..", ".") and is_package(str(directory / "__init__.py")):
        name.insert(0, directory.name)
        directory = directory.parent
    return ".".join(name) if name and all(part.isidentifier() for part in name) else None


@pytest.mark.parametrize("packages", [set(), {"a", "pkg"}, {"a", "pkg", "x-y", ".."}])
def test_module_names_read_off_the_path_string_are_pathlibs(packages):
    parts = ["a", "pkg", "..", ".", "", "x-y"]
    files = ["m.py", "__init__.py", "a.b.py", ".py", "__init__"]
    for depth in range(3):
        for folders in itertools.product(parts, repeat=depth):
            for lead, filename in itertools.product(("", "/", "./"), files):
                path = lead + "/".join([*folders, filename])
                asked = []
                ours = _module_name(path, lambda folder: asked.append(f"{folder}/__init__.py")
                                    or PurePosixPath(folder).name in packages)
                expected = []
                theirs = _module_name_by_pathlib(path, lambda init: expected.append(init)
                                                 or PurePosixPath(init).parent.name in packages)
                assert (ours, asked) == (theirs, expected), path


@pytest.mark.parametrize("jobs", [1, 2])
def test_many_first_parses_come_back_from_workers_each_counted_once(monkeypatch, jobs):
    all_work_forked(monkeypatch)  # with 2 jobs, every parse in a worker
    texts = {f"m{i}.py": f"x{i} = {i}\n" for i in range(8)}
    texts["bad.py"] = "def (:\n"
    project = Project.from_texts(texts)
    pipeline.use_module_workers(project, jobs)
    here = []
    original = cst.parse_module
    monkeypatch.setattr(cst, "parse_module", lambda *a, **k: here.append(1) or original(*a, **k))
    project.parse_many(sorted(texts))
    assert len(here) == (9 if jobs == 1 else 0)
    trees = {path: project.parse(path) for path in sorted(texts)}
    assert len(here) == (9 if jobs == 1 else 0)  # kept, not parsed again
    assert all(trees[f"m{i}.py"].code == texts[f"m{i}.py"] for i in range(8))
    assert trees["bad.py"] is None and project.file("bad.py").failed
    [(path, message)] = list(project.errors)
    assert path == "bad.py" and message.startswith("syntax error")
    assert project.parse_counts == {path: 1 for path in texts}


def test_parsed_files_can_be_named_by_a_generator():
    """`parsed` reads its paths twice (all parsed first, then listed): a generator of
    paths, spent by the first reading, once gave nothing at all."""
    texts = {f"m{i}.py": f"x{i} = {i}\n" for i in range(3)}
    project = Project.from_texts(texts)
    assert [path for path, _ in project.parsed(path for path in sorted(texts))] == sorted(texts)


@pytest.mark.skipif(not forking.can_fork(2), reason="work is shared with forked workers on Linux only")
def test_first_parses_are_shared_between_this_process_and_the_workers(monkeypatch):
    # as any work: this process parses from the front, the workers from the back, and
    # each file is parsed once, in one of them
    monkeypatch.setattr(forking, "RUN_HERE_FIRST_SECONDS", 0)  # no sample: forked at once
    take_turns(monkeypatch)
    texts = {f"m{i}.py": f"x{i} = {i}\n" * 50 for i in range(40)}
    project = Project.from_texts(texts)
    pipeline.use_module_workers(project, 2)
    here = []
    original = cst.parse_module
    monkeypatch.setattr(cst, "parse_module", lambda *a, **k: here.append(1) or original(*a, **k))
    project.parse_many(sorted(texts))
    assert 0 < len(here) < len(texts)  # the rest were parsed in a worker
    assert all(project.parse(path).code == text for path, text in texts.items())
    assert project.parse_counts == {path: 1 for path in texts}


def test_a_run_leaves_the_collector_as_it_found_it(tmp_path):
    import gc

    class NotesThresholds(Codemod):
        name, summary, explain = "test-notes-gc", "notes the collector's thresholds", ""
        seen: list[tuple[int, ...]] = []

        def run(self, project: Project) -> ChangeSet:
            self.seen.append(gc.get_threshold())
            return self.new_changeset()

    before = gc.get_threshold()
    write(tmp_path, {"a.py": "old = 1\n"})
    run_in(tmp_path, [RenameOld(), NotesThresholds()])
    assert gc.isenabled() and gc.get_freeze_count() == 0 and gc.get_threshold() == before
    # during the run, young collections are rarer than Python's default (700 allocations)
    assert NotesThresholds.seen == [(pipeline.YOUNG_COLLECTION_ALLOCATIONS, *before[1:])]


def test_the_heap_is_settled_between_codemods_not_after_the_last(tmp_path, monkeypatch):
    # a full collection after the last codemod would free nothing the run needs: a
    # tenth of a second on a large app, whose garbage goes when the run ends
    settled = []
    monkeypatch.setattr(pipeline, "_settle_heap", lambda: settled.append(1))
    write(tmp_path, {"a.py": "old = 1\n"})
    run_in(tmp_path, [AddsFile(), RenameOld()])
    assert settled == [1]


def test_a_run_keeps_no_rendered_texts_after_it_ends(tmp_path, monkeypatch):
    # texts of statements are kept for reuse while a run renders; a process running many
    # projects (batch workers) must not keep every project's statements
    from flask_refactor import positions
    from flask_refactor import project as project_module

    write(tmp_path, {"a.py": "import os\n\nold = 1\n", "b.py": "old = 2\n", "helper.py": "y = 1\n"})
    rendered = []
    original = positions.code_of
    monkeypatch.setattr(project_module, "code_of", lambda module, path=None: rendered.append(
        path) or original(module, path))
    result = run_in(tmp_path, [PerModule()])
    assert sorted(rendered) == ["a.py", "b.py"] and len(result.outcomes) == 2  # rendered with their paths
    assert positions._LAST_RENDERED == {}


@pytest.mark.skipif(not forking.can_fork(2), reason="work goes to forked workers only where processes fork")
def test_a_file_a_worker_could_not_parse_is_not_tried_again_here(monkeypatch):
    all_work_forked(monkeypatch)  # both items in workers
    project = Project.from_texts({"a.py": "x = 1\n", "b.py": "y = 2\n", "broken.py": "def (:\n"})
    pipeline.use_module_workers(project, 2)
    assert project.map(["a.py", "b.py"], lambda path: project.parse("broken.py") is None) == [True, True]
    here = []
    original = cst.parse_module
    monkeypatch.setattr(cst, "parse_module", lambda *a, **k: here.append(1) or original(*a, **k))
    assert project.parse("broken.py") is None and not here
    assert project.file("broken.py").failed and "broken.py" not in project.paths()
    [(path, message)] = list(project.errors)
    assert path == "broken.py" and message.startswith("syntax error")


class _Cycle:
    """Cyclic garbage with a body, as analyses leave (scope maps), counted when freed."""

    freed = 0

    def __init__(self) -> None:
        self.me = self
        self.body = bytearray(2**20)

    def __del__(self) -> None:
        type(self).freed += 1


def _leave_a_cycle(item: int) -> int:
    _Cycle()
    return _Cycle.freed  # in the worker that ran it


@pytest.mark.skipif(not forking.can_fork(2), reason="work is forked to workers on Linux only")
@pytest.mark.parametrize("jobs", [2, 3])
def test_this_process_takes_items_from_the_front_and_the_workers_from_the_back(jobs, monkeypatch):
    # the items done here are the first ones (extract-services relies on it); here is
    # slow, so the workers take the most once this process has taken its first
    take_turns(monkeypatch)

    def here(item: int) -> int:
        time.sleep(0.02)
        return item

    results = forking.work_with_forks(here, lambda item: -item, list(range(1, 41)), jobs)
    done_here = [result for result in results if result > 0]
    assert 0 < len(done_here) < 40 and done_here == list(range(1, len(done_here) + 1))
    assert results[len(done_here):] == [-item for item in range(len(done_here) + 1, 41)]


@pytest.mark.skipif(not forking.can_fork(2), reason="work is forked to workers on Linux only")
def test_an_exception_in_a_worker_is_raised_here_with_where_it_was_raised(monkeypatch):
    all_work_forked(monkeypatch)

    def there(item: int) -> int:
        if item == 3:
            raise ValueError("no three")
        return item

    with pytest.raises(ValueError, match="no three") as raised:
        forking.work_with_forks(there, there, list(range(6)), 2)
    assert forking.where_raised(raised.value).startswith("test_engine.py:")


@pytest.mark.skipif(not forking.can_fork(2), reason="only forked workers run without the collector")
def test_a_worker_collects_the_cyclic_garbage_it_piles_up(monkeypatch):
    all_work_forked(monkeypatch)
    monkeypatch.setattr(forking, "WORKER_GARBAGE_BYTES", 8 * 2**20)
    assert max(forking.work_with_forks(_leave_a_cycle, _leave_a_cycle, list(range(64)), 2)) > 0
    monkeypatch.setattr(forking, "WORKER_GARBAGE_BYTES", 2**40)  # never grown that much: nothing collected
    assert max(forking.work_with_forks(_leave_a_cycle, _leave_a_cycle, list(range(64)), 2)) == 0


@pytest.mark.skipif(not forking.can_fork(2), reason="work goes to forked workers only where processes fork")
@pytest.mark.parametrize("shared", [True, False])
def test_forked_results_share_the_statements_of_the_trees_given(monkeypatch, shared):
    all_work_forked(monkeypatch)  # every item forked
    trees = [cst.parse_module(f"import os\n\ndef f():\n    return {i}\n") for i in range(8)]

    def rewrite(index: int) -> cst.Module:
        return trees[index].with_changes(header=[cst.EmptyLine(comment=cst.Comment(f"# {index}"))])

    forks = record_forks(monkeypatch)
    forked = pipeline.run_here_then_fork(list(range(8)), rewrite, rewrite, 2,
                                         shared=(lambda: trees) if shared else None)
    assert forks and [tree.code for tree in forked] == [rewrite(i).code for i in range(8)]
    same = [tree.body[1] is trees[i].body[1] for i, tree in enumerate(forked)]
    assert same == [shared] * 8


def test_candidates_follow_what_codemods_rewrote_created_and_dropped():
    project = Project.from_texts({"a.py": "import flask\n", "b.py": "x = 1\n", "c.py": "flask = 2\n",
                                  "notes.txt": "flask\n"})
    assert project.candidates(["flask"]) == ["a.py", "c.py"]
    project.update("a.py", "x = 1\n")  # loses the needle
    project.update("b.py", "import flask\n")  # gains it
    project.update("new.py", "from flask import g\n", created=True)
    assert project.candidates(["flask"]) == ["b.py", "c.py", "new.py"]
    assert project.matching(r"\bimport flask\b", ("flask",)) == ["b.py"]
    project.mark_failed("c.py")  # (an answer is kept until a file changes or fails)
    assert project.candidates(["flask"]) == ["b.py", "new.py"]
    project.forget_created("new.py")
    assert project.candidates(["flask"]) == ["b.py"]
    project.candidates(["flask"]).append("mutated.py")  # each caller gets its own list
    assert project.candidates(["flask"]) == ["b.py"]


def test_needles_asked_together_are_searched_in_one_pass(monkeypatch):
    project = Project.from_texts({f"m{i}.py": f"x = {i}\n" for i in range(10)} | {"a.py": "import flask\nurl_for\n",
                                                                                  "b.py": "endpoint = 1\n"})
    reads = []
    real_peek = Project._peek  # (a search reads bytes without keeping them)
    monkeypatch.setattr(Project, "_peek", lambda self, file, log=True: reads.append(file.path) or real_peek(self, file, log))
    each = project.candidates_each(("url_for", "endpoint", "flask", "nowhere"))
    assert each == {"url_for": ["a.py"], "endpoint": ["b.py"], "flask": ["a.py"], "nowhere": []}
    assert len(reads) == 12  # each file once, for the four needles
    assert project.candidates(("endpoint", "url_for")) == ["a.py", "b.py"] and len(reads) == 12  # known by then


def test_trees_parsed_in_a_batch_during_a_run_are_left_out_of_full_collections():
    import gc

    texts = {f"m{i}.py": f"x{i} = {i}\n" for i in range(4)}
    project = Project.from_texts(texts)
    project.parse_many(sorted(texts))
    assert gc.get_freeze_count() == 0  # outside a run: the collector is left alone
    project = Project.from_texts(texts)
    project.freeze_parsed = True  # as a run has it
    try:
        project.parse_many(sorted(texts))
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_fact_that_still_holds_is_kept_across_revisions():
    """`Project.fact(key, compute, still_holds)`: after a codemod changed something, the
    fact is computed again only if `still_holds` says the old one no longer does."""
    project = Project.from_texts({"a.py": "x = 1\n"})
    computed, holds = [], [True]

    def fact():
        return project.fact("answer", lambda proj: computed.append(proj.revision) or len(computed),
                            lambda proj, old: holds[0])

    assert fact() == 1
    project.update("a.py", "x = 2\n")
    assert fact() == 1 and computed == [0]
    holds[0] = False
    project.update("a.py", "x = 3\n")
    assert fact() == 2 and computed == [0, 2]


def test_a_fact_is_updated_from_the_one_before_when_it_no_longer_holds():
    """`Project.fact(..., update=)`: after a change, the fact is made from the old one
    (`update(project, old)`), not computed anew; first computed with `compute`."""
    project = Project.from_texts({"a.py": "x = 1\n"})
    calls = []

    def fact():
        return project.fact("texts", lambda proj: calls.append("compute") or [proj.text("a.py")],
                            lambda proj, old: old[-1] == proj.text("a.py"),
                            lambda proj, old: calls.append("update") or [*old, proj.text("a.py")])

    assert fact() == ["x = 1\n"]
    project.update("a.py", "x = 2\n")
    assert fact() == ["x = 1\n", "x = 2\n"] and calls == ["compute", "update"]
    assert fact() == ["x = 1\n", "x = 2\n"] and calls == ["compute", "update"]  # same revision: kept


@pytest.mark.skipif(not forking.can_fork(2), reason="work goes to forked workers only where processes fork")
def test_index_batches_are_scanned_in_forked_workers_when_that_pays(monkeypatch):
    # judged like any other work, not by a count of files: 34 large modules had been
    # scanned in the coordinator alone
    texts = {f"pkg/m{i}.py": f"import os\nfrom . import m{i + 1}\nfrom pkg.m0 import x as y{i}\nNAME = 'pkg.m{i}.x'\n"
             for i in range(6)}
    texts["pkg/broken.py"] = "def (:\n"
    serial = Project.from_texts(texts)
    serial.index_many(sorted(texts))
    all_work_forked(monkeypatch)  # nothing to judge the pace by: all forked
    forks = record_forks(monkeypatch)
    forked = Project.from_texts(texts)
    pipeline.use_index_workers(forked, 2)
    forked.index_many(sorted(texts))
    assert forks == [len(texts)]
    assert [forked.index(path) for path in sorted(texts)] == [serial.index(path) for path in sorted(texts)]
    assert forked.index("pkg/broken.py").error and list(forked.errors) == list(serial.errors)
