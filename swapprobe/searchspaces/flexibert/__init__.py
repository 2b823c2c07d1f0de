"""The FlexiBERT Transformer search space: :mod:`.space` (the registered :class:`FlexiBertSpace`
and :class:`FlexiBertFaithfulSpace`, sampling, variation, counts), :mod:`.encoding` (operations
and :class:`FlexiBertArch`, shared by both) and :mod:`.networks` (the torch modules, loaded
only when a network is built)."""

from swapprobe.searchspaces.flexibert.space import (
    FLEXIBERT_OPS,
    BuildMode,
    FlexiBertArch,
    FlexiBertFaithfulSpace,
    FlexiBertSpace,
    FlexiLayer,
    from_table_entry,
    network_dims,
    param_count,
)

__all__ = [
    "FLEXIBERT_OPS",
    "BuildMode",
    "FlexiBertArch",
    "FlexiBertFaithfulSpace",
    "FlexiBertSpace",
    "FlexiLayer",
    "from_table_entry",
    "network_dims",
    "param_count",
]
