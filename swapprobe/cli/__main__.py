"""``python -m swapprobe.cli``: the same as the ``swapprobe`` command."""

import sys

from swapprobe.cli import main

sys.exit(main())
