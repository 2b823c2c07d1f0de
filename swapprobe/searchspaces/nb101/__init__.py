"""NAS-Bench-101 (``nb101``): NASLib's cell encoding, the benchmark network, search moves.

``encoding`` holds the cell values (no torch), ``channels`` the widths and parameter count
(no torch), ``networks`` the torch modules, ``space`` the registered space, ``table`` NASLib's
zero-cost tables.
"""

from swapprobe.searchspaces.nb101.encoding import NB101_LABELS, Nb101Arch, PrunedCell
from swapprobe.searchspaces.nb101.space import Nb101Space
from swapprobe.searchspaces.nb101.table import load_table

__all__ = ["NB101_LABELS", "Nb101Arch", "Nb101Space", "PrunedCell", "load_table"]
