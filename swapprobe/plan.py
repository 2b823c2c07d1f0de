"""Run plans: what a command runs, built once and run in one call.

The CLI builds a plan from its flags, Python builds the same plan from keywords
(:func:`swapprobe.api.plan_score` and friends), and both run it with ``plan.run(progress)``.
Everything between the options and the results is assembled here, once: the defaults of a
space or of the paper, the data batch (its input size and token shape read from the models),
the :class:`~swapprobe.results.ScoreSettings`, the checks made before any work, and the
executor opened and closed around the work. A run returns what its report needs (results,
data, settings), so the caller only renders.

A plan is three option groups shared by every command (:class:`Inputs`, :class:`Scoring`,
:class:`Execution`) plus the command's own fields. ``None`` in a group means "the default":
the space's declared one (:class:`~swapprobe.searchspaces.base.SpaceDefaults`) when every
model comes from one space, else the paper's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from swapprobe.errors import DataError, SettingsError
from swapprobe.results import DEFAULT_ACTIVATIONS, Result, ScoreSettings

if TYPE_CHECKING:
    from swapprobe.budget import SizeBudget
    from swapprobe.correlate import CorrelationReport, GroundTruth, Lookup
    from swapprobe.data import Batch
    from swapprobe.evolution import EvolutionConfig
    from swapprobe.executors import Executor, ResultList
    from swapprobe.models import ModelRef
    from swapprobe.searching import SearchOutcome, SearchPolicy
    from swapprobe.searchspaces.base import SearchSpace

__all__ = [
    "DEFAULT_DATA",
    "CorrelatePlan",
    "CorrelateRun",
    "Execution",
    "Inputs",
    "Progress",
    "ScorePlan",
    "ScoreRun",
    "Scoring",
    "SearchPlan",
    "SearchRun",
    "SearchSetup",
    "TableSpec",
    "split_keywords",
]

#: the inputs when neither ``data`` nor the space names any: embedded images, offline
DEFAULT_DATA = "synthetic"


class Progress(Protocol):
    """What a run tells while it works (the CLI's progress bar is one; ``None`` tells nothing).

    Tasks are named (``models``, ``repeats``, ``architectures``, ``cycles``); ``begin`` on a
    task already begun starts it again from zero.
    """

    def announce(self, setup: Any) -> None:
        """The run's resolved setup, once, before the work starts (a search's
        :class:`SearchSetup`)."""

    def begin(self, task: str, total: int | None, **fields: Any) -> None:
        """A task of ``total`` steps starts."""

    def advance(self, task: str, done: int, total: int | None = None, **fields: Any) -> None:
        """``done`` steps of ``task`` are done (``fields``: values shown beside it)."""


class _Silent:
    """The progress of a run nobody watches."""

    def announce(self, setup: Any) -> None:
        pass

    def begin(self, task: str, total: int | None, **fields: Any) -> None:
        pass

    def advance(self, task: str, done: int, total: int | None = None, **fields: Any) -> None:
        pass


# --- the option groups every command shares ----------------------------------------------
@dataclass(frozen=True)
class Inputs:
    """Where the batch comes from: a source name or path (``None``: the space's, else
    :data:`DEFAULT_DATA`), an array, or a ready :class:`~swapprobe.data.Batch`; S, the pick,
    the input size and a token source's shape (``None``: what the models state)."""

    data: Any = None
    batch_size: int | None = None
    data_dir: str | os.PathLike[str] | None = None
    pick: str = "first"
    input_size: tuple[int, int] | None = None
    seq_len: int | None = None
    vocab_size: int | None = None
    tokenizer: str | None = None

    def load(
        self,
        seed: int,
        defaults: Any,
        models: Sequence[ModelRef] = (),
        *,
        input_name: str | None = None,
    ) -> Batch:
        """The batch for ``models`` (references): their input size where they state one (a
        zoo model's), their token length and vocabulary for a token source."""
        from swapprobe.data import Batch, load_batch
        from swapprobe.models import input_size_of, token_options

        if isinstance(self.data, Batch):
            return self.data
        source = self.data if self.data is not None else defaults.data or DEFAULT_DATA
        size = tuple(self.input_size) if self.input_size else input_size_of(models)
        tokens = token_options(
            models,
            source,
            seq_len=self.seq_len,
            vocab_size=self.vocab_size,
            input_name=input_name,
        )
        return load_batch(
            source,
            batch_size=self.batch_size or defaults.batch_size,
            seed=seed,
            data_dir=self.data_dir,
            input_size=size,  # type: ignore[arg-type]
            pick=self.pick,  # type: ignore[arg-type]
            tokenizer=self.tokenizer,
            **tokens,  # type: ignore[arg-type]
        )


    def with_default_data(
        self, models: Sequence[ModelRef], defaults: Any, input_name: str | None = None
    ) -> tuple[Inputs, tuple[str, ...]]:
        """These inputs with the data source the models need when none is given (token data
        for models that read ids, see :func:`swapprobe.models.default_data`), and why."""
        if self.data is not None:
            return self, ()
        from swapprobe.models import default_data

        source, note = default_data(models, defaults, DEFAULT_DATA, input_name)
        if note is None:
            return self, ()
        return replace(self, data=source), (note,)

    def with_chosen_samples(
        self,
        batch: Batch,
        seed: int,
        defaults: Any,
        models: Sequence[ModelRef],
        *,
        activations: str,
        input_name: str | None = None,
        resumed: str | os.PathLike[str] | None = None,
    ) -> tuple[Batch, tuple[str, ...]]:
        """``batch`` at the S the models' unit counts need when no S is given and no space
        declares one: the smallest S (from the paper's 16) at which no model's SWAP can reach
        its 2^S bound (:func:`~swapprobe.capture.units.samples_for`), and why; ``batch`` itself
        otherwise. Models whose V cannot be read before scoring are left out of the choice; a
        ``resumed`` store keeps the S it was scored with."""
        from swapprobe.data import Batch

        given = self.batch_size is not None or isinstance(self.data, Batch)
        if given or any(ref.space is not None for ref in models) or not isinstance(
            self.data, (str, os.PathLike, type(None))
        ):
            return batch, ()
        if resumed is not None and Path(resumed).is_file():
            from swapprobe.store import PatternStore

            with PatternStore.open(resumed) as store:
                stored = store.settings.get("batch_size")
            if not isinstance(stored, int) or stored == len(batch.inputs):
                return batch, ()
            again = replace(self, batch_size=stored).load(
                seed, defaults, models, input_name=input_name
            )
            return again, (f"S {stored}: the S the resumed store was scored with",)
        from swapprobe.capture.units import samples_for, unit_count

        units = {}
        for ref in models:
            count = unit_count(
                ref.load(),
                batch.inputs,
                activations=activations,
                input_name=input_name,
                extra=dict(batch.extra),
            )
            if count is not None:
                units[ref.name] = count
        if not units:
            return batch, ()
        samples = samples_for(units.values())
        if samples == len(batch.inputs):
            return batch, ()
        widest = max(units, key=units.__getitem__)
        try:
            chosen = replace(self, batch_size=samples).load(
                seed, defaults, models, input_name=input_name
            )
        except DataError:  # the data hold fewer samples: what they can give is used
            return batch, (
                f"S {len(batch.inputs)}: the data cannot give the S {samples} that would keep "
                f"SWAP below its 2^S bound (V = {units[widest]:,} units in {widest})",
            )
        return chosen, (
            f"S {samples}: chosen so no SWAP can reach its 2^S bound (2^S ≥ 4 V, "
            f"V = {units[widest]:,} units in {widest}); give S to choose another",
        )


