"""DARTS values that the space and its networks share: the operations, the cell's shape
constants and the validated :class:`Genotype`.

Its own module so that :mod:`.space` (text form, sampling, variation, counts) and
:mod:`.networks` (torch modules) both import it and neither imports the other.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from swapprobe.errors import SettingsError, UnknownArchitectureError

__all__ = [
    "DARTS_OPS",
    "DEFAULT_CONCAT",
    "EDGES",
    "KERNEL_SIZE",
    "NASLIB_OPS",
    "OP_CODE",
    "SCORING_CHANNELS",
    "SCORING_CLASSES",
    "STATES",
    "STEPS",
    "CellEdges",
    "CellName",
    "Edge",
    "Genotype",
    "genotype_from_naslib",
    "genotype_to_naslib",
    "node_of",
    "normalise_cell",
    "reduction_positions",
]

#: The 8 DARTS operations. Their 1-based position is the op code of the matrix encoding
#: (0 = no edge), so the order is part of the encoding and must not change.
DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
OP_CODE: dict[str, int] = {op: code for code, op in enumerate(DARTS_OPS, start=1)}

#: NASLib's NAS-Bench-301 op indices (``naslib/search_spaces/nasbench301/conversions.py``, the
#: compact encoding): :data:`DARTS_OPS` without ``none``, so every code is one lower
NASLIB_OPS: tuple[str, ...] = DARTS_OPS[1:]

STEPS = 4  # intermediate nodes per cell
EDGES = 2 * STEPS  # two incoming edges per node
STATES = STEPS + 2  # two cell inputs + the intermediate nodes
DEFAULT_CONCAT: tuple[int, ...] = (2, 3, 4, 5)
KERNEL_SIZE = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "dil_conv_3x3": 3, "dil_conv_5x5": 5}
SCORING_CHANNELS = 3  # the authors' Network(C=3, num_classes=10, layers=1, genotype)
SCORING_CLASSES = 10


def reduction_positions(layers: int) -> frozenset[int]:
    """Indices of the reduction cells among ``layers`` (at 1/3 and 2/3, as DARTS)."""
    return frozenset({layers // 3, 2 * layers // 3})


Edge = tuple[str, int]
CellEdges = tuple[Edge, ...]
CellName = Literal["normal", "reduce"]


def node_of(edge: int) -> int:
    """Edges 2(j-2) and 2(j-2)+1 feed node j: the DARTS genotype lists nodes in order."""
    return 2 + edge // 2


def _as_index(value: object, what: str) -> int:
    # bool is an int subclass; True as an input index is a typo, not node 1.
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise UnknownArchitectureError(f"{what}: expected an integer, got {value!r}")
    return int(value)


def normalise_cell(edges: object, cell: str) -> CellEdges:
    """Validate one cell's edge list and return it as a tuple of ``(op, int)`` tuples."""
    if isinstance(edges, str | bytes) or not isinstance(edges, Sequence):
        raise UnknownArchitectureError(f"{cell} cell: expected a list of (op, input) pairs")
    if len(edges) != EDGES:
        raise UnknownArchitectureError(
            f"{cell} cell has {len(edges)} edges, expected {EDGES} (two per node 2..5)"
        )
    result: list[Edge] = []
    for k, edge in enumerate(edges):
        if isinstance(edge, str | bytes) or not isinstance(edge, Sequence) or len(edge) != 2:
            raise UnknownArchitectureError(
                f"{cell} cell edge {k}: expected an (op, input) pair, got {edge!r}"
            )
        op, raw_index = edge
        if op not in OP_CODE:
            raise UnknownArchitectureError(
                f"{cell} cell edge {k}: unknown operation {op!r}; known: {', '.join(DARTS_OPS)}"
            )
        index = _as_index(raw_index, f"{cell} cell edge {k}")
        node = node_of(k)
        if not 0 <= index < node:
            raise UnknownArchitectureError(
                f"{cell} cell edge {k} ({op!r}, {index}): node {node} takes inputs 0..{node - 1}"
            )
        result.append((str(op), index))
    return tuple(result)


def _normalise_concat(concat: object, field: str) -> tuple[int, ...]:
    """Validate a concat list: cell nodes only (2..5), strictly increasing, not empty.

    Cell inputs (0, 1) are refused: in a reduction cell they have the wrong resolution, and
    the DARTS evaluation networks never use them.
    """
    if isinstance(concat, str | bytes) or not isinstance(concat, Sequence | range):
        raise UnknownArchitectureError(f"{field}: expected a list of node indices")
    values = tuple(_as_index(v, field) for v in concat)
    valid = (
        bool(values)
        and all(2 <= v < STATES for v in values)
        and all(a < b for a, b in itertools.pairwise(values))
    )
    if not valid:
        raise UnknownArchitectureError(
            f"{field}={list(values)}: expected strictly increasing node indices in 2..5"
        )
    return values


