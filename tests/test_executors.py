"""Executors: the same seed gives the same scores in process, in a process pool and on Ray;
a dead worker or a failing model is retried once and then reported per model, never losing the
other results; only the driver writes the store, in input order."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn

from swapprobe.api import score_many
from swapprobe.cli import main
from swapprobe.correlate import read_table
from swapprobe.data import Batch, load_batch
from swapprobe.errors import SettingsError
from swapprobe.evolution import EvolutionConfig
from swapprobe.executors import (
    LocalExecutor,
    PoolExecutor,
    ResultList,
    get_executor,
)
from swapprobe.models import resolve_models
from swapprobe.results import Result, ScoreSettings
from swapprobe.searching import run_search, score_table
from swapprobe.searchspaces import get_space
from swapprobe.store import PatternStore

# S = 16 keeps DARTS scores far from saturation (S = 8 gives 2^8 = 256 for most networks,
# which would make equality meaningless); two repeats keep the test fast.
SETTINGS = ScoreSettings(batch_size=16, repeats=2, seed=3)
N_ARCHS = 20


# --- models that misbehave (module level: pool workers unpickle them by reference) --------
class Small(nn.Module):
    """A conv-BN-ReLU net; subclasses misbehave inside ``forward``, i.e. inside the worker."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DiesOnce(Small):
    """Kills its worker process the first time it runs, then behaves (a marker file remembers)."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = str(marker)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return super().forward(x)


class AlwaysDies(Small):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        os._exit(1)


class AlwaysRaises(Small):
    def __init__(self, counter: Path) -> None:
        super().__init__()
        self.counter = str(counter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with open(self.counter, "a") as handle:  # counts attempts across processes
            handle.write("x")
        raise RuntimeError("this model always fails")


# --- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> Batch:
    return load_batch("synthetic", batch_size=SETTINGS.batch_size, seed=SETTINGS.seed)


@pytest.fixture(scope="module")
def archs() -> list[Any]:
    return resolve_models([f"darts:random:{N_ARCHS}"], seed=SETTINGS.seed)


@pytest.fixture(scope="module")
def local_store(data: Batch, archs: list[Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("local") / "local.h5"
    with LocalExecutor() as executor:
        results = score_many(archs, data, SETTINGS, store=store, executor=executor)
    assert len(results) == N_ARCHS and not results.failed
    return store


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A local Ray instance with two CPUs, as CI has; the executor joins it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def stored(path: Path) -> list[tuple[str, dict[str, np.ndarray], dict[int, np.ndarray]]]:
    with PatternStore.open(path) as handle:
        return [(r.key, r.scores, r.patterns) for r in handle.records(patterns=True)]


def assert_same_store(first: Path, second: Path) -> None:
    """Same keys in the same order, bit-identical scores and kept patterns."""
    a, b = stored(first), stored(second)
    assert [key for key, _, _ in a] == [key for key, _, _ in b]
    for (key, scores_a, patterns_a), (_, scores_b, patterns_b) in zip(a, b, strict=True):
        assert scores_a.keys() == scores_b.keys(), key
        for metric in scores_a:
            np.testing.assert_array_equal(scores_a[metric], scores_b[metric], err_msg=key)
        assert patterns_a.keys() == patterns_b.keys()
        for repeat in patterns_a:
            np.testing.assert_array_equal(patterns_a[repeat], patterns_b[repeat])


# --- same seed, same scores -------------------------------------------------------------
@pytest.mark.parametrize("name", ["pool", "ray"])
def test_same_seed_same_scores_on_every_executor(
    name: str,
    data: Batch,
    archs: list[Any],
    local_store: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if name == "ray":
        request.getfixturevalue("ray_cluster")
    store = tmp_path / f"{name}.h5"
    with get_executor(name, workers=2 if name == "pool" else None) as executor:
        results = score_many(archs, data, SETTINGS, store=store, executor=executor)
    assert not results.failed
    assert [r.key for r in results] == [ref.key for ref in archs]
    assert_same_store(local_store, store)
    assert len({float(r.swap) for r in results}) > N_ARCHS // 2  # not saturated


# --- failures ---------------------------------------------------------------------------
def test_ray_retries_a_dead_worker_and_reports_a_failing_model(
    ray_cluster: Any, data: Batch, archs: list[Any], local_store: Path, tmp_path: Path
) -> None:
    class DiesOnceOnRay(nn.Module):  # defined here, so Ray pickles it by value
        def __init__(self, marker: str) -> None:
            super().__init__()
            self.marker = marker
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not os.path.exists(self.marker):
                Path(self.marker).write_text("died")
                os._exit(1)
            return torch.relu(self.conv(x))

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    marker = tmp_path / "died"
    models = [archs[0], garbage, DiesOnceOnRay(str(marker)), archs[1]]
    store = tmp_path / "ray.h5"
    with get_executor("ray") as executor:
        results = score_many(models, data, SETTINGS, store=store, executor=executor)
    assert marker.exists()
    assert [r.name for r in results] == [archs[0].name, "DiesOnceOnRay", archs[1].name]
    (outcome,) = results.failed
    assert outcome.name == "garbage.onnx" and "not an ONNX model" in (outcome.error or "")
    with PatternStore.open(store) as handle, PatternStore.open(local_store) as reference:
        assert handle.keys() == [r.key for r in results]
        for i in (0, 1):
            expected = reference.read(archs[i].key, patterns=False).scores["swap"]
            np.testing.assert_array_equal(handle.read(archs[i].key).scores["swap"], expected)


def test_a_dead_worker_is_retried_and_the_store_is_complete(
    data: Batch, archs: list[Any], local_store: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "died"
    models = [*archs[:3], DiesOnce(marker), *archs[3:5]]
    store = tmp_path / "pool.h5"
    with PoolExecutor(workers=2) as executor:
        results = score_many(models, data, SETTINGS, store=store, executor=executor)
        assert executor.restarts == 1
    assert marker.exists()  # it did kill a worker
    assert not results.failed and len(results) == 6
    assert results[3].name == "DiesOnce"
    keys = [r.key for r in results]
    with PatternStore.open(store) as handle:
        assert handle.keys() == keys  # input order, the retried model included
    with PatternStore.open(local_store) as reference:
        for result in results[:3] + results[4:]:
            expected = reference.read(result.key, patterns=False).scores["swap"]
            np.testing.assert_array_equal(result.swap_per_repeat, expected)


def test_failures_are_reported_per_model_and_the_others_stored(
    data: Batch, archs: list[Any], tmp_path: Path
) -> None:
    counter = tmp_path / "attempts"
    models = [archs[0], AlwaysRaises(counter), archs[1], AlwaysDies(), archs[2]]
    store = tmp_path / "pool.h5"
    with PoolExecutor(workers=2) as executor:
        results = score_many(models, data, SETTINGS, store=store, executor=executor)
    assert isinstance(results, ResultList)
    assert [r.key for r in results] == [archs[i].key for i in range(3)]
    failed = {outcome.name: outcome for outcome in results.failed}
    assert sorted(failed) == ["AlwaysDies", "AlwaysRaises"]
    assert "this model always fails" in (failed["AlwaysRaises"].error or "")
    assert failed["AlwaysDies"].error == "worker process died"
    # a dead worker earns one retry; a model that raises would raise again, so it is not
    # retried for raising (only if it was in flight beside the dying one: then it is retried
    # once alone, because the pool cannot tell which task killed the worker)
    assert failed["AlwaysDies"].attempts == 2
    assert failed["AlwaysRaises"].attempts in (1, 2)
    assert 1 <= len(counter.read_text()) <= failed["AlwaysRaises"].attempts
    with PatternStore.open(store) as handle:
        assert handle.keys() == [archs[i].key for i in range(3)]


def test_local_executor_reports_too_and_the_plain_api_still_raises(
    data: Batch, archs: list[Any], tmp_path: Path
) -> None:
    counter = tmp_path / "attempts"
    models = [archs[0], AlwaysRaises(counter)]
    with LocalExecutor() as executor:
        results = score_many(models, data, SETTINGS, executor=executor)
    assert [r.key for r in results] == [archs[0].key]
    (outcome,) = results.failed
    assert outcome.attempts == 1 and "always fails" in (outcome.error or "")
    assert counter.read_text() == "x"  # deterministic errors are not retried
    # without an executor the first error propagates, as before (no retry)
    with pytest.raises(Exception, match="always fails"):
        score_many([AlwaysRaises(tmp_path / "again")], data, SETTINGS)
    assert (tmp_path / "again").read_text() == "x"


def test_a_model_that_cannot_travel_fails_alone(data: Batch, archs: list[Any]) -> None:
    class Local(Small):  # defined in a function: cannot be pickled by reference
        pass

    with PoolExecutor(workers=1) as executor:
        results = score_many([archs[0], Local()], data, SETTINGS, executor=executor)
    assert [r.key for r in results] == [archs[0].key]
    (outcome,) = results.failed
    assert "local executor" in (outcome.error or "")


# --- search and tables ------------------------------------------------------------------
def test_search_and_table_on_a_pool_equal_local(data: Batch, tmp_path: Path) -> None:
    space = get_space("darts")
    settings = ScoreSettings(batch_size=16, repeats=1, seed=1, baselines=False)
    config = EvolutionConfig(population=4, cycles=2, mutation_times=2, seed=1)
    table = tmp_path / "table.csv"
    rng = np.random.default_rng(0)
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "acc"])
        texts = [space.format(space.sample(rng)) for _ in range(5)]
        for i, text in enumerate([*texts, texts[0]]):  # a repeated row is scored once
            writer.writerow([text, 90 + i])
    truth = read_table(table)
    outcomes = {}
    for name in ("local", "pool"):
        with get_executor(name, workers=2) as executor:
            found = run_search(space, data, settings, config, executor=executor)
            rows = score_table(space, truth, data, settings, executor=executor)
        outcomes[name] = (found, rows)
    (found_a, table_a), (found_b, table_b) = outcomes["local"], outcomes["pool"]
    assert found_a.best_text == found_b.best_text and not found_b.failed
    assert [h.best_fitness for h in found_a.search.history] == [
        h.best_fitness for h in found_b.search.history
    ]
    assert found_a.search.evaluations == found_b.search.evaluations
    results_a, acc_a, rows_a = table_a
    results_b, acc_b, rows_b = table_b
    assert rows_a == rows_b == list(range(6))
    np.testing.assert_array_equal(acc_a["acc"], acc_b["acc"])
    assert [r.swap for r in results_a] == [r.swap for r in results_b]
    assert results_b[0].swap == results_b[5].swap


# --- the command line -------------------------------------------------------------------
def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows_of(text: str) -> list[dict[str, Any]]:
    rows = json.loads(text)["results"]
    for row in rows:
        row.pop("seconds")
    return rows


def test_cli_score_pool_equals_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["score", "darts:random:4", "--repeats", 2, "--json", "-"]
    runs = {}
    for name, extra in (("local", []), ("pool", ["--workers", 2])):
        store = tmp_path / f"{name}.h5"
        code, out, err = run(capsys, *base, "--executor", name, *extra, "--store", store)
        assert code == 0, err
        runs[name] = rows_of(out)
    assert runs["local"] == runs["pool"]
    assert_same_store(tmp_path / "local.h5", tmp_path / "pool.h5")


def test_cli_lists_failed_models_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    store = tmp_path / "s.h5"
    code, out, err = run(
        capsys, "score", "darts:random:2", garbage, "--repeats", 1, "-S", 4, "--store", store
    )
    assert code == 1
    assert out.count("darts:") >= 2  # the table of the others
    errors = [line for line in err.splitlines() if line.startswith("swapprobe: error:")]
    assert len(errors) == 1 and errors[0].startswith("swapprobe: error: garbage.onnx:")
    assert "1 of 3 failed" in err
    with PatternStore.open(store) as handle:
        assert len(handle) == 2


def test_cli_search_and_correlate_accept_executors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_data: Path
) -> None:
    tiny = ["search", "darts", "--population", 3, "--cycles", 1, "--mutation-times", 2]
    tiny += ["--repeats", 1, "-S", 8, "--seed", 2]
    found = {}
    for name in ("local", "pool"):
        out_json = tmp_path / f"{name}.json"
        code, _, err = run(capsys, *tiny, "--executor", name, "--workers", 2, "--json", out_json)
        assert code == 0, err
        found[name] = json.loads(out_json.read_text())
    for field in ("architecture", "fitness", "evaluations", "history"):
        assert found["local"][field] == found["pool"][field]
    table = shared_data / "darts_cifar10_1000.csv"
    if not table.exists():
        pytest.skip(f"{table} not found")
    corr = ["correlate", "darts", "--table", table, "--limit", 6, "--repeats", 1, "-S", 8]
    tables = {}
    for name in ("local", "pool"):
        csv_path = tmp_path / f"{name}.csv"
        code, _, err = run(capsys, *corr, "--executor", name, "--csv", csv_path)
        assert code == 0, err
        with open(csv_path) as handle:
            tables[name] = [row[:-1] for row in csv.reader(handle)]  # all but seconds
    assert tables["local"] == tables["pool"]


# --- choosing an executor ---------------------------------------------------------------
def test_get_executor_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="unknown executor 'dask'"):
        get_executor("dask")
    with pytest.raises(SettingsError, match="at least 1"):
        get_executor("pool", workers=0)
    with pytest.raises(SettingsError, match="only used by the ray executor"):
        get_executor("pool", address="ray://head:10001")
    assert isinstance(get_executor("local"), LocalExecutor)
    assert get_executor("pool").workers == (os.cpu_count() or 1)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(SettingsError, match=r"pip install 'swapprobe\[ray\]'"):
        get_executor("ray")


def test_cli_executor_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "score", "darts:random:1", "--address", "x:1", "--repeats", 1)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "swapprobe: error: an address is only used by the ray executor (--executor ray)"
    ]
    code, _, err = run(capsys, "score", "darts:random:1", "--executor", "pool", "--workers", 0)
    assert code == 2 and "--workers" in err


def test_results_are_plain_lists() -> None:
    result = Result("m", "k", np.array([1.0]), 1, 1, 2)
    values = ResultList([result])
    assert values == [result] and values.failed == []
