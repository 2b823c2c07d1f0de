"""The one run loop: many model references through one Evaluator, with or without a store.

``score_many``, table scoring (``correlate``), search fitness and ``--reg auto`` calibration
all call :func:`run_refs`: it reads back what the store already has, scores each distinct key
once (a model given twice is scored once), writes results to the store in input order as they
arrive, and drops the patterns of written results so memory stays flat. Where the scoring
happens is the executor's business (:mod:`swapprobe.executors`); what is computed is the
Evaluator's (:mod:`swapprobe.evaluate`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from swapprobe.patterns import PatternMatrix
from swapprobe.proxies.gradients import LayerGradientStats
from swapprobe.results import Result, ScoreSettings

if TYPE_CHECKING:
    from swapprobe.evaluate import Evaluator
    from swapprobe.executors import Executor, ResultList
    from swapprobe.models import ModelRef
    from swapprobe.store import ModelRecord, PatternStore

__all__ = ["PROXY_PREFIX", "record_to_result", "result_to_record", "run_refs", "run_store"]

#: a torch-pass proxy's value is stored as the score ``proxy:NAME`` (one value per model)
PROXY_PREFIX = "proxy:"
#: the record arrays of the gradient pass (:class:`~swapprobe.store.ModelRecord.arrays`;
#: the per-layer statistics are the store's ``GRADIENT_ROWS``, named by ``GRADIENT_ROW_NAMES``)
PSI_ARRAY, FISHER_ARRAY = "psi_by_bin", "fisher_eigenvalues"
#: the columns of the per-layer gradient statistics array, in order (names go to metadata)
_GRADIENT_COLUMNS = (
    "weights",
    "batches",
    "zico_sum",
    "zico_weights",
    "inv_std_sum",
    "inv_std_weights",
    "std_mean",
    "abs_mean",
)


def _gradient_array(layers: Sequence[LayerGradientStats]) -> np.ndarray:
    """(L, 8) float64: one row per weight layer, :data:`_GRADIENT_COLUMNS` (counts are exact
    in float64 below 2**53)."""
    return np.array(
        [[float(getattr(layer, column)) for column in _GRADIENT_COLUMNS] for layer in layers],
        dtype=np.float64,
    ).reshape(len(layers), len(_GRADIENT_COLUMNS))


def _gradient_layers(names: Sequence[str], array: np.ndarray) -> tuple[LayerGradientStats, ...]:
    """The inverse of :func:`_gradient_array` (with the layer names kept in metadata; the
    store has checked that both count the same layers)."""
    integer = {"weights", "batches", "zico_weights", "inv_std_weights"}
    return tuple(
        LayerGradientStats(
            name=str(name),
            **{
                column: int(value) if column in integer else float(value)
                for column, value in zip(_GRADIENT_COLUMNS, row, strict=True)
            },  # type: ignore[arg-type]
        )
        for name, row in zip(names, np.asarray(array).reshape(-1, len(_GRADIENT_COLUMNS)),
                             strict=True)
    )


@contextmanager
def run_store(
    path: str | os.PathLike[str] | None, settings: Mapping[str, Any], *, resume: bool
) -> Iterator[PatternStore | None]:
    """The store a run writes to (``None`` without a path): created, or resumed when it has
    equal settings. Opened before any work, so a bad path or a mismatching store fails at once.
    A store this run created and never wrote to is removed again, so a retry is not refused."""
    if path is None:
        yield None
        return
    from swapprobe.store import open_for_run

    created = not resume or not Path(path).exists()
    handle = open_for_run(path, settings, resume=resume)
    try:
        yield handle
    finally:
        empty = len(handle) == 0
        handle.close()
        if created and empty:
            Path(path).unlink(missing_ok=True)


def run_refs(
    refs: Sequence[ModelRef],
    evaluator: Evaluator,
    *,
    executor: Executor | None = None,
    store: PatternStore | None = None,
    on_result: Callable[[int, int, ModelRef, Result], None] | None = None,
) -> ResultList:
    """Score ``refs`` (in input order) through ``evaluator``, on ``executor``.

    Models the store already holds are read back, not run. Without an executor the models run
    here and the first error propagates; with one, a model that fails is listed in the
    returned list's ``failed`` and the others are kept. ``on_result(done, total, ref, result)``
    is called as each reference is settled.
    """
    from swapprobe.executors import LocalExecutor, ResultList, task_for

    runner = executor if executor is not None else LocalExecutor(report_failures=False)
    settings = evaluator.settings
    slots: list[Result | None] = [None] * len(refs)
    twins: dict[str, list[int]] = {}
    for index, ref in enumerate(refs):
        twins.setdefault(ref.key, []).append(index)
    done = 0

    def settle(key: str, result: Result) -> None:
        nonlocal done
        for n, index in enumerate(twins[key]):
            ref = refs[index]
            slots[index] = result if n == 0 else replace(result, name=ref.name)
            done += 1
            if on_result is not None:
                on_result(done, len(refs), ref, slots[index])  # type: ignore[arg-type]

    tasks = []
    for key, where in twins.items():
        if store is not None and store.has(key):
            stored = record_to_result(store.read(key, patterns=False), settings)
            settle(key, replace(stored, name=refs[where[0]].name))
        else:
            tasks.append(task_for(where[0], refs[where[0]]))
    failed = []
    for outcome in runner.map(evaluator, tasks):
        if outcome.result is None:
            failed.append(outcome)
            done += len(twins[outcome.key])
            continue
        result = outcome.result
        if store is not None:
            t0 = time.perf_counter()
            store.write(result_to_record(result))
            result.timings["store"] = time.perf_counter() - t0
            result.patterns = {}  # they live in the store; keep memory flat
        settle(outcome.key, result)
    return ResultList([r for r in slots if r is not None], failed)


# --- results in stores -------------------------------------------------------------------
def result_to_record(result: Result) -> ModelRecord:
    """The HDF5 record of a result (scores per repeat, kept patterns, metadata)."""
    from swapprobe.store import GRADIENT_ROW_NAMES, GRADIENT_ROWS, ModelRecord

    scores = {"swap": np.asarray(result.swap_per_repeat, dtype=np.float64)}
    if result.standard_ap_per_repeat is not None:
        scores["standard_ap"] = np.asarray(result.standard_ap_per_repeat, dtype=np.float64)
    if result.nwot_per_repeat is not None:
        scores["nwot"] = np.asarray(result.nwot_per_repeat, dtype=np.float64)
    for name, value in result.proxies.items():
        scores[PROXY_PREFIX + name] = np.array([value], dtype=np.float64)
    metadata = {
        **result.metadata,
        "param_count": int(result.param_count),
        "units": int(result.units),
        "samples": int(result.samples),
        "size_unit": result.size_unit,
        "seconds": float(result.seconds),
        "timings": {k: float(v) for k, v in result.timings.items()},
        "per_layer_swap": result.per_layer_swap,
        "versions": _versions(),
    }
    arrays: dict[str, np.ndarray] = {}
    if result.gradient_layers:
        arrays[GRADIENT_ROWS] = _gradient_array(result.gradient_layers)
        metadata[GRADIENT_ROW_NAMES] = [layer.name for layer in result.gradient_layers]
    if result.psi_by_bin is not None:
        arrays[PSI_ARRAY] = np.asarray(result.psi_by_bin, dtype=np.float64)
    if result.fisher_eigenvalues is not None:
        arrays[FISHER_ARRAY] = np.asarray(result.fisher_eigenvalues, dtype=np.float64)
    return ModelRecord(
        key=result.key,
        name=result.name,
        metadata=metadata,
        scores=scores,
        layers=tuple(result.layers),
        patterns={repeat: matrix.words for repeat, matrix in result.patterns.items()},
        arrays=arrays,
    )


def record_to_result(
    record: ModelRecord,
    settings: ScoreSettings | None = None,
    *,
    mu: float | None = None,
    sigma: float | None = None,
) -> Result:
    """Rebuild a :class:`Result` from a stored record (μ, σ from settings or arguments).

    Raises:
        StoreError: the record has no SWAP scores (not written by a scoring run, or damaged).
    """
    if "swap" not in record.scores:
        from swapprobe.errors import StoreError

        raise StoreError(f"the stored record of {record.key[:80]!r} has no SWAP scores")
    from swapprobe.store import GRADIENT_ROW_NAMES, GRADIENT_ROWS

    meta = dict(record.metadata)
    samples = int(meta.get("samples", 0))
    patterns = {
        int(repeat): PatternMatrix(words, samples, record.layers)
        for repeat, words in record.patterns.items()
    }
    if settings is not None:
        mu, sigma = settings.mu, settings.sigma
    return Result(
        name=record.name,
        key=record.key,
        swap_per_repeat=np.asarray(record.scores["swap"]),
        param_count=int(meta.get("param_count", 0)),
        units=int(meta.get("units", 0)),
        samples=samples,
        size_unit=str(meta.get("size_unit", "M")),
        mu=mu,
        sigma=sigma,
        standard_ap_per_repeat=record.scores.get("standard_ap"),
        nwot_per_repeat=record.scores.get("nwot"),
        seconds=float(meta.get("seconds", 0.0)),
        timings=dict(meta.get("timings") or {}),
        layers=tuple(record.layers),
        patterns=patterns,
        per_layer_swap=meta.get("per_layer_swap"),
        metadata=meta,
        proxies={
            name[len(PROXY_PREFIX) :]: float(values[0])
            for name, values in record.scores.items()
            if name.startswith(PROXY_PREFIX)
        },
        gradient_layers=_gradient_layers(
            meta.get(GRADIENT_ROW_NAMES) or (), record.arrays[GRADIENT_ROWS]
        )
        if GRADIENT_ROWS in record.arrays
        else (),
        psi_by_bin=record.arrays.get(PSI_ARRAY),
        fisher_eigenvalues=record.arrays.get(FISHER_ARRAY),
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("swapprobe", "onnx", "onnxruntime", "torch", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found
