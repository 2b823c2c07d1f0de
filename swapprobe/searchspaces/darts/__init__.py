"""The DARTS cell search space: :mod:`.space` (the registered :class:`DartsSpace`, text form,
sampling, variation, counts), :mod:`.encoding` (operations and :class:`Genotype`, shared by
both) and :mod:`.networks` (the torch modules, loaded only when a network is built);
:mod:`.nb301` registers NAS-Bench-301 (``darts-nb301``) on the same values and networks."""

from swapprobe.searchspaces.darts.nb301 import DartsNb301Space
from swapprobe.searchspaces.darts.space import (
    DARTS_OPS,
    DARTS_V2,
    IMAGENET_MIN_SIZE,
    DartsSpace,
    Genotype,
    draw_cell,
    evaluation_macs,
    evaluation_param_count,
    format_genotype,
    from_matrix,
    load_table,
    paper_matrix,
    parse_genotype,
    scoring_param_count,
    to_matrix,
)

__all__ = [
    "DARTS_OPS",
    "DARTS_V2",
    "IMAGENET_MIN_SIZE",
    "DartsNb301Space",
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
