"""Token-model scoring speed (``pytest -m benchmark tests/benchmarks/test_token_speed.py -s``).

An ELECTRA-small-sized BERT (hidden 256, 4 layers, 4 heads, feed-forward 1024, vocabulary
30,522; transformers' ``BertModel`` from a config, random weights) at SWAP_Universal's
Transformer protocol (S = 128 sequences of 128 ``tokens:zipf`` tokens, one draw), scored on
both backends. Figures, in one run: seconds per model on each (export and session included),
their ratio, each ÷ one plain torch forward of the module, and the share of pattern bits on
which the backends disagree (float rounding of different kernels; 0 on the small models of
``tests/test_tokens.py``).
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest

from tests.benchmarks.recording import record

pytestmark = pytest.mark.benchmark


def test_electra_small_sized_bert_on_both_backends() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers", reason="transformers is not installed")
    from swapprobe.errors import ModelLoadError
    from swapprobe.models.zoos import import_zoo

    try:
        import torchvision  # noqa: F401
    except Exception:  # a wheel for another torch: the zoo's own repair
        with contextlib.suppress(ModelLoadError):
            import_zoo("torchvision", "torchvision")
    from transformers import BertConfig, BertModel

    from swapprobe.data import load_batch
    from swapprobe.evaluate import Evaluator
    from swapprobe.results import ScoreSettings

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024
    )
    model = BertModel(config).eval()
    batch = load_batch("tokens:zipf", batch_size=128, seq_len=128)
    with torch.no_grad():
        feeds = {name: torch.from_numpy(array) for name, array in batch.extra.items()}
        model(torch.from_numpy(batch.inputs), **feeds)  # warm
        start = time.perf_counter()
        model(torch.from_numpy(batch.inputs), **feeds)
        plain = time.perf_counter() - start
    seconds, bits = {}, {}
    for backend in ("onnx", "torch"):
        settings = ScoreSettings(batch_size=128, repeats=1, backend=backend, keep_patterns="first")
        start = time.perf_counter()
        result = Evaluator(batch, settings).evaluate(model)
        seconds[backend] = time.perf_counter() - start
        bits[backend] = result.patterns[0].to_bool()
    differ = float(np.mean(bits["onnx"] != bits["torch"]))
    record(
        "token_bert_electra_small",
        {
            "onnx_s": seconds["onnx"],
            "torch_s": seconds["torch"],
            "torch_over_onnx": seconds["torch"] / seconds["onnx"],
            "onnx_over_plain_forward": seconds["onnx"] / plain,
            "torch_over_plain_forward": seconds["torch"] / plain,
            "bits_differing": differ,
        },
    )
    assert differ < 1e-3
