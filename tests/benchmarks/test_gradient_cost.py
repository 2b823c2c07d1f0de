"""Cost of the labelled gradient pass (ZiCo, L-SWAG, VKDNW) ÷ the SWAP capture, per search
space, at each space's defaults, one thread (issue 25; ``pytest -m benchmark
tests/benchmarks/test_gradient_cost.py -s``).

Per space, the same few seeded architectures, one Evaluator with ``proxies=("zico", "lswag")``
on the space's default batch (S, data, input size, init, backend, repeats):

- ``swap_s``: the SWAP capture, ``Result.seconds`` less ``timings["gradients"]`` (network
  build, export or module, sessions, every repeat's forward, the counting; Ψ's per-bin counts
  ride on the first repeat's patterns);
- ``grad_s``: ``timings["gradients"]``, the pass ZiCo and L-SWAG need (proxy network, Kaiming
  draw, 2 labelled mini-batches of ``proxy_batch`` = 8 images, forward and backward each);
- ``vkdnw_s``: the same pass with VKDNW's Fisher matrix (``Evaluator.gradient_stats(fisher=
  True)``, timed around the call: a Result records one ``gradients`` figure, so the Fisher part
  needs its own run). The Fisher pass costs about C·S backward passes (a Jacobian of C logits
  for each of the S images), so it is measured where C = 10 (nb201, darts, nb101) and left out
  for tnb101-micro's class_scene head (C = 63 at 256×256: ~2,000 backward passes) and
  autoformer-ti (C = 1,000 at 224×224: ~32,000), which would take the CPU budget of the whole
  benchmark alone.

FlexiBERT is not measured: the gradient pass refuses token models on this branch (no
masked-token loss yet, issue 25 part 6).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.benchmarks.recording import record

pytestmark = pytest.mark.benchmark

torch = pytest.importorskip("torch")

_ARCHS = 3
#: (space, whether VKDNW's Fisher pass is measured)
_SPACES = (
    ("nb201", True),
    ("darts", True),
    ("nb101", True),
    ("tnb101-micro", False),
    ("autoformer-ti", False),
)


def _evaluator(space, data_dir):  # type: ignore[no-untyped-def]
    from swapprobe.evaluate import Evaluator
    from swapprobe.models import arch_ref
    from swapprobe.plan import Inputs, Scoring

    defaults = space.defaults
    one = [arch_ref(space, space.sample(np.random.default_rng(0)))]
    data = Inputs(data_dir=data_dir).load(0, defaults, one)
    settings = Scoring(proxies=("zico", "lswag")).settings(
        data, defaults, size_unit=space.size_unit, space=space.name, keep_patterns="none"
    )
    return Evaluator(data, settings)


def test_gradient_pass_vs_swap_per_space(cifar10_dir) -> None:  # type: ignore[no-untyped-def]
    from swapprobe.models import arch_ref
    from swapprobe.searchspaces import get_space

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        warm = get_space("nb201")
        evaluator = _evaluator(warm, cifar10_dir.parent)
        arch = warm.sample(np.random.default_rng(99))
        evaluator.evaluate_architecture(warm, arch)  # imports, first-call overheads
        evaluator.gradient_stats(arch_ref(warm, arch), fisher=True)
        for name, fisher in _SPACES:
            space = get_space(name)
            evaluator = _evaluator(space, cifar10_dir.parent)
            rng = np.random.default_rng(7)
            archs = [space.sample(rng) for _ in range(_ARCHS)]
            swap = grad = vk = 0.0
            for arch in archs:
                result = evaluator.evaluate_architecture(space, arch)
                grad += result.timings["gradients"]
                swap += result.seconds - result.timings["gradients"]
                if fisher:
                    start = time.perf_counter()
                    evaluator.gradient_stats(arch_ref(space, arch), fisher=True)
                    vk += time.perf_counter() - start
            settings = evaluator.settings
            figures = {
                "S": float(settings.batch_size),
                "repeats": float(settings.repeats),
                "swap_s": swap / _ARCHS,
                "grad_s": grad / _ARCHS,
                "grad_over_swap": grad / swap,
            }
            if fisher:
                figures["vkdnw_s"] = vk / _ARCHS
                figures["vkdnw_over_swap"] = vk / swap
            record(f"{name} gradient pass vs SWAP per architecture, one thread", figures)
    finally:
        torch.set_num_threads(threads)