@dataclass(frozen=True)
class Scoring:
    """The scoring options every command shares; ``None``: the space's or the paper's
    default. ``proxies`` ``None`` is the default list, ``()`` is SWAP alone."""

    repeats: int | None = None
    seed: int = 0
    init: str | None = None
    backend: str | None = None
    device: str = "auto"
    mu: float | None = None
    sigma: float | None = None
    size_unit: str | None = None
    proxies: Sequence[str] | None = None

    def check(self, reg: str | None = None) -> None:
        """Refuse, before any work, μ without σ (or σ without μ), and μ, σ beside
        ``reg="auto"`` (which chooses them)."""
        if (self.mu is None) != (self.sigma is None):
            raise SettingsError("give {mu} and {sigma} together")
        if reg is not None:
            from swapprobe.regularisation import check_reg

            check_reg(reg, self.mu)

    def settings(
        self,
        batch: Batch,
        defaults: Any,
        *,
        size_unit: str,
        space: str | None = None,
        **extra: Any,
    ) -> ScoreSettings:
        """The :class:`ScoreSettings` of these options on ``batch``, ``defaults`` (a space's or
        the paper's) where none was given; ``extra``: the command's own settings. With a
        ``space``, L-SWAG's interval is the one ``swapprobe calibrate`` cached for it (none
        cached: the whole depth)."""
        extra.setdefault("proxies", defaults.proxies if self.proxies is None else self.proxies)
        if space is not None and "interval" not in extra:
            from swapprobe.calibrate import cached_interval

            found = cached_interval(space)
            if found is not None:
                extra["interval"] = (found.first_bin, found.last_bin)
        return ScoreSettings(
            batch_size=len(batch.inputs),
            repeats=self.repeats or defaults.repeats,
            seed=self.seed,
            init=self.init or defaults.init,
            backend=self.backend or defaults.backend,  # type: ignore[arg-type]
            device=self.device,
            mu=self.mu,
            sigma=self.sigma,
            size_unit=self.size_unit or size_unit,  # type: ignore[arg-type]
            **{**extra, "proxies": tuple(extra["proxies"])},
        )


