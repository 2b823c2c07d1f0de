"""run_search and score_table: real Evaluator scorings of tiny networks on synthetic data.

Scoring dominates the cost (a NAS-Bench-201 export takes about a second), so every call of
``Evaluator.evaluate`` (the one entry point every path takes) goes through :class:`Scorer`: it
counts the calls of one test and memoises the real results across tests (the Evaluator is
seeded and deterministic, so a memoised result is the one a new scoring would give). The counts
are what several tests assert on: nothing scored twice, nothing re-scored on resume.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
from collections.abc import Hashable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from swapprobe.correlate import read_table
from swapprobe.data import Batch, load_batch
from swapprobe.errors import StoreError, UnknownArchitectureError
from swapprobe.evaluate import Evaluator
from swapprobe.evolution import CycleReport, EvolutionConfig
from swapprobe.models import ModelRef, arch_ref
from swapprobe.results import Result, ScoreSettings
from swapprobe.searching import run_search, score_table
from swapprobe.searchspaces import get_space
from swapprobe.searchspaces.base import SearchSpace
from swapprobe.store import PatternStore

PLAIN = ScoreSettings(batch_size=8, repeats=2, baselines=False, keep_patterns="none")
#: μ = σ per space, in the space's unit, near the middle of its scoring networks' sizes
#: (DARTS scoring cells: 1-2.5 thousand parameters; NAS-Bench-201: 0.07-1.5 million)
REGULARISED = {
    "darts": replace(PLAIN, mu=1.5, sigma=1.5),
    "nb201": replace(PLAIN, mu=0.6, sigma=0.6),
}
UNIT = {"K": 1e3, "M": 1e6}
CONFIG = EvolutionConfig(population=6, cycles=4, mutation_times=2)

_REAL_EVALUATE = Evaluator.evaluate
_MEMO: dict[tuple[Any, ...], Result] = {}


class Scorer:
    """Stands in for ``Evaluator.evaluate`` of architectures: counts, memoises, can fail on
    demand."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_on_call: int | None = None  # 1-based call number that raises

    def __call__(self, evaluator: Evaluator, ref: ModelRef) -> Result:
        key = ref.key
        self.calls.append(key)
        if self.fail_on_call is not None and len(self.calls) >= self.fail_on_call:
            raise Interrupted(f"scoring call {len(self.calls)} refused: {key}")
        memo_key = (key, evaluator.settings, evaluator.data.fingerprint)
        if memo_key not in _MEMO:
            _MEMO[memo_key] = _REAL_EVALUATE(evaluator, ref)
        result = copy.copy(_MEMO[memo_key])
        result.patterns = dict(result.patterns)
        result.metadata = dict(result.metadata)
        return result

    def reset(self) -> None:
        self.calls = []
        self.fail_on_call = None


class Interrupted(Exception):
    """Raised to kill a run at a chosen point."""


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Torch only traces the networks for export here; on a busy 2-core machine two intra-op
    threads make tracing about three times slower than one (ONNX Runtime does the scoring)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> Batch:
    return load_batch("synthetic", batch_size=8)


@pytest.fixture
def scorer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scorer]:
    counting = Scorer()

    def evaluate(self: Evaluator, model: Any, **overrides: Any) -> Result:
        assert isinstance(model, ModelRef) and model.space is not None and not overrides
        return counting(self, model)

    monkeypatch.setattr(Evaluator, "evaluate", evaluate)
    yield counting


def hand_fitness(result: Result, settings: ScoreSettings) -> float:
    """The paper's fitness from the per-repeat SWAP and Θ, independent of Result's properties."""
    swap = float(np.mean(result.swap_per_repeat))
    if settings.mu is None or settings.sigma is None:
        return swap
    theta = result.param_count / UNIT[result.size_unit]
    return swap * math.exp(-((theta - settings.mu) ** 2) / settings.sigma)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PoolSpace(SearchSpace):
    """DARTS restricted to a pool of three genotypes: a search must ask for repeats."""

    name: ClassVar[str] = "darts"
    size_unit = "K"

    def __init__(self) -> None:
        self.inner = get_space("darts")
        rng = np.random.default_rng(11)
        self.pool = [self.inner.sample(rng) for _ in range(3)]

    def sample(self, rng: np.random.Generator) -> Hashable:
        return self.pool[int(rng.integers(len(self.pool)))]

    def mutate(self, arch: Hashable, rng: np.random.Generator) -> Hashable:
        return self.pool[int(rng.integers(len(self.pool)))]

    def crossover(
        self, first: Hashable, second: Hashable, rng: np.random.Generator
    ) -> tuple[Hashable, Hashable]:
        return second, first

    def parse(self, text: str) -> Hashable:
        return self.inner.parse(text)

    def format(self, arch: Hashable) -> str:
        return self.inner.format(arch)

    def build_scoring_network(self, arch: Hashable) -> Any:
        return self.inner.build_scoring_network(arch)

    def build_evaluation_network(self, arch: Hashable, dataset: str = "cifar10") -> Any:
        return self.inner.build_evaluation_network(arch, dataset)

    def scoring_param_count(self, arch: Hashable) -> int:
        return self.inner.scoring_param_count(arch)

    def evaluation_param_count(self, arch: Hashable, dataset: str = "cifar10") -> int:
        return self.inner.evaluation_param_count(arch, dataset)


