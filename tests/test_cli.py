"""The ``swapprobe`` command: happy paths, cheap --help, and one-line errors that touch no store."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

from swapprobe.capture.export import export_module
from swapprobe.cli import main

ROW_KEYS = {
    "name",
    "key",
    "swap",
    "swap_std",
    "reg_swap",
    "mu",
    "sigma",
    "size_unit",
    "params",
    "theta",
    "units",
    "samples",
    "repeats",
    "saturation",
    "standard_ap",
    "nwot",
    "seconds",
}


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3072, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
    )


MODELS = {"mlp.onnx": mlp, "cnn.onnx": cnn}
MLP_UNITS = 16
CNN_UNITS = 4 * 16 * 16 + 4 * 8 * 8  # default data: 3×32×32 synthetic images


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model and data files, plus a store made by one successful run (``--repeats 1``)."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    image = np.zeros((2, 3, 32, 32), np.float32)
    made = {
        "root": root,
        "mlp": root / "mlp.onnx",
        "cnn": root / "cnn.onnx",
        "big": root / "big.onnx",
        "sigmoid": root / "sigmoid.onnx",
        "garbage": root / "x.onnx",
        "nan": root / "nan.npy",
        "store": root / "base.h5",
    }
    onnx.save(export_module(mlp(), image), made["mlp"])
    onnx.save(export_module(cnn(), image), made["cnn"])
    onnx.save(export_module(cnn(), np.zeros((2, 3, 64, 64), np.float32)), made["big"])
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["x"], ["flat"]),
            helper.make_node("MatMul", ["flat", "W"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["y"]),
        ],
        "sigmoid_only",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(np.ones((3072, 4), np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, made["sigmoid"])
    made["garbage"].write_bytes(b"\x00\x17not an onnx model\xff\xfe" * 8)
    data = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    data[3, 1, 2, 2] = np.nan
    np.save(made["nan"], data)
    code = main(["score", str(made["mlp"]), "--repeats", "1", "--store", str(made["store"])])
    assert code == 0 and made["store"].is_file()
    return made


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_rows(path: Path) -> dict[str, dict[str, object]]:
    rows = json.loads(path.read_text())["results"]
    return {row["name"]: row for row in rows}


# --- cheap entry points ---------------------------------------------------------------
def test_help_as_subprocess_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "swapprobe.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    for command in ("score", "inspect", "rescore", "search", "correlate", "benchmark"):
        assert command in done.stdout
    assert "Traceback" not in done.stderr


def test_importing_the_cli_and_help_load_neither_torch_nor_onnxruntime() -> None:
    code = (
        "import sys\n"
        "import swapprobe.cli\n"
        "heavy = lambda: sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules)\n"
        "after_import = heavy()\n"
        "try:\n"
        "    swapprobe.cli.main(['score', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('LOADED', after_import, heavy())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "LOADED [] []"


# --- the happy path -------------------------------------------------------------------
def test_score_inspect_rescore_resume(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = files["root"]
    store, out_json, out_csv = root / "run.h5", root / "out.json", root / "out.csv"
    models = [files["mlp"], files["cnn"]]
    outputs = ["--json", out_json, "--csv", out_csv, "--store", store]
    code, out, err = run(capsys, "score", *models, "--repeats", 2, *outputs)
    assert code == 0, err
    assert "mlp.onnx" in out and "cnn.onnx" in out
    assert "Traceback" not in err

    rows = read_rows(out_json)
    assert set(rows) == {"mlp.onnx", "cnn.onnx"}
    params = {name: sum(p.numel() for p in make().parameters()) for name, make in MODELS.items()}
    units = {"mlp.onnx": MLP_UNITS, "cnn.onnx": CNN_UNITS}
    for name, row in rows.items():
        assert set(row) == ROW_KEYS
        assert row["params"] == params[name]
        assert row["units"] == units[name]
        assert (row["samples"], row["repeats"], row["size_unit"]) == (16, 2, "M")
        assert row["theta"] == pytest.approx(params[name] / 1e6)
        assert 1 <= row["swap"] <= min(units[name], 2**16)
        assert row["saturation"] == pytest.approx(row["swap"] / min(units[name], 2**16))
        assert 1 <= row["standard_ap"] <= 16
        assert row["reg_swap"] is None

    with out_csv.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    ranked = [row["name"] for row in json.loads(out_json.read_text())["results"]]
    assert [line["name"] for line in table] == ranked
    for line in table:
        row = rows[line["name"]]
        assert line["key"] == row["key"]
        assert float(line["swap"]) == row["swap"]
        assert float(line["nwot"]) == pytest.approx(row["nwot"])
        assert int(line["params"]) == row["params"]
        assert int(line["units"]) == row["units"]

    # inspect
    code, out, err = run(capsys, "inspect", store)
    assert code == 0, err
    assert "mlp.onnx" in out and "cnn.onnx" in out
    code, out, err = run(capsys, "inspect", store, "--layers")
    assert code == 0, err
    assert "per-layer SWAP" in out and "Relu" in out

    # rescore: Ψ' = Ψ · exp(−(Θ − μ)² / σ) with Θ in millions (the unit stored per model)
    rescored = root / "rescored.json"
    code, out, err = run(
        capsys, "rescore", store, "--mu", 0.001, "--sigma", 0.001, "--json", rescored
    )
    assert code == 0, err
    again = read_rows(rescored)
    assert set(again) == set(rows)
    for name, row in again.items():
        theta = rows[name]["params"] / 1e6
        expected = rows[name]["swap"] * math.exp(-((theta - 0.001) ** 2) / 0.001)
        assert row["reg_swap"] == pytest.approx(expected, rel=1e-12)
        assert row["swap"] == rows[name]["swap"]
        assert 0 < row["reg_swap"] < row["swap"]

    # resume: every model is read from the store, none is run again
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a model was scored again on --resume")

    monkeypatch.setattr("swapprobe.evaluate.Evaluator.evaluate", refuse)
    resumed = root / "resumed.json"
    code, out, err = run(
        capsys, "score", *models, "--repeats", 2, "--store", store, "--resume", "--json", resumed
    )
    assert code == 0, err
    assert read_rows(resumed) == rows


def test_search_space_models_on_default_synthetic_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from swapprobe.data import load_batch

    out_json = tmp_path / "spaces.json"
    code, _out, err = run(
        capsys, "score", "darts:DARTS_V2", "nb201:random:2", "--repeats", 2, "--json", out_json
    )
    assert code == 0, err
    rows = json.loads(out_json.read_text())["results"]
    assert len(rows) == 3
    darts = [r for r in rows if r["key"].startswith("darts:")]
    nb201 = [r for r in rows if r["key"].startswith("nb201:")]
    assert len(darts) == 1 and len(nb201) == 2
    assert nb201[0]["key"] != nb201[1]["key"]
    assert {r["size_unit"] for r in nb201} == {"M"}
    (v2,) = darts
    assert v2["size_unit"] == "K"
    assert v2["name"] == "darts:DARTS_V2"  # a named architecture keeps its name in reports
    assert all(r["name"].startswith("nb201#") for r in nb201)
    # DARTS_V2's reduction cell has only pooling and stride-1 skips after the two preprocessing
    # ReLUs on the raw image (SPEC): V = 2 × 3072, and those patterns are the input's signs,
    # the same for every re-initialisation.
    assert v2["units"] == 2 * 3 * 32 * 32
    assert v2["swap_std"] == 0
    x = load_batch("synthetic", batch_size=16, seed=0).inputs
    assert v2["swap"] == np.unique((x.reshape(16, -1) > 0).T, axis=0).shape[0]


# --- bad input: one line, non-zero exit, the store untouched ---------------------------
@pytest.fixture
def store_bytes(files: dict[str, Path]) -> Iterator[bytes]:
    before = files["store"].read_bytes()
    yield before
    assert files["store"].read_bytes() == before, "the existing store was modified"


ERRORS = {
    "missing model": (["{root}/missing.onnx"], [], "not found"),
    "not onnx": (["{garbage}"], [], "not an ONNX model"),
    "no activation": (["{sigmoid}"], [], "no supported activation"),
    "shape": (["{big}"], [], "(3, 64, 64)"),
    "unknown dataset": (["{mlp}"], ["--data", "foo"], "unknown dataset"),
    "nan data": (["{mlp}"], ["--data", "{nan}"], "NaN"),
    "other settings": (["{mlp}"], ["--seed", "1"], "other settings"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_one_line_and_leave_the_store_alone(
    case: str, files: dict[str, Path], store_bytes: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    models, extra, needle = ERRORS[case]
    names = {key: str(value) for key, value in files.items()}
    argv = [m.format(**names) for m in models] + [e.format(**names) for e in extra]
    code, out, err = run(
        capsys, "score", *argv, "--repeats", 1, "--store", files["store"], "--resume"
    )
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("swapprobe: error:")
    assert needle in lines[0]
    assert out == ""
    if case == "shape":
        assert "(3, 32, 32)" in lines[0]


def test_existing_store_without_resume_is_refused(
    files: dict[str, Path], store_bytes: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(capsys, "score", files["mlp"], "--repeats", 1, "--store", files["store"])
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swapprobe: error:"), err
    assert "--resume" in lines[0]


def test_unwritable_store_path(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    target = Path("/nonexistent/dir/run.h5")
    code, _out, err = run(capsys, "score", files["mlp"], "--repeats", 1, "--store", target)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swapprobe: error:"), err
    assert "/nonexistent/dir" in lines[0]
    assert not target.exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["-S", "1"], "-S/--batch-size"),
        (["--mu", "0", "--sigma", "1"], "--mu"),
        (["--mu", "1", "--sigma", "-1"], "--sigma"),
    ],
)
def test_bad_numbers_are_one_line_and_touch_nothing(
    extra: list[str],
    needle: str,
    files: dict[str, Path],
    store_bytes: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        capsys,
        "score",
        files["mlp"],
        *extra,
        "--repeats",
        1,
        "--store",
        files["store"],
        "--resume",
    )
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("swapprobe score: error: ")
    assert needle in lines[0]
    assert out == ""
    assert files["store"].read_bytes() == store_bytes


def test_mu_without_sigma_is_one_line(
    files: dict[str, Path], store_bytes: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "score", files["mlp"], "--mu", 1, "--store", files["store"], "--resume"
    )
    assert code == 2
    assert err.strip().splitlines() == ["swapprobe: error: give --mu and --sigma together"]
    assert out == ""
    assert files["store"].read_bytes() == store_bytes


# --- one plan, two ways in; errors in library terms, flags on the command line ----------
def test_python_plan_scores_as_the_command_and_as_score_many(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``plan_score`` from keywords gives the rows ``swapprobe score`` writes, and both equal
    a ``score_many`` call with the paper's settings written out by hand."""
    from swapprobe.api import plan_score, score_many
    from swapprobe.data import load_batch
    from swapprobe.results import ScoreSettings

    models = [str(files["mlp"]), str(files["cnn"])]
    out_json = tmp_path / "rows.json"
    code, _out, err = run(capsys, "score", *models, "--repeats", 2, "--json", out_json)
    assert code == 0, err
    command = {name: row["swap"] for name, row in read_rows(out_json).items()}

    planned = plan_score(models, repeats=2).run()
    assert {r.name: r.swap for r in planned.results} == command
    assert (planned.settings.batch_size, planned.settings.repeats) == (16, 2)
    assert planned.data.source.startswith("synthetic")

    batch = load_batch("synthetic", batch_size=16)
    by_hand = score_many(models, batch, ScoreSettings(repeats=2, keep_patterns="none"))
    assert {r.name: r.swap for r in by_hand} == command