@dataclass(frozen=True)
class Execution:
    """Where models run: ``local``, ``pool`` (``workers`` processes), ``ray`` (``address``),
    ``auto`` (pool on a machine with several cores), or a ready
    :class:`~swapprobe.executors.Executor` (used as given, left open)."""

    executor: Any = "local"
    workers: int | None = None
    address: str | None = None

    @property
    def name(self) -> str:
        """The executor's name with ``auto`` made concrete."""
        if not isinstance(self.executor, str):
            return type(self.executor).__name__
        if self.executor == "auto":
            return "pool" if (os.cpu_count() or 1) > 1 else "local"
        return self.executor

    @property
    def local(self) -> bool:
        """Models run in this process (their repeats can be watched)."""
        from swapprobe.executors import LocalExecutor

        if isinstance(self.executor, str):
            return self.name == "local"
        return isinstance(self.executor, LocalExecutor)

    def start_early(self) -> None:
        """Pool workers start importing torch now, beside this process's own start-up."""
        if isinstance(self.executor, str) and self.name == "pool":
            from swapprobe.executors import start_pool_workers_early

            start_pool_workers_early()

    @contextmanager
    def open(self) -> Iterator[Executor]:
        """The executor, released (workers stopped) when the work is done."""
        if not isinstance(self.executor, str):
            yield self.executor
            return
        from swapprobe.executors import get_executor

        with get_executor(self.name, workers=self.workers, address=self.address) as executor:
            yield executor


def split_keywords(keywords: dict[str, Any]) -> tuple[Inputs, Scoring, Execution, dict[str, Any]]:
    """The three shared groups from flat keywords (``data=``, ``repeats=``, ``executor=``,
    ...), and the keywords left for the command's own plan."""
    groups = []
    rest = dict(keywords)
    for group in (Inputs, Scoring, Execution):
        names = {f.name for f in fields(group)}
        groups.append(group(**{k: rest.pop(k) for k in list(rest) if k in names}))
    inputs, scoring, execution = groups
    return inputs, scoring, execution, rest  # type: ignore[return-value]


def _before_work(
    scoring: Scoring,
    execution: Execution,
    *,
    store: str | os.PathLike[str] | None,
    resume: bool,
    reg: str | None = None,
) -> None:
    """What every run checks before any work, then starts: μ/σ given together, ``resume``
    with a store, the store writable; pool workers start importing beside the run's own
    start-up."""
    from swapprobe.store import check_writable

    scoring.check(reg)
    if resume and not store:
        raise SettingsError("{resume=True} needs {store}")
    if store:
        check_writable(store)
    execution.start_early()


