"""``swapprobe benchmark``: the study over two tiny tables (a NASLib JSON table on nb201, a CSV
on darts) gives the heatmap, the table and the CSV; a table no registered space is named after
is skipped in one line; a study resumed after a partial run scores only what its stores lack.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from swapprobe.benchmark import StudyPlan, table_space
from swapprobe.cli import main
from swapprobe.evaluate import Evaluator
from swapprobe.plan import Execution, Inputs, Scoring
from swapprobe.searchspaces import get_space

S = 8
ROWS = 4


@pytest.fixture
def tables(tmp_path: Path) -> list[Path]:
    """A NASLib-style nb201 table (two tasks, one proxy) and a darts CSV, ``ROWS`` each."""
    rng = np.random.default_rng(5)
    nb201 = get_space("nb201")
    keys = {nb201.sample(rng).to_naslib() for _ in range(3 * ROWS)}  # type: ignore[attr-defined]
    keys = sorted(keys)[:ROWS]
    document = {
        task: {
            key: {"val_accuracy": float(rng.uniform(50, 90)), "nwot": float(rng.normal())}
            for key in keys
        }
        for task in ("cifar10", "cifar100")
    }
    naslib = tmp_path / "nb201_dev.json"
    naslib.write_text(json.dumps(document))
    darts = get_space("darts")
    darts_table = tmp_path / "darts_tiny.csv"
    with open(darts_table, "w", newline="") as handle:
        writer = csv.writer(handle)
        for _ in range(ROWS):
            writer.writerow([darts.format(darts.sample(rng)), f"{rng.uniform(90, 95):.2f}"])
    return [naslib, darts_table]


def test_a_table_is_found_by_its_name() -> None:
    assert table_space("some/where/nb201_dev.json") == "nb201"
    assert table_space("nb301_dev.json") == "darts-nb301"  # the space's table name
    assert table_space("darts_cifar10_1000.csv") == "darts"
    assert table_space("zz_unknown_dev.json") is None


def test_the_study_command_writes_the_heatmap_the_table_and_the_csv(
    tables: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = tmp_path / "zz101_dev.json"
    unknown.write_text(json.dumps({"cifar10": {"(1,)": {"val_accuracy": 1.0}}}))
    bad = tmp_path / "nb201_bad.json"  # an op index out of range on its second row
    rows = {"(0, 0, 0, 0, 0, 0)": 1.0, "(0, 0, 0, 0, 0, 9)": 2.0}
    bad.write_text(json.dumps({"cifar10": {k: {"val_accuracy": v} for k, v in rows.items()}}))
    plot, table_csv = tmp_path / "fig4.png", tmp_path / "study.csv"
    status = main(
        [
            "benchmark",
            *map(str, tables),
            str(unknown),
            str(bad),
            "-S", str(S),
            "--repeats", "1",
            "--proxies", "none",
            "--bootstrap", "10",
            "--executor", "local",
            "--plot", str(plot),
            "--csv", str(table_csv),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 1  # two tables were left out, one line each, the others scored
    assert "nb201_bad.json cifar10 row 2 '(0, 0, 0, 0, 0, 9)' is not a nb201" in captured.err
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    assert "zz101_dev.json: skipped" in captured.err
    assert captured.err.count("skipped") == 1
    for column in ("nb201/cifar10", "nb201/cifar100", "darts_tiny/accuracy"):
        assert column in captured.out
    assert "nwot (NASLib)" in captured.out
    with open(table_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["table"] for r in rows} == {"nb201", "darts_tiny"}
    assert {r["metric"] for r in rows if r["table"] == "nb201"} >= {"swap", "naslib:nwot"}
    assert all(int(r["n"]) == ROWS for r in rows)
    # the stores live beside the outputs, one per table
    assert sorted(p.name for p in (tmp_path / "swapprobe-study").iterdir()) == [
        "darts_tiny.h5",
        "nb201_dev.h5",
    ]


def test_a_resumed_study_scores_only_what_its_stores_lack(
    tables: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[str] = []
    evaluate = Evaluator.evaluate

    def counting(self: Evaluator, model: object, **kwargs: object) -> object:
        scored.append(str(getattr(model, "key", None) or kwargs.get("key")))
        return evaluate(self, model, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Evaluator, "evaluate", counting)
    common = {
        "inputs": Inputs(batch_size=S),
        "scoring": Scoring(repeats=1, proxies=()),
        "execution": Execution("local"),
        "store_dir": tmp_path / "stores",
        "bootstrap": 0,
    }
    partial = StudyPlan(tuple(tables), limit=2, **common).run()  # type: ignore[arg-type]
    assert [len(t.run.report.results) for t in partial.scored] == [2, 2]  # type: ignore[union-attr]
    first = list(scored)
    assert len(first) == 4 and "None" not in first
    full = StudyPlan(tuple(tables), **common).run()  # type: ignore[arg-type]
    again = scored[len(first) :]
    assert len(again) == 2 * (ROWS - 2) and not set(again) & set(first)
    assert [len(t.run.report.results) for t in full.scored] == [ROWS, ROWS]  # type: ignore[union-attr]