# --- run_search -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nb201", "darts"])
def test_best_is_the_best_of_everything_scored(name: str, data: Batch, scorer: Scorer) -> None:
    space = get_space(name)
    settings = REGULARISED[name]
    reports: list[CycleReport] = []
    outcome = run_search(space, data, settings, CONFIG, on_cycle=reports.append)
    search = outcome.search

    # every scoring went through the Evaluator, once per architecture
    assert len(scorer.calls) == len(set(scorer.calls)) == search.evaluations
    assert set(outcome.results) == set(scorer.calls)
    assert search.evaluations >= CONFIG.population + CONFIG.cycles  # at least one mutant a cycle

    fitness = {key: hand_fitness(r, settings) for key, r in outcome.results.items()}
    assert len(set(fitness.values())) > 1, "all fitness values equal: the test would be vacuous"
    for key, result in outcome.results.items():
        assert result.size_unit == space.size_unit
        assert result.reg_swap == pytest.approx(fitness[key], rel=1e-12)  # fitness is reg. SWAP
        assert result.reg_swap < result.swap  # f(Θ) < 1 unless Θ = μ exactly

    # the population: members' fitness is their result's regularised SWAP
    members = [f"{name}:{ind.text}" for ind in search.population]
    assert len(members) == CONFIG.population
    for ind in search.population:
        assert ind.fitness == pytest.approx(fitness[f"{name}:{ind.text}"], rel=1e-12)
    entered = [f for report in reports for f in report.population_fitness]
    assert [r.cycle for r in reports] == list(range(CONFIG.cycles + 1))

    # the best is the maximum over every scored architecture (also those never in the population)
    best_key = max(fitness, key=fitness.__getitem__)
    assert search.best.fitness == pytest.approx(fitness[best_key], rel=1e-12)
    assert search.best.fitness >= max(entered) - 1e-9
    assert fitness[f"{name}:{outcome.best_text}"] == pytest.approx(fitness[best_key], rel=1e-12)
    assert outcome.best.key == f"{name}:{outcome.best_text}"
    assert outcome.best.reg_swap == pytest.approx(search.best.fitness, rel=1e-12)
    assert space.format(outcome.best_arch) == outcome.best_text
    assert outcome.evaluation_params == space.evaluation_param_count(outcome.best_arch)

    # the history: best so far never gets worse and ends at the best
    history = [h.best_fitness for h in search.history]
    assert len(history) == CONFIG.cycles + 1
    assert all(b >= a for a, b in itertools.pairwise(history))
    assert history[-1] == search.best.fitness
    assert outcome.wall_seconds > 0


@pytest.mark.parametrize("name", ["darts", "nb201"])
def test_resume_equals_uninterrupted(
    name: str, data: Batch, scorer: Scorer, tmp_path: Path
) -> None:
    space = get_space(name)
    settings = REGULARISED[name]
    full = run_search(space, data, settings, CONFIG, store=tmp_path / "full.h5")
    full_calls = list(scorer.calls)

    def kill_at_cycle_2(report: CycleReport) -> None:
        if report.cycle == 2:
            raise Interrupted("killed after cycle 2")

    scorer.reset()
    store = tmp_path / "run.h5"
    with pytest.raises(Interrupted):
        run_search(space, data, settings, CONFIG, store=store, on_cycle=kill_at_cycle_2)
    first_calls = list(scorer.calls)
    with PatternStore.open(store) as saved:
        assert saved.read_state("search")["cycle"] == 2
        assert sorted(saved.keys()) == sorted(first_calls)

    scorer.reset()
    resumed = run_search(space, data, settings, CONFIG, store=store, resume=True)
    second_calls = list(scorer.calls)

    assert resumed.best_text == full.best_text
    assert resumed.search.best == full.search.best
    assert resumed.search.history == full.search.history
    assert resumed.search.population == full.search.population
    assert resumed.search.evaluations == full.search.evaluations
    assert resumed.search.cache_hits == full.search.cache_hits
    np.testing.assert_array_equal(resumed.best.swap_per_repeat, full.best.swap_per_repeat)
    assert resumed.best.reg_swap == full.best.reg_swap
    assert resumed.evaluation_params == full.evaluation_params
    # nothing scored before the kill is scored again, and together the two runs scored
    # exactly what the uninterrupted one did
    assert not set(first_calls) & set(second_calls)
    assert sorted(first_calls + second_calls) == sorted(full_calls)
    with PatternStore.open(store) as saved:
        assert saved.read_state("search")["cycle"] == CONFIG.cycles
        assert sorted(saved.keys()) == sorted(full_calls)