def _space_models(space: SearchSpace, seed: int) -> list[ModelRef]:
    """One seeded architecture of ``space``, standing for it where the data's shape is read
    from the models (a token source's T and V)."""
    import numpy as np

    from swapprobe.models import arch_ref

    return [arch_ref(space, space.sample(np.random.default_rng(seed)))]


def _space(space: Any) -> SearchSpace:
    """A space object; a registered space's name; ``FILE.py:FUNCTION``, or a function of the
    choice recorder (a define-by-run space, :mod:`swapprobe.searchspaces.custom`)."""
    from swapprobe.searchspaces import SearchSpace, get_space
    from swapprobe.searchspaces.custom import CustomSpace, space_from_file

    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, (str, os.PathLike)):
        path, _, function = str(space).rpartition(":")
        if path.endswith(".py") and function:
            return space_from_file(path, function)
        return get_space(str(space))
    if callable(space):
        return CustomSpace(space)
    raise SettingsError(
        f"a space is a registered name, 'FILE.py:FUNCTION', a function of the choice recorder "
        f"or a SearchSpace, got a {type(space).__name__}"
    )


def _check_workers_can_import(space: SearchSpace, execution: Execution) -> None:
    """A define-by-run space run on other processes must be importable there: refuse a
    lambda, a closure or a function of ``__main__`` before any work, in one line."""
    from swapprobe.searchspaces.custom import CustomSpace

    if isinstance(space, CustomSpace) and not execution.local:
        space.check_importable()


# --- score ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreRun:
    """What a scoring run gives its report: the results (failures in ``results.failed``), the
    batch and the settings they were scored with, and the models asked for."""

    results: ResultList
    data: Batch
    settings: ScoreSettings
    models: tuple[ModelRef, ...]
    store: str | os.PathLike[str] | None = None
    #: the defaults chosen from the models, each with why (token data, the S chosen)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScorePlan:
    """``swapprobe score``: score and rank ``models`` (specs or references)."""

    models: tuple[Any, ...]
    inputs: Inputs = Inputs()
    scoring: Scoring = Scoring()
    execution: Execution = Execution()
    store: str | os.PathLike[str] | None = None
    resume: bool = False
    #: pattern blocks kept per model in the store (none without a store: unread)
    keep_patterns: str = "first"
    per_layer: bool = False
    baselines: bool = True
    activations: str = DEFAULT_ACTIVATIONS
    input_name: str | None = None
    max_pattern_bytes: int | None = None

    def run(self, progress: Progress | None = None) -> ScoreRun:
        """Check, resolve the models, load the batch, score on the executor."""
        from swapprobe.api import score_many
        from swapprobe.capture.activations import select_kinds
        from swapprobe.models import resolve_models, scoring_defaults

        progress = progress or _Silent()
        select_kinds(self.activations)  # an unknown kind fails before any work
        _before_work(self.scoring, self.execution, store=self.store, resume=self.resume)
        seed = self.scoring.seed
        refs = resolve_models(self.models, seed=seed)
        defaults = scoring_defaults(refs)
        inputs, notes = self.inputs.with_default_data(refs, defaults, self.input_name)
        data = inputs.load(seed, defaults, refs, input_name=self.input_name)
        data, chosen = inputs.with_chosen_samples(
            data,
            seed,
            defaults,
            refs,
            activations=self.activations,
            input_name=self.input_name,
            resumed=self.store if self.resume else None,
        )
        notes += chosen
        spaces = {ref.space.name for ref in refs if ref.space is not None}
        settings = self.scoring.settings(
            data,
            defaults,
            size_unit="M",
            space=spaces.pop() if len(spaces) == 1 and all(r.space for r in refs) else None,
            baselines=self.baselines,
            per_layer=self.per_layer,
            keep_patterns=self.keep_patterns if self.store else "none",
            input_name=self.input_name,
            max_pattern_bytes=self.max_pattern_bytes,
            activations=self.activations,
        )
        local = self.execution.local  # repeats are only seen for models scored here
        with self.execution.open() as executor:
            progress.begin("models", len(refs))
            if local:
                progress.begin("repeats", settings.repeats)

            def on_repeat(done: int, total: int) -> None:
                if local:
                    progress.advance("repeats", done, total)

            def on_model(done: int, total: int, ref: ModelRef, result: Result) -> None:
                progress.advance("models", done)
                if local:
                    progress.begin("repeats", settings.repeats)

            results = score_many(
                refs,
                data,
                settings,
                store=self.store,
                resume=self.resume,
                on_model=on_model,
                on_repeat=on_repeat,
                executor=executor,
            )
        return ScoreRun(results, data, settings, tuple(refs), self.store, notes)


