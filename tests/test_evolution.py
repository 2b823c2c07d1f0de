"""The SWAP-NAS engine on a toy space of bit strings, where the optimum is known.

The toy space stands in for DARTS so the engine is tested alone: one-max (fitness = number of
ones) has a single optimum, many ties (which exercise the deterministic tie-breaks) and is
cheap enough to run full default-sized searches in milliseconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from swapprobe.errors import InfeasibleError, SettingsError, UnknownArchitectureError
from swapprobe.evolution import (
    DEFAULT_CYCLES,
    DEFAULT_MUTATION_TIMES,
    DEFAULT_POPULATION,
    MAX_FEASIBLE_DRAWS,
    CycleReport,
    Evolution,
    EvolutionConfig,
    SearchResult,
)
from swapprobe.searchspaces.base import SearchSpace

Bits = tuple[int, ...]


class BitSpace(SearchSpace):
    """Bit strings of fixed length: flip-one-bit mutation, one-point crossover."""

    name: ClassVar[str] = "bits"
    size_unit = "K"

    def __init__(self, length: int = 12) -> None:
        self.length = length
        self.crossovers = 0

    def sample(self, rng: np.random.Generator) -> Bits:
        return tuple(int(b) for b in rng.integers(0, 2, self.length))

    def mutate(self, arch: Hashable, rng: np.random.Generator) -> Bits:
        bits = list(_bits(arch))
        i = int(rng.integers(self.length))
        bits[i] = 1 - bits[i]
        return tuple(bits)

    def crossover(
        self, first: Hashable, second: Hashable, rng: np.random.Generator
    ) -> tuple[Bits, Bits]:
        self.crossovers += 1
        a, b = _bits(first), _bits(second)
        cut = int(rng.integers(1, self.length))
        return a[:cut] + b[cut:], b[:cut] + a[cut:]

    def parse(self, text: str) -> Bits:
        if len(text) != self.length or set(text) - {"0", "1"}:
            raise UnknownArchitectureError(f"not a {self.length}-bit string: {text!r}")
        return tuple(int(c) for c in text)

    def format(self, arch: Hashable) -> str:
        return "".join(str(b) for b in _bits(arch))

    def build_scoring_network(self, arch: Hashable) -> Any:
        raise NotImplementedError

    def build_evaluation_network(self, arch: Hashable, dataset: str = "cifar10") -> Any:
        raise NotImplementedError


def _bits(arch: Hashable) -> Bits:
    assert isinstance(arch, tuple)
    return arch


def one_max(arch: Hashable) -> float:
    return float(sum(_bits(arch)))


class CountingFitness:
    """One-max (plus an optional size term) that records every batch it is given."""

    def __init__(self, space: BitSpace, size_weight: float = 0.0) -> None:
        self.space = space
        self.size_weight = size_weight
        self.batches: list[list[str]] = []

    def __call__(self, archs: Sequence[Hashable]) -> list[float]:
        self.batches.append([self.space.format(a) for a in archs])
        # the "size" term: a mild preference for ones early in the string, breaking ties
        return [
            one_max(a) + self.size_weight * sum(b * (i + 1) for i, b in enumerate(_bits(a)))
            for a in archs
        ]

    @property
    def texts(self) -> list[str]:
        return [t for batch in self.batches for t in batch]


SMALL = EvolutionConfig(population=10, cycles=40, mutation_times=3, seed=3)


def _search(
    config: EvolutionConfig = SMALL, length: int = 12, **kwargs: Any
) -> tuple[SearchResult, BitSpace, CountingFitness]:
    space = BitSpace(length)
    fitness = CountingFitness(space)
    result = Evolution(space, fitness, config, **kwargs).run()
    return result, space, fitness


def test_population_size_is_constant_and_elitism_holds() -> None:
    reports: list[CycleReport] = []
    result, _, fitness = _search(on_cycle=reports.append)
    assert [r.cycle for r in reports] == list(range(SMALL.cycles + 1))
    assert all(len(r.population_fitness) == SMALL.population for r in reports)
    assert len(result.population) == SMALL.population
    population_best = [max(r.population_fitness) for r in reports]
    assert population_best == sorted(population_best)  # never decreases
    # the best-so-far of the reports never decreases either and ends at the result's best
    assert [r.best.fitness for r in reports] == sorted(r.best.fitness for r in reports)
    assert reports[-1].best == result.best
    # the result's best is the best of everything the fitness function ever scored
    assert result.best.fitness == max(one_max(_parse(t)) for t in fitness.texts)


def test_best_population_member_never_leaves() -> None:
    # Every member that ever joined is visible through the reports; the best of them must
    # still be in the final population (removal of the worst is elitist).
    best_seen = -math.inf

    def on_cycle(report: CycleReport) -> None:
        nonlocal best_seen
        best_seen = max(best_seen, *report.population_fitness)

    result, _, _ = _search(on_cycle=on_cycle)
    assert max(ind.fitness for ind in result.population) == best_seen


def test_evaluations_match_the_algorithm() -> None:
    config = EvolutionConfig(population=12, cycles=30, mutation_times=4, seed=1)
    result, space, fitness = _search(config)
    requested = config.population + 2 * space.crossovers + config.cycles * config.mutation_times
    assert result.evaluations + result.cache_hits == requested
    assert result.evaluations == len(fitness.texts)
    assert 0 < space.crossovers < config.cycles  # a fair coin: some of each
    assert result.cache_hits > 0  # a 4096-point space is revisited
    # one batch for the initial population, then at most two per cycle
    assert fitness.batches[0] and len(fitness.batches[0]) <= config.population
    assert len(fitness.batches) <= 1 + 2 * config.cycles
    assert all(batch for batch in fitness.batches)  # never an empty call


def test_crossover_probability_extremes() -> None:
    never, space_never, _ = _search(EvolutionConfig(population=8, cycles=20, crossover_prob=0.0))
    always, space_always, _ = _search(EvolutionConfig(population=8, cycles=20, crossover_prob=1))
    assert space_never.crossovers == 0
    assert space_always.crossovers == 20
    assert never.evaluations + never.cache_hits == 8 + 20 * DEFAULT_MUTATION_TIMES
    assert always.evaluations + always.cache_hits == 8 + 20 * (DEFAULT_MUTATION_TIMES + 2)


def test_fitness_never_sees_a_text_twice() -> None:
    _, _, fitness = _search(EvolutionConfig(population=10, cycles=200, seed=5), length=6)
    assert len(fitness.texts) == len(set(fitness.texts))
    assert len(fitness.texts) <= 2**6


def test_initial_population_has_no_duplicates_when_space_allows() -> None:
    result, _, _ = _search(EvolutionConfig(population=30, cycles=0), length=5)
    assert len({ind.text for ind in result.population}) == 30
    assert all(ind.born == -1 for ind in result.population)


def test_tiny_space_keeps_duplicates_and_terminates() -> None:
    result, _, fitness = _search(EvolutionConfig(population=6, cycles=5), length=2)
    assert len(result.population) == 6
    assert len(set(fitness.texts)) == len(fitness.texts) <= 4


def test_same_seed_same_search_other_seed_other_search() -> None:
    config = EvolutionConfig(population=10, cycles=30, seed=11)
    first, _, fitness_a = _search(config, length=24)
    second, _, fitness_b = _search(config, length=24)
    assert first == second
    assert fitness_a.batches == fitness_b.batches
    other, _, fitness_c = _search(EvolutionConfig(population=10, cycles=30, seed=12), length=24)
    assert fitness_c.batches != fitness_a.batches
    assert other.population != first.population


def test_run_twice_restarts_from_the_seed() -> None:
    space = BitSpace()
    engine = Evolution(space, CountingFitness(space), SMALL)
    assert engine.run() == engine.run()


@pytest.mark.parametrize("stop_at", [0, 1, 7, SMALL.cycles - 1, SMALL.cycles])
def test_resume_equals_uninterrupted(stop_at: int) -> None:
    reference, _, reference_fitness = _search()

    class Killed(Exception):
        pass

    def kill(report: CycleReport) -> None:
        if report.cycle == stop_at:
            raise Killed

    saved: list[dict[str, Any]] = []
    space = BitSpace()
    first_fitness = CountingFitness(space)
    with pytest.raises(Killed):
        Evolution(space, first_fitness, SMALL, on_cycle=kill, checkpoint=saved.append).run()
    assert saved[-1]["cycle"] == stop_at
    state = json.loads(json.dumps(saved[-1], allow_nan=False))  # strict JSON round trip

    space = BitSpace()
    resumed_fitness = CountingFitness(space)
    resumed_saved: list[dict[str, Any]] = []
    resumed = Evolution(space, resumed_fitness, SMALL, checkpoint=resumed_saved.append).run(state)
    assert resumed == reference
    # the two halves together asked for exactly what the uninterrupted search asked for
    assert first_fitness.batches + resumed_fitness.batches == reference_fitness.batches
    assert len(resumed_saved) == SMALL.cycles - stop_at


def test_resume_can_extend_the_cycles() -> None:
    longer = EvolutionConfig(population=10, cycles=60, mutation_times=3, seed=3)
    reference, _, _ = _search(longer)
    saved: list[dict[str, Any]] = []
    _search(SMALL, checkpoint=saved.append)
    space = BitSpace()
    extended = Evolution(space, CountingFitness(space), longer).run(
        json.loads(json.dumps(saved[-1]))
    )
    assert extended == reference


def test_resume_refuses_other_settings_and_damaged_state() -> None:
    saved: list[dict[str, Any]] = []
    _search(SMALL, checkpoint=saved.append)
    state = saved[-1]
    space = BitSpace()
    other = EvolutionConfig(population=11, cycles=40, mutation_times=3, seed=3)
    with pytest.raises(SettingsError, match="population"):
        Evolution(space, CountingFitness(space), other).run(state)
    with pytest.raises(SettingsError, match="damaged"):
        Evolution(space, CountingFitness(space), SMALL).run({**state, "population": None})
    with pytest.raises(SettingsError, match="format"):
        Evolution(space, CountingFitness(space), SMALL).run({**state, "format": 99})


def test_state_is_strict_json_and_complete() -> None:
    saved: list[dict[str, Any]] = []
    result, _, fitness = _search(checkpoint=saved.append)
    assert len(saved) == SMALL.cycles + 1
    state = json.loads(json.dumps(saved[-1], allow_nan=False))
    assert state == saved[-1]
    assert state["cycle"] == SMALL.cycles
    assert state["evaluations"] == result.evaluations == len(state["cache"])
    assert [e["text"] for e in state["cache"]] == fitness.texts
    assert [e["text"] for e in state["population"]] == [i.text for i in result.population]
    assert len(state["history"]) == SMALL.cycles + 1


def test_nan_fitness_ranks_worst_and_search_goes_on() -> None:
    space = BitSpace()

    def fitness(archs: Sequence[Hashable]) -> list[float]:
        # architectures starting with 0 "fail to score"
        return [math.nan if _bits(a)[0] == 0 else one_max(a) for a in archs]

    saved: list[dict[str, Any]] = []
    config = EvolutionConfig(population=10, cycles=50, seed=2)
    result = Evolution(space, fitness, config, checkpoint=saved.append).run()
    assert result.best.fitness > -math.inf
    assert result.best.text.startswith("1")
    assert any(ind.fitness == -math.inf for ind in _cache(saved[0]))
    assert not any(math.isnan(ind.fitness) for ind in result.population)
    json.dumps(saved[-1], allow_nan=False)  # -inf is written as a string
    resumed = Evolution(space, fitness, config).run(json.loads(json.dumps(saved[5])))
    assert resumed == result


def test_fitness_must_return_one_value_per_architecture() -> None:
    space = BitSpace()
    with pytest.raises(ValueError, match="values for"):
        Evolution(space, lambda archs: [1.0], SMALL).run()


@pytest.mark.parametrize("seed", range(5))
def test_default_search_reaches_the_one_max_optimum(seed: int) -> None:
    config = EvolutionConfig(seed=seed)
    result, _, _ = _search(config)
    assert result.best.text == "1" * 12
    assert result.best.text in {ind.text for ind in result.population}
    assert result.evaluations <= config.max_evaluations


def test_search_beats_random_sampling_with_the_same_budget() -> None:
    # 40 bits: random sampling essentially never gets far above 20 + a few sigma.
    length = 40
    config = EvolutionConfig(population=20, cycles=150, seed=0)
    result, _, fitness = _search(config, length=length)
    rng = np.random.default_rng(0)
    random_best = max(one_max(tuple(rng.integers(0, 2, length))) for _ in range(len(fitness.texts)))
    assert result.best.fitness >= random_best + 8


def test_size_term_is_respected() -> None:
    space = BitSpace(12)
    fitness = CountingFitness(space, size_weight=0.01)
    result = Evolution(space, fitness, EvolutionConfig(seed=4)).run()
    # the unique optimum of one-max plus the size term is still all ones
    assert result.best.text == "1" * 12
    assert result.best.fitness == pytest.approx(12 + 0.01 * sum(range(1, 13)))


def test_defaults_cost_about_a_thousand_to_fifteen_hundred_scorings() -> None:
    config = EvolutionConfig()
    assert (config.population, config.cycles, config.mutation_times) == (
        DEFAULT_POPULATION,
        DEFAULT_CYCLES,
        DEFAULT_MUTATION_TIMES,
    )
    assert 1000 <= config.expected_evaluations <= 1500
    assert config.max_evaluations <= 1500
    assert config.sample_size == DEFAULT_POPULATION // 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"population": 1},
        {"cycles": -1},
        {"mutation_times": 0},
        {"crossover_prob": -0.1},
        {"crossover_prob": 1.5},
        {"crossover_prob": math.nan},
        {"sample_fraction": 0.0},
        {"sample_fraction": 1.1},
        {"seed": -1},
    ],
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SettingsError):
        EvolutionConfig(**kwargs)


def test_sample_size_is_at_least_two() -> None:
    assert EvolutionConfig(population=2, sample_fraction=0.1).sample_size == 2
    assert EvolutionConfig(population=3, sample_fraction=1.0).sample_size == 3
    result, _, _ = _search(EvolutionConfig(population=2, cycles=10, sample_fraction=0.1))
    assert len(result.population) == 2


def test_engine_imports_nothing_heavy() -> None:
    # Measured against what its own dependencies already load, so that a heavier package
    # __init__ elsewhere does not make this test blame the engine.
    import subprocess
    import sys

    code = (
        "import sys, swapprobe.errors, swapprobe.searchspaces.base; "
        "before = set(sys.modules); import swapprobe.evolution; "
        "new = set(sys.modules) - before; "
        "print(','.join(m for m in new if m.split('.')[0] in ('torch', 'onnxruntime', 'rich')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _parse(text: str) -> Bits:
    return tuple(int(c) for c in text)


def _cache(state: dict[str, Any]) -> list[Any]:
    from swapprobe.evolution import Individual

    return [Individual(e["text"], float(e["fitness"]), e["born"]) for e in state["cache"]]


def test_mutants_are_new_architectures_while_the_space_has_any() -> None:
    """A mutant scored before is drawn again (further away once the parent's one-bit
    neighbours are used up), so every mutant batch asks for architectures never scored.
    With crossover off, the only repeats could come from mutants."""
    config = EvolutionConfig(population=8, cycles=60, mutation_times=4, seed=5, crossover_prob=0)
    result, _, fitness = _search(config, length=10)  # 1024 architectures, 248 asked for
    assert len(fitness.texts) == len(set(fitness.texts)) == 8 + 60 * 4
    assert result.cache_hits == 0


# --- a fitness that depends on the population (rank aggregates) ------------------------
def _rank_of_one_max(space: BitSpace) -> Any:
    """Fitness = rank of one-max among everything scored so far (1 = worst), ties averaged:
    a value that changes as more architectures are scored, like a rank aggregate."""
    from scipy.stats import rankdata

    def rerank(texts: Sequence[str]) -> list[float]:
        return list(rankdata([one_max(space.parse(t)) for t in texts]))

    return rerank


def test_rerank_revalues_population_cache_and_best() -> None:
    space = BitSpace()
    fitness = CountingFitness(space)
    reports: list[CycleReport] = []
    engine = Evolution(
        space, fitness, SMALL, rerank=_rank_of_one_max(space), on_cycle=reports.append
    )
    result = engine.run()
    state = engine.state()
    texts = [entry["text"] for entry in state["cache"]]
    current = dict(zip(texts, _rank_of_one_max(space)(texts), strict=True))
    # every stored value is the rank among the final scored set, not the one it was born with
    assert all(entry["fitness"] == current[entry["text"]] for entry in state["cache"])
    assert [m.fitness for m in result.population] == [current[m.text] for m in result.population]
    assert result.best.fitness == max(current.values())
    assert one_max(space.parse(result.best.text)) == max(one_max(space.parse(t)) for t in texts)
    # ranks over a growing set are not the raw one-max values: the hook was really applied
    assert any(value != one_max(space.parse(text)) for text, value in current.items())


@pytest.mark.parametrize("stop_at", [0, 5, SMALL.cycles - 1])
def test_resume_with_rerank_equals_uninterrupted(stop_at: int) -> None:
    space = BitSpace()
    reference_fitness = CountingFitness(space)
    reference = Evolution(space, reference_fitness, SMALL, rerank=_rank_of_one_max(space)).run()

    class Killed(Exception):
        pass

    def kill(report: CycleReport) -> None:
        if report.cycle == stop_at:
            raise Killed

    saved: list[dict[str, Any]] = []
    space = BitSpace()
    first = CountingFitness(space)
    with pytest.raises(Killed):
        Evolution(
            space,
            first,
            SMALL,
            rerank=_rank_of_one_max(space),
            on_cycle=kill,
            checkpoint=saved.append,
        ).run()
    state = json.loads(json.dumps(saved[-1], allow_nan=False))
    space = BitSpace()
    second = CountingFitness(space)
    resumed = Evolution(space, second, SMALL, rerank=_rank_of_one_max(space)).run(state)
    assert resumed == reference
    assert first.batches + second.batches == reference_fitness.batches


# --- hard constraints (a size budget) ------------------------------------------------------
def _at_most_ones(limit: int) -> Any:
    """A budget on the toy space: at most ``limit`` ones (one-max pushes against it), with a
    record of every architecture it was asked about."""

    asked: list[str] = []

    def feasible(arch: Hashable) -> bool:
        asked.append("".join(str(b) for b in _bits(arch)))
        return one_max(arch) <= limit

    feasible.asked = asked  # type: ignore[attr-defined]
    return feasible


@pytest.mark.parametrize("crossover_prob", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_no_infeasible_architecture_is_ever_scored(seed: int, crossover_prob: float) -> None:
    config = EvolutionConfig(
        population=10, cycles=60, mutation_times=4, crossover_prob=crossover_prob, seed=seed
    )
    feasible = _at_most_ones(5)
    result, _, fitness = _search(config, feasible=feasible)
    scored = [_parse(t) for t in fitness.texts]
    assert scored and all(one_max(a) <= 5 for a in scored)
    # the budget bound: it was asked about infeasible children, re-drew them, and the search
    # still climbed to the constrained optimum (5 ones of 12)
    assert any(t.count("1") > 5 for t in feasible.asked)
    assert result.best.fitness == 5.0
    assert all(m.fitness <= 5 for m in result.population)


def test_an_always_true_constraint_changes_nothing() -> None:
    # the constraint's re-draws take no randomness unless they reject: same stream, same search
    plain, _, plain_fitness = _search()
    allowed, _, allowed_fitness = _search(feasible=lambda arch: True)
    assert allowed_fitness.batches == plain_fitness.batches
    assert allowed.best == plain.best and allowed.history == plain.history


def test_a_constraint_nothing_meets_fails_before_scoring() -> None:
    space = BitSpace(12)
    fitness = CountingFitness(space)
    engine = Evolution(space, fitness, SMALL, feasible=lambda arch: False)
    with pytest.raises(InfeasibleError, match="no architecture of bits") as raised:
        engine.run()
    assert raised.value.draws == MAX_FEASIBLE_DRAWS
    assert fitness.batches == []


def test_given_initial_members_that_fail_the_constraint_are_dropped() -> None:
    ones, zeros = tuple([1] * 12), tuple([0] * 12)
    _, _, fitness = _search(initial=[ones, zeros], feasible=_at_most_ones(5))
    first = fitness.batches[0]
    assert "1" * 12 not in fitness.texts and first[0] == "0" * 12