@dataclass(frozen=True)
class Genotype:
    """One DARTS architecture: a normal cell and a reduction cell, validated on creation.

    Frozen and made of tuples so it is hashable (the search caches scores by it). Lists are
    accepted on construction and normalised to tuples, so ``Genotype(normal=[...], ...)``
    written like the DARTS text form works; an invalid cell raises
    :class:`UnknownArchitectureError` here, so every ``Genotype`` in the program is valid.
    """

    normal: CellEdges
    normal_concat: tuple[int, ...]
    reduce: CellEdges
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", normalise_cell(self.normal, "normal"))
        object.__setattr__(self, "reduce", normalise_cell(self.reduce, "reduce"))
        object.__setattr__(
            self, "normal_concat", _normalise_concat(self.normal_concat, "normal_concat")
        )
        object.__setattr__(
            self, "reduce_concat", _normalise_concat(self.reduce_concat, "reduce_concat")
        )

    @classmethod
    def tied(cls, cell: Iterable[Edge], concat: Iterable[int] = DEFAULT_CONCAT) -> Genotype:
        """A genotype whose normal and reduction cells are the same (as the authors' table)."""
        edges = tuple(cell)
        concat = tuple(concat)
        return cls(normal=edges, normal_concat=concat, reduce=edges, reduce_concat=concat)

    @property
    def is_tied(self) -> bool:
        """True when both cells (and their concats) are equal."""
        return self.normal == self.reduce and self.normal_concat == self.reduce_concat

    def cell(self, which: CellName) -> CellEdges:
        """The edges of the ``"normal"`` or ``"reduce"`` cell."""
        if which == "normal":
            return self.normal
        if which == "reduce":
            return self.reduce
        raise SettingsError(f"unknown cell {which!r}; choose 'normal' or 'reduce'")

    def concat(self, which: CellName) -> tuple[int, ...]:
        """The concat list of the ``"normal"`` or ``"reduce"`` cell."""
        if which == "normal":
            return self.normal_concat
        if which == "reduce":
            return self.reduce_concat
        raise SettingsError(f"unknown cell {which!r}; choose 'normal' or 'reduce'")



# --- NASLib's compact encoding (NAS-Bench-301) ----------------------------------------------
_MAX_KEY = 400  # two cells of 8 small pairs: ~130 characters


def genotype_from_naslib(key: str) -> Genotype:
    """Read NASLib's NAS-Bench-301 key ``[[(input, op), ...8], [(input, op), ...8]]`` (the
    normal then the reduction cell; ``op`` a :data:`NASLIB_OPS` index; concat 2..5), the keys
    of NAS-Bench-Suite-Zero's tables. Lists or tuples, as NASLib writes either."""
    text = key.strip() if isinstance(key, str) else ""
    value: object = None
    if text[:1] in "[(" and text and len(text) <= _MAX_KEY:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
    shown = text[:80] + ("…" if len(text) > 80 else "")
    if not (isinstance(value, list | tuple) and len(value) == 2):
        raise UnknownArchitectureError(
            "not a NASLib NAS-Bench-301 key (a normal and a reduction cell of 8 (input, op) "
            f"pairs, e.g. '[[(0, 3), (1, 3), ...], [...]]'): {shown!r}"
        )
    cells = []
    for name, cell in zip(("normal", "reduce"), value, strict=True):
        if not isinstance(cell, list | tuple) or len(cell) != EDGES:
            raise UnknownArchitectureError(
                f"NASLib NAS-Bench-301 key: the {name} cell needs {EDGES} (input, op) pairs: "
                f"{shown!r}"
            )
        edges = []
        for k, pair in enumerate(cell):
            ok = isinstance(pair, list | tuple) and len(pair) == 2
            op = pair[1] if ok else None
            if not (type(op) is int and 0 <= op < len(NASLIB_OPS)):
                raise UnknownArchitectureError(
                    f"NASLib NAS-Bench-301 key: {name} cell pair {k} {pair!r} needs an op index "
                    f"0..{len(NASLIB_OPS) - 1} ({', '.join(NASLIB_OPS)})"
                )
            edges.append((NASLIB_OPS[op], pair[0]))
        cells.append(edges)
    return Genotype(
        normal=tuple(cells[0]),  # type: ignore[arg-type]
        normal_concat=DEFAULT_CONCAT,
        reduce=tuple(cells[1]),  # type: ignore[arg-type]
        reduce_concat=DEFAULT_CONCAT,
    )


def genotype_to_naslib(genotype: Genotype) -> str:
    """NASLib's NAS-Bench-301 key of ``genotype``, as the tables write it;
    ``genotype_from_naslib(genotype_to_naslib(g)) == g``.

    Raises:
        UnknownArchitectureError: the genotype has a ``none`` edge or a concat other than 2..5,
            which NAS-Bench-301 does not have.
    """
    if genotype.normal_concat != DEFAULT_CONCAT or genotype.reduce_concat != DEFAULT_CONCAT:
        raise UnknownArchitectureError("NAS-Bench-301 cells concatenate nodes 2..5")
    cells = []
    for edges in (genotype.normal, genotype.reduce):
        if any(op not in NASLIB_OPS for op, _ in edges):
            raise UnknownArchitectureError("NAS-Bench-301 has no 'none' edge")
        cells.append("[" + ", ".join(f"({i}, {NASLIB_OPS.index(op)})" for op, i in edges) + "]")
    return "[" + ", ".join(cells) + "]"