# --- search --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableSpec:
    """A table of trained accuracies: its path, architecture column and accuracy columns
    (``None``: the first column, every other column)."""

    path: str | os.PathLike[str]
    arch_col: str | None = None
    acc_cols: Sequence[str] | None = None

    def read(self, space: SearchSpace | None = None) -> GroundTruth:
        """The table; with ``space``, its keys read as that space's architectures (a NASLib
        table's encodings, see :func:`swapprobe.correlate.for_space`)."""
        from swapprobe.correlate import for_space, read_table

        truth = read_table(
            self.path,
            arch_col=self.arch_col,
            acc_cols=list(self.acc_cols) if self.acc_cols else None,
        )
        return truth if space is None else for_space(truth, space)


@dataclass(frozen=True)
class SearchSetup:
    """A search as it is about to start: space, policy (fitness, settings, calibration),
    engine configuration and batch."""

    space: SearchSpace
    policy: SearchPolicy
    config: EvolutionConfig
    data: Batch
    #: hard limits on the evaluation network (none set: no budget)
    budget: SizeBudget | None = None


@dataclass(frozen=True)
class SearchRun:
    """What a search gives its report."""

    outcome: SearchOutcome
    setup: SearchSetup
    #: the found architecture in the plan's table, if one was given
    found: Lookup | None = None
    #: where the found architecture's evaluation network was written, if asked
    exported: Path | None = None

    @property
    def settings(self) -> ScoreSettings:
        return self.setup.policy.settings


