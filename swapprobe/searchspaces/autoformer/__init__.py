"""The AutoFormer ViT spaces: ``autoformer-ti``, ``autoformer-s``, ``autoformer-b``.

``encoding`` (values, text form, sizes; no torch), ``space`` (the registered spaces),
``networks`` (the ViT as torch modules). The spaces are scored at 224×224
(``SpaceDefaults.input_size``), the synthetic images by default.
"""

from swapprobe.searchspaces.autoformer.encoding import AutoFormerArch, AutoFormerChoices
from swapprobe.searchspaces.autoformer.space import (
    AutoFormerBaseSpace,
    AutoFormerSmallSpace,
    AutoFormerSpace,
    AutoFormerTinySpace,
    load_table,
)

__all__ = [
    "AutoFormerArch",
    "AutoFormerBaseSpace",
    "AutoFormerChoices",
    "AutoFormerSmallSpace",
    "AutoFormerSpace",
    "AutoFormerTinySpace",
    "load_table",
]
