"""The SWAP-NAS evolutionary search (Algorithm 1 of the paper, appendix C), over any search space.

The engine is deliberately ignorant of what it searches and of how things are scored: it
talks to a :class:`~swapprobe.searchspaces.base.SearchSpace` (sample, mutate, crossover,
canonical text) and to a *batch* fitness function. Batches let an executor score the initial
population, the two crossover children and the mutants of a cycle in parallel.

Algorithm 1, as implemented:

1. Sample P random architectures (re-drawing duplicates a bounded number of times) and score
   them in one batch.
2. For each cycle c = 1..C: draw ``max(2, round(sample_fraction * P))`` distinct members
   (Step 8, "half of the population"); with probability ``crossover_prob`` the parent is the
   better child of ``crossover(best, second best)`` of the sample, else the best of the
   sample (Step 9); score ``mutation_times`` mutants of the parent in one batch (Steps
   10-13; a mutant scored before is drawn again, further away once the parent's neighbours
   are used up, so every cycle scores new architectures); add the best mutant (Step 14)
   and remove the worst member (Step 15).
   Removal of the worst, not of the oldest as in aging evolution, makes the search elitist.

Every score is cached by canonical text, so nothing is scored twice. All randomness comes
from one ``numpy`` generator used in a fixed order, and the whole state is a JSON-able dict:
a search killed after any cycle and resumed from its last checkpoint ends exactly as an
uninterrupted search with the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from swapprobe.errors import InfeasibleError, SettingsError
from swapprobe.searchspaces.base import SearchSpace

__all__ = [
    "DEFAULT_CYCLES",
    "DEFAULT_MUTATION_TIMES",
    "DEFAULT_POPULATION",
    "MAX_FEASIBLE_DRAWS",
    "CycleReport",
    "CycleSummary",
    "Evolution",
    "EvolutionConfig",
    "FitnessFn",
    "Individual",
    "SearchResult",
    "sample_feasible",
]

# The paper (Algorithm 1, appendix C) names P, C and mutation_times but never states their
# values, nor does the authors' public code include the search. What it does state is the
# cost: 0.004 GPU days (about 6 minutes) on CIFAR-10. We therefore pick values whose default
# search costs about 1,000-1,500 scorings: P + C * (mutation_times + 2 * crossover_prob)
# = 50 + 200 * (5 + 1) = 1,250 expected, at most 50 + 200 * 7 = 1,450 (fewer with cache
# hits). At roughly 0.3 s per scoring of a DARTS network that is the paper's 6 minutes.
# More cycles with few mutants each, rather than few cycles with many, is chosen because
# every cycle is one step of selection: 200 cycles replace the population four times over.
#: population size P (the paper does not state it; see the comment above)
DEFAULT_POPULATION = 50
#: search cycles C
DEFAULT_CYCLES = 200
#: mutants made from the parent in each cycle
DEFAULT_MUTATION_TIMES = 5

#: how many times a duplicate is re-drawn while filling the initial population; bounded so
#: that a space smaller than P still terminates (and then keeps the duplicate)
_MAX_RESAMPLE = 100

#: random draws for one feasible architecture before the space is declared to have none
#: (a budget below the smallest member): enough to see the small tail of a space's sizes
MAX_FEASIBLE_DRAWS = 1000

#: version of :meth:`Evolution.state`'s layout, checked on resume
_STATE_FORMAT = 1

#: scores a batch of architectures; returns one float per architecture, in the same order
FitnessFn = Callable[[Sequence[Hashable]], Sequence[float]]
#: a fitness that depends on the candidates compared (e.g. a rank aggregate over everything
#: scored so far): given the texts of all scored architectures, in the order they were
#: scored, returns their current fitness values in that order
RerankFn = Callable[[Sequence[str]], Sequence[float]]


@dataclass(frozen=True)
class EvolutionConfig:
    """Settings of one SWAP-NAS search; validated on construction so a bad value fails early.

    ``population``, ``cycles`` and ``mutation_times`` default to the module constants
    :data:`DEFAULT_POPULATION`, :data:`DEFAULT_CYCLES` and :data:`DEFAULT_MUTATION_TIMES`
    (why those values: see the comment above them).
    """

    #: P: members of the population (at least 2: crossover needs a best and a second best)
    population: int = DEFAULT_POPULATION
    #: C: search cycles after the initial population (0 = random search of P architectures)
    cycles: int = DEFAULT_CYCLES
    #: mutants of the parent scored per cycle (Steps 10-13)
    mutation_times: int = DEFAULT_MUTATION_TIMES
    #: chance that the parent is the better child of a crossover (Step 9); the paper says
    #: "in a random fashion", so an even coin is the neutral reading
    crossover_prob: float = 0.5
    #: tournament sample as a fraction of the population (Step 8: "half of the networks")
    sample_fraction: float = 0.5
    #: seed of the engine's one random generator
    seed: int = 0

    def __post_init__(self) -> None:
        if self.population < 2:
            raise SettingsError(
                f"population must be at least 2 (crossover needs two parents), "
                f"got {self.population}"
            )
        if self.cycles < 0:
            raise SettingsError(f"cycles must be 0 or more, got {self.cycles}")
        if self.mutation_times < 1:
            raise SettingsError(f"mutation_times must be at least 1, got {self.mutation_times}")
        if not 0.0 <= self.crossover_prob <= 1.0:
            raise SettingsError(f"crossover_prob must lie in [0, 1], got {self.crossover_prob}")
        if not 0.0 < self.sample_fraction <= 1.0:
            raise SettingsError(f"sample_fraction must lie in (0, 1], got {self.sample_fraction}")
        if self.seed < 0:
            raise SettingsError(f"seed must be 0 or more, got {self.seed}")

    @property
    def sample_size(self) -> int:
        """Members drawn for the tournament: at least the two that crossover needs."""
        return min(self.population, max(2, round(self.sample_fraction * self.population)))

    @property
    def expected_evaluations(self) -> float:
        """Scorings a search asks for on average (before cache hits): for time budgets."""
        per_cycle = self.mutation_times + 2 * self.crossover_prob
        return self.population + self.cycles * per_cycle

    @property
    def max_evaluations(self) -> int:
        """Scorings a search asks for at most (every cycle with crossover, no cache hits)."""
        crossover = 2 if self.crossover_prob > 0 else 0
        return self.population + self.cycles * (self.mutation_times + crossover)


@dataclass(frozen=True)
class Individual:
    """One scored architecture, named by its canonical text (the cache key)."""

    text: str
    #: the fitness; NaN from the fitness function is stored as -inf (the worst)
    fitness: float
    #: cycle in which it was scored; -1 for the initial population
    born: int


@dataclass
class CycleReport:
    """What ``on_cycle`` receives after the initial population (cycle 0) and every cycle."""

    cycle: int
    cycles: int
    #: architectures scored so far (calls' batch sizes summed), cache hits excluded
    evaluations: int
    #: requests served from the cache so far
    cache_hits: int
    #: best architecture scored so far (it may be a crossover child or a mutant that never
    #: joined the population; the population's best is ``max(population_fitness)``)
    best: Individual
    #: fitness of every population member, in the order they joined
    population_fitness: tuple[float, ...]


@dataclass(frozen=True)
class CycleSummary:
    """One line of the search history: the best so far after a cycle, and the cost."""

    cycle: int
    best_fitness: float
    best_text: str
    evaluations: int
    cache_hits: int


@dataclass
class SearchResult:
    """The outcome of a search."""

    #: best architecture ever scored (every scored one is a candidate, scoring is the cost)
    best: Individual
    #: the final population, in the order its members joined
    population: list[Individual]
    #: one summary for the initial population (cycle 0) and one per cycle
    history: list[CycleSummary] = field(default_factory=list)
    evaluations: int = 0
    cache_hits: int = 0


@dataclass
class _Member:
    # The population keeps the architecture value beside its record so that mutate and
    # crossover need not parse texts every cycle.
    individual: Individual
    arch: Hashable


class Evolution:
    """The SWAP-NAS search: elitist evolution with tournament sampling, crossover, mutation.

    ``fitness`` scores a batch of architectures; ``on_cycle`` gets a :class:`CycleReport`
    for progress display; ``checkpoint`` gets :meth:`state` after the initial population and
    after every cycle, so that a killed search can go on with ``run(state=...)``.
    ``initial`` architectures (distinct ones, up to P) take the first places of the initial
    population; random samples fill the rest.

    ``feasible`` is a hard constraint (a size budget, :mod:`swapprobe.budget`): an
    architecture it rejects is never scored. Random members are re-drawn until one passes
    (:class:`~swapprobe.errors.InfeasibleError` after :data:`MAX_FEASIBLE_DRAWS` draws with
    none), crossover children and mutants are re-drawn a bounded number of times and then
    replaced by their (feasible, already scored) parent; given ``initial`` members that fail
    are dropped. Without it the random stream is exactly as before constraints existed.

    ``rerank`` makes the fitness depend on the population: after every batch of new scorings
    it re-values everything scored so far (population, cache and best-so-far alike), so that
    selection and removal always compare current values. It must be a function of the scored
    set alone: then a resumed search re-values exactly as the uninterrupted one did.
    """

    def __init__(
        self,
        space: SearchSpace,
        fitness: FitnessFn,
        config: EvolutionConfig,
        *,
        on_cycle: Callable[[CycleReport], None] | None = None,
        checkpoint: Callable[[dict[str, Any]], None] | None = None,
        initial: Sequence[Hashable] = (),
        rerank: RerankFn | None = None,
        feasible: Callable[[Hashable], bool] | None = None,
    ) -> None:
        self._space = space
        self._feasible = feasible
        self._fitness = fitness
        self._rerank = rerank
        self._config = config
        self._initial = list(initial)
        self._on_cycle = on_cycle
        self._checkpoint = checkpoint
        self._reset()

    @property
    def config(self) -> EvolutionConfig:
        return self._config

    # --- running ----------------------------------------------------------------------
    def run(self, state: dict[str, Any] | None = None) -> SearchResult:
        """Search from scratch, or go on from ``state`` (a dict once given to ``checkpoint``).

        A resumed search ends exactly as the uninterrupted one would have. ``cycles`` may be
        larger than in the checkpointed run, to extend a finished search; every other
        setting must match, since the random stream and the population depend on them.
        """
        if state is None:
            self._reset()
            self._initial_population()
            self._after_cycle()
        else:
            self._restore(state)
        for cycle in range(self._cycle + 1, self._config.cycles + 1):
            self._run_cycle(cycle)
            self._after_cycle()
        return self._result()

    def _initial_population(self) -> None:
        # Steps 1-6, with the scorings gathered into one batch.
        archs: list[Hashable] = []
        seen: set[str] = set()
        for arch in self._initial:  # given members first (e.g. already scored random ones)
            text = self._space.format(arch)
            fits = len(archs) < self._config.population and self._allowed(arch)
            if text not in seen and fits:
                seen.add(text)
                archs.append(arch)
        for _ in range(self._config.population - len(archs)):
            arch = self._sample_feasible()
            text = self._space.format(arch)
            tries = 1
            while text in seen and tries < _MAX_RESAMPLE:
                arch = self._sample_feasible()
                text = self._space.format(arch)
                tries += 1
            seen.add(text)
            archs.append(arch)
        scored = self._evaluate(archs, born=-1)
        self._members = [_Member(ind, arch) for ind, arch in zip(scored, archs, strict=True)]
        self._cycle = 0

    def _run_cycle(self, cycle: int) -> None:
        config = self._config
        rng = self._rng
        # Step 8: a tournament of distinct members. A stable sort keeps draw order among
        # equal fitness, so ties resolve the same way on every run.
        picks = rng.choice(len(self._members), size=config.sample_size, replace=False)
        candidates = sorted(
            (self._members[int(i)] for i in picks),
            key=lambda m: m.individual.fitness,
            reverse=True,
        )
        # Step 9: the coin is drawn every cycle, even at probability 0 or 1, so the random
        # stream has one layout whatever the setting.
        if rng.random() < config.crossover_prob:
            first, second = self._crossover(candidates[0].arch, candidates[1].arch)
            scored_first, scored_second = self._evaluate([first, second], born=cycle)
            parent = first if scored_first.fitness >= scored_second.fitness else second
        else:
            parent = candidates[0].arch
        # Steps 10-13: the mutants, scored in one batch. A mutant that was scored before (or
        # drawn twice this cycle) is drawn again, a bounded number of times, and after half of
        # them one mutation further away: in a small space such as NAS-Bench-201 a good parent
        # soon has every one-edge neighbour scored, and repeats teach the search nothing
        # (measured on NB201 before this: 290 of 442 requests were cache hits, and the best
        # stopped improving after 17 of 80 cycles).
        seen = set(self._cache)
        mutants = []
        for _ in range(config.mutation_times):
            mutant = self._space.mutate(parent, rng)
            for retry in range(_MAX_RESAMPLE):
                fits = self._allowed(mutant)
                if fits and self._space.format(mutant) not in seen:
                    break
                further = retry >= _MAX_RESAMPLE // 2 and fits  # away from a fitting mutant
                mutant = self._space.mutate(mutant if further else parent, rng)
            if not self._allowed(mutant):
                mutant = parent  # a cache hit: never score what the constraint rejects
            seen.add(self._space.format(mutant))
            mutants.append(mutant)
        scored = self._evaluate(mutants, born=cycle)
        best = max(range(len(scored)), key=lambda i: scored[i].fitness)  # first of ties
        # Step 14: add the best mutant; Step 15: remove the worst. Among equal worst the one
        # that joined first goes; a new member only goes if it is strictly the worst.
        self._members.append(_Member(scored[best], mutants[best]))
        worst = min(range(len(self._members)), key=lambda i: self._members[i].individual.fitness)
        del self._members[worst]
        self._cycle = cycle

    def _allowed(self, arch: Hashable) -> bool:
        return self._feasible is None or self._feasible(arch)

    def _sample_feasible(self) -> Hashable:
        return sample_feasible(self._space, self._rng, self._feasible)

    def _crossover(self, first: Hashable, second: Hashable) -> tuple[Hashable, Hashable]:
        """Step 9's children; under a constraint a rejected child is re-drawn, a bounded
        number of times, then replaced by its parent (scored already: a cache hit)."""
        children = self._space.crossover(first, second, self._rng)
        if self._feasible is None:
            return children
        a, b = children
        for _ in range(_MAX_RESAMPLE):
            if self._allowed(a) and self._allowed(b):
                break
            new_a, new_b = self._space.crossover(first, second, self._rng)
            a = a if self._allowed(a) else new_a
            b = b if self._allowed(b) else new_b
        return (a if self._allowed(a) else first, b if self._allowed(b) else second)

    def _evaluate(self, archs: Sequence[Hashable], born: int) -> list[Individual]:
        """Score ``archs`` through the cache: only texts never scored reach ``fitness``."""
        texts = [self._space.format(arch) for arch in archs]
        pending: dict[str, Hashable] = {}
        for text, arch in zip(texts, archs, strict=True):
            if text in self._cache or text in pending:
                self._cache_hits += 1
            else:
                pending[text] = arch
        if pending:
            values = list(self._fitness(list(pending.values())))
            if len(values) != len(pending):
                raise ValueError(
                    f"fitness returned {len(values)} values for {len(pending)} architectures"
                )
            for text, value in zip(pending, values, strict=True):
                individual = Individual(text, _clean_fitness(value), born)
                self._cache[text] = individual
                self._evaluations += 1
                if self._best is None or individual.fitness > self._best.fitness:
                    self._best = individual
            if self._rerank is not None:
                self._revalue()
        return [self._cache[text] for text in texts]

    def _revalue(self) -> None:
        """Apply ``rerank`` to everything scored so far (see the class docstring)."""
        assert self._rerank is not None
        texts = list(self._cache)
        values = list(self._rerank(texts))
        if len(values) != len(texts):
            raise ValueError(f"rerank returned {len(values)} values for {len(texts)} texts")
        self._best = None
        for text, value in zip(texts, values, strict=True):
            individual = replace(self._cache[text], fitness=_clean_fitness(value))
            self._cache[text] = individual
            if self._best is None or individual.fitness > self._best.fitness:
                self._best = individual  # first scored of equal bests, as without rerank
        for member in self._members:
            member.individual = self._cache[member.individual.text]

    def _after_cycle(self) -> None:
        # The checkpoint goes first: a failing progress display must not lose the cycle.
        best = self._require_best()
        self._history.append(
            CycleSummary(
                cycle=self._cycle,
                best_fitness=best.fitness,
                best_text=best.text,
                evaluations=self._evaluations,
                cache_hits=self._cache_hits,
            )
        )
        if self._checkpoint is not None:
            self._checkpoint(self.state())
        if self._on_cycle is not None:
            self._on_cycle(
                CycleReport(
                    cycle=self._cycle,
                    cycles=self._config.cycles,
                    evaluations=self._evaluations,
                    cache_hits=self._cache_hits,
                    best=best,
                    population_fitness=tuple(m.individual.fitness for m in self._members),
                )
            )

    def _result(self) -> SearchResult:
        return SearchResult(
            best=self._require_best(),
            population=[m.individual for m in self._members],
            history=list(self._history),
            evaluations=self._evaluations,
            cache_hits=self._cache_hits,
        )

    def _require_best(self) -> Individual:
        if self._best is None:
            raise RuntimeError("the search has not scored anything yet")
        return self._best

    # --- state ------------------------------------------------------------------------
    def _reset(self) -> None:
        self._rng = np.random.default_rng(self._config.seed)
        self._members: list[_Member] = []
        self._cache: dict[str, Individual] = {}
        self._best: Individual | None = None
        self._history: list[CycleSummary] = []
        self._evaluations = 0
        self._cache_hits = 0
        self._cycle = -1  # -1: the initial population is not there yet

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot of everything the search needs to go on exactly.

        Non-finite fitness values are written as the strings ``"inf"``/``"-inf"`` so that
        the dict is strict JSON; the generator's state holds 128-bit integers, which Python's
        ``json`` keeps exactly.
        """
        if self._cycle < 0:
            raise RuntimeError("no state before the initial population has been scored")
        config = self._config
        return {
            "format": _STATE_FORMAT,
            "space": _space_name(self._space),
            "config": {
                "population": config.population,
                "cycles": config.cycles,
                "mutation_times": config.mutation_times,
                "crossover_prob": config.crossover_prob,
                "sample_fraction": config.sample_fraction,
                "seed": config.seed,
            },
            "cycle": self._cycle,
            "rng": _plain(self._rng.bit_generator.state),
            "evaluations": self._evaluations,
            "cache_hits": self._cache_hits,
            "population": [_encode_individual(m.individual) for m in self._members],
            # insertion order is kept: the best-so-far tie-break (first scored) depends on it
            "cache": [_encode_individual(ind) for ind in self._cache.values()],
            "history": [
                {
                    "cycle": s.cycle,
                    "best_fitness": _encode_float(s.best_fitness),
                    "best_text": s.best_text,
                    "evaluations": s.evaluations,
                    "cache_hits": s.cache_hits,
                }
                for s in self._history
            ],
        }

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self._restore_unchecked(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise SettingsError(f"cannot resume: the search state is damaged ({exc!r})") from exc

    def _restore_unchecked(self, state: dict[str, Any]) -> None:
        if state.get("format") != _STATE_FORMAT:
            raise SettingsError(
                f"cannot resume: state format {state.get('format')!r}, "
                f"this version reads {_STATE_FORMAT}"
            )
        space = _space_name(self._space)
        if state["space"] != space:
            raise SettingsError(
                f"cannot resume: the state is of search space {state['space']!r}, not {space!r}"
            )
        saved = state["config"]
        config = self._config
        for name in ("population", "mutation_times", "crossover_prob", "sample_fraction", "seed"):
            if saved[name] != getattr(config, name):
                raise SettingsError(
                    f"cannot resume: {name} was {saved[name]!r} in the saved search, "
                    f"now {getattr(config, name)!r}; resume with the same settings"
                )
        self._reset()
        self._rng.bit_generator.state = state["rng"]
        self._cache = {}
        for entry in state["cache"]:
            individual = _decode_individual(entry)
            self._cache[individual.text] = individual
            if self._best is None or individual.fitness > self._best.fitness:
                self._best = individual
        self._members = []
        for entry in state["population"]:
            individual = _decode_individual(entry)
            self._members.append(_Member(individual, self._space.parse(individual.text)))
        self._history = [
            CycleSummary(
                cycle=int(s["cycle"]),
                best_fitness=float(s["best_fitness"]),
                best_text=str(s["best_text"]),
                evaluations=int(s["evaluations"]),
                cache_hits=int(s["cache_hits"]),
            )
            for s in state["history"]
        ]
        self._evaluations = int(state["evaluations"])
        self._cache_hits = int(state["cache_hits"])
        self._cycle = int(state["cycle"])
        if len(self._members) != config.population or self._best is None or self._cycle < 0:
            raise SettingsError("cannot resume: the search state is incomplete")


def sample_feasible(
    space: SearchSpace,
    rng: np.random.Generator,
    feasible: Callable[[Hashable], bool] | None = None,
) -> Hashable:
    """One random architecture that ``feasible`` accepts: exactly one draw without it.

    Raises:
        InfeasibleError: :data:`MAX_FEASIBLE_DRAWS` draws and none accepted.
    """
    for _ in range(MAX_FEASIBLE_DRAWS):
        arch = space.sample(rng)
        if feasible is None or feasible(arch):
            return arch
    raise InfeasibleError(
        f"no architecture of {_space_name(space)} met the search's constraint "
        f"in {MAX_FEASIBLE_DRAWS} draws",
        draws=MAX_FEASIBLE_DRAWS,
    )


def _clean_fitness(value: float) -> float:
    # A failed scoring (NaN) ranks below everything rather than poisoning comparisons.
    number = float(value)
    return -math.inf if math.isnan(number) else number


def _encode_float(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _encode_individual(individual: Individual) -> dict[str, Any]:
    return {
        "text": individual.text,
        "fitness": _encode_float(individual.fitness),
        "born": individual.born,
    }


def _decode_individual(entry: dict[str, Any]) -> Individual:
    # float("-inf") reads the encoded strings back
    return Individual(str(entry["text"]), float(entry["fitness"]), int(entry["born"]))


def _plain(value: Any) -> Any:
    """Copy a generator state into plain dicts and ints, detached from the live generator."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _space_name(space: SearchSpace) -> str:
    return str(getattr(space, "name", type(space).__name__))
