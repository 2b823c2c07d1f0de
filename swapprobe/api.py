"""The Python entry points: ``score`` one model, ``score_many`` with a store, ``rescore``.

The CLI is a thin layer over these functions; everything it does is one call here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from swapprobe.data import Batch, load_batch
from swapprobe.evaluate import Evaluator, Result, ScoreSettings
from swapprobe.models import ModelRef, resolve_models
from swapprobe.patterns import PatternMatrix

if TYPE_CHECKING:
    from swapprobe.executors import Executor, ResultList

__all__ = ["record_to_result", "rescore", "result_to_record", "score", "score_many"]


def _batch(
    data: Batch | str | os.PathLike[str] | np.ndarray,
    batch_size: int,
    seed: int,
    **data_options: Any,
) -> Batch:
    if isinstance(data, Batch):
        return data
    return load_batch(data, batch_size=batch_size, seed=seed, **data_options)


def score(
    model: Any,
    data: Batch | str | os.PathLike[str] | np.ndarray = "synthetic",
    *,
    batch_size: int = 16,
    repeats: int = 32,
    seed: int = 0,
    init: str = "gaussian",
    backend: str = "onnx",
    device: str = "auto",
    mu: float | None = None,
    sigma: float | None = None,
    size_unit: str = "M",
    per_layer: bool = False,
    input_name: str | None = None,
    **data_options: Any,
) -> Result:
    """Score one model: an ONNX path/proto, a ``torch.nn.Module`` or a ``SPACE:ARCH`` string.

    ``data`` is a dataset name (``synthetic``, ``cifar10``, ``cifar100``), a path, a ready
    :class:`~swapprobe.data.Batch`, or an array used exactly as given (then S = len(array)).

    >>> result = score("nb201:random:1", repeats=2)   # doctest: +SKIP
    >>> result.swap                                    # doctest: +SKIP
    """
    batch = _batch(data, batch_size, seed, **data_options)
    settings = ScoreSettings(
        batch_size=len(batch.inputs),
        repeats=repeats,
        seed=seed,
        init=init,
        backend=backend,  # type: ignore[arg-type]
        device=device,
        mu=mu,
        sigma=sigma,
        size_unit=size_unit,
        per_layer=per_layer,  # type: ignore[arg-type]
        input_name=input_name,
    )
    (ref,) = resolve_models([model], seed=seed)[:1]
    return evaluate_ref(Evaluator(batch, settings), ref)


def evaluate_ref(evaluator: Evaluator, ref: ModelRef) -> Result:
    """Score a resolved model reference with an Evaluator (the executors call this too)."""
    if ref.space is not None:
        return evaluator.evaluate_architecture(ref.space, ref.arch)
    return evaluator.evaluate(ref.load(), name=ref.name, key=ref.key)


def score_many(
    models: Iterable[Any] | Sequence[ModelRef],
    data: Batch,
    settings: ScoreSettings,
    *,
    store: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_model: Callable[[int, int, ModelRef, Result], None] | None = None,
    on_repeat: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
) -> ResultList:
    """Score many models on one batch; with ``store``, write each as it finishes.

    With ``resume``, models already in the store with identical settings are read back, not
    run again. The store is opened (and checked) before any model runs, so a bad path or a
    mismatching store fails at once and leaves existing files untouched.

    ``executor`` (see :mod:`swapprobe.executors`) says where models run; only this process
    writes the store, in input order. With an executor a failing model is retried once and
    then listed in the returned list's ``failed``, the others are kept; without one, models
    run here and the first error propagates. ``on_repeat`` is only called for models scored in
    this process.
    """
    from swapprobe.executors import LocalExecutor, ResultList, task_for
    from swapprobe.store import open_for_run

    refs: list[ModelRef] = []
    for model in models:  # specs and ready references may be mixed
        refs += (
            [model] if isinstance(model, ModelRef) else resolve_models([model], seed=settings.seed)
        )
    handle = None
    created = False
    if store is not None:
        wanted = settings.store_settings(data)
        created = not resume or not Path(store).exists()
        handle = open_for_run(store, wanted, resume=resume)
    evaluator = Evaluator(data, settings, on_repeat=on_repeat)
    runner = executor if executor is not None else LocalExecutor(report_failures=False)
    slots: list[Result | None] = [None] * len(refs)
    failed = []
    done = 0
    try:
        tasks = []
        twins: dict[str, list[int]] = {}  # a model given twice is scored once
        for index, ref in enumerate(refs):
            if handle is not None and handle.has(ref.key):
                slots[index] = record_to_result(handle.read(ref.key, patterns=False), settings)
                done += 1
                if on_model is not None:
                    on_model(done, len(refs), ref, slots[index])  # type: ignore[arg-type]
                continue
            if ref.key not in twins:
                tasks.append(task_for(index, ref))
            twins.setdefault(ref.key, []).append(index)
        for outcome in runner.map(evaluator, tasks):
            same = twins[outcome.key]
            if outcome.result is None:
                failed.append(outcome)
                done += len(same)
                continue
            result = outcome.result
            if handle is not None:
                t0 = time.perf_counter()
                handle.write(result_to_record(result))
                result.timings["store"] = time.perf_counter() - t0
                result.patterns = {}  # they live in the store; keep memory flat
            for i in same:
                ref = refs[i]
                slots[i] = result if i == outcome.index else replace(result, name=ref.name)
                done += 1
                if on_model is not None:
                    on_model(done, len(refs), ref, slots[i])  # type: ignore[arg-type]
    except BaseException:
        # A store this run created and never wrote to is removed, so a retry is not refused.
        if handle is not None:
            empty = len(handle) == 0
            handle.close()
            handle = None
            if created and empty and store is not None:
                Path(store).unlink(missing_ok=True)
        raise
    finally:
        if handle is not None:
            empty = len(handle) == 0
            handle.close()
            if created and empty and store is not None:  # every model failed
                Path(store).unlink(missing_ok=True)
    return ResultList([r for r in slots if r is not None], failed)


def result_to_record(result: Result) -> Any:
    """The HDF5 record of a result (scores per repeat, kept patterns, metadata)."""
    from swapprobe.store import ModelRecord

    scores = {"swap": np.asarray(result.swap_per_repeat, dtype=np.float64)}
    if result.standard_ap_per_repeat is not None:
        scores["standard_ap"] = np.asarray(result.standard_ap_per_repeat, dtype=np.float64)
    if result.nwot_per_repeat is not None:
        scores["nwot"] = np.asarray(result.nwot_per_repeat, dtype=np.float64)
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
    return ModelRecord(
        key=result.key,
        name=result.name,
        metadata=metadata,
        scores=scores,
        layers=tuple(result.layers),
        patterns={repeat: matrix.words for repeat, matrix in result.patterns.items()},
    )


def record_to_result(
    record: Any,
    settings: ScoreSettings | None = None,
    *,
    mu: float | None = None,
    sigma: float | None = None,
) -> Result:
    """Rebuild a :class:`Result` from a stored record (μ, σ from settings or arguments)."""
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
    )


def rescore(
    store: str | os.PathLike[str],
    *,
    mu: float | None = None,
    sigma: float | None = None,
    size_unit: str | None = None,
    baselines: bool = True,
) -> list[Result]:
    """Recompute regularised SWAP (and baselines from kept patterns) without running a model.

    SWAP per repeat is read from the store; standard AP and NWOT are recomputed from the
    stored pattern blocks when ``baselines`` (for the repeats that were kept).
    """
    from swapprobe import metrics
    from swapprobe.store import PatternStore

    results: list[Result] = []
    with PatternStore.open(Path(store)) as handle:
        for record in handle.records(patterns=baselines):
            result = record_to_result(record, mu=mu, sigma=sigma)
            if size_unit is not None:
                result = result.with_regularisation(mu, sigma, size_unit)
            if baselines and result.patterns:
                kept = sorted(result.patterns)
                result.standard_ap_per_repeat = np.array(
                    [metrics.standard_activation_patterns(result.patterns[r]) for r in kept], float
                )
                result.nwot_per_repeat = np.array([metrics.nwot(result.patterns[r]) for r in kept])
            result.patterns = {}
            results.append(result)
    return results


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("swapprobe", "onnx", "onnxruntime", "torch", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found
