"""What a user may hand over as "a model", resolved to a :class:`ModelRef` the Evaluator scores.

:mod:`.schemes` reads a spec (``SCHEME:REST`` through a registry of schemes, ``SPACE#INDEX``,
``FILE.py:FUNCTION``, an ONNX path, or a Python object); :mod:`.refs` is what every spec
becomes; :mod:`.zoos` and :mod:`.files` load zoo models and files; :mod:`.defaults` is what
the models say about how to score them (space defaults, input size, token shape).
"""

from swapprobe.models.defaults import (
    TOKEN_DATA,
    default_data,
    input_size_of,
    scoring_defaults,
    token_options,
    token_shape_of,
)
from swapprobe.models.refs import (
    ModelRef,
    arch_key,
    arch_ref,
    is_torch_module,
    short_name,
    text_key,
)
from swapprobe.models.schemes import (
    SchemeResolver,
    list_schemes,
    register_scheme,
    resolve_models,
    resolve_one,
    unregister_scheme,
)

__all__ = [
    "TOKEN_DATA",
    "ModelRef",
    "SchemeResolver",
    "arch_key",
    "arch_ref",
    "default_data",
    "input_size_of",
    "is_torch_module",
    "list_schemes",
    "register_scheme",
    "resolve_models",
    "resolve_one",
    "scoring_defaults",
    "short_name",
    "text_key",
    "token_options",
    "token_shape_of",
    "unregister_scheme",
]
