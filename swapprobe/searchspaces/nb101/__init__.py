"""NAS-Bench-101 (``nb101``): NASLib's cell encoding, the benchmark network, search moves.

``encoding`` holds the cell values (no torch), ``channels`` the widths and parameter count
(no torch), ``networks`` the torch modules, ``space`` the registered space.
"""

from swapprobe.searchspaces.nb101.encoding import NB101_LABELS, Nb101Arch, PrunedCell
from swapprobe.searchspaces.nb101.space import Nb101Space

__all__ = ["NB101_LABELS", "Nb101Arch", "Nb101Space", "PrunedCell"]
