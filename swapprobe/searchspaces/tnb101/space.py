"""The TransNAS-Bench-101 spaces behind the :class:`SearchSpace` protocol: ``tnb101-micro`` (one
4-node cell in a fixed skeleton) and ``tnb101-macro`` (4-6 stages of ResNet basic blocks), each
on seven Taskonomy tasks whose heads differ (see :mod:`swapprobe.searchspaces.tnb101.encoding`).

An architecture is a task and NASLib's tuple, because the same encoder with another task's head
is another network with another size and another score. Text form: ``TASK:(codes)``, the task
then NASLib's key exactly as NAS-Bench-Suite-Zero's tables spell it::

    tnb101-micro:class_scene:(1, 0, 0, 2, 1, 0)
    tnb101-macro:jigsaw:(1, 2, 4, 2, 0, 0)

The task may be left out (``(1, 0, 0, 2, 1, 0)``): it is then the space's own task, chosen by
``get_space("tnb101-micro", task="jigsaw")`` (default ``class_scene``), which is also the task of
``random:N`` samples. The canonical text always names the task, so store keys never mix tasks.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from swapprobe.errors import DataError, SettingsError, UnknownArchitectureError
from swapprobe.searchspaces.base import SearchSpace, SizeUnit, SpaceDefaults, register_space
from swapprobe.searchspaces.tnb101.encoding import (
    MACRO_CODES,
    MACRO_LENGTHS,
    MACRO_WIDTH,
    MICRO_EDGES,
    MICRO_OPS,
    MICRO_SKELETON,
    TNB101_IMAGE_SIZE,
    TNB101_TASKS,
    macro_problem,
    micro_problem,
)
from swapprobe.searchspaces.tnb101.sizes import network_params

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = [
    "Tnb101MacroArch",
    "Tnb101MacroSpace",
    "Tnb101MicroArch",
    "Tnb101MicroSpace",
    "load_table",
]

_MAX_TEXT = 200  # a task and six small integers; longer text is refused before parsing


# --- architecture values ---------------------------------------------------------------------
def _check_task(task: object) -> str:
    if task not in TNB101_TASKS:
        raise UnknownArchitectureError(
            f"unknown TransNAS-Bench-101 task {task!r}; tasks: {', '.join(TNB101_TASKS)}"
        )
    return task  # type: ignore[return-value]


def _check_codes(codes: object, what: str) -> tuple[int, ...]:
    if not isinstance(codes, tuple | list) or not all(
        isinstance(c, int | np.integer) and not isinstance(c, bool) for c in codes
    ):
        raise UnknownArchitectureError(f"{what} codes must be a tuple of integers, got {codes!r}")
    return tuple(int(c) for c in codes)


def _format_codes(codes: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(c) for c in codes) + ")"


@dataclass(frozen=True, slots=True)
class Tnb101MicroArch:
    """A micro-space network: the task and the op code (0-3, :data:`MICRO_OPS`) of each of the
    cell's 6 edges in :data:`MICRO_EDGES` order; the constructor validates."""

    task: str
    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_task(self.task)
        object.__setattr__(self, "ops", _check_codes(self.ops, "micro op"))
        problem = micro_problem(self.ops)
        if problem:
            raise UnknownArchitectureError(f"not a TransNAS-Bench-101 micro cell: {problem}")

    def format(self) -> str:
        """``TASK:(a, b, c, d, e, f)``: NASLib's key after the task."""
        return f"{self.task}:{_format_codes(self.ops)}"

    def __str__(self) -> str:
        return self.format()

    @property
    def benchmark_code(self) -> str:
        """The benchmark's own name, ``64-41414-a_bc_def`` (its API and papers use it)."""
        a, b, c, d, e, f = self.ops
        return f"64-41414-{a}_{b}{c}_{d}{e}{f}"


@dataclass(frozen=True, slots=True)
class Tnb101MacroArch:
    """A macro-space network: the task and the code (1-4) of each of its 4-6 stages."""

    task: str
    stages: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_task(self.task)
        object.__setattr__(self, "stages", _check_codes(self.stages, "macro stage"))
        problem = macro_problem(self.stages)
        if problem:
            raise UnknownArchitectureError(f"not a TransNAS-Bench-101 macro network: {problem}")

    @property
    def codes(self) -> tuple[int, ...]:
        """NASLib's tuple: the stage codes padded with zeros to six."""
        return self.stages + (0,) * (MACRO_WIDTH - len(self.stages))

    def format(self) -> str:
        """``TASK:(a, b, c, d, e, f)``: NASLib's zero-padded key after the task."""
        return f"{self.task}:{_format_codes(self.codes)}"

    def __str__(self) -> str:
        return self.format()

    @property
    def benchmark_code(self) -> str:
        """The benchmark's own name, ``64-ABCD-basic``."""
        return f"64-{''.join(str(c) for c in self.stages)}-basic"


