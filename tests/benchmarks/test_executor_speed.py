"""Speed-up of ``--executor pool --workers 2`` over ``local`` (``pytest -m benchmark
tests/benchmarks/test_executor_speed.py -s``); not in the default run.

50 DARTS architectures at the paper's setting (S = 16, 32 repeats) on synthetic data, scored
once in this process and once on a two-worker process pool; the scores must be identical.
In this process: *cold* includes starting the pool after this process has long imported
torch, *warm* does not (what every cycle of a search after the first sees). End to end: two
fresh ``swapprobe score darts:random:50`` commands, ``--executor local`` and ``--executor pool
--workers 2``, each paying its own start-up (imports, first export) as a user's command does
(goal ≥ 1.7× on 2 cores); and the default ``swapprobe search darts --data cifar10``, local
against the default pool (goal ≥ 1.8×). Goals are recorded as met or not, not asserted: the
figures are what this machine gives.
A third run, in this process with one thread as each worker has, separates the gain from
parallelism from the gain from fewer threads per process. Figures go to stdout and, with
``$SWAPPROBE_BENCH_OUT``, to that JSON file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from swapprobe.api import score_many
from swapprobe.data import load_batch
from swapprobe.executors import LocalExecutor, PoolExecutor
from swapprobe.models import resolve_models
from swapprobe.results import RuntimeOptions, ScoreSettings
from tests.benchmarks.recording import record

pytestmark = pytest.mark.benchmark

ARCHITECTURES = 50
WORKERS = 2


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
    one_thread = replace(settings, runtime=RuntimeOptions(threads=1))
    try:
        start = time.perf_counter()
        single = score_many(refs, data, one_thread, executor=LocalExecutor())
        single_s = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)

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
    record("pool_vs_local_darts50", values)


def _swapprobe_seconds(*args: str) -> float:
    """Wall seconds of one ``swapprobe`` command (the user's script, else the module)."""
    script = Path(sys.executable).with_name("swapprobe")
    command = [
        *([str(script)] if script.exists() else [sys.executable, "-m", "swapprobe.cli"]),
        *args,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def _command_seconds(executor: list[str], out: Path) -> float:
    return _swapprobe_seconds(
        *("score", f"darts:random:{ARCHITECTURES}", "--repeats", "32", "--seed", "0"),
        *("--data", "synthetic", "--json", str(out), *executor),
    )


def test_pool_speedup_end_to_end(tmp_path: Path) -> None:
    local_s = _command_seconds(["--executor", "local"], tmp_path / "local.json")
    pool_s = _command_seconds(
        ["--executor", "pool", "--workers", str(WORKERS)], tmp_path / "pool.json"
    )
    local = json.loads((tmp_path / "local.json").read_text())
    pooled = json.loads((tmp_path / "pool.json").read_text())
    assert [r["swap"] for r in local["results"]] == [r["swap"] for r in pooled["results"]]
    values = {
        "local_command_seconds": local_s,
        "pool_command_seconds": pool_s,
        "speedup": local_s / pool_s,
    }
    values["goal_1.7x_met"] = float(values["speedup"] >= 1.7)
    record("pool_vs_local_darts50_commands", values)


def _search_seconds(executor: list[str], out: Path, shared_data: Path) -> float:
    return _swapprobe_seconds(
        *("search", "darts", "--data", "cifar10", "--data-dir", str(shared_data)),
        *("--json", str(out), *executor),
    )


def test_pool_speedup_on_the_default_darts_search(tmp_path: Path, shared_data: Path) -> None:
    """The issue's workload: the default ``swapprobe search darts --data cifar10`` (about 580
    architectures), ``--executor local`` against the default pool; the same search either way."""
    # local, pool, pool, local: a machine whose speed drifts during the four runs (this one
    # does, by a third over minutes) weighs on both sides alike
    seconds = {"local": 0.0, "pool": 0.0}
    for run, name in enumerate(("local", "pool", "pool", "local")):
        executor = ["--executor", "local"] if name == "local" else []
        seconds[name] += _search_seconds(executor, tmp_path / f"{run}.json", shared_data) / 2
    found = {json.loads((tmp_path / f"{run}.json").read_text())["architecture"] for run in range(4)}
    assert len(found) == 1  # the same search whichever executor ran it
    local_s, pool_s = seconds["local"], seconds["pool"]
    values = {
        "local_search_seconds": local_s,
        "pool_search_seconds": pool_s,
        "speedup": local_s / pool_s,
        "goal_1.8x_met": float(local_s / pool_s >= 1.8),
    }
    record("pool_vs_local_darts_default_search", values)
