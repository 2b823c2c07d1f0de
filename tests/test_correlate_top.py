"""The top of the ranking in ``correlate`` (nDCG@10, top-10 mean accuracy) and LIBRA's
selection on seeded halves (``--select libra``), against hand-made tables."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from swapprobe.cli import main
from swapprobe.correlate import correlate, libra_candidates, libra_report
from swapprobe.errors import SettingsError
from swapprobe.proxies.libra import libra_halves
from swapprobe.results import Result


def test_ndcg_and_top_mean_by_hand() -> None:
    # 12 architectures; the score ranks rows 11, 10, ..., 0 (descending score = row order
    # reversed), accuracies in percent
    accuracy = np.array([90.0, 91, 92, 93, 94, 89, 88, 87, 86, 85, 95, 80])
    score = np.arange(12, dtype=float)  # row 11 first
    found = correlate(score, accuracy, bootstrap=0)
    by_score = accuracy[::-1][:10]
    ideal = np.sort(accuracy)[::-1][:10]
    dcg = sum((2**a - 1) / math.log2(j + 2) for j, a in enumerate(by_score))
    idcg = sum((2**a - 1) / math.log2(j + 2) for j, a in enumerate(ideal))
    assert found.ndcg == pytest.approx(dcg / idcg, rel=1e-9)
    assert found.top_mean == pytest.approx(by_score.mean())
    perfect = correlate(accuracy, accuracy, bootstrap=0)
    assert perfect.ndcg == pytest.approx(1.0) and perfect.top_mean == pytest.approx(ideal.mean())


def _result(index: int, params: int, **proxies: float) -> Result:
    return Result(
        name=f"a{index}",
        key=f"a{index}",
        swap_per_repeat=np.array([proxies.pop("swap")]),
        param_count=params,
        units=100,
        samples=8,
        standard_ap_per_repeat=np.array([8.0]),
        proxies=dict(proxies),
        aggregate=float(index),
    )


def test_libra_report_chooses_among_the_scored_proxies_on_seeded_halves() -> None:
    rng = np.random.default_rng(4)
    n = 40
    accuracy = np.linspace(80, 94, n)
    params = rng.integers(1_000, 100_000, n)
    table = {
        "swap": accuracy + rng.normal(0, 2, n),
        "zico": accuracy + rng.normal(0, 3, n),
        "lswag": accuracy + rng.normal(0, 1, n),
        "flops": params + rng.normal(0, 5_000, n),
    }
    results = [
        _result(i, int(params[i]), **{name: float(v[i]) for name, v in table.items()})
        for i in range(n)
    ]
    columns = libra_candidates(results)
    # the aggregate (a combination) and the constant standard AP are not candidates
    assert set(columns) == {"swap", "zico", "lswag", "flops", "params"}
    found = libra_report(results, {"c10": accuracy}, seed=3)
    expected = libra_halves(
        {name: columns[name] for name in columns}, accuracy, params.astype(float), seed=3
    )
    for got, want in zip(found["c10"], expected, strict=True):
        assert got.choice.proxies == want.choice.proxies
        assert got.rho_outside == pytest.approx(want.rho_outside)
    assert found["c10"][0].choice.z1 == "lswag"  # the least noisy column leads
    with pytest.raises(SettingsError, match="at least 8"):
        libra_report(results[:5], {"c10": accuracy[:5]})


def test_cli_correlate_select_libra_prints_the_three_and_the_held_out_rho(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from swapprobe.searchspaces import get_space

    monkeypatch.setenv("SWAPPROBE_CACHE", str(tmp_path / "cache"))
    space = get_space("nb201")
    rng = np.random.default_rng(11)
    archs = list(dict.fromkeys(space.format(space.sample(rng)) for _ in range(10)))
    table = tmp_path / "table.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "acc"])
        for i, arch in enumerate(archs):
            writer.writerow([arch, 80 + (7 * i) % 10])  # a hand-made, scrambled accuracy
    code = main(
        [
            "correlate",
            "nb201",
            "--table",
            str(table),
            "--select",
            "libra",
            "--proxies",
            "none",
            "--repeats",
            "1",
            "-S",
            "8",
            "--bootstrap",
            "0",
            "--executor",
            "local",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "nDCG@10" in out and "top-10 acc" in out
    lines = [line for line in out.splitlines() if line.startswith("LIBRA acc")]
    assert len(lines) == 2 and "held out" in lines[0] and "chosen on half A" in lines[0]


def test_cli_correlate_select_rule_reports_the_default_the_library_chooses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from swapprobe.proxies.default_rule import choose_default
    from swapprobe.searchspaces import get_space

    monkeypatch.setenv("SWAPPROBE_CACHE", str(tmp_path / "cache"))
    space = get_space("nb201")
    rng = np.random.default_rng(5)
    archs = list(dict.fromkeys(space.format(space.sample(rng)) for _ in range(12)))
    table = tmp_path / "table.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "acc"])
        for i, arch in enumerate(archs):
            writer.writerow([arch, 80 + (7 * i) % 10])
    common = ["--proxies", "flops", "--repeats", "1", "-S", "8", "--bootstrap", "0"]
    code = main(
        [
            "correlate",
            "nb201",
            "--table",
            str(table),
            "--select",
            "rule",
            *common,
            "--executor",
            "local",
            "--json",
            str(tmp_path / "r.json"),
            "--csv",
            str(tmp_path / "r.csv"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    rule = json.loads((tmp_path / "r.json").read_text())["rule"]
    with open(tmp_path / "r.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    values = {name: np.array([float(r[name]) for r in rows]) for name in ("swap", "flops", "nwot")}
    expected = choose_default(values, {"acc": np.array([float(r["acc"]) for r in rows])})
    assert rule["chosen"] == list(expected.chosen)
    # NWOT comes with every scoring; FLOPs was asked for
    assert {tuple(s["proxies"]) for s in rule["sets"]} == {
        ("swap",),
        ("swap", "flops"),
        ("swap", "nwot"),
        ("swap", "flops", "nwot"),
    }
    assert f"default: {' + '.join(expected.chosen)}" in out
