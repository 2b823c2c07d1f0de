"""The digest that identifies a torch module in stores and reports.

Its own light module (no torch import of its own): a model reference names a module by it
before any runner exists, and the torch runner names its origin by the same function.
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["module_digest"]


def module_digest(module: Any) -> str:
    """sha256 of a module's structure and weights (``repr`` and every state tensor)."""
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()
