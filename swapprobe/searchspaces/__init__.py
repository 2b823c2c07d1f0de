"""Built-in search spaces behind one protocol (:class:`SearchSpace`)."""

from swapprobe.searchspaces.base import SearchSpace, get_space, list_spaces, register_space

__all__ = ["SearchSpace", "get_space", "list_spaces", "register_space"]
