"""The DARTS cell search space, as SWAP-NAS searches and scores it.

DARTS: H. Liu, K. Simonyan, Y. Yang, "DARTS: Differentiable Architecture Search", ICLR 2019,
https://arxiv.org/abs/1806.09055 (cell, operation set, evaluation networks).
SWAP-NAS: Y. Peng, A. Song, H. M. Fayek, V. Ciesielski, X. Chang, "SWAP-NAS: Sample-Wise
Activation Patterns for Ultra-fast NAS", ICLR 2024, https://arxiv.org/abs/2403.04161
(appendix C: matrix encoding, operation/connectivity mutation, node crossover; the tiny
one-cell scoring network).

Everything here follows ``SPEC.md`` ("DARTS search space" and "How the reference scores an
architecture"), which is written from the papers and from measurements of the authors' table;
no code of the DARTS or SWAP repositories is reused.

A genotype has a normal and a reduction cell. Each cell has 4 intermediate nodes (2..5); each
node takes two edges ``(op, input_state)`` from earlier states (0, 1 = the two cell inputs) and
sums them; the cell output concatenates the nodes listed in ``*_concat``.
"""

from __future__ import annotations

import ast
import copy
import csv
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from swapprobe.errors import DataError, SettingsError, UnknownArchitectureError
from swapprobe.searchspaces.base import SearchSpace, SpaceDefaults, register_space
from swapprobe.searchspaces.darts.encoding import (
    DARTS_OPS,
    DEFAULT_CONCAT,
    EDGES,
    KERNEL_SIZE,
    OP_CODE,
    SCORING_CHANNELS,
    SCORING_CLASSES,
    STATES,
    STEPS,
    CellEdges,
    CellName,
    Edge,
    Genotype,
    genotype_from_naslib,
    node_of,
    normalise_cell,
    reduction_positions,
)

if TYPE_CHECKING:
    import torch.nn as nn

    from swapprobe.searchspaces.darts.networks import ScoringNetwork

__all__ = [
    "DARTS_OPS",
    "DARTS_V2",
    "IMAGENET_MIN_SIZE",
    "DartsSpace",
    "Genotype",
    "draw_cell",
    "evaluation_macs",
    "evaluation_param_count",
    "format_genotype",
    "from_matrix",
    "load_table",
    "paper_matrix",
    "parse_genotype",
    "scoring_param_count",
    "to_matrix",
]

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_MAX_TEXT = 4096  # a genotype is ~500 characters; longer text is refused before parsing


def _format_cell(edges: CellEdges) -> str:
    return "[" + ", ".join(f"('{op}', {index})" for op, index in edges) + "]"


def _format_concat(concat: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(v) for v in concat) + "]"


def format_genotype(genotype: Genotype) -> str:
    """The canonical text form: the Python repr of the DARTS namedtuple, with lists.

    It is byte-identical to the authors' table (``darts_cifar10_1000.csv``) and is the cache
    key of a genotype, so it is written explicitly rather than through ``repr``.
    """
    return (
        f"Genotype(normal={_format_cell(genotype.normal)}, "
        f"normal_concat={_format_concat(genotype.normal_concat)}, "
        f"reduce={_format_cell(genotype.reduce)}, "
        f"reduce_concat={_format_concat(genotype.reduce_concat)})"
    )