def _split_text(text: object, default_task: str, space: str) -> tuple[str, tuple[int, ...]]:
    """``[TASK:](c, c, ...)`` → the task and the integers, strictly."""
    if not isinstance(text, str):
        raise UnknownArchitectureError(
            f"{space} architecture must be text, got {type(text).__name__}"
        )
    stripped = text.strip()
    if not stripped or len(stripped) > _MAX_TEXT:
        raise UnknownArchitectureError(
            f"{space} architecture must be TASK:(codes), as class_scene:(1, 0, 0, 2, 1, 0); "
            f"got {stripped[:60]!r}"
        )
    head, colon, rest = stripped.partition(":")
    task, body = (head.strip(), rest.strip()) if colon else (default_task, stripped)
    _check_task(task)
    try:
        value = ast.literal_eval(body)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, tuple) or not body.startswith("("):
        raise UnknownArchitectureError(
            f"{space} codes must be a tuple like (1, 0, 0, 2, 1, 0), got {body[:60]!r}"
        )
    return task, _check_codes(value, space)


# --- the spaces ------------------------------------------------------------------------------
#: each task's head kind (:mod:`swapprobe.capture.task_targets`)
TASK_LOSSES: dict[str, str] = {
    "class_scene": "classification",
    "class_object": "classification",
    "jigsaw": "classification",
    "segmentsemantic": "segmentation",
    "autoencoder": "reconstruction",
    "normal": "regression",
    "room_layout": "regression",
}


class _Tnb101Space(SearchSpace):
    """What both spaces share: the task, the networks, the sizes, the defaults."""

    size_unit: ClassVar[SizeUnit] = "M"
    #: Taskonomy's 256×256 RGB images, as the benchmark trains on them (the default input size,
    #: ``SpaceDefaults.input_size``); the networks also run on smaller images (the pixel heads
    #: then put out the input's size)
    input_shape: ClassVar[tuple[int, int, int]] = (3, *TNB101_IMAGE_SIZE)
    #: fixed before any correlation was looked at: the paper's N(0, 1) weights on synthetic
    #: images (Taskonomy is not reachable offline), meant at 256×256 (see ``input_shape``).
    #: S=32, not the paper's 16: at 256×256 a network has millions of units and S=16 caps SWAP
    #: at 2^16 = 65,536 distinct patterns (a macro network reached exactly that). One repeat,
    #: not 32: one forward of S=32 at 256×256 already costs seconds (micro) to a minute
    #: (macro) on 2 cores. The torch backend: exporting the jigsaw network (its encoder run on
    #: 9 tiles) to ONNX takes minutes, and one default serves every task.
    defaults: ClassVar[SpaceDefaults] = SpaceDefaults(
        batch_size=32, init="gaussian", repeats=1, backend="torch", input_size=TNB101_IMAGE_SIZE
    )

    def __init__(self, task: str = "class_scene") -> None:
        if task not in TNB101_TASKS:
            raise SettingsError(
                f"unknown TransNAS-Bench-101 task {task!r}; tasks: {', '.join(TNB101_TASKS)}"
            )
        self.task = task

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r})"

    def parse_table_key(self, key: str, task: str | None = None) -> Hashable:
        """A NASLib key of one task's table (``(1, 0, 0, 2, 1, 0)``) is that task's network:
        the task goes into the architecture, so the seven tasks' rows stay seven networks."""
        if task is None or ":" in key:
            return self.parse(key)
        return self.parse(f"{task}:{key}")

    def _coerce(self, arch: object) -> Any:
        raise NotImplementedError

    def format(self, arch: Hashable) -> str:
        return self._coerce(arch).format()  # type: ignore[no-any-return]

    def _parts(self, arch: Hashable) -> tuple[str, tuple[int, ...], tuple[int, ...] | None]:
        """(task, macro stages, micro cell or None) of ``arch``."""
        raise NotImplementedError

    def build_scoring_network(self, arch: Hashable) -> nn.Module:
        """The whole network NASLib builds for the architecture's task (encoder and head):
        NAS-Bench-Suite-Zero computed its proxies on it."""
        from swapprobe.searchspaces.tnb101.networks import build_task_network

        task, stages, cell = self._parts(arch)
        return build_task_network(task, stages, cell)

    def build_evaluation_network(self, arch: Hashable, dataset: str = "") -> nn.Module:
        """The same network: the benchmark trains it as scored. ``dataset``, when given, is a
        task and must be the architecture's."""
        self._check_dataset(arch, dataset)
        return self.build_scoring_network(arch)

    def task_loss(self, arch: Hashable) -> str:
        """The head's kind for the gradient pass (:data:`TASK_LOSSES`): NASLib trains
        segmentsemantic with per-pixel cross-entropy, autoencoder and normal with L1 on an
        image, room_layout with mean squared error, the three classifiers with
        cross-entropy."""
        return TASK_LOSSES[self._parts(arch)[0]]

    def proxy_blocks(self, network: nn.Module) -> list[nn.Module]:
        """AZ-NAS's blocks: the stem, then each stage of the encoder (two cells or blocks)."""
        encoder = network.encoder  # type: ignore[attr-defined]
        return [encoder.stem, *encoder.layers]

    def scoring_param_count(self, arch: Hashable) -> int:
        """Θ in parameters, in closed form: NASLib's ``params`` column × 10⁶ exactly."""
        task, stages, cell = self._parts(arch)
        return network_params(task, stages, cell)

    def evaluation_param_count(self, arch: Hashable, dataset: str = "") -> int:
        self._check_dataset(arch, dataset)
        return self.scoring_param_count(arch)

    def _check_dataset(self, arch: Hashable, dataset: str) -> None:
        task = self._parts(arch)[0]
        if dataset and dataset not in ("cifar10", task):  # cifar10: the protocol's default
            raise DataError(
                f"{self.name} architecture {self.format(arch)} is built for task {task!r}, "
                f"not {dataset!r}; the task is part of the architecture"
            )


