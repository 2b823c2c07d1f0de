"""Peak memory of scoring a large model (``pytest -m benchmark tests/benchmarks -s -k memory``).

A ResNet-50 (built here: torchvision is not a dependency) at 224×224 with S = 64 has about
10^8 activation values per batch. Each measurement runs in a fresh subprocess and reads its
peak RSS (``ru_maxrss``): (1) a plain onnxruntime forward of the exported model, (2) one
swapprobe repeat (patterns of every ReLU). Goal: (2) ÷ (1) ≤ 2. Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

_BUILD = textwrap.dedent(
    """
    import torch, torch.nn as nn

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            cout = width * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.skip = (nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.body(x) + self.skip(x))

    def resnet50():
        layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                  nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
        return nn.Sequential(*layers)
    """
)

_PLAIN = textwrap.dedent(
    """
    import resource, sys, time, json, numpy as np, onnxruntime as ort
    x = np.random.default_rng(0).standard_normal((64, 3, 224, 224)).astype(np.float32)
    s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    t = time.perf_counter(); s.run(None, {"input": x}); t = time.perf_counter() - t
    print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": t}))
    """
)

_SCORE = textwrap.dedent(
    """
    import resource, sys, time, json, numpy as np
    from swapprobe.capture.graph import load_model
    from swapprobe.capture.session import PatternSession
    from swapprobe.metrics import swap
    x = np.random.default_rng(0).standard_normal((64, 3, 224, 224)).astype(np.float32)
    budget = int(sys.argv[2]) * 2**20 if len(sys.argv) > 2 else None
    session = PatternSession(load_model(sys.argv[1]), batch_size=64, sample_shape=(3, 224, 224),
                             max_pattern_bytes=budget)
    t = time.perf_counter(); m = session.run(x, seed=0, repeat=0); score = swap(m)
    t = time.perf_counter() - t
    print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": t, "units": m.units, "values": m.units * 64,
                      "passes": session.passes, "swap": score}))
    """
)


def _run(code: str, *args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_resnet50_peak_memory(tmp_path: Path) -> None:
    model = tmp_path / "resnet50.onnx"
    export = _BUILD + textwrap.dedent(
        f"""
        import numpy as np, onnx
        from swapprobe.capture.export import export_module
        onnx.save(export_module(resnet50(), np.zeros((2, 3, 224, 224), np.float32)), {str(model)!r})
        """
    )
    subprocess.run([sys.executable, "-c", export], check=True)
    plain = _run(_PLAIN, str(model))
    scored = _run(_SCORE, str(model))
    ratio = scored["peak_mb"] / plain["peak_mb"]
    print(
        f"\n[resnet50_224_S64] activation values {scored['values']:.3g}, passes "
        f"{scored['passes']}, plain peak {plain['peak_mb']:.0f} MB in {plain['seconds']:.1f} s, "
        f"scoring peak {scored['peak_mb']:.0f} MB in {scored['seconds']:.1f} s, "
        f"ratio {ratio:.2f}, time ratio {scored['seconds'] / plain['seconds']:.2f}"
    )
    assert scored["values"] > 1e8
    assert ratio <= 2.0