def test_identical_architectures_are_scored_once(data: Batch, scorer: Scorer) -> None:
    space = PoolSpace()
    outcome = run_search(space, data, PLAIN, CONFIG)
    pool = {f"darts:{space.format(a)}" for a in space.pool}
    # the search asked for far more architectures than the pool holds
    asked = outcome.search.evaluations + outcome.search.cache_hits
    assert asked >= CONFIG.population + CONFIG.cycles * CONFIG.mutation_times
    assert len(scorer.calls) == len(set(scorer.calls)) == outcome.search.evaluations
    assert set(scorer.calls) <= pool
    # without μ/σ the fitness is plain SWAP
    for result in outcome.results.values():
        assert result.reg_swap is None
    for ind in outcome.search.population:
        swaps = outcome.results[f"darts:{ind.text}"].swap_per_repeat
        assert ind.fitness == pytest.approx(float(np.mean(swaps)))
    best = max(float(np.mean(r.swap_per_repeat)) for r in outcome.results.values())
    assert outcome.search.best.fitness == pytest.approx(best)


def test_store_refusals_leave_the_store_unchanged(
    data: Batch, scorer: Scorer, tmp_path: Path
) -> None:
    space = PoolSpace()
    store = tmp_path / "run.h5"
    first = run_search(space, data, PLAIN, CONFIG, store=store)
    before = digest(store)

    scorer.reset()
    with pytest.raises(StoreError, match="exists"):
        run_search(space, data, PLAIN, CONFIG, store=store)
    assert digest(store) == before

    for other in (replace(CONFIG, seed=1), replace(CONFIG, population=7)):
        with pytest.raises(StoreError, match="other settings"):
            run_search(space, data, PLAIN, other, store=store, resume=True)
        assert digest(store) == before
    with pytest.raises(StoreError, match="other settings"):
        run_search(space, data, replace(PLAIN, repeats=3), CONFIG, store=store, resume=True)
    assert digest(store) == before
    assert scorer.calls == []  # refused before any scoring

    # the same settings resume a finished search: same answer, nothing scored
    again = run_search(space, data, PLAIN, CONFIG, store=store, resume=True)
    assert scorer.calls == []
    assert again.best_text == first.best_text
    assert again.search.history == first.search.history


def test_resume_extends_a_finished_search(data: Batch, scorer: Scorer, tmp_path: Path) -> None:
    space = get_space("darts")
    settings = REGULARISED["darts"]
    store = tmp_path / "run.h5"
    short = replace(CONFIG, cycles=2)
    run_search(space, data, settings, short, store=store)
    scorer.reset()
    extended = run_search(space, data, settings, CONFIG, store=store, resume=True)
    full = run_search(space, data, settings, CONFIG)
    assert extended.search.history == full.search.history
    assert extended.best_text == full.best_text


# --- score_table ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def darts_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    space = get_space("darts")
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("table") / "darts.csv"
    lines = []
    for i in range(8):
        text = space.format(space.sample(rng))
        lines.append(f'"{text}",{90 + 0.25 * i}\n')
    path.write_text("".join(lines))
    return path


def scored_keys(results: list[Result]) -> list[str]:
    return [r.key for r in results]


