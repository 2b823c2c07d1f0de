"""Built-in search spaces behind one protocol (:class:`SearchSpace`)."""

from swapprobe.searchspaces.base import (
    SearchSpace,
    SpaceDefaults,
    get_space,
    list_spaces,
    register_space,
)

__all__ = ["SearchSpace", "SpaceDefaults", "get_space", "list_spaces", "register_space"]
