"""Where benchmark figures go: stdout, and the JSON file named by ``$SWAPPROBE_BENCH_OUT``."""

from __future__ import annotations

import json
import os
from pathlib import Path


def record(name: str, values: dict[str, float]) -> None:
    """Print ``values`` under ``name`` and merge them into ``$SWAPPROBE_BENCH_OUT`` if set."""
    print(f"\n[{name}] " + "  ".join(f"{k}={v:.4g}" for k, v in values.items()))
    target = os.environ.get("SWAPPROBE_BENCH_OUT")
    if target:
        path = Path(target)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = values
        path.write_text(json.dumps(data, indent=2))
