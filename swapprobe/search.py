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

from swapprobe.correlate import GroundTruth
from swapprobe.data import Batch
from swapprobe.errors import UnknownArchitectureError
from swapprobe.evaluate import Evaluator, Result, ScoreSettings
from swapprobe.evolution import CycleReport, Evolution, EvolutionConfig, SearchResult
from swapprobe.executors import Executor, LocalExecutor, ResultList, TaskOutcome, arch_task
from swapprobe.searchspaces.base import SearchSpace

__all__ = ["SearchOutcome", "fitness_of", "run_search", "score_table", "search_plot"]

STATE_NAME = "search"


def fitness_of(result: Result) -> float:
    """The search's fitness: regularised SWAP when μ/σ are set, else SWAP (as the paper)."""
    reg = result.reg_swap
    return float(result.swap if reg is None else reg)


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
    #: architectures that failed twice on the executor (their fitness was -inf)
    failed: list[TaskOutcome] = field(default_factory=list)


def _open_store(path: str | Path | None, settings: dict[str, Any], resume: bool) -> Any:
    if path is None:
        return None
    from swapprobe.store import open_for_run

    return open_for_run(path, settings, resume=resume)


def run_search(
    space: SearchSpace,
    data: Batch,
    settings: ScoreSettings,
    config: EvolutionConfig,
    *,
    store: str | Path | None = None,
    resume: bool = False,
    on_cycle: Callable[[CycleReport], None] | None = None,
    evaluate_batch: Callable[[Evaluator, SearchSpace, Sequence[Hashable]], list[Result]]
    | None = None,
    executor: Executor | None = None,
    prescored: Sequence[tuple[Hashable, Result]] = (),
) -> SearchOutcome:
    """Algorithm 1 of SWAP-NAS over ``space``; every scoring goes through the Evaluator.

    ``prescored`` are random architectures already scored with these settings (the ones
    ``--reg auto`` calibrated on): they are never scored again, and the P fittest of them
    form the initial population in place of P fresh random samples (a fresh search only).

    With ``store``, every scored architecture is written as it is scored and the engine state
    after every cycle, so ``resume=True`` continues a killed search to the same result as an
    uninterrupted run with the same seed.

    With ``executor`` (see :mod:`swapprobe.executors`), each batch the engine asks for (the
    initial population, a cycle's crossover children, its mutants) is scored in parallel; an
    architecture that fails twice gets fitness -inf and is listed in ``failed``.
    """
    from swapprobe.api import record_to_result, result_to_record

    start = time.perf_counter()
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
    }
    handle = _open_store(store, store_settings, resume)
    results: dict[str, Result] = {}
    given: list[tuple[float, Hashable]] = []
    for arch, result in prescored:
        key = f"{space.name}:{space.format(arch)}"
        results[key] = result.with_regularisation(settings.mu, settings.sigma, settings.size_unit)
        if handle is not None and not handle.has(key):
            handle.write(result_to_record(results[key]))
        given.append((fitness_of(results[key]), arch))
    initial = [arch for _, arch in sorted(given, key=lambda pair: pair[0], reverse=True)]
    failed: list[TaskOutcome] = []
    batch_eval = evaluate_batch or _evaluate_in_process
    if evaluate_batch is None and executor is not None:
        batch_eval = _executor_batch(executor, failed)

    def fitness(archs: Sequence[Hashable]) -> list[float]:
        todo = []
        for arch in archs:
            key = f"{space.name}:{space.format(arch)}"
            if key in results:
                continue
            if handle is not None and handle.has(key):
                results[key] = record_to_result(handle.read(key, patterns=False), settings)
            else:
                todo.append(arch)
        for result in batch_eval(evaluator, space, todo):
            results[result.key] = result
            if handle is not None:
                handle.write(result_to_record(result))
        keys = [f"{space.name}:{space.format(a)}" for a in archs]
        return [fitness_of(results[k]) if k in results else float("-inf") for k in keys]

    def checkpoint(state: dict[str, Any]) -> None:
        if handle is not None:
            handle.write_state(STATE_NAME, state)

    try:
        state = handle.read_state(STATE_NAME) if (handle is not None and resume) else None
        engine = Evolution(
            space, fitness, config, on_cycle=on_cycle, checkpoint=checkpoint, initial=initial
        )
        outcome = engine.run(state=state)
        best_arch = space.parse(outcome.best.text)
        best_key = f"{space.name}:{outcome.best.text}"
        best = results.get(best_key)
        if best is None and handle is not None and handle.has(best_key):
            # a resumed search whose best was scored before the interruption
            best = record_to_result(handle.read(best_key, patterns=False), settings)
        if best is None:
            best = evaluator.evaluate_architecture(space, best_arch)
    finally:
        if handle is not None:
            handle.close()
    return SearchOutcome(
        space=space.name,
        best_arch=best_arch,
        best_text=outcome.best.text,
        best=best,
        evaluation_params=space.evaluation_param_count(best_arch),
        search=outcome,
        wall_seconds=time.perf_counter() - start,
        config=config,
        results=results,
        failed=failed,
    )


