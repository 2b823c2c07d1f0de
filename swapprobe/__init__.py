"""swapprobe: training-free architecture scoring with sample-wise activation patterns.

The top level stays cheap to import (the CLI's ``--help`` must not load torch or
onnxruntime); the entry points are loaded on first use.

>>> import swapprobe
>>> result = swapprobe.score("model.onnx", data="cifar10", repeats=8)   # doctest: +SKIP
>>> result.swap                                                         # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Evaluator",
    "Result",
    "ScoreSettings",
    "__version__",
    "load_batch",
    "plan_correlate",
    "plan_score",
    "plan_search",
    "rescore",
    "score",
    "score_many",
    "search",
]

_LAZY = {
    "score": "swapprobe.api",
    "score_many": "swapprobe.api",
    "rescore": "swapprobe.api",
    "plan_score": "swapprobe.api",
    "plan_search": "swapprobe.api",
    "plan_correlate": "swapprobe.api",
    "search": "swapprobe.api",
    "Evaluator": "swapprobe.evaluate",
    "Result": "swapprobe.evaluate",
    "ScoreSettings": "swapprobe.evaluate",
    "load_batch": "swapprobe.data",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'swapprobe' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