@dataclass(frozen=True)
class SearchPlan:
    """``swapprobe search``: SWAP-NAS evolution over ``space`` with its policy
    (:func:`swapprobe.searching.search_policy`): ``fitness`` (``None``: the space's), the
    proxies it aggregates (``scoring.proxies``), ``reg="auto"`` calibration."""

    #: a space object, a registered name, ``FILE.py:FUNCTION`` or a function of the choice
    #: recorder (a define-by-run space, :mod:`swapprobe.searchspaces.custom`)
    space: Any
    inputs: Inputs = Inputs()
    scoring: Scoring = Scoring()
    execution: Execution = Execution("auto")
    fitness: str | None = None
    reg: str | None = None
    population: int | None = None
    cycles: int | None = None
    mutation_times: int | None = None
    crossover_prob: float = 0.5
    store: str | os.PathLike[str] | None = None
    resume: bool = False
    #: look the found architecture up in this table (read, and checked, before any scoring)
    table: TableSpec | None = None
    #: write the found architecture's evaluation network here as ONNX (for the batch's
    #: input size: DARTS' ImageNet network for images of 128 px and more)
    export: str | os.PathLike[str] | None = None
    #: hard limits on the evaluation network: parameters and multiply-adds per input at the
    #: batch's input size (numbers, or text with K/M/G: ``"6M"``); see :mod:`swapprobe.budget`
    max_params: int | float | str | None = None
    max_flops: int | float | str | None = None

    def run(self, progress: Progress | None = None) -> SearchRun:
        from swapprobe.budget import SizeBudget
        from swapprobe.correlate import lookup
        from swapprobe.evolution import EvolutionConfig
        from swapprobe.searching import export_network, run_search, search_policy

        progress = progress or _Silent()
        _before_work(
            self.scoring, self.execution, store=self.store, resume=self.resume, reg=self.reg
        )
        space = _space(self.space)
        _check_workers_can_import(space, self.execution)
        defaults = space.defaults
        seed = self.scoring.seed
        budget = SizeBudget.read(self.max_params, self.max_flops)
        config = EvolutionConfig(
            population=self.population or defaults.population,
            cycles=defaults.cycles if self.cycles is None else self.cycles,
            mutation_times=self.mutation_times or defaults.mutation_times,
            crossover_prob=self.crossover_prob,
            seed=seed,
        )
        truth = self.table.read(space) if self.table is not None else None
        data = self.inputs.load(seed, defaults, _space_models(space, seed))
        # the fitness decides the proxies: the policy fills them in
        settings = self.scoring.settings(
            data,
            defaults,
            size_unit=space.size_unit,
            space=space.name,
            keep_patterns="none",
            proxies=(),
        )
        policy = search_policy(
            space,
            settings,
            fitness=self.fitness,
            proxies=self.scoring.proxies,
            reg=self.reg,
        )
        setup = SearchSetup(space, policy, config, data, budget if budget.active else None)
        progress.announce(setup)
        with self.execution.open() as executor:
            progress.begin("cycles", config.cycles)
            outcome = run_search(
                space,
                data,
                policy.settings,
                config,
                store=self.store,
                resume=self.resume,
                on_cycle=lambda cycle: progress.advance(
                    "cycles", cycle.cycle, best=cycle.best.fitness
                ),
                executor=executor,
                reg="auto" if policy.calibrate else None,
                max_params=budget.max_params,
                max_flops=budget.max_flops,
            )
        found = lookup(truth, space, outcome.best_text) if truth is not None else None
        exported = None
        if self.export is not None:
            exported = export_network(
                space,
                outcome.best_arch,
                self.export,
                sample_shape=data.inputs.shape[1:],
                source=data.dataset,
            )
        return SearchRun(outcome, setup, found, exported)


# --- correlate -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CorrelateRun:
    """What a table correlation gives its report."""

    report: CorrelationReport
    truth: GroundTruth
    space: SearchSpace
    data: Batch
    settings: ScoreSettings


@dataclass(frozen=True)
class CorrelatePlan:
    """``swapprobe correlate``: score a table's architectures (all, or a seeded ``limit``)
    and correlate every metric with every accuracy column."""

    space: SearchSpace | str
    table: TableSpec
    inputs: Inputs = Inputs()
    scoring: Scoring = Scoring()
    execution: Execution = Execution("auto")
    limit: int | None = None
    reg: str | None = None
    sweep: bool = False
    bootstrap: int = 1000
    store: str | os.PathLike[str] | None = None
    resume: bool = False
    keep_patterns: str = "none"
    #: a proxy selection rule judged on seeded halves: ``"libra"``, ``"rule"`` or None
    select: str | None = None

    def run(self, progress: Progress | None = None) -> CorrelateRun:
        from swapprobe.searching import correlate_table

        progress = progress or _Silent()
        _before_work(
            self.scoring, self.execution, store=self.store, resume=self.resume, reg=self.reg
        )
        space = _space(self.space)
        defaults = space.defaults
        seed = self.scoring.seed
        truth = self.table.read(space)
        data = self.inputs.load(seed, defaults, _space_models(space, seed))
        settings = self.scoring.settings(
            data,
            defaults,
            size_unit=space.size_unit,
            space=space.name,
            keep_patterns=self.keep_patterns,
        )
        with self.execution.open() as executor:
            progress.begin("architectures", self.limit or len(truth.archs))
            report = correlate_table(
                space,
                truth,
                data,
                settings,
                limit=self.limit,
                seed=seed,
                store=self.store,
                resume=self.resume,
                on_arch=lambda done, total: progress.advance("architectures", done, total),
                executor=executor,
                reg=self.reg,
                sweep=self.sweep,
                bootstrap=self.bootstrap,
                select=self.select,
            )
        return CorrelateRun(report, truth, space, data, settings)

