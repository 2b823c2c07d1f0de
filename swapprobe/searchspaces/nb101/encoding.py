"""NAS-Bench-101 cells as values: NASLib's encoding, validity, and the benchmark's pruning.

NAS-Bench-101 (Ying et al., "NAS-Bench-101: Towards Reproducible Neural Architecture
Search", ICML 2019, https://arxiv.org/abs/1902.09635) searches one cell: a DAG of at most 7
vertices (input, up to 5 operations, output) and at most 9 edges, each operation one of
3x3 conv-BN-ReLU, 1x1 conv-BN-ReLU or 3x3 max pooling.

NASLib (``naslib/search_spaces/nasbench101/conversions.py``) writes a cell as one tuple of
56 integers: the 7×7 adjacency matrix flattened row by row (``matrix[i][j] = 1``: an edge
from vertex i to vertex j, so strictly upper triangular), then the 7 vertex labels as
positions in :data:`NB101_LABELS`. The matrix is the *unpruned* one a sampler drew: vertices
off every input→output path, and the edges touching them, are still in it and may push the
edge count past 9. The benchmark prunes them before counting edges or building the network
(``ModelSpec._prune`` of google-research/nasbench), and so does :func:`prune` here. Two
encodings can therefore name the same network; the encoding, not the pruned cell, is the
value (it is the key of NASLib's tables).

This module needs no torch: parsing, sampling and counting parameters stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

from swapprobe.errors import UnknownArchitectureError

__all__ = [
    "CONV1X1",
    "CONV3X3",
    "INPUT",
    "INTERIOR_OPS",
    "MAXPOOL3X3",
    "MAX_EDGES",
    "NB101_LABELS",
    "NUM_VERTICES",
    "OUTPUT",
    "Matrix",
    "Nb101Arch",
    "PrunedCell",
    "prune",
]

INPUT = "input"
OUTPUT = "output"
MAXPOOL3X3 = "maxpool3x3"
CONV1X1 = "conv1x1-bn-relu"
CONV3X3 = "conv3x3-bn-relu"
#: vertex labels in NASLib's order: a label's position here is its code in the encoding
NB101_LABELS: tuple[str, ...] = (INPUT, OUTPUT, MAXPOOL3X3, CONV1X1, CONV3X3)
#: the operations an interior vertex may carry
INTERIOR_OPS: tuple[str, ...] = (MAXPOOL3X3, CONV1X1, CONV3X3)
NUM_VERTICES = 7
#: the benchmark's edge budget, counted on the pruned cell
MAX_EDGES = 9

_ENCODING_LENGTH = NUM_VERTICES * NUM_VERTICES + NUM_VERTICES

Matrix = tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class PrunedCell:
    """The cell the network is built from: only vertices on an input→output path.

    ``matrix`` is n×n (2 ≤ n ≤ 7), ``ops`` its n labels (first ``input``, last ``output``);
    ``vertices`` are the kept vertices' positions in the unpruned 7-vertex cell.
    """

    matrix: Matrix
    ops: tuple[str, ...]
    vertices: tuple[int, ...]

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))


def prune(matrix: Matrix, ops: tuple[str, ...]) -> PrunedCell | None:
    """Keep the vertices reachable from the input *and* reaching the output (the benchmark's
    rule); ``None`` when the output is not reachable from the input.

    Every edge between two kept vertices lies on an input→output path, so the pruned matrix
    is the unpruned one restricted to the kept vertices.
    """
    n = len(matrix)
    from_input = {0}
    for j in range(1, n):  # vertices are in topological order: one forward sweep suffices
        if any(matrix[i][j] for i in from_input):
            from_input.add(j)
    to_output = {n - 1}
    for i in range(n - 2, -1, -1):
        if any(matrix[i][j] for j in to_output):
            to_output.add(i)
    kept = tuple(sorted(from_input & to_output))
    if 0 not in kept or n - 1 not in kept:
        return None
    return PrunedCell(
        matrix=tuple(tuple(matrix[i][j] for j in kept) for i in kept),
        ops=tuple(ops[i] for i in kept),
        vertices=kept,
    )


@dataclass(frozen=True, slots=True)
class Nb101Arch:
    """One NAS-Bench-101 cell in NASLib's encoding: a 7×7 adjacency matrix and 7 labels.

    A frozen value (the search engine caches scores by architecture); the constructor
    validates as the benchmark's ``is_valid`` does, so every instance is a cell of the space:
    0/1 entries, strictly upper triangular, ``input`` first, ``output`` last, interior labels
    from :data:`INTERIOR_OPS`, and after pruning a path from input to output with at most
    :data:`MAX_EDGES` edges.
    """

    matrix: Matrix
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        matrix = tuple(tuple(int(v) for v in row) for row in self.matrix)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "ops", tuple(self.ops))
        if len(matrix) != NUM_VERTICES or any(len(row) != NUM_VERTICES for row in matrix):
            raise UnknownArchitectureError(
                f"an NAS-Bench-101 cell has a {NUM_VERTICES}x{NUM_VERTICES} adjacency matrix"
            )
        if any(v not in (0, 1) for row in matrix for v in row):
            raise UnknownArchitectureError("NAS-Bench-101 adjacency entries must be 0 or 1")
        below = [(i, j) for i in range(NUM_VERTICES) for j in range(i + 1) if matrix[i][j]]
        if below:
            i, j = below[0]
            raise UnknownArchitectureError(
                f"NAS-Bench-101 adjacency must be strictly upper triangular; edge {i}->{j} is not"
            )
        if len(self.ops) != NUM_VERTICES:
            raise UnknownArchitectureError(
                f"an NAS-Bench-101 cell has {NUM_VERTICES} vertex labels, got {len(self.ops)}"
            )
        if self.ops[0] != INPUT or self.ops[-1] != OUTPUT:
            raise UnknownArchitectureError(
                f"NAS-Bench-101 vertex 0 must be {INPUT!r} and vertex {NUM_VERTICES - 1} "
                f"{OUTPUT!r}, got {self.ops[0]!r} and {self.ops[-1]!r}"
            )
        for vertex, op in enumerate(self.ops[1:-1], start=1):
            if op not in INTERIOR_OPS:
                raise UnknownArchitectureError(
                    f"NAS-Bench-101 vertex {vertex} has label {op!r}; an interior vertex is one "
                    f"of {', '.join(INTERIOR_OPS)}"
                )
        cell = prune(matrix, self.ops)
        if cell is None:
            raise UnknownArchitectureError(
                "not an NAS-Bench-101 cell: no path from the input to the output"
            )
        if cell.num_edges > MAX_EDGES:
            raise UnknownArchitectureError(
                f"not an NAS-Bench-101 cell: {cell.num_edges} edges after pruning, "
                f"at most {MAX_EDGES}"
            )

    # NASLib's tuple ------------------------------------------------------------------------
    @property
    def encoding(self) -> tuple[int, ...]:
        """NASLib's 56 integers: the matrix row by row, then the label codes."""
        return (
            *(v for row in self.matrix for v in row),
            *(NB101_LABELS.index(op) for op in self.ops),
        )

    @classmethod
    def from_encoding(cls, values: tuple[int, ...] | list[int]) -> Nb101Arch:
        """The inverse of :attr:`encoding` (validating)."""
        values = tuple(values)
        if len(values) != _ENCODING_LENGTH:
            raise UnknownArchitectureError(
                f"NASLib's NAS-Bench-101 encoding has {_ENCODING_LENGTH} integers "
                f"(7x7 matrix + 7 labels), got {len(values)}"
            )
        flat, codes = values[: NUM_VERTICES * NUM_VERTICES], values[NUM_VERTICES * NUM_VERTICES :]
        for code in codes:
            if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code < 5:
                raise UnknownArchitectureError(
                    f"NAS-Bench-101 label code {code!r} out of range 0..{len(NB101_LABELS) - 1} "
                    f"({', '.join(NB101_LABELS)})"
                )
        matrix = tuple(flat[r * NUM_VERTICES : (r + 1) * NUM_VERTICES] for r in range(7))
        return cls(matrix, tuple(NB101_LABELS[c] for c in codes))

    # text form ---------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> Nb101Arch:
        """Read NASLib's tuple as text, ``(0, 1, 1, …, 0, 4, 2, 3, 3, 2, 1)`` (the keys of its
        tables); spaces are optional."""
        if not isinstance(text, str):
            raise UnknownArchitectureError(
                f"NAS-Bench-101 architecture must be text, got {type(text).__name__}"
            )
        stripped = text.strip()
        if not (stripped.startswith("(") and stripped.endswith(")")):
            raise UnknownArchitectureError(
                f"NAS-Bench-101 architecture must be NASLib's tuple '(0, 1, …)', got {text!r}"
            )
        entries = [e.strip() for e in stripped[1:-1].split(",")]
        if entries and entries[-1] == "":  # a trailing comma, as Python allows
            entries.pop()
        values = []
        for position, entry in enumerate(entries):
            if not entry.isdigit():
                raise UnknownArchitectureError(
                    f"entry {position} of the NAS-Bench-101 tuple is not a number: {entry!r}"
                )
            values.append(int(entry))
        return cls.from_encoding(tuple(values))

    def format(self) -> str:
        """The canonical text form, NASLib's tuple as Python prints it."""
        return "(" + ", ".join(map(str, self.encoding)) + ")"

    def __str__(self) -> str:
        return self.format()

    # the cell that is built ----------------------------------------------------------------
    @property
    def pruned(self) -> PrunedCell:
        """The cell without vertices off every input→output path (never ``None``: checked)."""
        cell = prune(self.matrix, self.ops)
        assert cell is not None  # the constructor refused cells without a path
        return cell
