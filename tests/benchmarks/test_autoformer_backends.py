"""AutoFormer-Tiny on the torch and the ONNX backend: seconds per subnet and peak memory ÷ a
plain forward of the same subnet on the same batch (issue 26; ``pytest -m benchmark
tests/benchmarks/test_autoformer_backends.py -s``).

Three subnets of ``autoformer-ti``: the smallest and the largest of the space (every choice at
its least or most: ``TINY_SMALLEST``, ``TINY_LARGEST``) and the median by parameter count of
101 seeded samples. The space's defaults: 224×224 synthetic images, S = 32, one repeat, the
network's own (PyTorch default) weights, one thread.

Each case runs in a fresh subprocess, since native allocations (torch's and onnxruntime's
arenas) are invisible to ``tracemalloc``: the child imports torch, onnxruntime and swapprobe,
loads the batch and builds the space, reads its resident set (``/proc/self/statm``) as the
baseline, runs the case, and reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the
process's peak RSS) minus that baseline: the memory the case itself added at its peak
(network weights, exported graph, sessions, activations, patterns). An import-time peak above
the baseline would be hidden, which only makes a case look smaller than it is by that much.

- ``plain``: build the scoring network, one ``torch.no_grad()`` eval-mode forward of the batch;
- ``torch`` / ``onnx``: ``Evaluator.evaluate_architecture`` with ``backend`` set (SWAP of one
  repeat, the patterns of every GELU; ONNX: the emitted graph, its rewrite and session),
  seconds from ``Result.seconds`` (build, export, session, forward, counting).

The ratio is each backend's peak ÷ the plain forward's peak, seconds are per subnet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks.recording import record

pytestmark = pytest.mark.benchmark

_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, time
    import numpy as np, onnxruntime, torch
    from swapprobe.data import load_batch
    from swapprobe.evaluate import Evaluator
    from swapprobe.results import ScoreSettings
    from swapprobe.searchspaces import get_space

    torch.set_num_threads(1)
    kind, text = sys.argv[1], sys.argv[2]
    space = get_space("autoformer-ti")
    arch = space.parse(text)
    data = load_batch("synthetic", batch_size=32, input_size=(224, 224), seed=0)
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        base = int(f.read().split()[1]) * page
    if kind == "plain":
        start = time.perf_counter()
        net = space.build_scoring_network(arch).eval()
        with torch.no_grad():
            net(torch.from_numpy(data.inputs))
        seconds = time.perf_counter() - start
    else:
        settings = ScoreSettings(
            batch_size=32, repeats=1, init="keep", backend=kind, keep_patterns="none"
        )
        seconds = Evaluator(data, settings).evaluate_architecture(space, arch).seconds
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "extra_mb": (peak - base) / 2**20,
                      "base_mb": base / 2**20}))
    """
)


def _case(kind: str, text: str) -> dict[str, float]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, text],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_autoformer_torch_vs_onnx_backend() -> None:
    from swapprobe.searchspaces import get_space
    from swapprobe.searchspaces.autoformer.space import TINY_LARGEST, TINY_SMALLEST

    space = get_space("autoformer-ti")
    rng = np.random.default_rng(0)
    sampled = sorted(
        (space.sample(rng) for _ in range(101)), key=space.scoring_param_count
    )
    subnets = {"smallest": TINY_SMALLEST, "median": sampled[50], "largest": TINY_LARGEST}
    for label, arch in subnets.items():
        text = space.format(arch)
        plain = _case("plain", text)
        figures = {
            "params_M": space.scoring_param_count(arch) / 1e6,
            "plain_s": plain["seconds"],
            "plain_mb": plain["extra_mb"],
        }
        for backend in ("torch", "onnx"):
            found = _case(backend, text)
            figures[f"{backend}_s"] = found["seconds"]
            figures[f"{backend}_mb"] = found["extra_mb"]
            figures[f"{backend}_peak_ratio"] = found["extra_mb"] / plain["extra_mb"]
        record(f"autoformer-ti {label} subnet, torch vs onnx backend, S=32 224x224", figures)