@register_space
class Tnb101MicroSpace(_Tnb101Space):
    """TransNAS-Bench-101's micro (cell) space: 4,096 cells per task."""

    name: ClassVar[str] = "tnb101-micro"
    #: the default rule on 56 seeded rows over the seven tasks (docs/benchmarks.md)
    defaults: ClassVar[SpaceDefaults] = replace(
        _Tnb101Space.defaults,
        proxies=("expressivity", "trainability", "flops"),
        fitness="aggregate",
        chosen_by="SWAP + E + T + FLOPs over the 7 tasks: ½(ρ+τw) 0.619 / 0.607 on the halves "
        "of 56 seeded rows (about 8 a task; gradient views not scored for cost), SWAP alone "
        "0.228; each half's own choice 0.457 / 0.619 on the other half: a small sample",
    )

    def _coerce(self, arch: object) -> Tnb101MicroArch:
        if isinstance(arch, Tnb101MicroArch):
            return arch
        if isinstance(arch, str):
            return self.parse(arch)
        raise UnknownArchitectureError(
            f"expected a Tnb101MicroArch or its text form, got {type(arch).__name__}"
        )

    def _parts(self, arch: Hashable) -> tuple[str, tuple[int, ...], tuple[int, ...] | None]:
        value = self._coerce(arch)
        return value.task, MICRO_SKELETON, value.ops

    def parse(self, text: str) -> Tnb101MicroArch:
        task, codes = _split_text(text, self.task, self.name)
        return Tnb101MicroArch(task, codes)

    def sample(self, rng: np.random.Generator) -> Tnb101MicroArch:
        """Each edge's op uniform and independent: uniform over the 4,096 cells."""
        codes = rng.integers(0, len(MICRO_OPS), size=len(MICRO_EDGES))
        return Tnb101MicroArch(self.task, tuple(int(c) for c in codes))

    def mutate(self, arch: Hashable, rng: np.random.Generator) -> Tnb101MicroArch:
        """One random edge gets one of the 3 other ops (NASLib's mutation)."""
        value = self._coerce(arch)
        ops = list(value.ops)
        edge = int(rng.integers(len(ops)))
        ops[edge] = (ops[edge] + int(rng.integers(1, len(MICRO_OPS)))) % len(MICRO_OPS)
        return Tnb101MicroArch(value.task, tuple(ops))

    def crossover(
        self, first: Hashable, second: Hashable, rng: np.random.Generator
    ) -> tuple[Tnb101MicroArch, Tnb101MicroArch]:
        """Half the time per-edge uniform crossover, else the parents swap one node's incoming
        edges; the children are complementary and keep their parents' tasks."""
        a, b = self._coerce(first), self._coerce(second)
        ops_a, ops_b = list(a.ops), list(b.ops)
        if rng.random() < 0.5:
            edges = [e for e, flip in enumerate(rng.random(len(MICRO_EDGES)) < 0.5) if flip]
        else:
            node = int(rng.integers(1, 4))
            edges = [e for e, (target, _) in enumerate(MICRO_EDGES) if target == node]
        for e in edges:
            ops_a[e], ops_b[e] = ops_b[e], ops_a[e]
        return Tnb101MicroArch(a.task, tuple(ops_a)), Tnb101MicroArch(b.task, tuple(ops_b))

    def enumerate(self) -> Iterator[Tnb101MicroArch]:
        """All 4,096 cells of the space's task (``tnb101-micro:all``)."""
        return (Tnb101MicroArch(self.task, ops) for ops in product(range(len(MICRO_OPS)), repeat=6))

    def __len__(self) -> int:
        return len(MICRO_OPS) ** len(MICRO_EDGES)


