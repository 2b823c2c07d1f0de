"""A torch module past protobuf's 2 GiB limit, scored end to end on both backends
(``pytest -m benchmark tests/benchmarks/test_large_export.py -s``; about 15 GiB of memory and a
few minutes on 2 cores, hence not in the default run).

An MLP 256 → 2048 → 140,000 → 2048 → 2 (574,112,482 parameters, 2.14 GiB of float32 weights,
no single tensor over the limit) is exported through external data, scored by onnxruntime with
its own weights (``init="keep"``), and scored by the torch backend on the same weights.
"""

from __future__ import annotations

import itertools
import resource
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

import swapprobe

pytestmark = pytest.mark.benchmark

WIDTHS = (256, 2048, 140_000, 2048, 2)


def test_a_module_over_two_gib_scores_the_same_on_both_backends() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(WIDTHS):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    expected_params = sum(i * o + o for i, o in itertools.pairwise(WIDTHS))
    assert expected_params * 4 > 2**31
    x = np.random.default_rng(0).standard_normal((16, WIDTHS[0])).astype(np.float32)
    results = {}
    for backend in ("onnx", "torch"):
        start = time.perf_counter()
        results[backend] = swapprobe.score(
            model, data=x, batch_size=16, repeats=1, init="keep", backend=backend
        )
        print(f"{backend}: {time.perf_counter() - start:.1f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")
    for result in results.values():
        assert result.param_count == expected_params
        assert result.units == sum(WIDTHS[1:-1])  # the three hidden ReLU layers, per sample
    assert results["onnx"].swap_per_repeat[0] == results["torch"].swap_per_repeat[0]
