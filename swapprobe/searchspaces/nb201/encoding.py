"""NAS-Bench-201 values that the space and its network share: the operations, the edges and
the validated :class:`Nb201Arch` (its text form and canonical index).

Its own module so that :mod:`.space` (sampling, variation, counts, tables) and
:mod:`.networks` (torch modules) both import it and neither imports the other.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np

from swapprobe.errors import UnknownArchitectureError

__all__ = [
    "NASLIB_EDGES",
    "NASLIB_OPS",
    "NB201_DATASET_CLASSES",
    "NB201_EDGES",
    "NB201_NUM_ARCHS",
    "NB201_OPS",
    "NODE_EDGES",
    "NUM_NODES",
    "OP_CODE",
    "Nb201Arch",
]

#: candidate operations; the position of an op here is its code in the canonical index
NB201_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
#: the 6 edges as ``(target node, source node)``, in the fixed order of the encoding
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
#: number of architectures: 5 ops on each of 6 edges
NB201_NUM_ARCHS: int = len(NB201_OPS) ** len(NB201_EDGES)
#: classifier width of the benchmark's evaluation network per dataset
NB201_DATASET_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100, "imagenet16-120": 120}

OP_CODE: dict[str, int] = {op: code for code, op in enumerate(NB201_OPS)}

#: NASLib's op indices (``naslib/search_spaces/nasbench201/conversions.py``, ``OP_NAMES_NB201``):
#: another order than :data:`NB201_OPS`
NASLIB_OPS: tuple[str, ...] = (
    "skip_connect",
    "none",
    "nor_conv_3x3",
    "nor_conv_1x1",
    "avg_pool_3x3",
)
#: NASLib's edge order (its ``EDGE_LIST`` of 1-based ``(source, target)`` pairs, written here as
#: ``(target, source)`` on nodes 0..3): ``3<-0`` comes before ``2<-1``, unlike :data:`NB201_EDGES`
NASLIB_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))
_MAX_KEY = 64  # six small integers; longer text is refused before parsing
NUM_NODES = 4  # node 0 is the cell input, node 3 its output
# edge positions (into NB201_EDGES) of the edges entering node 1, 2 and 3
NODE_EDGES: dict[int, tuple[int, ...]] = {
    node: tuple(e for e, (target, _) in enumerate(NB201_EDGES) if target == node)
    for node in range(1, NUM_NODES)
}


# --- architecture values ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Nb201Arch:
    """One NAS-Bench-201 cell: the op on each of the 6 edges, in :data:`NB201_EDGES` order.

    A frozen value (hashable, comparable) because the search engine caches scores by
    architecture; the constructor validates, so every instance is one of the 15,625 cells.

    Canonical index: the ops are base-5 digits, op code = position in :data:`NB201_OPS`, edge 0
    (``1<-0``) the least significant digit; ``index = sum(code(ops[e]) * 5**e)``. So index 0 is
    all ``none``, index 15,624 all ``avg_pool_3x3``. This enumeration is swapprobe's own; it is
    *not* the row order of the NAS-Bench-201 / NATS-Bench files, so join with those by text.
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple):
            # Accept lists from callers but keep the stored value hashable.
            object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.ops) != len(NB201_EDGES):
            raise UnknownArchitectureError(
                f"an NAS-Bench-201 cell has {len(NB201_EDGES)} edge ops, got {len(self.ops)}"
            )
        for op in self.ops:
            if op not in OP_CODE:
                raise UnknownArchitectureError(
                    f"unknown NAS-Bench-201 op {op!r}; known ops: {', '.join(NB201_OPS)}"
                )

    # text form ---------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> Nb201Arch:
        """Read ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (the benchmark's own string).

        Strict on purpose: the string is a cache and join key, so an entry whose source index
        is missing or out of order is an error rather than something silently reordered.
        """
        if not isinstance(text, str):
            raise UnknownArchitectureError(
                f"NAS-Bench-201 architecture must be text, got {type(text).__name__}"
            )
        stripped = text.strip()
        if not stripped:
            raise UnknownArchitectureError("empty NAS-Bench-201 architecture string")
        groups = stripped.split("+")
        if len(groups) != NUM_NODES - 1:
            raise UnknownArchitectureError(
                f"NAS-Bench-201 string needs {NUM_NODES - 1} node groups joined by '+', "
                f"got {len(groups)}: {stripped!r}"
            )
        ops: list[str] = []
        for node, group in enumerate(groups, start=1):
            if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
                raise UnknownArchitectureError(
                    f"node {node} group {group!r} must be wrapped in '|', as in '|op~0|'"
                )
            entries = group[1:-1].split("|")
            if len(entries) != node:
                raise UnknownArchitectureError(
                    f"node {node} needs {node} inputs, got {len(entries)} in {group!r}"
                )
            for source, entry in enumerate(entries):
                op, sep, index_text = entry.partition("~")
                if not sep:
                    raise UnknownArchitectureError(
                        f"entry {entry!r} of node {node} is not of the form 'op~input'"
                    )
                if index_text != str(source):
                    raise UnknownArchitectureError(
                        f"entry {entry!r} of node {node} must read input {source}, "
                        f"got {index_text!r}"
                    )
                if op not in OP_CODE:
                    raise UnknownArchitectureError(
                        f"unknown NAS-Bench-201 op {op!r} in {entry!r}; "
                        f"known ops: {', '.join(NB201_OPS)}"
                    )
                ops.append(op)
        return cls(tuple(ops))

    def format(self) -> str:
        """The canonical text form; ``Nb201Arch.parse(a.format()) == a``."""
        groups = []
        for node in range(1, NUM_NODES):
            entries = (f"{self.ops[e]}~{NB201_EDGES[e][1]}" for e in NODE_EDGES[node])
            groups.append("|" + "|".join(entries) + "|")
        return "+".join(groups)

    def __str__(self) -> str:
        return self.format()

    # NASLib's encoding -------------------------------------------------------------------
    @classmethod
    def from_naslib(cls, key: str) -> Nb201Arch:
        """Read NASLib's op indices ``(a, b, c, d, e, f)`` (the keys of NAS-Bench-Suite-Zero's
        tables): the op of each edge in :data:`NASLIB_EDGES` order, as a :data:`NASLIB_OPS`
        index. Checked against the tables' ``params`` column (tests/test_naslib_tables.py)."""
        text = key.strip() if isinstance(key, str) else ""
        value: object = None
        if text.startswith("(") and len(text) <= _MAX_KEY:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = None
        valid = (
            isinstance(value, tuple)
            and len(value) == len(NASLIB_EDGES)
            and all(type(v) is int and 0 <= v < len(NASLIB_OPS) for v in value)
        )
        if not valid:
            raise UnknownArchitectureError(
                f"not a NASLib NAS-Bench-201 key (six op indices 0..{len(NASLIB_OPS) - 1} in "
                f"parentheses, e.g. '(0, 2, 3, 2, 3, 1)'): {text[:_MAX_KEY]!r}"
            )
        by_edge = dict(zip(NASLIB_EDGES, (NASLIB_OPS[v] for v in value), strict=True))  # type: ignore[arg-type]
        return cls(tuple(by_edge[edge] for edge in NB201_EDGES))

    def to_naslib(self) -> str:
        """NASLib's key of this cell; ``Nb201Arch.from_naslib(a.to_naslib()) == a``."""
        by_edge = dict(zip(NB201_EDGES, self.ops, strict=True))
        return str(tuple(NASLIB_OPS.index(by_edge[edge]) for edge in NASLIB_EDGES))

    # canonical index ---------------------------------------------------------------------
    @property
    def index(self) -> int:
        """Position 0..15,624 in swapprobe's enumeration (see the class docstring)."""
        value = 0
        for op in reversed(self.ops):
            value = value * len(NB201_OPS) + OP_CODE[op]
        return value

    @classmethod
    def from_index(cls, index: int) -> Nb201Arch:
        """The architecture at ``index``; inverse of :attr:`index`."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise UnknownArchitectureError(
                f"NAS-Bench-201 index must be an integer, got {type(index).__name__}"
            )
        if not 0 <= index < NB201_NUM_ARCHS:
            raise UnknownArchitectureError(
                f"NAS-Bench-201 index {index} out of range 0..{NB201_NUM_ARCHS - 1}"
            )
        rest = int(index)
        ops = []
        for _ in NB201_EDGES:
            rest, code = divmod(rest, len(NB201_OPS))
            ops.append(NB201_OPS[code])
        return cls(tuple(ops))

    @property
    def codes(self) -> tuple[int, ...]:
        """Op codes per edge (positions in :data:`NB201_OPS`), for vectorised analyses."""
        return tuple(OP_CODE[op] for op in self.ops)