def _all_macro_stages() -> tuple[tuple[int, ...], ...]:
    """The 3,256 valid stage tuples, shortest first, each length in lexicographic order."""
    return tuple(
        stages
        for length in MACRO_LENGTHS
        for stages in product(MACRO_CODES, repeat=length)
        if macro_problem(stages) is None
    )


_MACRO_STAGES = _all_macro_stages()


@register_space
class Tnb101MacroSpace(_Tnb101Space):
    """TransNAS-Bench-101's macro (skeleton) space: 3,256 networks per task."""

    name: ClassVar[str] = "tnb101-macro"
    #: the default rule on 56 seeded rows over the seven tasks (docs/benchmarks.md)
    defaults: ClassVar[SpaceDefaults] = replace(
        _Tnb101Space.defaults,
        proxies=("expressivity", "flops", "nwot"),
        fitness="aggregate",
        chosen_by="SWAP + E + FLOPs + NWOT over the 7 tasks: ½(ρ+τw) 0.782 / 0.848 on the "
        "halves of 56 seeded rows (about 8 a task), SWAP alone 0.762 / 0.784; each half's own "
        "choice scores only 0.640 / 0.623 on the other half, below SWAP alone: on this sample "
        "choosing does not pay, and the rule's pick is shipped as stated",
    )

    def _coerce(self, arch: object) -> Tnb101MacroArch:
        if isinstance(arch, Tnb101MacroArch):
            return arch
        if isinstance(arch, str):
            return self.parse(arch)
        raise UnknownArchitectureError(
            f"expected a Tnb101MacroArch or its text form, got {type(arch).__name__}"
        )

    def _parts(self, arch: Hashable) -> tuple[str, tuple[int, ...], tuple[int, ...] | None]:
        value = self._coerce(arch)
        return value.task, value.stages, None

    def parse(self, text: str) -> Tnb101MacroArch:
        """NASLib's zero-padded six codes; zeros may only trail (4-6 stages)."""
        task, codes = _split_text(text, self.task, self.name)
        if len(codes) != MACRO_WIDTH:
            raise UnknownArchitectureError(
                f"{self.name} codes are {MACRO_WIDTH} numbers (zero-padded), got {len(codes)}"
            )
        stages = tuple(c for c in codes if c != 0)
        if codes[: len(stages)] != stages:
            raise UnknownArchitectureError(
                f"{self.name} codes {_format_codes(codes)} have a zero before a stage; "
                "zeros only pad the end"
            )
        return Tnb101MacroArch(task, stages)

    def sample(self, rng: np.random.Generator) -> Tnb101MacroArch:
        """Uniform over the 3,256 networks (NASLib's sampler is not: it draws the length and
        the counts first)."""
        return Tnb101MacroArch(self.task, _MACRO_STAGES[int(rng.integers(len(_MACRO_STAGES)))])

    def mutate(self, arch: Hashable, rng: np.random.Generator) -> Tnb101MacroArch:
        """One small change, uniform over the valid ones: a stage recoded, a stage inserted
        or a stage removed (NASLib's mutation instead redraws the whole order)."""
        value = self._coerce(arch)
        neighbours = _macro_neighbours(value.stages)
        return Tnb101MacroArch(value.task, neighbours[int(rng.integers(len(neighbours)))])

    def crossover(
        self, first: Hashable, second: Hashable, rng: np.random.Generator
    ) -> tuple[Tnb101MacroArch, Tnb101MacroArch]:
        """One-point crossover with a cut in each parent (``a[:i] + b[j:]``, ``b[:j] + a[i:]``),
        uniform over the cuts that leave both children valid and differ from the parents."""
        a, b = self._coerce(first), self._coerce(second)
        cuts = []
        for i in range(len(a.stages) + 1):
            for j in range(len(b.stages) + 1):
                one, two = a.stages[:i] + b.stages[j:], b.stages[:j] + a.stages[i:]
                if {one, two} == {a.stages, b.stages}:
                    continue
                if macro_problem(one) is None and macro_problem(two) is None:
                    cuts.append((one, two))
        if not cuts:  # e.g. equal parents: nothing to mix
            return a, b
        one, two = cuts[int(rng.integers(len(cuts)))]
        return Tnb101MacroArch(a.task, one), Tnb101MacroArch(b.task, two)

    def enumerate(self) -> Iterator[Tnb101MacroArch]:
        """All 3,256 networks of the space's task (``tnb101-macro:all``)."""
        return (Tnb101MacroArch(self.task, stages) for stages in _MACRO_STAGES)

    def __len__(self) -> int:
        return len(_MACRO_STAGES)


