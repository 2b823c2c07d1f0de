"""Speed-up of ``--executor pool --workers 2`` over ``local`` (``pytest -m benchmark
tests/benchmarks/test_executor_speed.py -s``); not in the default run.

50 DARTS architectures at the paper's setting (S = 16, 32 repeats) on synthetic data, scored
once in this process and once on a two-worker process pool; the scores must be identical.
Two figures: *cold* includes starting the pool (what one ``swapprobe score`` pays), *warm*
does not (what every cycle of a search after the first sees). Goal: cold ≥ 1.7× on 2 cores
(asserted); warm is recorded.
A third run, in this process with one thread as each worker has, separates the gain from
parallelism from the gain from fewer threads per process. Figures go to stdout and, with
``$SWAPPROBE_BENCH_OUT``, to that JSON file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from swapprobe.api import score_many
from swapprobe.capture import session
from swapprobe.data import load_batch
from swapprobe.evaluate import ScoreSettings
from swapprobe.executors import LocalExecutor, PoolExecutor
from swapprobe.models import resolve_models

pytestmark = pytest.mark.benchmark

ARCHITECTURES = 50
WORKERS = 2


def _record(name: str, values: dict[str, float]) -> None:
    print(f"\n[{name}] " + "  ".join(f"{k}={v:.4g}" for k, v in values.items()))
    target = os.environ.get("SWAPPROBE_BENCH_OUT")
    if target:
        path = Path(target)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = values
        path.write_text(json.dumps(data, indent=2))


def test_pool_speedup_over_local() -> None:
    settings = ScoreSettings(batch_size=16, repeats=32, seed=0)
    data = load_batch("synthetic", batch_size=16, seed=0)
    refs = resolve_models([f"darts:random:{ARCHITECTURES}"], seed=0)

    # Both cold runs pay what a fresh ``swapprobe score`` pays: the first export's set-up here,
    # worker start-up (imports, first export in each worker) on the pool.
    start = time.perf_counter()
    local = score_many(refs, data, settings, executor=LocalExecutor())
    local_s = time.perf_counter() - start

    # The same in this process with one torch/ORT thread, as each pool worker runs: what the
    # pool gains from parallelism alone (on a busy 2-core machine two threads per process can
    # be slower than one).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    session.SESSION_THREADS = 1
    try:
        start = time.perf_counter()
        single = score_many(refs, data, settings, executor=LocalExecutor())
        single_s = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
        session.SESSION_THREADS = None

    start = time.perf_counter()
    with PoolExecutor(workers=WORKERS) as executor:
        pooled = score_many(refs, data, settings, executor=executor)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        again = score_many(refs, data, settings, executor=executor)
        warm_s = time.perf_counter() - start

    for results in (single, pooled, again):
        assert not results.failed
        np.testing.assert_array_equal(
            [r.swap_per_repeat for r in local], [r.swap_per_repeat for r in results]
        )
    values = {
        "cpu_count": float(os.cpu_count() or 1),
        "local_seconds": local_s,
        "local_one_thread_seconds": single_s,
        "pool_cold_seconds": cold_s,
        "pool_warm_seconds": warm_s,
        "speedup_cold": local_s / cold_s,
        "speedup_warm": local_s / warm_s,
        "speedup_cold_vs_one_thread": single_s / cold_s,
    }
    _record("pool_vs_local_darts50", values)
    assert values["speedup_cold"] >= 1.7
