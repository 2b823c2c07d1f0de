"""Ground-truth tables and rank correlations: read_table, correlate, sweeps and plots.

Every expectation is computed independently: tables are re-read with the ``csv`` module,
correlations come from ``scipy.stats`` on the same arrays, the regularisation sweep is done by
hand from the paper's formula Ψ · exp(−(Θ − μ)² / σ) with μ = σ.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from swapprobe.correlate import (
    correlate,
    metric_values,
    read_table,
    scatter_plot,
    sweep_regularisation,
)
from swapprobe.errors import DataError
from swapprobe.results import Result
from swapprobe.searchspaces import get_space

NB201_ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|none~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|nor_conv_1x1~2|",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_csv(path: Path, rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def make_result(swap: float, params: int, unit: str = "M", **extra: object) -> Result:
    return Result(
        name=f"m{params}",
        key=f"k{params}-{swap}",
        swap_per_repeat=np.array([swap - 1.0, swap + 1.0]),  # mean = swap
        param_count=params,
        units=10_000,
        samples=16,
        size_unit=unit,
        **extra,  # type: ignore[arg-type]
    )


# --- read_table ------------------------------------------------------------------------
def test_read_headerless_table(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", [[a, 90.0 + i] for i, a in enumerate(NB201_ARCHS)])
    truth = read_table(path)
    assert truth.archs == NB201_ARCHS
    assert list(truth.accuracies) == ["accuracy"]
    np.testing.assert_array_equal(truth.accuracies["accuracy"], [90.0, 91.0, 92.0])
    assert truth.path == str(path)


def test_read_headerless_darts_table_of_the_authors(shared_data: Path) -> None:
    path = shared_data / "darts_cifar10_1000.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with open(path, newline="") as handle:
        expected = [row for row in csv.reader(handle) if row]
    truth = read_table(path)
    assert len(truth.archs) == len(expected) == 1000
    assert truth.archs == [row[0] for row in expected]
    assert all(a.startswith("Genotype(normal=[") for a in truth.archs)
    assert list(truth.accuracies) == ["accuracy"]
    np.testing.assert_array_equal(truth.accuracies["accuracy"], [float(r[1]) for r in expected])


def test_read_nb201_table_with_header(shared_data: Path) -> None:
    path = shared_data / "nb201_cifar10_dev1000.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    truth = read_table(path)
    assert list(truth.accuracies) == ["cifar10_test_acc_200ep"]
    assert truth.archs == [r["arch"] for r in rows]
    np.testing.assert_array_equal(
        truth.accuracies["cifar10_test_acc_200ep"],
        [float(r["cifar10_test_acc_200ep"]) for r in rows],
    )


def test_read_header_with_several_accuracy_columns(tmp_path: Path) -> None:
    rows = [["arch", "c10", "c100", "imagenet"]]
    rows += [[a, 90 + i, 70 - i, 40.5 + 2 * i] for i, a in enumerate(NB201_ARCHS)]
    truth = read_table(write_csv(tmp_path / "t.csv", rows))
    assert truth.archs == NB201_ARCHS
    assert list(truth.accuracies) == ["c10", "c100", "imagenet"]
    np.testing.assert_array_equal(truth.accuracies["c10"], [90, 91, 92])
    np.testing.assert_array_equal(truth.accuracies["c100"], [70, 69, 68])
    np.testing.assert_array_equal(truth.accuracies["imagenet"], [40.5, 42.5, 44.5])


def test_arch_and_accuracy_column_selection(tmp_path: Path) -> None:
    # the architecture is not the first column here
    rows = [["c10", "genotype", "c100", "note_acc"]]
    rows += [[90 + i, a, 70 - i, 1.0 * i] for i, a in enumerate(NB201_ARCHS)]
    path = write_csv(tmp_path / "t.csv", rows)
    truth = read_table(path, arch_col="genotype", acc_cols=["c100"])
    assert truth.archs == NB201_ARCHS
    assert list(truth.accuracies) == ["c100"]
    np.testing.assert_array_equal(truth.accuracies["c100"], [70, 69, 68])
    # without acc_cols every other column is an accuracy, in file order
    every = read_table(path, arch_col="genotype")
    assert list(every.accuracies) == ["c10", "c100", "note_acc"]
    np.testing.assert_array_equal(every.accuracies["c10"], [90, 91, 92])
    # several chosen columns keep the order asked for
    two = read_table(path, arch_col="genotype", acc_cols=["note_acc", "c10"])
    assert list(two.accuracies) == ["note_acc", "c10"]


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"arch_col": "architecture"}, "architecture"),
        ({"acc_cols": ["cifar100"]}, "cifar100"),
    ],
)
def test_unknown_column_is_a_data_error(tmp_path: Path, options: dict, needle: str) -> None:
    rows = [["arch", "acc"], [NB201_ARCHS[0], 91.0], [NB201_ARCHS[1], 92.0]]
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match=needle):
        read_table(path, **options)


def test_non_number_accuracy_names_the_line(tmp_path: Path) -> None:
    rows = [["arch", "acc"], [NB201_ARCHS[0], 91.0], [NB201_ARCHS[1], "n/a"]]
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match=r":3: acc is not a number: 'n/a'"):
        read_table(path)
    # headerless: the bad value is on file line 2
    path = write_csv(tmp_path / "h.csv", [[NB201_ARCHS[0], 91.0], [NB201_ARCHS[1], ""]])
    with pytest.raises(DataError, match=r":2: "):
        read_table(path)


def test_missing_or_empty_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path)  # a directory is not a table
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        read_table(tmp_path / "empty.csv")


def test_short_row_is_a_data_error(tmp_path: Path) -> None:
    rows = [["arch", "c10", "c100"], [NB201_ARCHS[0], 91.0, 70.0], [NB201_ARCHS[1], 92.0]]
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match=":3:"):
        read_table(path)


# --- correlate -------------------------------------------------------------------------
def noisy_pair(n: int = 40, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(90, 2, n)
    scores = 100 * truth + rng.normal(0, 150, n)
    return scores, truth


def test_correlate_equals_scipy() -> None:
    scores, truth = noisy_pair()
    result = correlate(scores, truth, metric="swap", target="c10", bootstrap=200, seed=1)
    assert result.metric == "swap" and result.target == "c10"
    assert result.n == len(scores)
    assert result.spearman == pytest.approx(stats.spearmanr(scores, truth).statistic, abs=1e-12)
    assert result.kendall == pytest.approx(stats.kendalltau(scores, truth).statistic, abs=1e-12)
    assert 0.2 < result.spearman < 1.0  # the pair is built to correlate
    for value, (low, high) in (
        (result.spearman, result.spearman_ci),
        (result.kendall, result.kendall_ci),
    ):
        assert -1.0 <= low <= value <= high <= 1.0
        assert low < high
    assert "constant" not in result.extra


def test_correlate_with_ties_uses_tau_b() -> None:
    scores = np.array([1, 1, 2, 2, 3, 3, 4, 5], float)
    truth = np.array([1, 2, 2, 3, 3, 5, 4, 6], float)
    result = correlate(scores, truth, bootstrap=50)
    assert result.kendall == pytest.approx(stats.kendalltau(scores, truth, variant="b").statistic)
    assert result.spearman == pytest.approx(stats.spearmanr(scores, truth).statistic)


def test_correlate_bootstrap_is_seeded() -> None:
    scores, truth = noisy_pair()
    first = correlate(scores, truth, bootstrap=100, seed=7)
    again = correlate(scores, truth, bootstrap=100, seed=7)
    other = correlate(scores, truth, bootstrap=100, seed=8)
    assert first.spearman_ci == again.spearman_ci
    assert first.kendall_ci == again.kendall_ci
    assert first.spearman_ci != other.spearman_ci
    assert first.spearman == other.spearman  # the point estimate does not depend on the seed


def test_perfect_ranking_gives_one() -> None:
    truth = np.linspace(80, 95, 12)
    result = correlate(np.exp(truth / 10), truth, bootstrap=50)  # monotone, not linear
    assert result.spearman == pytest.approx(1.0)
    assert result.kendall == pytest.approx(1.0)
    assert result.spearman_ci == pytest.approx((1.0, 1.0))


def test_constant_score_is_marked() -> None:
    truth = np.linspace(80, 95, 10)
    result = correlate(np.full(10, 16.0), truth, metric="standard_ap", bootstrap=50)
    assert result.extra == {"constant": 16.0}
    assert math.isnan(result.spearman) and math.isnan(result.kendall)
    assert all(math.isnan(v) for v in (*result.spearman_ci, *result.kendall_ci))
    assert result.n == 10


def test_nans_are_dropped() -> None:
    scores, truth = noisy_pair(30)
    holed_scores, holed_truth = scores.copy(), truth.copy()
    holed_scores[[2, 7]] = np.nan
    holed_truth[11] = np.nan
    holed_scores[20] = np.inf
    keep = np.ones(30, bool)
    keep[[2, 7, 11, 20]] = False
    result = correlate(holed_scores, holed_truth, bootstrap=100, seed=2)
    clean = correlate(scores[keep], truth[keep], bootstrap=100, seed=2)
    assert result.n == 26
    assert result.spearman == pytest.approx(stats.spearmanr(scores[keep], truth[keep]).statistic)
    assert result.kendall == pytest.approx(stats.kendalltau(scores[keep], truth[keep]).statistic)
    assert result.spearman_ci == clean.spearman_ci


def test_too_few_pairs_give_nan() -> None:
    result = correlate(np.array([1.0, 2.0, np.nan]), np.array([3.0, 4.0, 5.0]), bootstrap=10)
    assert result.n == 2
    assert math.isnan(result.spearman) and math.isnan(result.kendall)


# --- metric values, sweep, plot -------------------------------------------------------
def test_metric_values_read_results() -> None:
    results = [
        make_result(100.0, 1_500_000, mu=1.0, sigma=2.0),
        make_result(50.0, 500_000, mu=1.0, sigma=2.0),
    ]
    np.testing.assert_allclose(metric_values(results, "swap"), [100.0, 50.0])
    np.testing.assert_allclose(metric_values(results, "params"), [1_500_000, 500_000])
    expected = [100 * math.exp(-(0.5**2) / 2), 50 * math.exp(-(0.5**2) / 2)]
    np.testing.assert_allclose(metric_values(results, "reg_swap"), expected)
    assert np.isnan(metric_values(results, "nwot")).all()  # no baselines computed


@pytest.mark.parametrize("unit", ["M", "K"])
def test_sweep_equals_hand_computation(unit: str) -> None:
    rng = np.random.default_rng(5)
    scale = 1e6 if unit == "M" else 1e3
    params = rng.integers(int(0.05 * scale), int(2.0 * scale), 25)
    swaps = rng.uniform(1_000, 60_000, 25)
    truth = rng.normal(90, 2, 25) + swaps / 20_000
    results = [make_result(s, int(p), unit) for s, p in zip(swaps, params, strict=True)]
    values = [0.1, 0.5, 1.0, 1.53, 3.0]
    sweep = sweep_regularisation(results, truth, values)
    assert [v for v, _ in sweep] == values
    theta = params / scale
    for value, rho in sweep:
        reg = swaps * np.exp(-((theta - value) ** 2) / value)
        assert rho == pytest.approx(stats.spearmanr(reg, truth).statistic, abs=1e-12)
    # the sweep is not constant: μ changes which models rank high
    assert len({round(rho, 9) for _, rho in sweep}) > 1


def test_scatter_plot_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    results = [
        make_result(float(s), int(p), mu=1.0, sigma=1.0)
        for s, p in zip(rng.uniform(100, 900, 12), rng.integers(10**5, 2 * 10**6, 12), strict=True)
    ]
    truth = rng.normal(90, 1, 12)
    path = scatter_plot(results, truth, tmp_path / "p.png", target="c10", title="tiny")
    assert Path(path) == tmp_path / "p.png"
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"arch,acc\n{NB201_ARCHS[0]},91\n\n{NB201_ARCHS[1]},92\n{NB201_ARCHS[2]},x\n")
    with pytest.raises(DataError, match=r"t\.csv:5: acc is not a number"):
        read_table(path)
    path.write_text(f"arch,acc\n{NB201_ARCHS[0]},91\n\n{NB201_ARCHS[1]},92\n")
    assert read_table(path).lines == (2, 4)


# --- tables correlate cannot use ----------------------------------------------------------
def test_header_only_table_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", [["arch", "acc"]])
    with pytest.raises(DataError, match=r"t\.csv has a header \(arch, acc\) but no rows"):
        read_table(path)


@pytest.mark.parametrize("header", [True, False])
def test_architecture_only_table_is_refused(tmp_path: Path, header: bool) -> None:
    rows = [[arch] for arch in NB201_ARCHS]
    path = write_csv(tmp_path / "t.csv", [["arch"], *rows] if header else rows)
    with pytest.raises(DataError, match="has no accuracy column"):
        read_table(path)


def test_duplicate_architectures_are_kept_with_a_warning(tmp_path: Path) -> None:
    from swapprobe.correlate import DuplicateArchitectureWarning

    a, b, c = NB201_ARCHS
    rows = [["arch", "c10", "c100"], [b, 91, 71], [a, 90, 70], [c, 92, 72], [a, 94, 70]]
    rows.append([b, 91, 71])
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.warns(DuplicateArchitectureWarning) as caught:
        truth = read_table(path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "2 architecture(s) appear on more than one row" in message
    # a: 90 vs 94 differ and is the one named; b is repeated identically
    assert f"1 with differing accuracies; e.g. {a[:60]!r} at lines 3, 5" in message
    assert "every row is kept as its own measurement" in message
    assert truth.archs == [b, a, c, a, b]
    np.testing.assert_array_equal(truth.accuracies["c10"], [91, 90, 92, 94, 91])
    assert truth.lines == (2, 3, 4, 5, 6)


def test_json_duplicates_warn_and_keep_each_record(tmp_path: Path) -> None:
    import json

    from swapprobe.correlate import DuplicateArchitectureWarning

    records = [{"arch": "x", "scores": {"glue": g}} for g in (1.0, 2.0)]
    records.append({"arch": "y", "scores": {"glue": 3.0}})
    path = tmp_path / "t.json"
    path.write_text(json.dumps(records))
    with pytest.warns(DuplicateArchitectureWarning, match="'x' at lines 1, 2"):
        truth = read_table(path)
    assert truth.archs == ["x", "x", "y"]
    np.testing.assert_array_equal(truth.accuracies["glue"], [1.0, 2.0, 3.0])


def test_table_without_duplicates_gives_no_warning(tmp_path: Path) -> None:
    import warnings

    path = write_csv(tmp_path / "t.csv", [[a, 90.0 + i] for i, a in enumerate(NB201_ARCHS)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_table(path).archs == NB201_ARCHS


def test_plot_axes_clip_a_lone_outlier_and_keep_the_bulk() -> None:
    from swapprobe.correlate import _robust

    rng = np.random.default_rng(1)
    accuracy = rng.uniform(88.0, 92.0, 200)
    accuracy[17] = 10.0  # one diverged training
    shown, outside = _robust(accuracy)
    assert np.flatnonzero(outside).tolist() == [17]
    low, high = np.percentile(accuracy, [1, 99])
    margin = 0.05 * (high - low)
    assert shown[17] == pytest.approx(low - margin)  # drawn on the edge, not at 10 %
    np.testing.assert_array_equal(np.delete(shown, 17), np.delete(accuracy, 17))
    assert low - margin > 80.0  # the axis spans the bulk, not 10-92
    few, none = _robust(np.array([1.0, 50.0]))  # too few points to call one an outlier
    assert few.tolist() == [1.0, 50.0] and not none.any()


def test_a_json_table_of_flat_records_takes_every_number_as_a_target(tmp_path: Path) -> None:
    """AutoFormer's table: ``arch`` is an object, the accuracies are top-level numbers, and a
    target measured on some subnets only (``c100_base_acc``) is NaN where it is absent."""
    arch_a = {"hidden_dim": 192, "depth": 12, "mlp_ratio": [4.0] * 12, "num_heads": [3] * 12}
    arch_b = {**arch_a, "hidden_dim": 240}
    table = tmp_path / "vit.json"
    table.write_text(
        json.dumps(
            [
                {"arch": arch_a, "c100_kd_acc": 70.5, "c100_base_acc": 60.0, "source": "x"},
                {"arch": arch_b, "c100_kd_acc": 72.0, "imagenet_super_acc": 75.25},
            ]
        )
    )
    truth = read_table(table)
    compact = [json.dumps(arch, separators=(",", ":")) for arch in (arch_a, arch_b)]
    assert truth.archs == compact
    assert list(truth.accuracies) == ["c100_kd_acc", "c100_base_acc", "imagenet_super_acc"]
    np.testing.assert_array_equal(truth.accuracies["c100_kd_acc"], [70.5, 72.0])
    np.testing.assert_array_equal(truth.accuracies["c100_base_acc"], [60.0, np.nan])
    np.testing.assert_array_equal(truth.accuracies["imagenet_super_acc"], [np.nan, 75.25])
    space = get_space("autoformer-ti")
    assert space.parse(truth.archs[1]).embed_dim == 240  # the space reads the object's text
    table.write_text(json.dumps([{"arch": arch_a, "note": "no numbers"}]))
    with pytest.raises(DataError, match="no numbers to correlate"):
        read_table(table)