def _macro_neighbours(stages: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Valid stage tuples one recode, insertion or removal away from ``stages``."""
    found: set[tuple[int, ...]] = set()
    for i in range(len(stages)):
        found.update((*stages[:i], other, *stages[i + 1 :]) for other in MACRO_CODES)
        found.add(stages[:i] + stages[i + 1 :])
    for i in range(len(stages) + 1):
        found.update((*stages[:i], other, *stages[i:]) for other in MACRO_CODES)
    found.discard(stages)
    return sorted(s for s in found if macro_problem(s) is None)


# --- NAS-Bench-Suite-Zero tables -------------------------------------------------------------
def load_table(
    path: str | Path, space: str | SearchSpace
) -> dict[str, list[tuple[Tnb101MicroArch | Tnb101MacroArch, dict[str, float]]]]:
    """Read a NAS-Bench-Suite-Zero TransNAS-Bench-101 table (``tnb101_micro_dev.json``).

    Returns, per task in file order, ``(architecture, {column: value})`` per row: every number
    of the row (``val_accuracy``; a proxy's ``score``, e.g. ``params``, ``nwot``).

    Raises:
        DataError: the file is missing or not such a table (a task it does not know).
        UnknownArchitectureError: a key that is no architecture of ``space`` (the message
            names the task and the key: e.g. a macro table given to the micro space).
    """
    from swapprobe.searchspaces.base import get_space

    resolved = get_space(space) if isinstance(space, str) else space
    path = Path(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DataError(f"cannot read TransNAS-Bench-101 table {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not JSON: {error}") from None
    if not isinstance(table, dict):
        raise DataError(f"{path} is not a NAS-Bench-Suite-Zero table (task → rows)")
    rows: dict[str, list[tuple[Any, dict[str, float]]]] = {}
    for task, entries in table.items():
        if task not in TNB101_TASKS:
            raise DataError(
                f"{path}: task {task!r} is no TransNAS-Bench-101 task ({', '.join(TNB101_TASKS)})"
            )
        rows[task] = []
        for key, row in entries.items():
            try:
                arch = resolved.parse(f"{task}:{key}")
            except UnknownArchitectureError as error:
                raise UnknownArchitectureError(f"{path} task {task} row {key}: {error}") from None
            rows[task].append((arch, _row_numbers(row)))
    return rows


def _row_numbers(row: dict[str, Any]) -> dict[str, float]:
    values: dict[str, float] = {}
    for column, value in row.items():
        if isinstance(value, dict) and "score" in value:
            value = value["score"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            values[column] = float(value)
    return values
