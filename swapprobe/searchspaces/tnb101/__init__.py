"""TransNAS-Bench-101's micro and macro spaces (``tnb101-micro``, ``tnb101-macro``) on its seven
Taskonomy tasks; importing this package registers both."""

from swapprobe.searchspaces.tnb101.space import (
    Tnb101MacroArch,
    Tnb101MacroSpace,
    Tnb101MicroArch,
    Tnb101MicroSpace,
    load_table,
)

__all__ = [
    "Tnb101MacroArch",
    "Tnb101MacroSpace",
    "Tnb101MicroArch",
    "Tnb101MicroSpace",
    "load_table",
]