def test_score_table_subset_is_seeded(darts_table: Path, data: Batch, scorer: Scorer) -> None:
    space = get_space("darts")
    truth = read_table(darts_table)
    results, accuracies, rows = score_table(space, truth, data, PLAIN, limit=4, seed=3)
    again = score_table(space, truth, data, PLAIN, limit=4, seed=3)
    assert again[2] == rows
    assert len(rows) == len(set(rows)) == 4
    assert rows == sorted(rows) and all(0 <= i < 8 for i in rows)
    others = {tuple(score_table(space, truth, data, PLAIN, limit=4, seed=s)[2]) for s in range(6)}
    assert len(others) > 1  # the seed matters
    assert scored_keys(results) == [
        f"darts:{space.format(space.parse(truth.archs[i]))}" for i in rows
    ]
    np.testing.assert_array_equal(accuracies["accuracy"], truth.accuracies["accuracy"][rows])
    for result in results:
        assert result.patterns == {}
    # without a limit (or a limit as large as the table) every row, in order
    _, all_acc, all_rows = score_table(space, truth, data, PLAIN, limit=8)
    assert all_rows == list(range(8))
    np.testing.assert_array_equal(all_acc["accuracy"], truth.accuracies["accuracy"])


def test_score_table_store_and_resume(
    darts_table: Path, data: Batch, scorer: Scorer, tmp_path: Path
) -> None:
    space = get_space("darts")
    truth = read_table(darts_table)
    settings = replace(PLAIN, keep_patterns="first")
    store = tmp_path / "table.h5"

    # a run killed on its second scoring keeps the first architecture
    scorer.fail_on_call = 2
    with pytest.raises(Interrupted):
        score_table(space, truth, data, settings, limit=5, seed=1, store=store)
    killed_first = scorer.calls[0]
    with PatternStore.open(store) as saved:
        assert saved.keys() == [killed_first]

    scorer.reset()
    results, _, rows = score_table(
        space, truth, data, settings, limit=5, seed=1, store=store, resume=True
    )
    assert len(results) == 5
    assert killed_first not in scorer.calls  # read back, not re-scored
    assert sorted([*scorer.calls, killed_first]) == sorted(scored_keys(results))
    with PatternStore.open(store) as saved:
        assert sorted(saved.keys()) == sorted(scored_keys(results))
        assert all(saved.kept_repeats(key) == [0] for key in saved.keys())  # noqa: SIM118

    # resuming a complete store scores nothing: the scorer may not be called at all
    scorer.reset()
    scorer.fail_on_call = 1
    back, _, rows_back = score_table(
        space, truth, data, settings, limit=5, seed=1, store=store, resume=True
    )
    assert scorer.calls == []
    assert rows_back == rows
    for old, new in zip(results, back, strict=True):
        assert new.key == old.key
        np.testing.assert_array_equal(new.swap_per_repeat, old.swap_per_repeat)
        assert new.param_count == old.param_count
        assert new.units == old.units
        assert new.size_unit == "K"

    # without resume the existing store is refused and left alone
    before = digest(store)
    with pytest.raises(StoreError, match="exists"):
        score_table(space, truth, data, settings, limit=5, seed=1, store=store)
    assert digest(store) == before


def test_score_table_scores_a_repeated_row_once(
    darts_table: Path, data: Batch, scorer: Scorer, tmp_path: Path
) -> None:
    lines = darts_table.read_text().splitlines(keepends=True)
    path = tmp_path / "dup.csv"
    path.write_text("".join([*lines[:3], lines[0]]))
    truth = read_table(path)
    results, accuracies, _ = score_table(get_space("darts"), truth, data, PLAIN)
    assert len(results) == 4 and len(accuracies["accuracy"]) == 4
    assert results[3].key == results[0].key
    np.testing.assert_array_equal(results[3].swap_per_repeat, results[0].swap_per_repeat)
    assert len(scorer.calls) == len(set(scorer.calls)) == 3


def test_score_table_bad_row_names_its_line(
    darts_table: Path, data: Batch, scorer: Scorer, tmp_path: Path
) -> None:
    lines = darts_table.read_text().splitlines(keepends=True)
    path = tmp_path / "bad.csv"
    path.write_text("".join([*lines[:2], "\"Genotype(normal=[('conv_9x9', 0)])\",91.0\n"]))
    with pytest.raises(UnknownArchitectureError, match=r"bad\.csv:3"):
        score_table(get_space("darts"), read_table(path), data, PLAIN)
    assert scorer.calls == []  # failed before any scoring