def _evaluate_in_process(
    evaluator: Evaluator, space: SearchSpace, archs: Sequence[Hashable]
) -> list[Result]:
    return [evaluator.evaluate_architecture(space, arch) for arch in archs]


def _executor_batch(
    executor: Executor, failed: list[TaskOutcome]
) -> Callable[[Evaluator, SearchSpace, Sequence[Hashable]], list[Result]]:
    """An ``evaluate_batch`` that maps a batch over ``executor``; failures go to ``failed``."""

    def evaluate(
        evaluator: Evaluator, space: SearchSpace, archs: Sequence[Hashable]
    ) -> list[Result]:
        tasks = [arch_task(i, space, arch) for i, arch in enumerate(archs)]
        results = []
        for outcome in executor.map(evaluator, tasks):
            if outcome.result is None:
                failed.append(outcome)
            else:
                results.append(outcome.result)
        return results

    return evaluate


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
    twice is left out of all three and listed in the results' ``failed``. Without one, they
    run here and the first error propagates.
    """
    from swapprobe.api import record_to_result, result_to_record

    rows = list(range(len(truth.archs)))
    if limit is not None and limit < len(rows):
        rows = sorted(np.random.default_rng(seed).choice(len(rows), size=limit, replace=False))
    archs = [_parse_row(space, truth, i) for i in rows]  # fail early on a bad row
    store_settings = {**settings.store_settings(data), "space": space.name, "table": "correlate"}
    handle = _open_store(store, store_settings, resume)
    # Without a store the patterns would be dropped on arrival: do not make workers send them
    # (a NAS-Bench-201 network's first repeat is 12 MB of packed bits at S = 32).
    evaluator = Evaluator(
        data, settings if handle is not None else replace(settings, keep_patterns="none")
    )
    runner = executor if executor is not None else LocalExecutor(report_failures=False)
    slots: list[Result | None] = [None] * len(archs)
    positions: dict[str, list[int]] = {}  # a repeated row is scored once
    for index, arch in enumerate(archs):
        positions.setdefault(f"{space.name}:{space.format(arch)}", []).append(index)
    failed: list[TaskOutcome] = []
    done = 0

    def settle(key: str, result: Result | None) -> None:
        nonlocal done
        for n, index in enumerate(positions[key]):
            slots[index] = result if n == 0 or result is None else replace(result)
            done += 1
            if on_arch is not None:
                on_arch(done, len(archs))

    try:
        tasks = []
        for key, where in positions.items():
            if handle is not None and handle.has(key):
                settle(key, record_to_result(handle.read(key, patterns=False), settings))
            else:
                tasks.append(arch_task(where[0], space, archs[where[0]]))
        for outcome in runner.map(evaluator, tasks):
            result = outcome.result
            if result is None:
                failed.append(outcome)
            else:
                if handle is not None:
                    handle.write(result_to_record(result))
                result.patterns = {}
            settle(outcome.key, result)
    finally:
        if handle is not None:
            handle.close()
    kept = [i for i, result in enumerate(slots) if result is not None]
    used = [int(rows[i]) for i in kept]
    accuracies = {name: values[used] for name, values in truth.accuracies.items()}
    return ResultList([slots[i] for i in kept], failed), accuracies, used  # type: ignore[misc]


def _parse_row(space: SearchSpace, truth: GroundTruth, index: int) -> Hashable:
    try:
        return space.parse(truth.archs[index])
    except UnknownArchitectureError as error:
        line = truth.lines[index] if truth.lines else index + 1
        raise UnknownArchitectureError(f"{truth.path or 'table'}:{line}: {error}") from None


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
