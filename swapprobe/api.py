"""The Python entry points: ``score`` one model, ``score_many`` with a store, ``rescore``,
``layer_swaps`` and ``inspect_store`` read from a store, and the run plans of the commands
(``plan_score``, ``plan_search``, ``plan_correlate``: :mod:`swapprobe.plan`).

The CLI is a thin layer over these: each command builds the plan these functions build from
keywords, and runs it in one call (``plan.run(progress)``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from swapprobe.data import Batch, load_batch
from swapprobe.errors import SettingsError
from swapprobe.evaluate import Evaluator
from swapprobe.models import (
    ModelRef,
    default_data,
    resolve_models,
    resolve_one,
    scoring_defaults,
    token_options,
)
from swapprobe.plan import (
    DEFAULT_DATA,
    CorrelatePlan,
    ScorePlan,
    SearchPlan,
    SearchRun,
    TableSpec,
    split_keywords,
)
from swapprobe.proxies import set_aggregates
from swapprobe.results import Result, ScoreSettings
from swapprobe.runs import record_to_result, result_to_record, run_refs, run_store

if TYPE_CHECKING:
    from swapprobe.executors import Executor, ResultList
    from swapprobe.searchspaces.base import SearchSpace
    from swapprobe.store import StoreSummary

__all__ = [
    "StoreView",
    "inspect_store",
    "layer_swaps",
    "plan_correlate",
    "plan_score",
    "plan_search",
    "record_to_result",
    "rescore",
    "result_to_record",
    "score",
    "score_many",
    "search",
    "stored_results",
]


def plan_score(models: Iterable[Any], **keywords: Any) -> ScorePlan:
    """The plan ``swapprobe score`` runs, from keywords: the data options (``data``,
    ``batch_size``, ``data_dir``, ``pick``, ``input_size``, ``seq_len``, ``vocab_size``,
    ``tokenizer``), the scoring options (``repeats``, ``seed``, ``init``, ``backend``,
    ``device``, ``mu``, ``sigma``, ``size_unit``, ``proxies``), the execution (``executor``,
    ``workers``, ``address``) and :class:`~swapprobe.plan.ScorePlan`'s own fields (``store``,
    ``resume``, ``keep_patterns``, ``per_layer``, ``baselines``, ``activations``,
    ``input_name``, ``max_pattern_bytes``). Unset: the space's or the paper's defaults.

    >>> run = plan_score(["nb201:random:5"], repeats=2, store="run.h5").run()  # doctest: +SKIP
    >>> [r.swap for r in run.results]                                          # doctest: +SKIP
    """
    inputs, scoring, execution, rest = split_keywords(keywords)
    return ScorePlan(tuple(models), inputs, scoring, execution, **rest)


def plan_search(space: SearchSpace | str | Callable[..., Any], **keywords: Any) -> SearchPlan:
    """The plan ``swapprobe search`` runs, from keywords: the shared options as in
    :func:`plan_score` (``executor`` defaults to ``auto``), ``fitness``, ``reg="auto"``,
    ``population``, ``cycles``, ``mutation_times``, ``crossover_prob``, ``store``,
    ``resume``, ``export``, and ``table`` (a path, or a :class:`~swapprobe.plan.TableSpec`)."""
    keywords.setdefault("executor", "auto")
    inputs, scoring, execution, rest = split_keywords(keywords)
    if isinstance(rest.get("table"), (str, os.PathLike)):
        rest["table"] = TableSpec(rest["table"])
    return SearchPlan(space, inputs, scoring, execution, **rest)


def search(space: Any, **keywords: Any) -> SearchRun:
    """Search ``space`` (``swapprobe search``): a function of the choice recorder (a
    define-by-run space, :mod:`swapprobe.searchspaces.custom`), ``FILE.py:FUNCTION``, a
    registered space's name or a :class:`~swapprobe.searchspaces.base.SearchSpace`; keywords as
    :func:`plan_search`. The found architecture is ``run.outcome.best_text`` (a define-by-run
    space's: its choices as JSON).

    >>> def space(c):                                                   # doctest: +SKIP
    ...     width = c.choice("width", [8, 16, 32])
    ...     return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU())
    >>> run = swapprobe.search(space, population=8, cycles=10, executor="local")  # doctest: +SKIP
    >>> run.outcome.best_text                                           # doctest: +SKIP
    '{"width": 32}'
    """
    return plan_search(space, **keywords).run()


def plan_correlate(
    space: SearchSpace | str, table: TableSpec | str | os.PathLike[str], **keywords: Any
) -> CorrelatePlan:
    """The plan ``swapprobe correlate`` runs, from keywords: the shared options as in
    :func:`plan_score` (``executor`` defaults to ``auto``), ``limit``, ``reg="auto"``,
    ``sweep``, ``bootstrap``, ``store``, ``resume``, ``keep_patterns``."""
    keywords.setdefault("executor", "auto")
    inputs, scoring, execution, rest = split_keywords(keywords)
    spec = table if isinstance(table, TableSpec) else TableSpec(table)
    return CorrelatePlan(space, spec, inputs, scoring, execution, **rest)


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
    data: Batch | str | os.PathLike[str] | np.ndarray | None = None,
    *,
    batch_size: int | None = None,
    repeats: int | None = None,
    seed: int = 0,
    init: str | None = None,
    backend: str | None = None,
    device: str = "auto",
    mu: float | None = None,
    sigma: float | None = None,
    size_unit: str = "M",
    per_layer: bool = False,
    input_name: str | None = None,
    proxies: Sequence[str] = (),
    **data_options: Any,
) -> Result:
    """Score one model: an ONNX path/proto, a ``torch.nn.Module``, a ``SPACE:ARCH`` string or
    ``(space, arch)`` (a space object or name; an architecture value or its text).

    ``data`` (None: the space's declared source, token data for a model that reads ids, else
    ``synthetic``) is a dataset name (``synthetic``, ``cifar10``, ``cifar100``, ``tokens:zipf`` and
    the other token sources), a path, a ready :class:`~swapprobe.data.Batch` (token ids:
    :func:`~swapprobe.data.token_batch`), or an array used exactly as given (then
    S = len(array)). A token source's ``seq_len`` and ``vocab_size`` default to the model's own
    where it states them (an embedding's rows, a fixed input length).

    ``batch_size``, ``repeats``, ``init`` and ``backend`` default to the paper's S=16, 32
    repeats, N(0, 1) weights and onnxruntime, or to the space's declared defaults for an
    architecture of a space.
    ``proxies`` (names of :data:`~swapprobe.results.PROXIES`) are computed beside SWAP and land
    in ``result.proxies``; their rank aggregate needs several models (:func:`score_many`).

    >>> result = score("nb201:random:1", repeats=2)   # doctest: +SKIP
    >>> result.swap                                    # doctest: +SKIP
    """
    ref = resolve_one(model, seed=seed)
    defaults = scoring_defaults([ref])
    if data is None:  # the space's data, token data for a model that reads ids, else images
        data, _ = default_data([ref], defaults, DEFAULT_DATA, input_name)
    if ref.input_size is not None:  # a zoo model's own input size, unless one is given
        data_options.setdefault("input_size", ref.input_size)
    data_options.update(
        token_options(
            [ref],
            data,
            seq_len=data_options.get("seq_len"),
            vocab_size=data_options.get("vocab_size"),
            input_name=input_name,
        )
    )
    batch = _batch(data, batch_size or defaults.batch_size, seed, **data_options)
    settings = ScoreSettings(
        batch_size=len(batch.inputs),
        repeats=repeats or defaults.repeats,
        seed=seed,
        init=init or defaults.init,
        backend=backend or defaults.backend,  # type: ignore[arg-type]
        device=device,
        mu=mu,
        sigma=sigma,
        size_unit=size_unit,
        per_layer=per_layer,  # type: ignore[arg-type]
        input_name=input_name,
        proxies=tuple(proxies),
    )
    return Evaluator(batch, settings).evaluate(ref)


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
    writes the store, in input order. With an executor a failing model is listed in the
    returned list's ``failed`` and the others are kept; without one, models run here and the
    first error propagates. ``on_repeat`` is only called for models scored in this process.
    """
    refs: list[ModelRef] = []
    for model in models:  # specs and ready references may be mixed
        refs += resolve_models([model], seed=settings.seed)
    with run_store(store, settings.store_settings(data), resume=resume) as handle:
        results = run_refs(
            refs,
            Evaluator(data, settings, on_repeat=on_repeat),
            executor=executor,
            store=handle,
            on_result=on_model,
        )
    set_aggregates(results, settings.proxies)  # ranks among the models given
    return results


def rescore(
    store: str | os.PathLike[str],
    *,
    mu: float | None = None,
    sigma: float | None = None,
    size_unit: str | None = None,
    baselines: bool = True,
    interval: tuple[int, int] | None = None,
) -> list[Result]:
    """Recompute regularised SWAP without running a model (and the baselines a store lacks,
    from its kept patterns); where the store holds proxies, their aggregate among the stored
    models too.

    SWAP, standard AP and NWOT per repeat are read from the store: the stored baselines cover
    every repeat, while patterns are often kept for the first repeat only, so recomputing them
    would silently give a different mean. Only a record without stored baselines has them
    recomputed from its kept pattern blocks when ``baselines``; ``metadata
    ["baselines_recomputed_from"]`` then lists the repeats they come from.

    With ``interval`` (depth bins ``(first, last)``), the stored gradient-pass proxies (ZiCo,
    L-SWAG and its factors, VKDNW) are recomputed from the per-layer statistics the store keeps,
    L-SWAG over that interval: the same function a run uses
    (:func:`~swapprobe.proxies.gradients.gradient_proxy_values`).
    """
    from swapprobe import metrics
    from swapprobe.proxies.gradients import check_interval, gradient_proxy_values
    from swapprobe.results import GRADIENT_PROXIES
    from swapprobe.store import PatternStore

    if (mu is None) != (sigma is None):
        raise SettingsError("give {mu} and {sigma} together (or neither, to keep them unset)")
    if interval is not None:
        interval = check_interval(interval)

    results: list[Result] = []
    with PatternStore.open(Path(store)) as handle:
        for record in handle.records(patterns=baselines):
            result = record_to_result(record, mu=mu, sigma=sigma)
            if size_unit is not None:
                result = result.with_regularisation(mu, sigma, size_unit)
            absent = result.standard_ap_per_repeat is None or result.nwot_per_repeat is None
            if baselines and absent and result.patterns:
                kept = sorted(result.patterns)
                if result.standard_ap_per_repeat is None:
                    result.standard_ap_per_repeat = np.array(
                        [metrics.standard_activation_patterns(result.patterns[r]) for r in kept],
                        float,
                    )
                if result.nwot_per_repeat is None:
                    result.nwot_per_repeat = np.array(
                        [metrics.nwot(result.patterns[r]) for r in kept]
                    )
                result.metadata["baselines_recomputed_from"] = kept
            gradient = [name for name in result.proxies if name in GRADIENT_PROXIES]
            if interval is not None and gradient and result.gradient_layers:
                result.proxies.update(
                    gradient_proxy_values(
                        gradient,
                        result.gradient_layers,
                        psi=result.psi_by_bin,
                        eigenvalues=result.fisher_eigenvalues,
                        interval=interval,
                    )
                )
                result.metadata["interval"] = [int(interval[0]), int(interval[1])]
            result.patterns = {}
            results.append(result)
    # the stored proxies' aggregate among the store's models, with the new μ, σ inside it
    stored = sorted({name for result in results for name in result.proxies})
    set_aggregates(results, stored)
    return results


def layer_swaps(store: str | os.PathLike[str]) -> list[tuple[Result, dict[str, float] | None]]:
    """SWAP per activation layer of every model in a store, from its kept patterns (mean over
    the kept repeats); ``None`` for a model whose patterns were not kept."""
    from swapprobe import metrics
    from swapprobe.store import PatternStore

    found: list[tuple[Result, dict[str, float] | None]] = []
    with PatternStore.open(Path(store)) as handle:
        for record in handle.records(patterns=True):
            result = record_to_result(record)
            if not result.patterns:
                found.append((result, None))
                continue
            matrices = [result.patterns[r] for r in sorted(result.patterns)]
            per_layer = {
                info.name: sum(metrics.swap(m.layer(info.name)) for m in matrices) / len(matrices)
                for info in result.layers
            }
            result.patterns = {}
            found.append((result, per_layer))
    return found


def stored_results(store: str | os.PathLike[str]) -> list[Result]:
    """The results a store holds, as scored (no patterns read)."""
    from swapprobe.store import PatternStore

    with PatternStore.open(Path(store)) as handle:
        return [record_to_result(record) for record in handle.records(patterns=False)]


@dataclass(frozen=True)
class StoreView:
    """What a store holds: its summary, its results as scored, and (when asked) SWAP per
    layer of each model from its kept patterns (``None`` where none were kept)."""

    summary: StoreSummary
    results: list[Result]
    layers: list[tuple[Result, dict[str, float] | None]]


def inspect_store(store: str | os.PathLike[str], *, layers: bool = False) -> StoreView:
    """Summarise a store (``swapprobe inspect``): settings, models and scores, and with
    ``layers`` SWAP per activation layer."""
    from swapprobe.store import PatternStore

    with PatternStore.open(Path(store)) as handle:
        summary = handle.summary()
    return StoreView(summary, stored_results(store), layer_swaps(store) if layers else [])