def test_scoring_is_deterministic(data: Batch) -> None:
    # what the memo in Scorer relies on: two fresh scorings of one architecture agree
    space = get_space("darts")
    arch = space.sample(np.random.default_rng(2))
    first = _REAL_EVALUATE(Evaluator(data, PLAIN), arch_ref(space, arch))
    second = _REAL_EVALUATE(Evaluator(data, PLAIN), arch_ref(space, arch))
    np.testing.assert_array_equal(first.swap_per_repeat, second.swap_per_repeat)
    assert first.param_count == second.param_count == space.scoring_param_count(arch)
    assert first.key == f"darts:{space.format(arch)}"


def test_prescored_architectures_start_the_search_and_are_not_scored_again(
    data: Batch, scorer: Scorer
) -> None:
    """What ``--reg auto`` hands over: random architectures scored with plain SWAP. The P
    fittest under the search's μ, σ (hand-computed) form the initial population, and none
    of them reaches the scorer again."""
    space = get_space("nb201")
    settings = REGULARISED["nb201"]
    rng = np.random.default_rng(4)
    archs = list({space.format(a): a for a in (space.sample(rng) for _ in range(10))}.values())
    evaluator = Evaluator(data, PLAIN)
    prescored = [(a, evaluator.evaluate_architecture(space, a)) for a in archs]
    scorer.reset()
    config = EvolutionConfig(population=4, cycles=2, mutation_times=2, crossover_prob=0)
    reports: list[CycleReport] = []
    outcome = run_search(
        space, data, settings, config, prescored=prescored, on_cycle=reports.append
    )
    given = {f"nb201:{space.format(a)}" for a in archs}
    assert not given & set(scorer.calls)
    fittest = sorted((hand_fitness(r, settings) for _, r in prescored), reverse=True)[:4]
    assert sorted(reports[0].population_fitness, reverse=True) == pytest.approx(fittest)
    assert len(scorer.calls) == config.cycles * config.mutation_times
    assert outcome.search.best.fitness >= fittest[0]


# --- the search policy: the fitness decides proxies and calibration -------------------------
def test_policy_follows_the_fitness() -> None:
    """What ``swapprobe search`` derives from ``--fitness``, ``--proxies`` and ``--reg``,
    checked against the spaces' declared defaults."""
    from swapprobe.errors import SettingsError
    from swapprobe.searching import search_policy

    nb201, darts = get_space("nb201"), get_space("darts")
    default = search_policy(nb201, PLAIN)  # nb201's declared best: the aggregate
    assert default.fitness == "aggregate" and not default.calibrate
    assert default.proxies == ("expressivity", "trainability", "flops", "lswag")
    assert default.settings.baselines is False  # NWOT is not among them
    nwot = search_policy(nb201, PLAIN, proxies=["nwot", "params"])
    assert nwot.proxies == ("nwot", "params") and nwot.settings.baselines is True
    swap = search_policy(darts, replace(PLAIN, proxies=("params",)))
    assert (swap.fitness, swap.proxies, swap.calibrate) == ("swap", (), False)
    assert search_policy(darts, PLAIN, fitness="reg-swap").calibrate  # no μ given: calibrate
    assert not search_policy(darts, REGULARISED["darts"], fitness="reg-swap").calibrate
    assert search_policy(darts, PLAIN, reg="auto").calibrate

    refusals = [
        (dict(fitness="aggregate", proxies=()), "fitness"),
        (dict(fitness="swap", proxies=["params"]), "proxies"),
        (dict(fitness="best"), None),
    ]
    for keywords, option in refusals:
        with pytest.raises(SettingsError) as caught:
            search_policy(darts, PLAIN, **keywords)  # type: ignore[arg-type]
        assert caught.value.option == option
    with pytest.raises(SettingsError) as caught:
        search_policy(darts, REGULARISED["darts"], reg="auto")
    assert caught.value.option == "reg"


def test_run_search_with_a_fitness_is_the_search_of_its_settings(
    data: Batch, scorer: Scorer
) -> None:
    """``run_search(fitness=...)`` replaces the settings' proxies by the fitness's: SWAP
    ranks as a search given plain settings, the aggregate as one given the proxies."""
    space = get_space("darts")
    with_params = replace(PLAIN, proxies=("params",))
    swap = run_search(space, data, with_params, CONFIG, fitness="swap")
    plain = run_search(space, data, PLAIN, CONFIG)
    assert swap.best_text == plain.best_text
    assert [h.best_fitness for h in swap.search.history] == [
        h.best_fitness for h in plain.search.history
    ]
    assert all(r.aggregate is None for r in swap.results.values())  # ranked by SWAP

    aggregate = run_search(space, data, PLAIN, CONFIG, fitness="aggregate", proxies=["params"])
    given = run_search(space, data, with_params, CONFIG)
    assert aggregate.best_text == given.best_text
    assert [h.best_fitness for h in aggregate.search.history] == [
        h.best_fitness for h in given.search.history
    ]
    assert all(r.aggregate is not None for r in aggregate.results.values())


