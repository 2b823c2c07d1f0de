"""The NAS-Bench-201 search space: :mod:`.space` (the registered :class:`Nb201Space`, sampling,
variation, counts, tables), :mod:`.encoding` (operations, edges and :class:`Nb201Arch`, shared
by both) and :mod:`.networks` (the torch modules, loaded only when a network is built)."""

from swapprobe.searchspaces.nb201.space import (
    NB201_DATASET_CLASSES,
    NB201_EDGES,
    NB201_NUM_ARCHS,
    NB201_OPS,
    Nb201Arch,
    Nb201Space,
    load_table,
)

__all__ = [
    "NB201_DATASET_CLASSES",
    "NB201_EDGES",
    "NB201_NUM_ARCHS",
    "NB201_OPS",
    "Nb201Arch",
    "Nb201Space",
    "load_table",
]
