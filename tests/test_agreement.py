"""swapprobe's NWOT, FLOPs and parameters against a NASLib table's own columns of them
(issue 24): Spearman ρ per task, in ``correlate --table`` and ``benchmark``, console, JSON and
CSV. The table is built here: its ``params`` are the cells' true sizes (in millions, as NASLib
writes them) so swapprobe's must rank them exactly alike, its ``flops`` a monotone function of
the true size (ρ 1 again), its ``nwot`` random (ρ recomputed with scipy from the run's CSV).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from swapprobe.benchmark import StudyPlan
from swapprobe.cli import main
from swapprobe.correlate import agreement
from swapprobe.plan import Execution, Inputs, Scoring
from swapprobe.searchspaces import get_space

S = 8
ROWS = 5
TASKS = ("cifar10", "cifar100")


class _Scored:
    """The part of a Result that :func:`agreement` reads."""

    def __init__(self, **values: float | None) -> None:
        self.values = values

    def proxy(self, name: str) -> float | None:
        return self.values.get(name)


def test_agreement_is_spearman_over_rows_both_have() -> None:
    ours = [_Scored(nwot=v, params=p) for v, p in [(1.0, 5), (2.0, 4), (3.0, 3), (4.0, 2)]]
    theirs = {
        "cifar10": {
            "nwot": np.array([10.0, math.nan, 30.0, 20.0]),
            "params": np.array([1.0, 1.0, 1.0, 1.0]),  # constant: ρ undefined
            "synflow": np.array([1.0, 2.0, 3.0, 4.0]),  # not a quantity swapprobe has
        },
        "cifar100": {"flops": np.array([1.0, 2.0, 3.0, 4.0])},  # swapprobe has no flops here
    }
    found = {(a.target, a.quantity): a for a in agreement(ours, theirs)}  # type: ignore[arg-type]
    assert set(found) == {("cifar10", "nwot"), ("cifar10", "params")}
    nwot = found["cifar10", "nwot"]
    assert nwot.n == 3
    assert nwot.spearman == pytest.approx(stats.spearmanr([1, 3, 4], [10, 30, 20]).statistic)
    assert found["cifar10", "params"].n == 4 and math.isnan(found["cifar10", "params"].spearman)


@pytest.fixture
def table(tmp_path: Path) -> Path:
    """A NASLib-style nb201 table of ``ROWS`` cells, two tasks."""
    space = get_space("nb201")
    rng = np.random.default_rng(11)
    cells = []
    while len(cells) < ROWS:
        cell = space.sample(rng)
        if cell not in cells:
            cells.append(cell)
    document = {
        task: {
            cell.to_naslib(): {  # type: ignore[attr-defined]
                "val_accuracy": float(rng.uniform(50, 90)),
                "nwot": {"score": float(rng.normal()), "time": 0.1},
                "params": space.evaluation_param_count(cell, task) / 1e6,
                "flops": (space.evaluation_param_count(cell, task) / 1e6) ** 2,
            }
            for cell in cells
        }
        for task in ("cifar10", "cifar100")
    }
    path = tmp_path / "nb201_dev.json"
    path.write_text(json.dumps(document))
    return path


def test_correlate_reports_agreement_with_the_tables_columns(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_csv = tmp_path / "c.json", tmp_path / "c.csv"
    code = main(
        [
            "correlate", "nb201", "--table", str(table),
            "-S", str(S), "--repeats", "1", "--proxies", "flops",
            "--bootstrap", "0", "--executor", "local",
            "--json", str(out_json), "--csv", str(out_csv),
        ]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    listed = json.loads(out_json.read_text())["agreement"]
    found = {(a["target"], a["quantity"]): a for a in listed}
    assert set(found) == {(t, q) for t in TASKS for q in ("nwot", "flops", "params")}
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    document = json.loads(table.read_text())
    space = get_space("nb201")
    for task in ("cifar10", "cifar100"):
        by_arch = {space.format(space.parse_table_key(k)): v for k, v in document[task].items()}
        theirs = [by_arch[row["arch"]]["nwot"]["score"] for row in rows]
        ours = [float(row["nwot"]) for row in rows]
        assert found[task, "nwot"]["n"] == ROWS
        expected = stats.spearmanr(ours, theirs).statistic
        assert found[task, "nwot"]["spearman"] == pytest.approx(expected)
        assert found[task, "params"]["spearman"] == pytest.approx(1.0)
        assert found[task, "flops"]["spearman"] == pytest.approx(1.0)
    assert "different draws, so not equal" in printed.out


def test_the_study_reports_agreement_in_its_table_json_and_csv(
    table: Path, tmp_path: Path
) -> None:
    study = StudyPlan(
        (str(table),),
        Inputs(batch_size=S),
        Scoring(repeats=1, proxies=("flops",)),
        Execution("local"),
        bootstrap=0,
    ).run()
    rows = study.agreement()
    assert {(r["table"], r["task"], r["quantity"]) for r in rows} == {
        ("nb201", t, q) for t in ("cifar10", "cifar100") for q in ("nwot", "flops", "params")
    }
    assert all(r["n"] == ROWS for r in rows)
    params = [r["spearman"] for r in rows if r["quantity"] == "params"]
    assert params == pytest.approx([1.0, 1.0])
    assert study.to_dict()["agreement"] == rows
    csv_rows = [r for r in study.rows() if r["metric"].startswith("agreement:")]
    assert [(r["task"], r["metric"], r["spearman"]) for r in csv_rows] == [
        (r["task"], f"agreement:{r['quantity']}", r["spearman"]) for r in rows
    ]
    # the study's own matrix is of correlations with accuracy only
    metrics, _, _ = study.matrix()
    assert not any(m.startswith("agreement") for m in metrics)