def test_a_search_plan_from_keywords_is_the_policy_search(data: Batch, scorer: Scorer) -> None:
    """``plan_search`` (what ``swapprobe search`` runs) assembles the settings written out
    by hand here and finds what ``run_search(fitness=...)`` finds with them."""
    from swapprobe.api import plan_search

    found = plan_search(
        "darts",
        data=data,
        repeats=2,
        population=CONFIG.population,
        cycles=CONFIG.cycles,
        mutation_times=CONFIG.mutation_times,
        fitness="swap",
        executor="local",
    ).run()
    by_hand = replace(PLAIN, size_unit="K")  # darts' unit; no proxies, so no baselines
    assert found.settings == by_hand
    assert found.setup.config == CONFIG
    direct = run_search(get_space("darts"), data, by_hand, CONFIG, fitness="swap")
    assert found.outcome.best_text == direct.best_text
    assert [h.best_fitness for h in found.outcome.search.history] == [
        h.best_fitness for h in direct.search.history
    ]
    with pytest.raises(TypeError):
        plan_search("darts", populaton=3)  # a misspelt keyword is refused, not ignored


# --- a size budget: hard limits on the evaluation network -----------------------------------
#: budgets that bind: about 45 % of random nb201 networks have more than 0.3 M parameters
#: (CIFAR-10 head), about 35 % of random DARTS CIFAR networks more than 400 M multiply-adds
BUDGETS = {"nb201": {"max_params": "0.3M"}, "darts": {"max_flops": 400_000_000}}


def _evaluation_size(space: SearchSpace, arch: Hashable, limit: str) -> int:
    if limit == "max_params":
        return space.evaluation_param_count(arch)
    return space.evaluation_flops(arch, (32, 32))


@pytest.mark.parametrize("name", ["nb201", "darts"])
def test_a_budget_is_met_by_everything_scored(name: str, data: Batch, scorer: Scorer) -> None:
    space = get_space(name)
    ((limit, value),) = BUDGETS[name].items()
    bound = 300_000 if name == "nb201" else 400_000_000
    rng = np.random.default_rng(0)
    sizes = [_evaluation_size(space, space.sample(rng), limit) for _ in range(100)]
    assert sum(s > bound for s in sizes) >= 20  # the budget rules out a good share
    config = EvolutionConfig(population=6, cycles=6, mutation_times=2, seed=1)
    outcome = run_search(space, data, PLAIN, config, **{limit: value})
    assert scorer.calls and len(scorer.calls) == outcome.search.evaluations
    for key in scorer.calls:
        arch = space.parse(key.split(":", 1)[1])
        assert _evaluation_size(space, arch, limit) <= bound, key
    assert getattr(outcome.budget, limit) == bound
    assert outcome.evaluation_dataset == "cifar10"
    assert outcome.evaluation_params == space.evaluation_param_count(outcome.best_arch)
    assert outcome.evaluation_flops == space.evaluation_flops(outcome.best_arch, (32, 32))
    assert outcome.to_dict()[limit] == bound


@pytest.mark.parametrize("reg", [None, "auto"])
def test_a_budget_below_the_smallest_member_fails_in_one_line_unscored(
    reg: str | None, data: Batch, scorer: Scorer
) -> None:
    from swapprobe.errors import SettingsError

    space = get_space("nb201")
    smallest = space.evaluation_param_count("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(SettingsError) as raised:
        run_search(space, data, PLAIN, CONFIG, max_params=10_000, reg=reg)
    message = str(raised.value)
    assert "\n" not in message and raised.value.option == "max_params"
    assert f"smallest seen {smallest / 1e6:.3f} M after 1000 draws" in message
    assert message.startswith("no architecture of nb201 has at most 0.010 M parameters")
    assert scorer.calls == []


def test_a_plan_refuses_a_budget_that_is_not_a_count_before_any_work(scorer: Scorer) -> None:
    from swapprobe.api import plan_search
    from swapprobe.errors import SettingsError

    for keywords in ({"max_params": "6X"}, {"max_flops": 0}):
        with pytest.raises(SettingsError) as raised:
            plan_search("nb201", **keywords).run()
        assert raised.value.option == next(iter(keywords))
    assert scorer.calls == []