@pytest.mark.parametrize(
    ("message", "python", "command"),
    [
        ("give {mu} and {sigma}", "give mu and sigma", "give --mu and --sigma"),
        ("{resume=True} needs {store}", "resume=True needs store", "--resume needs --store"),
        ("{reg='auto'}: x", "reg='auto': x", "--reg auto: x"),
        ("drop {baselines=False}", "drop baselines=False", "drop --no-baselines"),
        ("over {max_pattern_bytes}", "over max_pattern_bytes", "over --max-pattern-memory"),
        ("{fitness='swap'} {proxies}", "fitness='swap' proxies", "--fitness swap --proxies"),
        ("no term here", "no term here", "no term here"),
    ],
)
def test_errors_name_parameters_and_the_cli_names_flags(
    message: str, python: str, command: str
) -> None:
    from swapprobe.cli.console import error_line
    from swapprobe.errors import SettingsError

    error = SettingsError(message)
    assert str(error) == python
    assert error_line(error) == f"swapprobe: error: {command}"
    first = message.split("{")[1].split("}")[0].split("=")[0] if "{" in message else None
    assert error.option == first


def test_library_errors_carry_no_flags() -> None:
    """No message outside the CLI writes a flag; parameters are marked for the CLI instead."""
    import re

    root = Path(__file__).resolve().parents[1] / "swapprobe"
    modules = ("searching", "regularisation", "results", "executors", "store", "plan", "api")
    modules += ("runs", "budget", "benchmark", "calibrate", "correlate")
    for name in (f"{module}.py" for module in modules):
        for number, line in enumerate((root / name).read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith(("#", "help=")):
                continue
            flagged = re.search(r"""(["'])[^"']*--[a-z][^"']*\1""", stripped)
            assert not flagged or "``" in stripped, f"{name}:{number}: {stripped}"
