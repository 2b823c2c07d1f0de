"""Bad input on the command line: one ``swapprobe: error:`` line each, naming the row where
there is one, and nothing scored (issues 24 and 26).

Every case runs the real command with ``Evaluator.evaluate`` replaced by a function that fails
the test, so a message that only came after scoring started could not pass. The tables are
written here: NASLib-style JSON (``{task: {key: columns}}``) and AutoFormer record lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swapprobe.cli import main
from swapprobe.evaluate import Evaluator

#: NASLib NAS-Bench-201 keys: two valid cells, and one with op index 7 (of 0..4)
NB201_ROWS = {"(0, 2, 3, 1, 4, 2)": 90.0, "(2, 2, 2, 2, 2, 2)": 91.0}
NB201_OUT_OF_RANGE = "(0, 0, 0, 0, 0, 7)"


def _nb101_key(edges: list[tuple[int, int]], codes: tuple[int, ...]) -> str:
    """NASLib's NAS-Bench-101 key: the 7×7 adjacency matrix row by row, then 7 label codes
    (0 input, 1 output, 2 maxpool, 3 conv1x1, 4 conv3x3)."""
    flat = [0] * 49
    for i, j in edges:
        flat[i * 7 + j] = 1
    return "(" + ", ".join(map(str, [*flat, *codes])) + ")"


NB101_GOOD = _nb101_key([(0, 1), (1, 6)], (0, 4, 4, 4, 4, 4, 1))
#: input → vertex 1 and vertex 2 → output, nothing between: pruning leaves no path
NB101_NO_PATH = _nb101_key([(0, 1), (2, 6)], (0, 4, 4, 4, 4, 4, 1))
#: label code 5 on vertex 3
NB101_BAD_OP = _nb101_key([(0, 1), (1, 6)], (0, 4, 4, 5, 4, 4, 1))


def _record(embed: int, depth: int, ratios: list[float], heads: list[int]) -> dict:
    return {"hidden_dim": embed, "depth": depth, "mlp_ratio": ratios, "num_heads": heads}


TINY_GOOD = _record(192, 12, [4.0] * 12, [3] * 12)


@pytest.fixture(autouse=True)
def nothing_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("nothing may be scored")

    monkeypatch.setattr(Evaluator, "evaluate", refuse)


def _naslib(path: Path, rows: dict[str, float], task: str = "cifar10") -> Path:
    path.write_text(json.dumps({task: {k: {"val_accuracy": v} for k, v in rows.items()}}))
    return path


def _records(path: Path, *archs: dict) -> Path:
    path.write_text(json.dumps([{"arch": a, "c100_kd_acc": 70.0 + i} for i, a in enumerate(archs)]))
    return path


def _one_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main([*argv, "--executor", "local"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("swapprobe: error:")]
    assert code != 0 and "Traceback" not in err
    assert len(errors) == 1, err
    return errors[0]


def test_a_naslib_table_given_to_the_wrong_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _naslib(tmp_path / "nb201_dev.json", NB201_ROWS)
    line = _one_error(capsys, ["correlate", "darts", "--table", str(table)])
    assert "cifar10 row 1 '(0, 2, 3, 1, 4, 2)' is not a darts architecture" in line


def test_an_op_index_out_of_range_names_its_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = {**NB201_ROWS, NB201_OUT_OF_RANGE: 1.0}
    table = _naslib(tmp_path / "nb201_dev.json", rows)
    line = _one_error(capsys, ["correlate", "nb201", "--table", str(table)])
    assert f"cifar10 row 3 '{NB201_OUT_OF_RANGE}' is not a nb201 architecture" in line
    assert "op indices 0..4" in line


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (NB101_NO_PATH, "no path from the input to the output"),
        (NB101_BAD_OP, "label code 5 out of range 0..4"),
    ],
)
def test_an_nb101_key_that_is_no_cell_names_its_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, reason: str
) -> None:
    table = _naslib(tmp_path / "nb101_dev.json", {NB101_GOOD: 90.0, key: 80.0})
    line = _one_error(capsys, ["correlate", "nb101", "--table", str(table)])
    assert f"cifar10 row 2 '{key[:40]}" in line and "is not a nb101 architecture" in line
    assert reason in line


def test_a_task_the_table_does_not_have(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _naslib(tmp_path / "nb201_dev.json", NB201_ROWS)
    line = _one_error(capsys, ["correlate", "nb201", "--table", str(table), "--acc-col", "in16"])
    assert "has no task 'in16'; its tasks: cifar10" in line


def test_the_study_reports_each_bad_table_in_one_line_and_scores_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong_space = _naslib(tmp_path / "nb201_dev.json", NB201_ROWS)
    no_path = _naslib(tmp_path / "nb101_dev.json", {NB101_GOOD: 90.0, NB101_NO_PATH: 80.0})
    stores = ["--store-dir", str(tmp_path / "stores")]
    code = main(["benchmark", f"{wrong_space}=darts", str(no_path), "--executor", "local", *stores])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("swapprobe:")]
    assert len(lines) == 2, err
    assert "cifar10 row 1 '(0, 2, 3, 1, 4, 2)' is not a darts architecture" in lines[0]
    assert "cifar10 row 2" in lines[1] and "no path from the input" in lines[1]
    code = main(["benchmark", str(wrong_space), "--task", "in16", "--executor", "local"])
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("swapprobe:")]
    assert "has no task 'in16'; its tasks: cifar10" in line


@pytest.mark.parametrize(
    ("arch", "reason"),
    [
        (_record(192, 13, [4.0] * 12, [3] * 12), "AutoFormer depth 13 disagrees"),
        (_record(192, 12, [4.0] * 12, [5] + [3] * 11), "layer 0: heads must be one of 3, 4"),
        (_record(200, 12, [4.0] * 12, [3] * 12), "embedding dimension must be one of 192"),
    ],
)
def test_a_bad_autoformer_record_names_its_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arch: dict, reason: str
) -> None:
    table = _records(tmp_path / "autoformer.json", TINY_GOOD, arch)
    line = _one_error(capsys, ["correlate", "autoformer-ti", "--table", str(table)])
    assert "autoformer.json record 2: " in line and reason in line
    scored = _one_error(capsys, ["score", f"autoformer-ti:{json.dumps(arch)}"])
    assert reason in scored


@pytest.mark.parametrize(
    ("flag", "limit", "what"),
    [("--max-params", "1M", "parameters"), ("--max-flops", "100M", "multiply-adds")],
)
def test_an_autoformer_budget_below_the_smallest_subnet(
    capsys: pytest.CaptureFixture[str], flag: str, limit: str, what: str
) -> None:
    line = _one_error(capsys, ["search", "autoformer-ti", flag, limit])
    assert f"no architecture of autoformer-ti has at most {limit[:-1]}.000 M {what}" in line
    assert f"({flag})" in line and "smallest seen" in line
