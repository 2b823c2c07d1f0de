"""The AutoFormer ViT spaces: ``autoformer-ti``, ``autoformer-s``, ``autoformer-b``.

``encoding`` (values, text form, sizes; no torch), ``space`` (the registered spaces),
``networks`` (the ViT as torch modules), ``inputs`` (the ``synthetic:SIZE`` source the
spaces' defaults name, registered on import).
"""

from swapprobe.searchspaces.autoformer.encoding import AutoFormerArch, AutoFormerChoices
from swapprobe.searchspaces.autoformer.inputs import register_sized_synthetic
from swapprobe.searchspaces.autoformer.space import (
    AutoFormerBaseSpace,
    AutoFormerSmallSpace,
    AutoFormerSpace,
    AutoFormerTinySpace,
    load_table,
)

register_sized_synthetic()

__all__ = [
    "AutoFormerArch",
    "AutoFormerBaseSpace",
    "AutoFormerChoices",
    "AutoFormerSmallSpace",
    "AutoFormerSpace",
    "AutoFormerTinySpace",
    "load_table",
]
