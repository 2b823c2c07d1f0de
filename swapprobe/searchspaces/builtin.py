"""Every built-in space with its torch modules, imported: the module a process pool's
forkserver preloads (it takes module names, not calls), so that forked workers start with the
networks they will build and the pool names no space. Importing it is
``load_builtin(networks=True)``; it is not itself a space (spaces are packages)."""

from swapprobe.searchspaces.base import load_builtin

load_builtin(networks=True)