def _excerpt(text: str, width: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def _literal(node: ast.expr, field: str) -> object:
    """A field value: a literal (list/tuple), or ``range(a, b)`` as DARTS logs print concats."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 2
    ):
        bounds = [_literal(arg, field) for arg in node.args]
        if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            raise UnknownArchitectureError(f"{field}: range() bounds must be integers")
        return range(*bounds)  # type: ignore[arg-type]
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise UnknownArchitectureError(
            f"{field}: not a literal list ({_excerpt(ast.unparse(node))})"
        ) from None


def parse_genotype(text: str) -> Genotype:
    """Parse ``Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])``.

    The text is parsed into a syntax tree and only literals are evaluated (never ``eval``), so
    a table or a command line cannot run code. Positional fields and ``range(2, 6)`` concats
    (how a DARTS training log prints a genotype) are accepted too; :func:`format_genotype`
    writes the one canonical form.

    Raises:
        UnknownArchitectureError: the text is not a genotype, or the genotype is invalid.
    """
    if not isinstance(text, str):
        raise UnknownArchitectureError(
            f"expected a DARTS genotype string, got {type(text).__name__}"
        )
    stripped = text.strip()
    if len(stripped) > _MAX_TEXT:
        raise UnknownArchitectureError(
            f"DARTS genotype text too long ({len(stripped)} characters, at most {_MAX_TEXT})"
        )
    try:
        tree = ast.parse(stripped, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        tree = None
    call = tree.body if tree is not None else None
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "Genotype"
    ):
        raise UnknownArchitectureError(
            f"not a DARTS genotype (expected 'Genotype(normal=[...], normal_concat=[...], "
            f"reduce=[...], reduce_concat=[...])'): {_excerpt(text)!r}"
        )
    if len(call.args) > len(_FIELDS):
        raise UnknownArchitectureError(
            f"DARTS genotype has {len(call.args)} fields, expected {len(_FIELDS)}"
        )
    fields: dict[str, ast.expr] = dict(zip(_FIELDS, call.args, strict=False))
    for keyword in call.keywords:
        if keyword.arg not in _FIELDS:
            name = "**" if keyword.arg is None else repr(keyword.arg)
            raise UnknownArchitectureError(
                f"DARTS genotype: unknown field {name}; fields are {', '.join(_FIELDS)}"
            )
        if keyword.arg in fields:
            raise UnknownArchitectureError(f"DARTS genotype: field {keyword.arg!r} given twice")
        fields[keyword.arg] = keyword.value
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise UnknownArchitectureError(f"DARTS genotype: missing field {', '.join(missing)}")
    values = {name: _literal(fields[name], name) for name in _FIELDS}
    return Genotype(**values)  # type: ignore[arg-type]


def to_matrix(cell: Iterable[Edge]) -> np.ndarray:
    """The paper's matrix encoding of a cell, as a ``(2, 6, 6)`` stack of int8 matrices.

    ``m[k, i, j]`` is the op code (1-based index into :data:`DARTS_OPS`, 0 = no edge) of the
    k-th incoming edge of node j when that edge comes from state i. The paper uses one
    upper-triangular 6×6 matrix, which cannot hold two edges from the same input into the same
    node ("parallel" edges, present in the authors' table and produced by uniform sampling),
    nor the order of a node's two edges, which the text form keeps. One slice per edge slot
    holds both, so ``from_matrix(to_matrix(c)) == c`` for every cell; :func:`paper_matrix`
    gives the paper's single matrix where it exists.
    """
    edges = normalise_cell(list(cell), "cell")
    matrix = np.zeros((2, STATES, STATES), dtype=np.int8)
    for k, (op, index) in enumerate(edges):
        matrix[k % 2, index, node_of(k)] = OP_CODE[op]
    return matrix


def paper_matrix(cell: Iterable[Edge]) -> np.ndarray:
    """The paper's single upper-triangular 6×6 encoding (appendix C.1, Fig. 12).

    Raises:
        UnknownArchitectureError: the cell has parallel edges, which one matrix cannot hold.
    """
    stacked = to_matrix(cell)
    if np.any((stacked[0] > 0) & (stacked[1] > 0)):
        raise UnknownArchitectureError(
            "cell has two edges from the same input into one node; the single-matrix "
            "encoding cannot hold them (use to_matrix)"
        )
    return stacked.sum(axis=0, dtype=np.int8)


def from_matrix(matrix: np.ndarray) -> CellEdges:
    """Decode :func:`to_matrix` (``(2, 6, 6)``) or :func:`paper_matrix` (``(6, 6)``) to edges.

    From a single matrix a node's two edges come out in increasing input order, since the
    matrix does not keep their order.

    Raises:
        UnknownArchitectureError: wrong shape, unknown code, entry below the diagonal, or a
            node without exactly two incoming edges.
    """
    array = np.asarray(matrix)
    if array.shape == (STATES, STATES):
        slots: list[np.ndarray] = [array]
    elif array.shape == (2, STATES, STATES):
        slots = [array[0], array[1]]
    else:
        raise UnknownArchitectureError(
            f"cell matrix has shape {array.shape}, expected (2, 6, 6) or (6, 6)"
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise UnknownArchitectureError(f"cell matrix must hold integer op codes, not {array.dtype}")
    if array.min() < 0 or array.max() > len(DARTS_OPS):
        raise UnknownArchitectureError(
            f"cell matrix holds codes outside 0..{len(DARTS_OPS)} (0 = no edge)"
        )
    if any(np.any(np.tril(slot)) for slot in slots) or any(slot[:, :2].any() for slot in slots):
        raise UnknownArchitectureError(
            "cell matrix must be strictly upper triangular with no edges into states 0 and 1"
        )
    edges: list[Edge] = []
    for node in range(2, STATES):
        column = [
            (int(i), int(slot[i, node])) for slot in slots for i in np.flatnonzero(slot[:, node])
        ]
        if len(column) != 2 or (
            len(slots) == 2 and any(np.count_nonzero(slot[:, node]) != 1 for slot in slots)
        ):
            raise UnknownArchitectureError(
                f"cell matrix: node {node} has {len(column)} incoming edges, expected 2"
            )
        edges.extend((DARTS_OPS[code - 1], index) for index, code in column)
    return tuple(edges)


def draw_cell(genotype: Genotype, which: CellName = "reduce") -> str:
    """A plain-text picture of one cell, one ``node <- op(input) + op(input)`` line a node.

    Inputs are named as in the DARTS figures: ``c_{k-2}``/``c_{k-1}`` for the outputs of the
    two previous cells, ``n2``..``n5`` for the nodes.
    """
    edges = genotype.cell(which)
    concat = genotype.concat(which)

    def state(index: int) -> str:
        return ("c_{k-2}", "c_{k-1}")[index] if index < 2 else f"n{index}"

    lines = [f"{which} cell -> concat({', '.join(f'n{i}' for i in concat)})"]
    for node in range(2, STATES):
        (op_a, in_a), (op_b, in_b) = edges[2 * (node - 2)], edges[2 * (node - 2) + 1]
        lines.append(f"  n{node} <- {op_a}({state(in_a)}) + {op_b}({state(in_b)})")
    return "\n".join(lines)


def load_table(path: str | Path) -> list[tuple[Genotype, float]]:
    """Read a table like ``darts_cifar10_1000.csv``: no header; genotype, accuracy per row.

    Raises:
        DataError: the file is missing, or a row is not ``genotype,number``.
        UnknownArchitectureError: a genotype cannot be parsed (the message names the line).
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read DARTS table {path}: {exc.strerror}") from None
    rows: list[tuple[Genotype, float]] = []
    with handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise DataError(f"{path}:{line}: expected 2 columns (genotype, accuracy)")
            try:
                accuracy = float(row[1])
            except ValueError:
                raise DataError(f"{path}:{line}: accuracy {row[1]!r} is not a number") from None
            try:
                genotype = parse_genotype(row[0])
            except UnknownArchitectureError as exc:
                raise UnknownArchitectureError(f"{path}:{line}: {exc}") from None
            rows.append((genotype, accuracy))
    return rows


#: DARTS (second order) from the DARTS paper, the usual reference point for size.
DARTS_V2 = Genotype(
    normal=(
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1),
    ),
    reduce_concat=(2, 3, 4, 5),
)  # fmt: skip

