"""Sharing independent work (one module each) with processes forked from this one.

`run_here_then_fork` decides: it runs the first items here to learn their pace, and
forks only if that is clearly sooner. `work_with_forks` then shares the rest: this
process takes items from the front, the forked workers take them from the back, until
they meet. Nothing is pickled on the way out (a forked worker starts with this
process's whole state), and only the workers' results come back (through `transfer`).

Why this process works too, instead of waiting for a pool of `jobs` workers: its own
results need neither pickling there nor loading here, and it loads the workers'
results between its own items, where a waiting coordinator took a core from the
workers to load them. Against such a pool, `--all -j 2` on the benchmark's big app:
8% sooner, 6% less CPU (medians of six paired runs). First parses are shared the same
way, though a tree parsed here takes more memory than one loaded (see
`Project.parse_many`).

Why the items done here are the first ones: a caller may rely on it (extract-services
applies those at once, and replays the workers' after them, in the items' order).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import mmap
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

import libcst as cst

from . import transfer
from .project import collection_paused

transfer.install()  # workers send libcst trees back through its faster pickling

# Work that may go to forked workers (`Project.map`, validation, the index) first runs
# here for this long; the rest is forked only if, at the pace so far, it would take
# longer than the second figure, and if sharing it would be clearly sooner, results
# pickled back included. Small apps are done before a worker would have started.
# (0.012 s, two to four modules of the per-module work, measures the pace well enough
# on the benchmark's trees; against 0.05 s and 0.025 s, 1-2% off both trees' runs.)
RUN_HERE_FIRST_SECONDS = 0.012
FORK_WORTHWHILE_SECONDS = 0.15
# The same for light work, whose workers read little of this process's memory (validating
# texts), where work on trees has a worker copy each page of them it reads: a fork pays
# sooner. (The benchmark's big app validates its 200 new files in 57 ms this way, not 75.)
LIGHT_WORK_WORTHWHILE_SECONDS = 0.03
LARGE_ITEM = 4  # times the median size: an item the sample of the pace stops before
# Forking a worker, its first message and reaping it: 3-4 ms measured from a process
# holding 35 MB of trees; taken a little above for larger ones.
FORK_SECONDS = 0.005
# Whether this process takes items too. Tests turn it off to have every item done in a
# worker, as they set RUN_HERE_FIRST_SECONDS to 0 to have none done before the fork.
COORDINATOR_WORKS = True


def can_fork(jobs: int) -> bool:
    """Whether work can go to processes forked from this one (which start with all its
    state, so nothing but results is pickled): on Linux, with more than one job."""
    return jobs > 1 and sys.platform.startswith("linux")


def run_here_then_fork(items: list, here: Callable[[Any], Any], there: Callable[[Any], Any], jobs: int,
                       sizes: list[int] | None = None,
                       shared: Callable[[], Iterable[cst.Module]] | None = None, light: bool = False) -> list:
    """`here(item)` or `there(item)` for each item, in the items' order. The first items
    run in this process until RUN_HERE_FIRST_SECONDS have passed, which gives their pace
    (per item, or per unit of `sizes` when the work grows with them) and the cost of
    pickling a result; the rest is shared with forked workers (`work_with_forks`, which
    runs `there` in them) if, at that pace, that is clearly sooner (pickling and loading
    results included, and no item is split) and the rest would take
    FORK_WORTHWHILE_SECONDS here (LIGHT_WORK_WORTHWHILE_SECONDS for `light` work). Else
    it runs here too. The statements of the `shared` trees come back by reference
    (`transfer.sharing`).

    The items done here are the first ones (see the module's docstring). But the sample
    stops before a large item (LARGE_ITEM times the median size): taken here before the
    workers exist, a 6,000-line module kept them waiting half a second."""
    sizes = sizes or [1] * len(items)
    large = LARGE_ITEM * sorted(sizes)[len(sizes) // 2] if items else 0
    results: list = []
    start = time.perf_counter()
    # The pace must be the work's: a full collection of a heap that forked results have
    # just grown takes longer than the whole sample, so it waits until after it.
    with collection_paused():
        while (len(results) < len(items) and time.perf_counter() - start < RUN_HERE_FIRST_SECONDS
               and sizes[len(results)] <= large):
            results.append(here(items[len(results)]))
    done = len(results)
    rest = items[done:]
    pace = (time.perf_counter() - start) / max(1, sum(sizes[:done])) if done else float("inf")
    # Work too small to fork is told apart first: it needs no pickling weighed, nor the
    # table of shared statements built (a walk of every tree held: 5 ms on a large app).
    worthwhile = LIGHT_WORK_WORTHWHILE_SECONDS if light else FORK_WORTHWHILE_SECONDS
    if rest and can_fork(jobs) and (not done or pace * sum(sizes[done:]) >= worthwhile):
        with transfer.sharing(shared() if shared else ()):
            if _forking_pays(list(zip(results, sizes)), pace, sizes[done:], jobs):
                try:
                    return results + work_with_forks(here, there, rest, jobs)
                except WorkerLost:  # no worker could be forked, or one died: do it here
                    pass
    return results + [here(item) for item in rest]


def _forking_pays(sample: list[tuple[Any, int]], pace: float, rest: list[int], jobs: int) -> bool:
    """Whether items of these `rest` sizes, which take `pace` seconds per unit of size in
    this process, are clearly done sooner shared with `jobs - 1` forked workers, given
    what pickling a result costs there and loading it here (judged on the `sample`'s
    results and sizes), and that an item is never split: a large one takes whoever has
    it its whole time. (Whether the rest is worth forking at all, FORK_WORTHWHILE_SECONDS,
    the caller asks first.)"""
    if not sample:
        return True  # nothing to go by (RUN_HERE_FIRST_SECONDS is 0, or a large item first): fork
    sample = sample[:3]
    # the first dump of a node class writes its constructor: not the pace
    transfer.dumps([result for result, _ in sample])
    timer = time.perf_counter()
    dumped = [transfer.dumps(result) for result, _ in sample]
    dump = _scaled(time.perf_counter() - timer, sample, rest)  # in the workers, beside the work
    with collection_paused():  # as `work_with_forks` loads
        timer = time.perf_counter()
        for data in dumped:
            transfer.loads(data)
        load = _scaled(time.perf_counter() - timer, sample, rest)  # here, beside this process's share
    here_seconds = pace * sum(rest)
    shared_seconds = _balanced_seconds(here_seconds, dump, load, jobs)
    forked_seconds = FORK_SECONDS + max(shared_seconds, pace * max(rest))
    return forked_seconds < 0.8 * here_seconds


def _balanced_seconds(work: float, dump: float, load: float, jobs: int) -> float:
    """How long `work` seconds of items take shared between this process and `jobs - 1`
    workers when all finish together: a worker's share costs it `dump`/`work` more to
    send, and this process as much as `load`/`work` to load. (A worker's share f of the
    work takes f*(work + dump); this process's, the rest of the work plus loading every
    worker's share.)"""
    if work <= 0:
        return 0.0
    workers = jobs - 1
    per_worker = 1 + dump / work  # a worker's time per second of its share
    left_here = 1 - load / work  # what this process still has of a second a worker takes off it
    if workers < 1 or left_here <= 0:
        return float("inf")  # loading a result here costs more than doing its work
    share = 1 / (per_worker + workers * left_here)  # each worker's fraction of the work
    return work * per_worker * share


def _scaled(seconds: float, sample: list[tuple[Any, int]], rest: list[int]) -> float:
    """What pickling the `sample`'s results took, scaled to the `rest`: per item or per
    unit of size, whichever says less. A result's cost has a part every result pays and
    a part that grows with its size; the sample is too small to tell them apart, and
    either way of scaling overstates one of them (per unit, after an empty `__init__.py`;
    per item, after a large module)."""
    per_item = seconds / len(sample) * len(rest)
    per_unit = seconds / max(1, sum(size for _, size in sample)) * sum(rest)
    return min(per_item, per_unit)


class WorkerLost(Exception):
    """A worker could not be forked, or ended without sending all it took."""


def work_with_forks(here: Callable[[Any], Any], there: Callable[[Any], Any], items: list, jobs: int) -> list:
    """`here(item)` or `there(item)` for each item, in the items' order: this process
    takes items from the front (`here`), `jobs - 1` workers forked from it take them from
    the back (`there`), one at a time, until they meet; whoever is free takes the next
    (with COORDINATOR_WORKS off, `jobs` workers take them all).
    The workers' results are loaded here between this process's own items, as they
    arrive. An exception raised in a worker is raised here (with where it was raised:
    `where_raised`); WorkerLost if a worker could not be forked or died."""
    here_too = COORDINATOR_WORKS
    reap_exited()
    try:
        claims = _Claims(len(items), here_too)
    except OSError as exc:  # no shared lock to be had (a system without POSIX semaphores)
        raise WorkerLost() from exc
    results: list = [None] * len(items)
    received: set[int] = set()
    workers: dict[multiprocessing.connection.Connection, int] = {}  # its pipe -> its pid
    try:
        for _ in range(jobs - 1 if here_too else jobs):
            connection, pid = _fork_worker(there, items, claims)
            workers[connection] = pid
        while here_too:
            index = claims.take_front()
            if index is None:
                break
            results[index] = here(items[index])
            _receive(workers, results, received, wait=False)
        while workers:
            _receive(workers, results, received, wait=True)
    finally:
        for connection, pid in workers.items():  # left only when this process raised: not needed
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            connection.close()
    if len(received) != len(items) - claims.front:
        raise WorkerLost()
    return results


# Workers that have sent all they will, not yet reaped. A worker's exit (unmapping what it
# copied of this process's memory) takes a few milliseconds: waited for at once, it held
# this process for 14-22 ms a run on the benchmark's big app, while the core the worker
# leaves is idle. So they are reaped before the next workers are forked, and when a run
# ends (`pipeline.run_on_project`), by then done.
_EXITING: list[int] = []


def reap_exited() -> None:
    """Wait for the workers that have sent all they will (`_EXITING`)."""
    while _EXITING:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(_EXITING.pop(), 0)


class _Claims:
    """Which items are taken: those before `front` by this process (if it takes any:
    `here_too`), those from `back` on by the workers. Two counters in memory shared with
    the forked workers."""

    def __init__(self, count: int, here_too: bool) -> None:
        self.count, self.here_too = count, here_too
        self._lock = multiprocessing.Lock()
        self._counters = memoryview(mmap.mmap(-1, 16)).cast("q")  # anonymous and shared: seen by forks
        self._counters[0], self._counters[1] = 0, count

    @property
    def front(self) -> int:
        return self._counters[0]

    @property
    def back(self) -> int:
        return self._counters[1]

    def take_front(self) -> int | None:
        with self._lock:
            index = self._counters[0]
            if index >= self._counters[1]:
                return None
            self._counters[0] = index + 1
            return index

    def take_back(self) -> int | None:
        with self._lock:
            index = self._counters[1] - 1
            if index < self._counters[0]:
                return None
            self._counters[1] = index
            return index


def _fork_worker(there: Callable[[Any], Any], items: list,
                 claims: _Claims) -> tuple[multiprocessing.connection.Connection, int]:
    try:
        reader, writer = multiprocessing.Pipe(duplex=False)
    except OSError as exc:  # out of file descriptors
        raise WorkerLost() from exc
    with contextlib.suppress(OSError):  # a larger pipe: a worker waits less for this process to read
        fcntl.fcntl(writer.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    for stream in (sys.stdout, sys.stderr):  # else the worker would write what they hold again
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        pid = os.fork()
    except OSError as exc:
        reader.close()
        writer.close()
        raise WorkerLost() from exc
    if pid == 0:  # the worker: never returns
        code = 1
        try:
            reader.close()
            _take_from_back(there, items, claims, writer)
            code = 0
        finally:
            os._exit(code)
    writer.close()
    return reader, pid


def _take_from_back(there: Callable[[Any], Any], items: list, claims: _Claims,
                    connection: multiprocessing.connection.Connection) -> None:
    """In a worker: `there(item)` for items taken from the back, each result sent as
    (index, result); an exception as (None, exception), which ends the work."""
    gc.disable()  # a short-lived copy: collecting would touch, and so copy, the parent's whole heap
    try:
        while (index := claims.take_back()) is not None:
            connection.send_bytes(transfer.dumps((index, there(items[index]))))
            _collect_when_grown()
    except Exception as exc:
        with contextlib.suppress(AttributeError):  # (an exception class with __slots__)
            exc.raised_at = where_raised(exc)
        try:
            data = transfer.dumps((None, exc))
        except Exception:  # an exception that cannot be pickled: its text
            data = transfer.dumps((None, RuntimeError(f"{type(exc).__name__}: {exc}")))
        connection.send_bytes(data)
    finally:
        connection.close()


def _receive(workers: dict, results: list, received: set[int], wait: bool) -> None:
    """Load the results the workers have sent (waiting for one when `wait`). A worker
    that has sent all it will is reaped and dropped from `workers`; one that sent an
    exception has it raised here."""
    for connection in multiprocessing.connection.wait(list(workers), timeout=None if wait else 0):
        while True:
            try:
                data = connection.recv_bytes()
            except EOFError:
                _EXITING.append(workers.pop(connection))
                connection.close()
                break
            # unpickling makes objects by the thousand: a collection each time would walk the heap
            with collection_paused():
                index, result = transfer.loads(data)
            if index is None:
                raise result
            results[index] = result
            received.add(index)
            if not connection.poll():
                break


# Analyses leave cyclic garbage (a scope map is a web of scopes and accesses), which a
# worker, not collecting, would pile up over the many modules of a large app. Once the
# worker has grown by this much since it started (or last collected), its young
# generations are collected: what was made in it, and the parent's newest objects,
# never the parent's settled (frozen) heap.
WORKER_GARBAGE_BYTES = 128 * 2**20
_grown_from: int | None = None  # in a worker: its size when it started or last collected


def _collect_when_grown() -> None:
    global _grown_from
    size = _resident_bytes()
    if _grown_from is None:
        _grown_from = size
    elif size - _grown_from > WORKER_GARBAGE_BYTES:
        gc.collect(1)
        _grown_from = _resident_bytes()


def _resident_bytes() -> int:
    """This process's resident size now (Linux, where workers are forked)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def where_raised(exc: BaseException) -> str | None:
    """`file.py:line` of the frame that raised `exc`, in a forked worker if it was
    raised there (`_take_from_back` notes it)."""
    if getattr(exc, "raised_at", None):
        return exc.raised_at
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    return f"{Path(frame.filename).name}:{frame.lineno}" if frame else None
