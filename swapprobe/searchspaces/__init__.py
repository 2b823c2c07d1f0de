"""Built-in search spaces behind one protocol (:class:`SearchSpace`), one package each
(``NAME/space.py``, ``NAME/networks.py``), found by :func:`load_builtin`."""

from swapprobe.searchspaces.base import (
    SearchSpace,
    SpaceDefaults,
    get_space,
    list_spaces,
    load_builtin,
    register_space,
)

__all__ = [
    "SearchSpace",
    "SpaceDefaults",
    "get_space",
    "list_spaces",
    "load_builtin",
    "register_space",
]
