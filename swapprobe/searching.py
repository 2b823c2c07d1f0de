"""SWAP-NAS search and table correlation over a search space, both through the one Evaluator.

The evolution engine (:mod:`swapprobe.evolution`) knows nothing of scoring; this module gives
it a fitness function made of :meth:`Evaluator.evaluate_architecture` calls, stores every
scored architecture and a checkpoint per cycle in the HDF5 store, and resumes from it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from swapprobe.budget import BudgetCheck, SizeBudget
from swapprobe.correlate import (
    CorrelationReport,
    GroundTruth,
    correlation_report,
    libra_report,
    rule_report,
)
from swapprobe.data import Batch
from swapprobe.errors import (
    InfeasibleError,
    SettingsError,
    SwapprobeError,
    UnknownArchitectureError,
)
from swapprobe.evaluate import Evaluator
from swapprobe.evolution import (
    CycleReport,
    Evolution,
    EvolutionConfig,
    SearchResult,
    sample_feasible,
)
from swapprobe.executors import Executor, ResultList, TaskOutcome
from swapprobe.models import arch_key, arch_ref, text_key
from swapprobe.proxies import set_aggregates
from swapprobe.regularisation import (
    DEFAULT_SAMPLES,
    TARGET_SIZE_RHO,
    AutoRegularisation,
    auto_regularisation,
    check_reg,
)
from swapprobe.results import Result, ScoreSettings
from swapprobe.runs import record_to_result, result_to_record, run_refs, run_store
from swapprobe.searchspaces.base import SearchSpace
from swapprobe.searchspaces.custom import CustomSpace

__all__ = [
    "FITNESSES",
    "SearchOutcome",
    "SearchPolicy",
    "calibrate_for_space",
    "correlate_table",
    "evaluation_input_size",
    "export_network",
    "fitness_of",
    "run_search",
    "score_table",
    "search_plot",
    "search_policy",
    "table_rows",
]

STATE_NAME = "search"
#: what a search can rank by: the rank aggregate of SWAP and proxies, regularised SWAP, SWAP
FITNESSES = ("aggregate", "reg-swap", "swap")
#: ``correlate``'s selection rules: none, LIBRA's three, or the rule choosing a default set
SELECTIONS = (None, "libra", "rule")


def fitness_of(result: Result) -> float:
    """The search's fitness: the proxy aggregate when the result has one (set among all
    scored so far), else regularised SWAP when μ/σ are set, else SWAP (as the paper)."""
    if result.aggregate is not None:
        return float(result.aggregate)
    reg = result.reg_swap
    return float(result.swap if reg is None else reg)


@dataclass(frozen=True)
class SearchPolicy:
    """What a search ranks by and scores with: the ``fitness``, the settings it needs (its
    proxies, baselines only where NWOT is one), and whether μ, σ are calibrated first."""

    fitness: str
    settings: ScoreSettings
    calibrate: bool

    @property
    def proxies(self) -> tuple[str, ...]:
        return self.settings.proxies


def search_policy(
    space: SearchSpace,
    settings: ScoreSettings,
    *,
    fitness: str | None = None,
    proxies: Sequence[str] | None = None,
    reg: str | None = None,
) -> SearchPolicy:
    """The search ``swapprobe search`` runs: ``fitness`` (``None``: the space's measured best,
    :attr:`SpaceDefaults.fitness`) decides the proxies scored: ``aggregate`` ranks SWAP with
    ``proxies`` (``None``: the space's list), the others score SWAP alone; ``reg-swap``
    without μ, σ, or ``reg="auto"``, calibrates μ and σ first
    (:mod:`swapprobe.regularisation`). ``settings.proxies`` are replaced by the policy's.

    Raises:
        SettingsError: an unknown fitness, ``aggregate`` with no proxies, proxies with another
            fitness, or ``reg="auto"`` beside a given μ.
    """
    check_reg(reg, settings.mu)
    fitness = fitness or space.defaults.fitness
    if fitness not in FITNESSES:
        raise SettingsError(f"unknown fitness {fitness!r}: use {', '.join(FITNESSES)}")
    chosen: tuple[str, ...] = ()
    if fitness == "aggregate":
        chosen = space.defaults.proxies if proxies is None else tuple(proxies)
        if not chosen:
            raise SettingsError("{fitness='aggregate'} needs {proxies} (a list, not none)")
    elif proxies:
        raise SettingsError(
            f"{{proxies}} are only aggregated with {{fitness='aggregate'}}, not {fitness}"
        )
    settings = replace(settings, proxies=chosen, baselines="nwot" in chosen)
    calibrate = reg == "auto" or (fitness == "reg-swap" and settings.mu is None)
    return SearchPolicy(fitness, settings, calibrate)


@dataclass
class SearchOutcome:
    """What a search found and what it cost."""

    space: str
    best_arch: Hashable
    best_text: str
    best: Result
    evaluation_params: int
    search: SearchResult
    wall_seconds: float
    config: EvolutionConfig
    results: dict[str, Result] = field(default_factory=dict)
    #: architectures that failed on the executor (their fitness was -inf)
    failed: list[TaskOutcome] = field(default_factory=list)
    #: the ``reg="auto"`` calibration the search started from, if any
    calibration: AutoRegularisation | None = None
    #: a define-by-run space's found choices, by name (its architecture, as a record)
    choices: dict[str, Any] | None = None
    #: which evaluation network ``evaluation_params``/``evaluation_flops`` count (the
    #: space's rule for the batch's input size, :meth:`SearchSpace.evaluation_dataset`)
    evaluation_dataset: str = "cifar10"
    #: multiply-adds per input of that network at the batch's input size
    evaluation_flops: int | None = None
    #: the batch's input size: (H, W) of images, (T,) of tokens
    input_size: tuple[int, ...] = ()
    #: the hard size limits every scored architecture met
    budget: SizeBudget = field(default_factory=SizeBudget)
    #: what every architecture was scored on: the batch's source (which images, from where)
    data: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The found architecture and what it cost, as JSON-able values."""
        best = self.best
        return {
            "space": self.space,
            "architecture": self.best_text,
            **({} if self.choices is None else {"choices": self.choices}),
            "fitness": self.search.best.fitness,
            "aggregate": best.aggregate,
            "proxies": dict(best.proxies),
            "swap": best.swap,
            "reg_swap": best.reg_swap,
            "mu": best.mu,
            "sigma": best.sigma,
            "size_unit": best.size_unit,
            "scoring_params": best.param_count,
            "evaluation_params": self.evaluation_params,
            "evaluation_flops": self.evaluation_flops,
            "evaluation_dataset": self.evaluation_dataset,
            "data": self.data,
            "max_params": self.budget.max_params,
            "max_flops": self.budget.max_flops,
            "evaluations": self.search.evaluations,
            "cache_hits": self.search.cache_hits,
            "wall_seconds": self.wall_seconds,
            "calibration": None if self.calibration is None else self.calibration.describe(),
            "calibration_seconds": 0.0 if self.calibration is None else self.calibration.seconds,
            "failed": [{"name": f.name, "error": f.error} for f in self.failed],
            "history": [
                {"cycle": h.cycle, "best_fitness": h.best_fitness, "evaluations": h.evaluations}
                for h in self.search.history
            ],
        }


def calibrate_for_space(
    space: SearchSpace,
    data: Batch,
    settings: ScoreSettings,
    *,
    executor: Executor | None = None,
    samples: int = DEFAULT_SAMPLES,
    target: float = TARGET_SIZE_RHO,
    feasible: Callable[[Hashable], bool] | None = None,
) -> AutoRegularisation:
    """``reg="auto"`` for ``space`` with the run's own data and settings: the ``samples``
    random architectures (those ``feasible`` accepts, under a size budget) are scored through
    the one run loop (on ``executor`` when given), plain SWAP without baselines or patterns,
    and μ, σ chosen by the rule of :mod:`swapprobe.regularisation`.

    Raises:
        SwapprobeError: an architecture of the calibration failed (its one-line reason).
    """
    # the proxies stay: the calibration's architectures seed the search's population
    plain = replace(
        settings, baselines="nwot" in settings.proxies, keep_patterns="none", mu=None, sigma=None
    )
    evaluator = Evaluator(data, plain)

    def score(archs: list[Any]) -> list[Any]:
        results = run_refs([arch_ref(space, a) for a in archs], evaluator, executor=executor)
        if results.failed:
            first = results.failed[0]
            raise SwapprobeError(f"{{reg='auto'}}: {first.name}: {first.error}")
        return list(results)

    start = time.perf_counter()
    chosen = auto_regularisation(
        space,
        score,
        samples=samples,
        seed=settings.seed,
        unit=settings.size_unit,
        target=target,
        sample=None if feasible is None else (lambda rng: sample_feasible(space, rng, feasible)),
    )
    return replace(chosen, seconds=time.perf_counter() - start)


def evaluation_input_size(space: SearchSpace, data: Batch) -> tuple[int, ...]:
    """The batch's input size as the space's size methods take it: (H, W) of images, (T,) of
    token ids."""
    shape = tuple(int(n) for n in data.inputs.shape[1:])
    return shape if space.input_kind == "tokens" else shape[1:]


def export_network(
    space: SearchSpace,
    arch: Hashable,
    path: str | Path,
    *,
    sample_shape: Sequence[int] | None = None,
    source: str | None = None,
) -> Path:
    """Write the evaluation network of ``arch`` (the one to train) as an ONNX file, for
    samples of ``sample_shape`` (``None``: the space's :attr:`~SearchSpace.input_shape`; a
    search passes its data's, which a define-by-run space cannot know before) from the named
    dataset ``source``: the network the space means for them
    (:meth:`SearchSpace.evaluation_dataset`: DARTS' ImageNet network for images of 128 px and
    more, NAS-Bench-201's CIFAR-100 network for CIFAR-100)."""
    import onnx

    from swapprobe.capture.export import export_module

    shape = tuple(space.input_shape if sample_shape is None else sample_shape)
    size = shape if space.input_kind == "tokens" else shape[1:]
    network = space.build_evaluation_network(arch, space.evaluation_dataset(size, source))
    dtype = np.int64 if space.input_kind == "tokens" else np.float32  # token ids, or images
    sample = np.zeros((2, *shape), dtype)
    onnx.save(export_module(network, sample), str(path))
    return Path(path)


def run_search(
    space: SearchSpace,
    data: Batch,
    settings: ScoreSettings,
    config: EvolutionConfig | None = None,
    *,
    store: str | Path | None = None,
    resume: bool = False,
    on_cycle: Callable[[CycleReport], None] | None = None,
    executor: Executor | None = None,
    prescored: Sequence[tuple[Hashable, Result]] = (),
    fitness: str | None = None,
    proxies: Sequence[str] | None = None,
    reg: str | None = None,
    max_params: int | float | str | None = None,
    max_flops: int | float | str | None = None,
) -> SearchOutcome:
    """Algorithm 1 of SWAP-NAS over ``space``; every scoring goes through the one run loop.

    ``config`` defaults to the space's own defaults (:attr:`SearchSpace.defaults`).
    ``prescored`` are random architectures already scored with these settings (the ones
    ``--reg auto`` calibrated on): they are never scored again, and the P fittest of them
    form the initial population in place of P fresh random samples (a fresh search only).

    With ``store``, every scored architecture is written as it is scored and the engine state
    after every cycle, so ``resume=True`` continues a killed search to the same result as an
    uninterrupted run with the same seed.

    With ``executor`` (see :mod:`swapprobe.executors`), each batch the engine asks for (the
    initial population, a cycle's crossover children, its mutants) is scored in parallel; an
    architecture that fails gets fitness -inf and is listed in ``failed``.

    With ``fitness`` (``aggregate``, ``reg-swap``, ``swap``), the search is the one
    ``swapprobe search`` runs (:func:`search_policy`): the fitness chooses the proxies scored
    (``proxies``: the aggregate's, ``None`` for the space's) and whether μ, σ are calibrated.
    Without it, ``settings`` are used as given: the fitness is their aggregate when they name
    proxies, else regularised SWAP when μ is set, else SWAP.

    With ``reg="auto"`` (or ``fitness="reg-swap"`` without μ), μ and σ are first calibrated on
    random architectures (:func:`calibrate_for_space`), which then become ``prescored``; the
    calibration is in the outcome.

    ``max_params`` and ``max_flops`` (numbers, or text with a K/M/G suffix: ``"6M"``) are hard
    limits on the *evaluation* network, the one trained from the found architecture (for
    the batch's input size: :meth:`SearchSpace.evaluation_dataset`), not the scoring network:
    an architecture over either is never scored (:mod:`swapprobe.budget`). Beside, not
    instead of, reg-SWAP's soft size control.

    Raises:
        SettingsError: a budget below every architecture drawn (one line, nothing scored).
    """
    budget = SizeBudget.read(max_params, max_flops)
    size = evaluation_input_size(space, data)
    check = BudgetCheck(space, budget, size, data.dataset) if budget.active else None
    try:
        return _run_search(
            space,
            data,
            settings,
            config,
            store=store,
            resume=resume,
            on_cycle=on_cycle,
            executor=executor,
            prescored=prescored,
            fitness=fitness,
            proxies=proxies,
            reg=reg,
            budget=budget,
            check=check,
        )
    except InfeasibleError as error:
        if check is None:
            raise
        raise check.infeasible(error.draws) from None


def _run_search(
    space: SearchSpace,
    data: Batch,
    settings: ScoreSettings,
    config: EvolutionConfig | None,
    *,
    store: str | Path | None,
    resume: bool,
    on_cycle: Callable[[CycleReport], None] | None,
    executor: Executor | None,
    prescored: Sequence[tuple[Hashable, Result]],
    fitness: str | None,
    proxies: Sequence[str] | None,
    reg: str | None,
    budget: SizeBudget,
    check: BudgetCheck | None,
) -> SearchOutcome:
    start = time.perf_counter()
    check_reg(reg, settings.mu)
    calibrate = reg == "auto"
    if fitness is not None or proxies is not None:
        policy = search_policy(space, settings, fitness=fitness, proxies=proxies, reg=reg)
        settings, calibrate = policy.settings, policy.calibrate
    calibration = None
    if calibrate:
        calibration = calibrate_for_space(
            space, data, settings, executor=executor, feasible=check
        )
        settings = replace(settings, mu=calibration.mu, sigma=calibration.sigma)
        prescored = calibration.scored
    if config is None:
        d = space.defaults
        config = EvolutionConfig(d.population, d.cycles, d.mutation_times)
    evaluator = Evaluator(data, settings)
    store_settings = {
        **settings.store_settings(data),
        "space": space.name,
        "population": config.population,
        "mutation_times": config.mutation_times,
        "crossover_prob": config.crossover_prob,
        "sample_fraction": config.sample_fraction,
        "search_seed": config.seed,
        "mu": settings.mu,
        "sigma": settings.sigma,
        "size_unit": space.size_unit,
        **budget.store_settings(),
    }
    results: dict[str, Result] = {}
    failed: list[TaskOutcome] = []
    with run_store(store, store_settings, resume=resume) as handle:
        given: list[tuple[float, Hashable]] = []
        for arch, result in prescored:
            key = arch_key(space, arch)
            results[key] = result.with_regularisation(
                settings.mu, settings.sigma, settings.size_unit
            )
            if handle is not None and not handle.has(key):
                handle.write(result_to_record(results[key]))
            given.append((fitness_of(results[key]), arch))
        initial = [arch for _, arch in sorted(given, key=lambda pair: pair[0], reverse=True)]

        def fitness(archs: Sequence[Hashable]) -> list[float]:
            refs = [arch_ref(space, arch) for arch in archs]
            todo = [ref for ref in refs if ref.key not in results]
            scored = run_refs(todo, evaluator, executor=executor, store=handle)
            failed.extend(scored.failed)
            results.update((result.key, result) for result in scored)
            return [
                fitness_of(results[ref.key]) if ref.key in results else float("-inf")
                for ref in refs
            ]

        def checkpoint(state: dict[str, Any]) -> None:
            if handle is not None:
                handle.write_state(STATE_NAME, state)

        def rerank(texts: Sequence[str]) -> list[float]:
            """The aggregate of every architecture scored so far (failed ones: -inf)."""
            keys = [text_key(space, text) for text in texts]
            for key in keys:  # scored before a resume: read back from the store
                if key not in results and handle is not None and handle.has(key):
                    results[key] = record_to_result(handle.read(key, patterns=False), settings)
            set_aggregates([results[k] for k in keys if k in results], settings.proxies)
            return [fitness_of(results[k]) if k in results else float("-inf") for k in keys]

        state = handle.read_state(STATE_NAME) if (handle is not None and resume) else None
        engine = Evolution(
            space,
            fitness,
            config,
            on_cycle=on_cycle,
            checkpoint=checkpoint,
            initial=initial,
            rerank=rerank if settings.proxies else None,
            feasible=check,
        )
        outcome = engine.run(state=state)
        best_arch = space.parse(outcome.best.text)
        best = results.get(arch_key(space, best_arch))
        if best is None:
            # a resumed search whose best was scored before the interruption: the run loop
            # reads it back from the store
            (best,) = run_refs([arch_ref(space, best_arch)], evaluator, store=handle)
    size = evaluation_input_size(space, data)
    dataset = check.dataset if check is not None else space.evaluation_dataset(size, data.dataset)
    return SearchOutcome(
        space=space.name,
        best_arch=best_arch,
        best_text=outcome.best.text,
        best=best,
        evaluation_params=space.evaluation_param_count(best_arch, dataset),
        search=outcome,
        wall_seconds=time.perf_counter() - start,
        config=config,
        results=results,
        failed=failed,
        calibration=calibration,
        choices=dict(best_arch) if isinstance(space, CustomSpace) else None,
        evaluation_dataset=dataset,
        evaluation_flops=space.evaluation_flops(best_arch, size, dataset),
        input_size=size,
        budget=budget,
        data=data.source,
    )


def score_table(
    space: SearchSpace,
    truth: GroundTruth,
    data: Batch,
    settings: ScoreSettings,
    *,
    limit: int | None = None,
    seed: int = 0,
    store: str | Path | None = None,
    resume: bool = False,
    on_arch: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
) -> tuple[ResultList, dict[str, np.ndarray], list[int]]:
    """Score the architectures of a ground-truth table (all, or a seeded subset of ``limit``).

    Results stream to the store one by one, in row order (nothing but scores stays in memory:
    patterns are dropped after writing). Returns the results, the matching accuracy columns
    and the row indices used. With ``executor`` the architectures run there; a row that fails
    is left out of all three and listed in the results' ``failed``. Without one, they run here
    and the first error propagates.
    """
    rows = table_rows(len(truth.archs), limit, seed)
    refs = [arch_ref(space, _parse_row(space, truth, i)) for i in rows]  # fail early on a bad row
    store_settings = {**settings.store_settings(data), "space": space.name, "table": "correlate"}
    with run_store(store, store_settings, resume=resume) as handle:
        # Without a store the patterns would be dropped on arrival: do not make workers send
        # them (a NAS-Bench-201 network's first repeat is 12 MB of packed bits at S = 32).
        evaluator = Evaluator(
            data, settings if handle is not None else replace(settings, keep_patterns="none")
        )
        progress = None if on_arch is None else (lambda done, total, *_: on_arch(done, total))
        results = run_refs(refs, evaluator, executor=executor, store=handle, on_result=progress)
    by_key = {result.key: result for result in results}
    kept = [i for i, ref in enumerate(refs) if ref.key in by_key]
    used = [int(rows[i]) for i in kept]
    accuracies = {name: values[used] for name, values in truth.accuracies.items()}
    return results, accuracies, used


def correlate_table(
    space: SearchSpace,
    truth: GroundTruth,
    data: Batch,
    settings: ScoreSettings,
    *,
    limit: int | None = None,
    seed: int = 0,
    store: str | Path | None = None,
    resume: bool = False,
    on_arch: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
    reg: str | None = None,
    sweep: bool = False,
    bootstrap: int = 1000,
    select: str | None = None,
) -> CorrelationReport:
    """Score a table's architectures and correlate every metric with every accuracy column
    (``swapprobe correlate``); ``reg="auto"`` calibrates μ, σ first, ``sweep`` sweeps
    μ = σ (see :func:`swapprobe.correlate.correlation_report`); ``select="libra"`` adds
    LIBRA's choice of three proxies, chosen on one seeded half and judged on the other
    (:func:`swapprobe.correlate.libra_report`); ``select="rule"`` applies the rule that
    chooses a space's default set (:func:`swapprobe.correlate.rule_report`)."""
    if select not in SELECTIONS:
        raise SettingsError(f"unknown selection rule {select!r}: use libra or rule")
    if limit is not None and limit < 1:
        raise SettingsError(f"{{limit}} must be at least 1, got {limit}")
    check_reg(reg, settings.mu)
    calibration = None
    if reg == "auto":
        calibration = calibrate_for_space(space, data, settings, executor=executor)
        settings = replace(settings, mu=calibration.mu, sigma=calibration.sigma)
    started = time.perf_counter()
    results, accuracies, rows = score_table(
        space,
        truth,
        data,
        settings,
        limit=limit,
        seed=seed,
        store=store,
        resume=resume,
        on_arch=on_arch,
        executor=executor,
    )
    wall = time.perf_counter() - started
    set_aggregates(results, settings.proxies)  # ranks among the table's rows
    competitors = {
        target: {name: values[rows] for name, values in columns.items()}
        for target, columns in truth.competitors.items()
    }
    report = correlation_report(
        results,
        accuracies,
        rows,
        sweep=sweep,
        bootstrap=bootstrap,
        seed=seed,
        competitors=competitors,
    )
    report.failed = list(results.failed)
    if select == "libra" and report.results:
        report.libra = libra_report(report.results, accuracies, seed=seed)
    if select == "rule" and report.results:  # none scored: the failures are the report
        report.rule = rule_report(report.results, accuracies)
    report.wall_seconds = wall
    report.calibration = calibration
    return report


def table_rows(total: int, limit: int | None, seed: int) -> list[int]:
    """The rows a table scoring uses: all, or a seeded sorted subset of ``limit``."""
    rows = list(range(total))
    if limit is not None and limit < total:
        rows = sorted(np.random.default_rng(seed).choice(total, size=limit, replace=False))
    return rows


def _parse_row(space: SearchSpace, truth: GroundTruth, index: int) -> Hashable:
    """Row ``index``'s architecture; a key the space refuses is one line naming the row: a
    CSV's line (``table.csv:7:``), a JSON list's record (``table.json record 2:``)."""
    try:
        return space.parse_table_key(truth.archs[index])
    except UnknownArchitectureError as error:
        line = truth.lines[index] if truth.lines else index + 1
        where = (
            f"{truth.path} record {line}:"
            if truth.path.lower().endswith(".json")
            else f"{truth.path or 'table'}:{line}:"
        )
        raise UnknownArchitectureError(f"{where} {error}") from None


def search_plot(outcome: SearchOutcome, path: str | Path) -> Path:
    """A PNG of a search: how the best fitness grew with the architectures scored, and every
    scored architecture's fitness against its size Θ with the found one starred and μ marked
    (where regularisation steers the search, as in the paper's Fig. 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = outcome.search.history
    scored = [r for r in outcome.results.values() if math.isfinite(fitness_of(r))]
    best = outcome.best
    fig, (grow, size) = plt.subplots(1, 2, figsize=(10, 3.8))
    grow.step([h.evaluations for h in history], [h.best_fitness for h in history], where="post")
    grow.set_xlabel("architectures scored")
    grow.set_ylabel("best fitness so far")
    grow.set_title(f"{outcome.space}: {len(history) - 1} cycles", fontsize=10)
    size.scatter(
        [r.theta for r in scored],
        [fitness_of(r) for r in scored],
        s=6,
        alpha=0.5,
        linewidths=0,
        label=f"scored ({len(scored)})",
    )
    size.scatter(
        [best.theta], [fitness_of(best)], marker="*", s=160, color="C3", label="found", zorder=3
    )
    if best.mu is not None:
        size.axvline(best.mu, color="0.4", linestyle="--", linewidth=1, label=f"μ = {best.mu:.3g}")
    size.set_xlabel(f"Θ (parameters, {best.size_unit})")
    size.set_ylabel("regularised SWAP" if best.mu is not None else "SWAP")
    size.legend(fontsize=8, loc="lower right")
    for ax in (grow, size):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
