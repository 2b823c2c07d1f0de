"""Where evaluations run: in this process, in a process pool, or on a Ray cluster.

Every executor runs the same :class:`~swapprobe.evaluate.Evaluator`; they differ only in where.
A :class:`Task` is the small description of one model a worker needs to rebuild it (an
architecture's text and its space, an ONNX path, or, from Python, a picklable in-memory
model), so the data batch and the settings travel once per worker, not once per model.

Workers compute scores and packed patterns and send back a :class:`Result`; only the driver
writes the HDF5 store, in task order, so a store is the same whichever executor filled it.

A task that raises becomes a per-model failed :class:`TaskOutcome` (name and one-line error)
at once, while every other model's result is kept: scoring is deterministic, so running it
again would fail again. Only a task whose worker process died is retried once (a dead worker
may be the machine's fault, not the model's). Weights are drawn from ``(seed, repeat, tensor
name)`` alone, and architectures are built under a torch seed derived from the seed and the
architecture (:func:`swapprobe.evaluate.torch_seed`), so the same seed gives the same scores on
every executor.

The pool starts its workers from a ``forkserver`` that has imported torch, onnx and swapprobe
once (``spawn`` where there is none, e.g. Windows): every worker then starts in milliseconds
instead of importing torch for a second or more. A script that creates a pool must guard its
entry point with ``if __name__ == "__main__":``, as for any ``multiprocessing`` code; without it
the workers die while starting, and the pool says so instead of waiting forever.

>>> from swapprobe.executors import get_executor                     # doctest: +SKIP
>>> with get_executor("pool", workers=4) as executor:                # doctest: +SKIP
...     results = score_many(refs, data, settings, executor=executor)
"""

from __future__ import annotations

import os
import pickle
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from swapprobe.errors import SettingsError, SwapprobeError

if TYPE_CHECKING:
    from swapprobe.data import Batch
    from swapprobe.evaluate import Evaluator
    from swapprobe.models import ModelRef
    from swapprobe.results import Result, ScoreSettings

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "PoolExecutor",
    "RayExecutor",
    "ResultList",
    "Task",
    "TaskOutcome",
    "describe_error",
    "get_executor",
    "ref_for",
    "run_task",
    "start_pool_workers_early",
    "task_for",
]

EXECUTORS = ("local", "pool", "ray")
#: how often a task whose worker process died is tried again before it is reported as failed
RETRIES = 1
RAY_MISSING = "executor ray needs Ray: pip install 'swapprobe[ray]'"

TaskKind = Literal["arch", "file", "object", "pickled"]


