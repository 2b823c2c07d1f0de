"""Every torchvision classification model through ``torchvision:NAME`` (issue 16's sweep).

``SWAPPROBE_SWEEP_SIZE`` (default 224) and ``SWAPPROBE_SWEEP_S`` (default 32) set the input
size and S; ``SWAPPROBE_SWEEP_MODELS`` (comma list) limits the models. Prints one row per model
(activation kinds counted and left out, V, S, saturation, SWAP, seconds, or the one-line
reason it was refused) and, over the models that scored, Spearman of SWAP and of the parameter
count with the ImageNet-1k top-1 of torchvision's weight metadata (information, not a target)::

    SWAPPROBE_SWEEP_SIZE=64 SWAPPROBE_SWEEP_S=8 python -m pytest -m benchmark \\
        tests/benchmarks/test_torchvision_sweep.py -s
"""

from __future__ import annotations

import os
import time

import pytest

from tests.benchmarks.recording import record

pytestmark = pytest.mark.benchmark


def _top1(models: object, name: str) -> float | None:
    try:
        weights = models.get_model_weights(name).DEFAULT  # type: ignore[attr-defined]
        return float(weights.meta["_metrics"]["ImageNet-1K"]["acc@1"])
    except Exception:
        return None


def test_every_torchvision_classification_model() -> None:
    from scipy import stats

    import swapprobe
    from swapprobe.errors import SwapprobeError
    from swapprobe.models import resolve_models

    try:
        resolve_models(["torchvision:resnet18"])
    except SwapprobeError as error:
        pytest.skip(f"torchvision unusable here: {error}")
    import torchvision.models as models

    size = int(os.environ.get("SWAPPROBE_SWEEP_SIZE", "224"))
    samples = int(os.environ.get("SWAPPROBE_SWEEP_S", "32"))
    chosen = os.environ.get("SWAPPROBE_SWEEP_MODELS")
    names = chosen.split(",") if chosen else sorted(models.list_models(module=models))
    scored: list[tuple[str, float, int, float]] = []
    for name in names:
        start = time.perf_counter()
        try:
            result = swapprobe.score(
                f"torchvision:{name}", batch_size=samples, repeats=1, input_size=(size, size)
            )
        except SwapprobeError as error:
            print(f"{name:<24} refused: {error}")
            continue
        seconds = time.perf_counter() - start
        top1 = _top1(models, name)
        print(
            f"{name:<24} V={result.units:>12,} S={result.samples} sat={result.saturation:.3f} "
            f"SWAP={result.swap:>12,.0f} {seconds:6.1f} s  top1={top1}  "
            f"[{result.metadata.get('activations', '')}]"
        )
        if top1 is not None:
            scored.append((name, result.swap, result.param_count, top1))
    if len(scored) >= 3:
        top1s = [row[3] for row in scored]
        record(
            "torchvision sweep: Spearman with ImageNet top-1",
            {
                "models": len(scored),
                "swap_rho": float(stats.spearmanr([r[1] for r in scored], top1s).statistic),
                "params_rho": float(stats.spearmanr([r[2] for r in scored], top1s).statistic),
            },
        )
