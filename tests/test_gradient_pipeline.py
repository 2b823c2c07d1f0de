"""ZiCo, L-SWAG and VKDNW through the one pipeline: each proxy of ``swapprobe.score`` equals the
pure formula on the gradient pass's statistics computed directly; the store keeps those
statistics so that ``rescore`` recomputes L-SWAG over another interval exactly; the CLI takes
``--proxies lswag``; ``swapprobe calibrate`` caches an interval that later runs read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import swapprobe
from swapprobe.api import rescore, stored_results
from swapprobe.capture import proxy_pass
from swapprobe.capture.gradients import gradient_pass
from swapprobe.cli import main
from swapprobe.data import Batch
from swapprobe.errors import SettingsError
from swapprobe.evaluate import torch_seed
from swapprobe.proxies.gradients import interval_swap, lswag, lswag_lambda, zico
from swapprobe.proxies.interval import LayerInterval
from swapprobe.proxies.vkdnw import vkdnw

GRADIENT = ("zico", "lswag", "lswag-lambda", "lswag-psi", "vkdnw")
S, CLASSES = 16, 5


def _mlp() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 16),
        nn.ReLU(),
        nn.Linear(16, 16),
        nn.ReLU(),
        nn.Linear(16, 16),
        nn.ReLU(),
        nn.Linear(16, CLASSES),
    )


@pytest.fixture(scope="module")
def labelled() -> Batch:
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((S, 12)).astype(np.float32)
    labels = rng.integers(0, CLASSES, S)
    return Batch(inputs, "test array", "0" * 16, labels=labels)


def _direct(module: nn.Module, key: str, batch: Batch, proxy_batch: int):
    """The gradient pass run by hand: AZ-NAS's Kaiming draw under the model's torch seed, two
    mini-batches of ``proxy_batch`` consecutive samples with the batch's own labels, VKDNW's
    Fisher matrix over all S samples."""
    copy = _mlp()
    copy.load_state_dict(module.state_dict())
    seed = torch_seed(0, key) % 2**31
    torch.manual_seed(seed)
    proxy_pass.init_kaiming_normal(copy)
    x = torch.from_numpy(batch.inputs)
    y = torch.from_numpy(np.asarray(batch.labels, dtype=np.int64))
    batches = [(x[:proxy_batch], y[:proxy_batch]), (x[proxy_batch:], y[proxy_batch:])]
    return gradient_pass(copy, batches, seed=seed, fisher=True, fisher_inputs=x)


def test_each_gradient_proxy_equals_the_pure_function_on_a_direct_pass(labelled: Batch) -> None:
    module = _mlp()
    result = swapprobe.score(
        module, labelled, proxies=GRADIENT, backend="torch", repeats=1, init="kaiming"
    )
    direct = _direct(module, result.key, labelled, proxy_batch=8)
    assert [layer.name for layer in result.gradient_layers] == ["1", "3", "5", "7"]
    assert result.gradient_layers == direct.layers
    assert result.proxies["zico"] == pytest.approx(zico(direct.layers), rel=1e-12)
    lam = lswag_lambda(direct.layers)  # no interval given: the whole depth
    assert result.proxies["lswag-lambda"] == pytest.approx(lam, rel=1e-12)
    # Ψ over the whole depth is the first repeat's SWAP (one repeat here)
    assert result.proxies["lswag-psi"] == result.swap
    assert result.proxies["lswag"] == pytest.approx(lswag(lam, result.swap), rel=1e-12)
    assert result.proxies["vkdnw"] == pytest.approx(vkdnw(direct.fisher_eigenvalues), rel=1e-12)
    assert result.metadata["gradient_labels"] == "data"


def test_images_without_labels_get_seeded_random_ones_the_same_each_run() -> None:
    inputs = np.random.default_rng(1).standard_normal((S, 12)).astype(np.float32)
    first = swapprobe.score(_mlp(), inputs, proxies=("zico",), backend="torch", repeats=1)
    again = swapprobe.score(_mlp(), inputs, proxies=("zico",), backend="torch", repeats=1)
    assert first.metadata["gradient_labels"] == "random (seeded)"
    assert first.proxies["zico"] == again.proxies["zico"]
    other = swapprobe.score(
        _mlp(), inputs, proxies=("zico",), backend="torch", repeats=1, seed=5
    )
    assert other.proxies["zico"] != first.proxies["zico"]


def test_the_store_keeps_the_statistics_and_rescore_recomputes_another_interval(
    labelled: Batch, tmp_path: Path
) -> None:
    from swapprobe.api import score_many
    from swapprobe.results import ScoreSettings
    from swapprobe.runs import record_to_result
    from swapprobe.store import PatternStore

    settings = ScoreSettings(
        batch_size=S,
        repeats=2,
        init="kaiming",
        backend="torch",
        proxies=("zico", "lswag", "lswag-lambda", "lswag-psi"),
        keep_patterns="first",
    )
    store = tmp_path / "run.h5"
    (scored,) = score_many([_mlp()], labelled, settings, store=store)
    (read,) = stored_results(store)
    assert read.gradient_layers == scored.gradient_layers
    np.testing.assert_array_equal(read.psi_by_bin, scored.psi_by_bin)
    assert read.proxies == scored.proxies

    (again,) = rescore(store, interval=(0, 4))
    # independently: Λ over the layers whose depth bin is 0..4, Ψ from the kept first-repeat
    # patterns up to the last activation layer in bin 4
    interval = LayerInterval(0, 4)
    start, stop = interval.layer_slice(len(scored.gradient_layers))
    assert (start, stop) == (0, 2)  # 4 weight layers: bins 0, 2, 5, 7
    lam = lswag_lambda(scored.gradient_layers, start, stop)
    with PatternStore.open(store) as handle:
        patterns = record_to_result(handle.read(scored.key)).patterns[0]
    psi = interval_swap(patterns, 0, interval.psi_stop(len(patterns.layers)))
    assert again.proxies["lswag-lambda"] == pytest.approx(lam, rel=1e-12)
    assert again.proxies["lswag-psi"] == psi
    assert again.proxies["lswag"] == pytest.approx(lam * psi, rel=1e-12)
    assert again.proxies["zico"] == scored.proxies["zico"]
    assert again.proxies["lswag-lambda"] != scored.proxies["lswag-lambda"]
    with pytest.raises(SettingsError, match="depth bins"):
        rescore(store, interval=(3, 10))


def test_token_data_is_refused_for_vkdnw_alone_in_one_line() -> None:
    from swapprobe.evaluate import Evaluator
    from swapprobe.results import ScoreSettings

    tokens = Batch(np.ones((4, 8), dtype=np.int64), "tokens", "0" * 16)
    with pytest.raises(SettingsError, match="token models") as refused:
        Evaluator(tokens, ScoreSettings(batch_size=4, proxies=("lswag", "vkdnw")))
    assert "\n" not in str(refused.value)
    Evaluator(tokens, ScoreSettings(batch_size=4, proxies=("zico", "lswag", "expressivity")))


def test_cli_scores_nb201_with_lswag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWAPPROBE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "rows.json"
    code = main(
        [
            "score",
            "nb201:random:1",
            "--proxies",
            "lswag,zico",
            "--repeats",
            "1",
            "-S",
            "8",
            "--json",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["lswag"] > 0 and np.isfinite(row["zico"])
    assert "no calibrated interval" in err and "swapprobe calibrate nb201" in err


def test_calibrate_caches_the_interval_and_its_plot_and_runs_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from swapprobe.calibrate import cached_interval, calibrate_interval, interval_cache_path
    from swapprobe.data import load_batch
    from swapprobe.plan import Scoring
    from swapprobe.searchspaces import get_space

    monkeypatch.setenv("SWAPPROBE_CACHE", str(tmp_path))
    assert cached_interval("nb201") is None
    found = calibrate_interval("nb201", networks=2, plot=tmp_path / "nb201.png")
    assert found.path == interval_cache_path("nb201") == tmp_path / "intervals" / "nb201.json"
    stored = json.loads(found.path.read_text())
    assert (stored["first_bin"], stored["last_bin"]) == (
        found.interval.first_bin,
        found.interval.last_bin,
    )
    assert stored["networks"] == 2 and len(stored["profile"]) == 10
    assert (tmp_path / "nb201.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cached = cached_interval("nb201")
    assert cached is not None and (cached.first_bin, cached.last_bin) == (
        found.interval.first_bin,
        found.interval.last_bin,
    )
    space = get_space("nb201")
    settings = Scoring(proxies=("lswag",)).settings(
        load_batch("synthetic", batch_size=8), space.defaults, size_unit="M", space="nb201"
    )
    assert settings.interval == (found.interval.first_bin, found.interval.last_bin)