# --- parameter counts without building ----------------------------------------------------
# Searches ask Θ once per architecture; building modules costs milliseconds, arithmetic
# microseconds. The tests check every formula against sum(p.numel()) of the built network.

#: inputs at least this many pixels on their shorter side mean the ImageNet network
IMAGENET_MIN_SIZE = 128

_DATASETS: dict[str, dict[str, int]] = {
    "cifar10": {"num_classes": 10, "layers": 20, "channels": 36},
    "cifar100": {"num_classes": 100, "layers": 20, "channels": 36},
    "imagenet": {"num_classes": 1000, "layers": 14, "channels": 48},
}
#: the datasets of DARTS' CIFAR network (20 cells, C=36), one classifier each
_CIFAR_DATASETS = ("cifar10", "cifar100")


def _bn(c: int) -> int:
    return 2 * c


def _op_params(op: str, c: int, stride: int) -> int:
    if op == "skip_connect":
        return 0 if stride == 1 else c * c + _bn(c)  # FactorizedReduce(c, c)
    if op.startswith("sep_conv"):
        k = KERNEL_SIZE[op]
        return 2 * (c * k * k + c * c + _bn(c))
    if op.startswith("dil_conv"):
        k = KERNEL_SIZE[op]
        return c * k * k + c * c + _bn(c)
    return 0  # none, pools


