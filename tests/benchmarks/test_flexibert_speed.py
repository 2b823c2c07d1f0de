"""FlexiBERT scoring speed (``pytest -m benchmark tests/benchmarks/test_flexibert_speed.py -s``).

Seconds per model on one core at the space's default batch (S sequences of T = 128 tokens,
one draw), export and session start included, for the smallest and the largest model of the
reference build, on both backends; and each as a ratio to a plain torch forward of the same
network (what the score cannot do without).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.benchmarks.recording import record

pytestmark = pytest.mark.benchmark

torch = pytest.importorskip("torch")

SMALL = "H128:LT-DFT.h2.512x1,LT-DCT.h2.512x1"
LARGE = "H256:DSC-9.h4.1024x3,SA-WMA.h4.1024x3,DSC-5.h4.1024x3,SA-SDP.h4.1024x3"


@pytest.mark.parametrize("text", [SMALL, LARGE])
def test_seconds_per_model_on_one_core(text: str) -> None:
    from swapprobe.data import token_batch
    from swapprobe.evaluate import Evaluator
    from swapprobe.models import arch_ref
    from swapprobe.results import RuntimeOptions, ScoreSettings
    from swapprobe.searchspaces import get_space

    torch.set_num_threads(1)
    space = get_space("flexibert")
    d = space.defaults
    ids = np.random.default_rng(0).integers(1, 30522, (d.batch_size, 128), dtype=np.int64)
    ref = arch_ref(space, space.parse(text))
    values: dict[str, float] = {}
    for backend in ("onnx", "torch"):
        settings = ScoreSettings(
            batch_size=d.batch_size,
            repeats=d.repeats,
            init=d.init,
            backend=backend,
            keep_patterns="none",
            runtime=RuntimeOptions(threads=1),
        )
        evaluator = Evaluator(token_batch(ids), settings)
        start = time.perf_counter()
        evaluator.evaluate(ref)
        values[f"{backend}_s"] = time.perf_counter() - start
    network = space.build_scoring_network(ref.arch).eval()
    start = time.perf_counter()
    with torch.no_grad():
        network(torch.from_numpy(ids))
    values["torch_forward_s"] = time.perf_counter() - start
    for backend in ("onnx", "torch"):
        values[f"{backend}_over_forward"] = values[f"{backend}_s"] / values["torch_forward_s"]
    record(f"flexibert_{'small' if text == SMALL else 'large'}_S{d.batch_size}_T128", values)