# --- what travels ------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One model to score, described so that a worker process can rebuild it.

    ``payload`` is ``(space, architecture text)`` for ``arch``, a path string for
    ``file``, and the model itself (an ``onnx.ModelProto`` or ``torch.nn.Module``) for
    ``object``; ``pickled`` is an ``object`` as pickle bytes, the form it reaches a pool in.
    """

    index: int
    name: str
    key: str
    kind: TaskKind
    payload: Any


@dataclass
class TaskOutcome:
    """What became of one task: its result, or the one-line error of its last attempt."""

    index: int
    name: str
    key: str
    result: Result | None = None
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.result is not None


class ResultList(list["Result"]):
    """The results that were computed, in input order, plus the models that failed.

    A plain list of :class:`Result` (so existing callers keep working) with ``failed``: one
    :class:`TaskOutcome` per model that failed twice, in input order.
    """

    def __init__(self, results: Sequence[Result] = (), failed: Sequence[TaskOutcome] = ()):
        super().__init__(results)
        self.failed: list[TaskOutcome] = list(failed)


def task_for(index: int, ref: ModelRef) -> Task:
    """The task of a resolved model reference. An architecture travels as its canonical text
    beside its space object: the space is a few bytes of configuration (a name alone would lose
    e.g. NAS-Bench-201's channel count) and an architecture value may be any hashable the space
    chose."""
    if ref.space is not None:
        return Task(index, ref.name, ref.key, "arch", (ref.space, ref.space.format(ref.arch)))
    model = ref.load()
    if isinstance(model, (str, Path)):
        return Task(index, ref.name, ref.key, "file", str(model))
    return Task(index, ref.name, ref.key, "object", model)


def ref_for(task: Task) -> ModelRef:
    """The model reference a task describes, rebuilt where it runs (inverse of task_for)."""
    from swapprobe.models import ModelRef, arch_ref

    if task.kind == "arch":
        space, text = task.payload
        return arch_ref(space, space.parse(text), name=task.name)
    if task.kind == "file":
        path = Path(task.payload)
        return ModelRef(task.name, task.key, lambda: path)
    model = pickle.loads(task.payload) if task.kind == "pickled" else task.payload
    return ModelRef(task.name, task.key, lambda: model)


def run_task(evaluator: Evaluator, task: Task) -> Result:
    """Score one task with ``evaluator``: the one pipeline, wherever it runs."""
    return evaluator.evaluate(ref_for(task))


def describe_error(error: BaseException) -> str:
    """One line: a user error's own message, else the exception type and its first line."""
    text = str(error).strip().splitlines()
    first = text[0][:300] if text else ""
    if isinstance(error, SwapprobeError) and first:
        return first
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


# --- the protocol ------------------------------------------------------------------------
class Executor(Protocol):
    """Runs tasks through an Evaluator's data and settings; outcomes come in task order."""

    name: str

    def map(self, evaluator: Evaluator, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        """One outcome per task, in the order of ``tasks`` (so stores are written in order)."""
        ...

    def close(self) -> None:
        """Release workers (idempotent)."""
        ...

    def __enter__(self) -> Executor: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class _Closing:
    """Context-manager behaviour shared by the executors."""

    def close(self) -> None:  # pragma: no cover - overridden where there is something to close
        return None

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class LocalExecutor(_Closing):
    """In this process, one task after the other, with the Evaluator as given (its progress
    callback and torch/ONNX Runtime thread defaults included).

    Args:
        report_failures: a failing task becomes a failed outcome and the others go on (the
            CLI's behaviour); ``False`` lets the first exception propagate at once, which is
            what the Python API does when no executor is given. Never retried: the same
            model in the same process fails the same way.
    """

    name = "local"

    def __init__(self, *, report_failures: bool = True) -> None:
        self.report_failures = report_failures

    def map(self, evaluator: Evaluator, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        for task in tasks:
            if not self.report_failures:
                yield TaskOutcome(task.index, task.name, task.key, run_task(evaluator, task))
                continue
            try:
                result = run_task(evaluator, task)
            except Exception as failure:
                yield TaskOutcome(task.index, task.name, task.key, error=describe_error(failure))
                continue
            yield TaskOutcome(task.index, task.name, task.key, result)

    def close(self) -> None:
        return None


# --- worker side (pool and Ray) ----------------------------------------------------------
def _worker_settings(settings: ScoreSettings) -> ScoreSettings:
    """The settings a worker scores with: one onnxruntime intra-op thread unless the run asks
    for a count, so N workers keep N cores busy rather than N × cores threads competing."""
    if settings.runtime.threads is not None:
        return settings
    return replace(settings, runtime=replace(settings.runtime, threads=1))


def _configure_worker_threads() -> None:
    """One intra-op thread for torch (a process-wide setting; the worker process is the
    scope it is meant for). onnxruntime's come with the settings, see _worker_settings."""
    import torch

    torch.set_num_threads(1)


class _WorkerEvaluators:
    """The Evaluator of this worker process, made once and reused by every task it runs.

    Lifetime: the worker process. A pool initialiser has no way to hand a task function
    what it made except the process's own state, so there is one of these per process
    (:data:`_THIS_WORKER`); the pool fills it in its initialiser, Ray on its first task
    (a Ray worker may serve several runs: the Evaluator is rebuilt when the batch or the
    settings change).
    """

    def __init__(self) -> None:
        self.pool: Evaluator | None = None
        self._ray: tuple[tuple[str, ScoreSettings], Evaluator] | None = None

    def for_ray(self, data: Batch, settings: ScoreSettings) -> Evaluator:
        from swapprobe.evaluate import Evaluator

        key = (data.fingerprint, settings)
        if self._ray is None or self._ray[0] != key:
            _configure_worker_threads()
            self._ray = (key, Evaluator(data, _worker_settings(settings)))
        return self._ray[1]


_THIS_WORKER = _WorkerEvaluators()


def _init_pool_worker(data: Batch, settings: ScoreSettings, driver: int) -> None:
    """Pool initialiser: the batch and settings arrive once per worker process.

    Ctrl-C is the driver's to handle (it ends the workers); a worker that took it too would
    print a traceback of its own and break the pool. A worker whose driver is gone (killed
    with SIGKILL, which no handler sees) ends itself: see :func:`_die_with`.
    """
    import signal

    from swapprobe.evaluate import Evaluator

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(driver)
    _configure_worker_threads()
    _THIS_WORKER.pool = Evaluator(data, _worker_settings(settings))


def _die_with(driver: int, every: float = 1.0) -> None:
    """End this process within ``every`` seconds of process ``driver`` ending.

    Pool workers are children of the forkserver, not of the driver, and hold their own end of
    the task queue, so nothing tells them the driver died; without this a killed run leaves
    its workers (hundreds of MB each, torch loaded) running forever.
    """
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(every)
            try:
                os.kill(driver, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pragma: no cover - the pid was reused by another user
                os._exit(1)

    threading.Thread(target=watch, name="swapprobe-driver-watch", daemon=True).start()


def _pool_run(task: Task) -> tuple[bool, Any]:
    """A pool task: ``(True, Result)`` or ``(False, one-line error)``.

    Errors travel as text: an arbitrary exception may not unpickle in the driver.
    """
    evaluator = _THIS_WORKER.pool
    assert evaluator is not None, "a pool task ran in a process the initialiser did not set up"
    try:
        return True, run_task(evaluator, task)
    except Exception as error:
        return False, describe_error(error)


def _ray_run(context: tuple[Batch, ScoreSettings], task: Task) -> Result:
    """A Ray task: the batch comes from the object store; the Evaluator is cached per worker."""
    data, settings = context
    return run_task(_THIS_WORKER.for_ray(data, settings), task)


# --- process pool ------------------------------------------------------------------------
#: what the forkserver imports once, so that forked workers start with it loaded. Not
#: onnxruntime: its import starts a thread, and a process with threads should not fork.
WORKER_PRELOAD = (
    "torch",
    "torch.onnx",
    "onnx",
    "swapprobe.evaluate",
    "swapprobe.capture.export",
    "swapprobe.searchspaces.builtin",  # every built-in space and its torch modules
    "swapprobe.cli",  # workers re-import the main module; for `swapprobe` that is the CLI
)


_START_FAILED = (
    "pool worker processes could not start ({detail}); their error is printed above. From a "
    'script, put the code that scores under `if __name__ == "__main__":`'
)


def _worker_context() -> Any:
    """``forkserver`` with :data:`WORKER_PRELOAD` where the platform has it, else ``spawn``.

    Never plain ``fork``: the driver may hold onnxruntime sessions and threads (progress bars,
    thread pools) that a forked child would inherit half-copied. The forkserver is a fresh
    single-threaded process, started once per driver and started now, so it imports while the
    driver goes on with its own work.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_PRELOAD))
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return context


def start_pool_workers_early() -> None:
    """Start the worker forkserver now, so its imports overlap the caller's own start-up
    (the command line calls this before it loads models and data)."""
    _worker_context()


class PoolExecutor(_Closing):
    """A process pool on this machine (see :func:`_worker_context` for how workers start).

    Each worker is initialised once with the batch and settings; only :class:`Task` s travel.
    At most ``workers`` tasks are in flight, so when a worker dies the tasks it may have taken
    down are known: they are retried one at a time in a fresh pool, which pins a second death
    on the task that caused it and lets the others finish. In-memory models (``object``
    tasks) are pickled to the workers; their classes must be importable there.

    Args:
        workers: worker processes (default: ``os.cpu_count()``).
    """

    name = "pool"

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            workers = os.cpu_count() or 1
        if workers < 1:
            raise SettingsError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool: Any = None
        self._context: tuple[str, ScoreSettings] | None = None
        self._mp_context = _worker_context()  # the forkserver starts importing now
        self.restarts = 0  # pools replaced after a worker died

    def _ensure_pool(self, evaluator: Evaluator) -> Any:
        context = (evaluator.data.fingerprint, evaluator.settings)
        if self._pool is None or self._context != context:
            self._shutdown()
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=self._mp_context,
                initializer=_init_pool_worker,
                initargs=(evaluator.data, evaluator.settings, os.getpid()),
            )
            self._context = context
        return self._pool

    def _submit(self, pool: Any, task: Task) -> Any:
        """A future, or None when the pool broke (a worker died) before this task was sent:
        the task never ran, so it is sent again to the next pool at no cost to its tries."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return pool.submit(_pool_run, task)
        except BrokenProcessPool:
            return None
        except OSError as error:  # the forkserver or a worker ended while starting
            self._shutdown(kill=True)
            raise SwapprobeError(_START_FAILED.format(detail=describe_error(error))) from None

    def _dead_at_start(self) -> int | None:
        """Exit code of a worker that has ended (negative: killed by that signal), else None.

        A worker that dies while starting (typically: a script without a ``__main__`` guard
        re-runs itself in the worker) can leave ``concurrent.futures`` waiting forever.
        """
        processes = getattr(self._pool, "_processes", None) or {}
        for process in list(processes.values()):
            if process.exitcode is not None:
                return int(process.exitcode)
        return None

    def _shutdown(self, *, kill: bool = False) -> None:
        if self._pool is not None:
            if kill:  # interrupted: do not wait for models still running
                for process in list(getattr(self._pool, "_processes", {}).values()):
                    process.terminate()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._context = None

    def map(self, evaluator: Evaluator, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        attempts = [0] * len(tasks)
        outcomes: dict[int, TaskOutcome] = {}
        sendable: list[Task] = []
        for position, task in enumerate(tasks):
            try:
                sendable.append(_sendable(task))
            except Exception as error:
                sendable.append(task)
                outcomes[position] = TaskOutcome(
                    task.index,
                    task.name,
                    task.key,
                    error=f"cannot be sent to a worker process ({describe_error(error)}); "
                    "score it with the local executor",
                    attempts=0,
                )
        pending: deque[int] = deque(p for p in range(len(tasks)) if p not in outcomes)
        suspects: deque[int] = deque()  # in flight when a worker died: retried one at a time
        in_flight: dict[Any, int] = {}
        next_out = 0

        def failed(position: int, error: str, *, retry: bool) -> None:
            """A failed attempt; only a dead worker earns another try (RETRIES of them)."""
            attempts[position] += 1
            if retry and attempts[position] <= RETRIES:
                return
            task = tasks[position]
            outcomes[position] = TaskOutcome(
                task.index, task.name, task.key, error=error, attempts=attempts[position]
            )

        def settle(future: Any, position: int) -> bool:
            """Record one finished future; True when its worker died."""
            try:
                ok, value = future.result()
            except BrokenProcessPool:
                failed(position, "worker process died", retry=True)
                if position not in outcomes:
                    suspects.append(position)
                return True
            except Exception as error:  # e.g. a result that cannot be unpickled here
                failed(position, describe_error(error), retry=False)
                return False
            if ok:
                task = tasks[position]
                attempts[position] += 1
                outcomes[position] = TaskOutcome(
                    task.index, task.name, task.key, value, attempts=attempts[position]
                )
            else:
                failed(position, value, retry=False)
            return False

        while next_out < len(tasks):
            pool = self._ensure_pool(evaluator)
            if suspects:
                if not in_flight:
                    position = suspects.popleft()
                    future = self._submit(pool, sendable[position])
                    if future is None:
                        suspects.appendleft(position)
                    else:
                        in_flight[future] = position
            else:
                while pending and len(in_flight) < self.workers:
                    position = pending.popleft()
                    future = self._submit(pool, sendable[position])
                    if future is None:
                        pending.appendleft(position)
                        break
                    in_flight[future] = position
            if not in_flight and getattr(pool, "_broken", False):
                self._shutdown()  # broke with nothing of ours in flight: start afresh
                self.restarts += 1
                continue
            if in_flight:
                finished, _ = wait(list(in_flight), timeout=5.0, return_when=FIRST_COMPLETED)
                if not finished:
                    code = self._dead_at_start()
                    if code is not None and code > 0 and not any(attempts):
                        self._shutdown(kill=True)
                        raise SwapprobeError(_START_FAILED.format(detail=f"exit code {code}"))
                    continue
                broken = False
                for future in finished:
                    broken |= settle(future, in_flight.pop(future))
                if broken:
                    # Every other future of the dead pool fails (or finished) right away.
                    rest, _ = wait(list(in_flight))
                    for future in rest:
                        settle(future, in_flight.pop(future))
                    self._shutdown()
                    self.restarts += 1
            while next_out in outcomes:
                yield outcomes.pop(next_out)
                next_out += 1

    def close(self) -> None:
        self._shutdown()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._shutdown(kill=error is not None)


def _sendable(task: Task) -> Task:
    """In-memory models are pickled here, so a model that cannot travel fails in the driver
    with its reason, and one that cannot be rebuilt fails inside the task (a worker that
    cannot unpickle its call would die instead)."""
    if task.kind != "object":
        return task
    return replace(task, kind="pickled", payload=pickle.dumps(task.payload))


# --- Ray ---------------------------------------------------------------------------------
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SettingsError(RAY_MISSING) from None
    return ray


class RayExecutor(_Closing):
    """Tasks on a Ray cluster: the batch is put in the object store once per settings, each
    model is one remote task (one CPU) that Ray retries once if its worker dies (not when the
    task raises: that would fail again).

    Args:
        address: a cluster to join (``ray://HEAD:10001`` or ``HEAD:6379``; ``auto`` for the
            cluster this machine belongs to). An already initialised Ray is used as it is;
            else ``None`` means ``$RAY_ADDRESS``, else a local instance with this machine's
            cores. Workers must have swapprobe (and its versions) installed.
    """

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        ray = _import_ray()
        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            import logging

            options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
            if address is None and not os.environ.get("RAY_ADDRESS"):
                options["include_dashboard"] = False
            try:
                ray.init(address=address, **options)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise SettingsError(
                    f"cannot reach the Ray cluster at {address or 'RAY_ADDRESS'}: "
                    f"{describe_error(error)}"
                ) from None
            self._owns = True
        self._remote = ray.remote(_ray_run).options(
            num_cpus=1, max_retries=RETRIES, retry_exceptions=False
        )
        self._context_ref: Any = None
        self._context: tuple[str, ScoreSettings] | None = None

    def map(self, evaluator: Evaluator, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        context = (evaluator.data.fingerprint, evaluator.settings)
        if self._context != context:
            self._context_ref = self._ray.put((evaluator.data, evaluator.settings))
            self._context = context
        refs = [self._remote.remote(self._context_ref, task) for task in tasks]
        for task, ref in zip(tasks, refs, strict=True):
            try:
                result = self._ray.get(ref)
            except self._ray.exceptions.RayError as error:
                cause = getattr(error, "cause", None)
                yield TaskOutcome(
                    task.index,
                    task.name,
                    task.key,
                    error=describe_error(cause if isinstance(cause, BaseException) else error),
                )
                continue
            yield TaskOutcome(task.index, task.name, task.key, result)

    def close(self) -> None:
        self._context_ref = None
        self._context = None
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False


def get_executor(
    name: str = "local", workers: int | None = None, address: str | None = None
) -> Executor:
    """An executor by name: ``local``, ``pool`` (``workers`` processes) or ``ray``
    (``address`` of a cluster, else a local instance).

    Raises:
        SettingsError: an unknown name, ``workers`` < 1, an address for a non-Ray executor,
            or Ray not installed.
    """
    if name not in EXECUTORS:
        raise SettingsError(f"unknown executor {name!r}: use {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise SettingsError(f"workers must be at least 1, got {workers}")
    if address is not None and name != "ray":
        raise SettingsError("an address is only used by the ray executor ({executor='ray'})")
    if name == "pool":
        return PoolExecutor(workers)
    if name == "ray":
        return RayExecutor(address)
    return LocalExecutor()