def _cell_params(edges: CellEdges, c_pp: int, c_p: int, c: int, reduction: bool) -> int:
    # ReLUConvBN(c_in, c) and FactorizedReduce(c_in, c) both hold c_in·c weights + BN.
    total = c_pp * c + _bn(c) + c_p * c + _bn(c)
    return total + sum(_op_params(op, c, 2 if reduction and i < 2 else 1) for op, i in edges)


def scoring_param_count(genotype: Genotype) -> int:
    """Θ of :class:`ScoringNetwork` (classifier included), in parameters."""
    c_in, c = SCORING_CHANNELS, 2 * SCORING_CHANNELS
    cell = _cell_params(genotype.reduce, c_in, c_in, c, reduction=True)
    features = len(genotype.reduce_concat) * c
    return cell + features * SCORING_CLASSES + SCORING_CLASSES


def _dataset_settings(dataset: str, layers: int | None, channels: int | None) -> dict[str, int]:
    try:
        settings = dict(_DATASETS[dataset])
    except KeyError:
        raise SettingsError(
            f"unknown dataset {dataset!r} for the DARTS evaluation network; "
            f"choose {', '.join(_DATASETS)}"
        ) from None
    if layers is not None:
        settings["layers"] = layers
    if channels is not None:
        settings["channels"] = channels
    if settings["layers"] < 1 or settings["channels"] < 2:
        raise SettingsError(
            f"DARTS evaluation network needs layers >= 1 and channels >= 2, "
            f"got layers={settings['layers']}, channels={settings['channels']}"
        )
    return settings


def evaluation_param_count(
    genotype: Genotype,
    dataset: str = "cifar10",
    *,
    layers: int | None = None,
    channels: int | None = None,
) -> int:
    """Parameters of the DARTS evaluation network for ``dataset``, counted without building."""
    settings = _dataset_settings(dataset, layers, channels)
    n_layers, c = settings["layers"], settings["channels"]
    if dataset == "imagenet":
        half = c // 2
        total = 3 * half * 9 + _bn(half) + half * c * 9 + _bn(c) + c * c * 9 + _bn(c)
        c_pp, c_p = c, c
    else:
        total = 3 * (3 * c) * 9 + _bn(3 * c)
        c_pp, c_p = 3 * c, 3 * c
    c_curr = c
    for i in range(n_layers):
        reduction = i in reduction_positions(n_layers)
        if reduction:
            c_curr *= 2
        which: CellName = "reduce" if reduction else "normal"
        total += _cell_params(genotype.cell(which), c_pp, c_p, c_curr, reduction)
        c_pp, c_p = c_p, len(genotype.concat(which)) * c_curr
    return total + c_p * settings["num_classes"] + settings["num_classes"]


def _half(size: tuple[int, int]) -> tuple[int, int]:
    # every stride-2 layer of the networks pads to keep ceil(H/2): 3×3 pad 1, 5×5 pad 2,
    # dilated 3×3 (pad 2) and 5×5 (pad 4), 1×1 pad 0, pools 3×3 pad 1
    return (size[0] + 1) // 2, (size[1] + 1) // 2


def _op_macs(op: str, c: int, stride: int, out: tuple[int, int]) -> int:
    positions = out[0] * out[1]
    if op == "skip_connect":
        return 0 if stride == 1 else c * c * positions  # FactorizedReduce(c, c)
    if op.startswith("sep_conv"):
        return 2 * (c * KERNEL_SIZE[op] ** 2 + c * c) * positions
    if op.startswith("dil_conv"):
        return (c * KERNEL_SIZE[op] ** 2 + c * c) * positions
    return 0  # none, pools: no Conv2d


def _cell_macs(
    edges: CellEdges,
    c_pp: int,
    c_p: int,
    c: int,
    size: tuple[int, int],
    reduction: bool,
    reduction_prev: bool,
) -> int:
    """``size``: the resolution of input 1 (input 0 has twice it after a reduction)."""
    positions = size[0] * size[1]
    # FactorizedReduce(c_pp, c) on input 0 writes c channels at input 1's size, as a 1×1 conv
    total = c_pp * c * positions + c_p * c * positions
    out = _half(size) if reduction else size  # every node's resolution
    for op, index in edges:
        total += _op_macs(op, c, 2 if reduction and index < 2 else 1, out)
    return total


