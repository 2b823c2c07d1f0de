"""Cost of AZ-NAS's proxies beside SWAP per NAS-Bench-201 architecture, one run, one thread
(``pytest -m benchmark tests/benchmarks/test_proxy_speed.py -s``).

(a) seconds per architecture of SWAP alone (the NAS-Bench-201 search setting: CIFAR-10,
    S = 32, 2 repeats, Kaiming init, through the Evaluator) and of the proxy pass
    (:func:`swapprobe.capture.proxy_pass.collect_block_stats` + :func:`proxy_values`: network
    build, forward with covariances, 17 block-local VJPs) at B = 16, 32, 64 noise images;
    reported as (SWAP + proxies) ÷ SWAP, the issue's goal being ≤ 2.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.benchmarks.recording import record

pytestmark = pytest.mark.benchmark

torch = pytest.importorskip("torch")

_ARCHS = 8


def test_proxy_cost_vs_swap(cifar10_dir) -> None:  # type: ignore[no-untyped-def]
    from swapprobe.capture.proxy_pass import (
        collect_block_stats,
        gaussian_inputs,
        proxy_values,
    )
    from swapprobe.data import load_batch
    from swapprobe.evaluate import Evaluator
    from swapprobe.results import ScoreSettings
    from swapprobe.searchspaces import get_space

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        space = get_space("nb201")
        rng = np.random.default_rng(7)
        archs = [space.sample(rng) for _ in range(_ARCHS)]
        data = load_batch("cifar10", batch_size=32, data_dir=str(cifar10_dir.parent))
        settings = ScoreSettings(batch_size=32, repeats=2, init="kaiming", keep_patterns="none")
        evaluator = Evaluator(data, settings)
        evaluator.evaluate_architecture(space, archs[0])  # warm-up
        start = time.perf_counter()
        for arch in archs:
            evaluator.evaluate_architecture(space, arch)
        swap = (time.perf_counter() - start) / _ARCHS
        figures = {"swap_s": swap}
        for batch in (16, 32, 64):
            noise = gaussian_inputs(batch)
            start = time.perf_counter()
            for arch in archs:
                net = space.build_scoring_network(arch)
                proxy_values(collect_block_stats(net, space.proxy_blocks(net), noise))
            proxies = (time.perf_counter() - start) / _ARCHS
            figures[f"proxies_b{batch}_s"] = proxies
            figures[f"ratio_b{batch}"] = (swap + proxies) / swap
        record("nb201 proxies vs SWAP per architecture, one thread", figures)
    finally:
        torch.set_num_threads(threads)


def test_default_aggregate_scoring_vs_swap_alone(cifar10_dir) -> None:  # type: ignore[no-untyped-def]
    """(b) what a user pays: the Evaluator with NAS-Bench-201's default proxies (the space's
    declared set and proxy batch) ÷ the same Evaluator without proxies, per architecture,
    network build, export, session and proxy pass all included; goal ≤ 2."""
    from dataclasses import replace

    from swapprobe.data import load_batch
    from swapprobe.evaluate import Evaluator
    from swapprobe.models import arch_ref
    from swapprobe.results import ScoreSettings
    from swapprobe.searchspaces import get_space

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        space = get_space("nb201")
        d = space.defaults
        rng = np.random.default_rng(11)
        refs = [arch_ref(space, space.sample(rng)) for _ in range(_ARCHS)]
        data = load_batch("cifar10", batch_size=d.batch_size, data_dir=str(cifar10_dir.parent))
        plain = ScoreSettings(
            batch_size=d.batch_size, repeats=d.repeats, init=d.init, keep_patterns="none"
        )
        runs = {
            "swap": Evaluator(data, plain),
            "aggregate": Evaluator(data, replace(plain, proxies=d.proxies)),
        }
        for evaluator in runs.values():
            evaluator.evaluate(refs[0])  # warm-up
        seconds = {name: 0.0 for name in runs}
        for ref in refs:  # interleaved, so load changes hit both alike
            for name, evaluator in runs.items():
                start = time.perf_counter()
                evaluator.evaluate(ref)
                seconds[name] += time.perf_counter() - start
        figures = {f"{k}_s": v / _ARCHS for k, v in seconds.items()}
        figures["ratio"] = seconds["aggregate"] / seconds["swap"]
        record("nb201 default aggregate vs SWAP alone per architecture, one thread", figures)
    finally:
        torch.set_num_threads(threads)