def evaluation_macs(
    genotype: Genotype,
    dataset: str = "cifar10",
    input_size: tuple[int, int] | None = None,
    *,
    layers: int | None = None,
    channels: int | None = None,
) -> int:
    """Multiply-adds per image of every Conv2d and Linear of the evaluation network at
    ``input_size`` (``None``: 32×32 for CIFAR, 224×224 for ImageNet), by arithmetic.

    What :meth:`SearchSpace.evaluation_flops`' hook counter counts on the built network (the
    tests hold the two equal), in microseconds instead of a second: a search under a FLOPs
    budget counts every child.
    """
    settings = _dataset_settings(dataset, layers, channels)
    n_layers, c = settings["layers"], settings["channels"]
    if dataset == "imagenet":
        size = tuple(input_size or (224, 224))
        half = c // 2
        s1 = _half(size)  # type: ignore[arg-type]
        s2 = _half(s1)
        s3 = _half(s2)
        total = (3 * 9 * half) * s1[0] * s1[1] + (half * 9 * c) * s2[0] * s2[1]
        total += (c * 9 * c) * s3[0] * s3[1]
        c_pp, c_p, here, reduction_prev = c, c, s3, True
    else:
        size = tuple(input_size or (32, 32))
        total = (3 * 9 * 3 * c) * size[0] * size[1]
        c_pp, c_p, here, reduction_prev = 3 * c, 3 * c, size, False  # type: ignore[assignment]
    c_curr = c
    for i in range(n_layers):
        reduction = i in reduction_positions(n_layers)
        if reduction:
            c_curr *= 2
        which: CellName = "reduce" if reduction else "normal"
        edges = genotype.cell(which)
        total += _cell_macs(edges, c_pp, c_p, c_curr, here, reduction, reduction_prev)
        if reduction:
            here = _half(here)
        reduction_prev = reduction
        c_pp, c_p = c_p, len(genotype.concat(which)) * c_curr
    return total + c_p * settings["num_classes"]


# --- the space ----------------------------------------------------------------------------


def _as_genotype(arch: Hashable) -> Genotype:
    """Accept a Genotype or its text form; anything else is a caller's mistake."""
    if isinstance(arch, Genotype):
        return arch
    if isinstance(arch, str):
        return parse_genotype(arch)
    raise UnknownArchitectureError(
        f"expected a DARTS Genotype or its text form, got {type(arch).__name__}"
    )


class DartsSpace(SearchSpace):
    """The DARTS cell space with SWAP-NAS's variation operators and scoring network.

    Args:
        tie_cells: when true (default, like the authors' 1000-architecture table) sampled,
            mutated and crossed genotypes use one cell as both normal and reduction cell. The
            scoring network holds only the reduction cell, so an untied normal cell would never
            be scored and would drift at random; tying makes the searched cell the deployed one.
            With ``tie_cells=False`` both cells vary independently (mutation and crossover pick
            one of the two cells at random).
    """

    name = "darts"
    size_unit = "K"
    input_shape = (3, 32, 32)
    #: the paper's scoring setting (S=16, 32 N(0,1) re-draws); P, C and mutants keep a default
    #: search within 10 minutes on 2 cores (README). No proxies: on the authors' 1000
    #: genotypes the 2-fold rule of examples/proxy_study.py keeps SWAP alone (0.918; every
    #: aggregate with AZ-NAS's proxies ranked lower, the best 0.901 with FLOPs)
    defaults = SpaceDefaults(
        batch_size=16,
        init="gaussian",
        repeats=32,
        population=50,
        cycles=100,
        mutation_times=5,
        chosen_by="SWAP alone, the paper's settings: on the authors' 1000 architectures every "
        "AZ-NAS view added lowered ρ on both halves (the first proxy study; SWAP ρ 0.918)",
    )

    #: the operations sampling and mutation draw from
    operations: ClassVar[tuple[str, ...]] = DARTS_OPS

    def __init__(self, tie_cells: bool = True) -> None:
        self.tie_cells = tie_cells
        #: logits of :meth:`proxy_network` (another dataset's: :meth:`for_dataset`)
        self.proxy_classes = 10

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tie_cells={self.tie_cells})"

    # --- values ---------------------------------------------------------------------------
    def _sample_cell(self, rng: np.random.Generator) -> CellEdges:
        edges: list[Edge] = []
        for k in range(EDGES):
            index = int(rng.integers(node_of(k)))
            op = self.operations[int(rng.integers(len(self.operations)))]
            edges.append((op, index))
        return tuple(edges)

    def _assemble(self, normal: CellEdges, reduce: CellEdges, like: Genotype | None) -> Genotype:
        """Put cells back into a genotype; tied spaces copy the reduction cell to both."""
        if self.tie_cells:
            concat = like.reduce_concat if like is not None else DEFAULT_CONCAT
            return Genotype.tied(reduce, concat)
        return Genotype(
            normal=normal,
            normal_concat=like.normal_concat if like is not None else DEFAULT_CONCAT,
            reduce=reduce,
            reduce_concat=like.reduce_concat if like is not None else DEFAULT_CONCAT,
        )

    def _pick_cell(self, rng: np.random.Generator) -> CellName:
        # Tied spaces vary the reduction cell: it is the one the scoring network holds.
        if self.tie_cells:
            return "reduce"
        return "normal" if rng.random() < 0.5 else "reduce"

    def sample(self, rng: np.random.Generator) -> Genotype:
        """Each node picks two inputs (with replacement) and two ops, all uniform."""
        reduce = self._sample_cell(rng)
        normal = reduce if self.tie_cells else self._sample_cell(rng)
        return self._assemble(normal, reduce, None)

    def mutate(self, arch: Hashable, rng: np.random.Generator) -> Genotype:
        """Operation mutation or connectivity mutation (appendix C.2, Fig. 13), 1/2 each.

        Operation: one random edge gets one of the 7 other ops. Connectivity: one random edge
        moves to one of the other inputs its node can take (node 2 switches 0 ↔ 1), i.e. the
        op code moves to another row of its column in the matrix encoding. The result always
        differs from ``arch``. A tied space mutates the reduction cell and ties the result,
        even when ``arch`` itself was untied.
        """
        genotype = _as_genotype(arch)
        which = self._pick_cell(rng)
        edges = list(genotype.cell(which))
        k = int(rng.integers(EDGES))
        op, index = edges[k]
        if rng.random() < 0.5:
            others = [o for o in self.operations if o != op]
            edges[k] = (others[int(rng.integers(len(others)))], index)
        else:
            inputs = [i for i in range(node_of(k)) if i != index]
            edges[k] = (op, inputs[int(rng.integers(len(inputs)))])
        cells = {"normal": genotype.normal, "reduce": genotype.reduce, which: tuple(edges)}
        return self._assemble(cells["normal"], cells["reduce"], genotype)

    def crossover(
        self, first: Hashable, second: Hashable, rng: np.random.Generator
    ) -> tuple[Genotype, Genotype]:
        """Swap the two incoming edges of one random node between the parents (Fig. 14).

        In matrix terms: the parents exchange one column. Children equal the parents when that
        node's edges already agree. Concat lists stay with their own child.
        """
        a, b = _as_genotype(first), _as_genotype(second)
        which = self._pick_cell(rng)
        node = 2 + int(rng.integers(STEPS))
        span = slice(2 * (node - 2), 2 * (node - 2) + 2)
        cell_a, cell_b = list(a.cell(which)), list(b.cell(which))
        cell_a[span], cell_b[span] = cell_b[span], cell_a[span]

        def child(parent: Genotype, cell: list[Edge]) -> Genotype:
            cells = {"normal": parent.normal, "reduce": parent.reduce, which: tuple(cell)}
            return self._assemble(cells["normal"], cells["reduce"], parent)

        return child(a, cell_a), child(b, cell_b)

    def parse(self, text: str) -> Genotype:
        """See :func:`parse_genotype`."""
        return parse_genotype(text)

    def parse_table_key(self, key: str, task: str | None = None) -> Genotype:
        """A genotype's text, or NASLib's NAS-Bench-301 key ``[[(input, op), ...], [...]]``
        (:func:`~swapprobe.searchspaces.darts.encoding.genotype_from_naslib`)."""
        if isinstance(key, str) and key.lstrip()[:1] in "[(":
            return genotype_from_naslib(key)
        return parse_genotype(key)

    def format(self, arch: Hashable) -> str:
        """See :func:`format_genotype`."""
        return format_genotype(_as_genotype(arch))

    def named_architectures(self) -> dict[str, Genotype]:
        """DARTS-V2, the genotype the DARTS paper found (``darts:DARTS_V2``)."""
        return {"DARTS_V2": DARTS_V2}

    # --- networks -------------------------------------------------------------------------
    def build_scoring_network(self, arch: Hashable) -> ScoringNetwork:
        """The one-reduction-cell network of the reference (see :class:`ScoringNetwork`)."""
        from swapprobe.searchspaces.darts.networks import ScoringNetwork

        return ScoringNetwork(_as_genotype(arch))

    def proxy_network(self, arch: Hashable) -> nn.Module:
        """See :func:`swapprobe.searchspaces.darts.networks.proxy_network` (8 cells of 8
        channels: the scoring network's one cell is too shallow for block entropies), with
        :attr:`proxy_classes` logits."""
        from swapprobe.searchspaces.darts import networks

        return networks.proxy_network(_as_genotype(arch), num_classes=self.proxy_classes)

    def for_dataset(self, dataset: str) -> DartsSpace:
        """This space with a proxy network of ``dataset``'s classes (``cifar100``: 100), for
        the labelled pass on its images; itself for other names. The scoring network has no
        classifier, so SWAP is the same."""
        classes = _DATASETS[dataset]["num_classes"] if dataset in _CIFAR_DATASETS else None
        if classes is None or classes == self.proxy_classes:
            return self
        other = copy.copy(self)
        other.proxy_classes = classes
        return other

    def proxy_blocks(self, network: nn.Module) -> list[nn.Module]:
        """See :func:`swapprobe.searchspaces.darts.networks.proxy_blocks`."""
        from swapprobe.searchspaces.darts import networks

        return networks.proxy_blocks(network)

    def build_evaluation_network(
        self,
        arch: Hashable,
        dataset: str = "cifar10",
        *,
        layers: int | None = None,
        channels: int | None = None,
    ) -> nn.Module:
        """The DARTS evaluation network: CIFAR-10/100 (20 cells, C=36) or ImageNet (14, 48).

        Raises:
            SettingsError: unknown ``dataset`` or impossible ``layers``/``channels``.
        """
        from swapprobe.searchspaces.darts.networks import (
            EvaluationNetworkCIFAR,
            EvaluationNetworkImageNet,
        )

        genotype = _as_genotype(arch)
        settings = _dataset_settings(dataset, layers, channels)
        if dataset == "imagenet":
            return EvaluationNetworkImageNet(genotype, **settings)
        return EvaluationNetworkCIFAR(genotype, **settings)

    def scoring_param_count(self, arch: Hashable) -> int:
        """Θ of the scoring network in parameters, by arithmetic (microseconds)."""
        return scoring_param_count(_as_genotype(arch))

    def evaluation_param_count(
        self,
        arch: Hashable,
        dataset: str = "cifar10",
        *,
        layers: int | None = None,
        channels: int | None = None,
    ) -> int:
        """Parameters of the evaluation network, by arithmetic (no module is built)."""
        return evaluation_param_count(_as_genotype(arch), dataset, layers=layers, channels=channels)

    def evaluation_flops(
        self,
        arch: Hashable,
        input_size: tuple[int, ...] | None = None,
        dataset: str | None = None,
    ) -> int:
        """Multiply-adds of the evaluation network by arithmetic (:func:`evaluation_macs`),
        equal to the protocol's hook counter on the built network (tested)."""
        size = tuple(input_size) if input_size is not None else self.input_shape[1:]
        dataset = dataset if dataset is not None else self.evaluation_dataset(size)
        return evaluation_macs(_as_genotype(arch), dataset, size)  # type: ignore[arg-type]

    def evaluation_dataset(self, input_size: tuple[int, ...], source: str | None = None) -> str:
        """``imagenet`` (the 14-cell C=48 mobile network) for inputs of at least
        :data:`IMAGENET_MIN_SIZE` pixels on their shorter side, else the CIFAR network (20
        cells, C=36) of ``source`` (``cifar100``: its 100 classes; CIFAR-10's otherwise):
        DARTS trains its CIFAR network on 32×32 images and its ImageNet network on 224×224
        crops; 128 px, between the two, is where a batch stops looking like CIFAR."""
        if min(input_size) >= IMAGENET_MIN_SIZE:
            return "imagenet"
        return source if source is not None and source in _CIFAR_DATASETS else "cifar10"

    def draw_cell(self, arch: Hashable, which: CellName = "reduce") -> str:
        """See :func:`draw_cell`."""
        return draw_cell(_as_genotype(arch), which)


# --- registration -------------------------------------------------------------------------

register_space(DartsSpace)

