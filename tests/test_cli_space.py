"""``swapprobe search SPACE`` and ``swapprobe correlate SPACE`` end to end, at tiny sizes.

The outputs are checked against independent computations: the exported ONNX file's weights are
counted from its initializers, the correlation JSON is recomputed with scipy from the CSV the
same run wrote, regularised SWAP is recomputed from the formula.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from scipy import stats

from swapprobe.cli import main
from swapprobe.searchspaces import get_space
from swapprobe.store import PatternStore

SEARCH_KEYS = {
    "space",
    "architecture",
    "fitness",
    "swap",
    "reg_swap",
    "mu",
    "sigma",
    "size_unit",
    "scoring_params",
    "evaluation_params",
    "evaluations",
    "cache_hits",
    "wall_seconds",
    "history",
}
TINY_SEARCH = ["--population", 6, "--cycles", 3, "--mutation-times", 2, "--repeats", 2]
#: BatchNorm statistics are initializers of the export but not parameters
NOT_PARAMETERS = ("running_mean", "running_var", "num_batches_tracked")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Torch only traces the networks for export here; on a busy 2-core machine two intra-op
    threads make tracing about three times slower than one (ONNX Runtime does the scoring)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def onnx_parameters(model: onnx.ModelProto) -> int:
    return sum(
        math.prod(init.dims)
        for init in model.graph.initializer
        if init.data_type == onnx.TensorProto.FLOAT and not init.name.endswith(NOT_PARAMETERS)
    )


def check_search_json(path: Path, name: str, population: int, cycles: int) -> dict:
    found = json.loads(path.read_text())
    assert set(found) >= SEARCH_KEYS
    space = get_space(name)
    arch = space.parse(found["architecture"])
    assert found["space"] == name
    assert space.format(arch) == found["architecture"]
    assert found["size_unit"] == space.size_unit
    assert found["scoring_params"] == space.scoring_param_count(arch)
    assert found["evaluation_params"] == space.evaluation_param_count(arch)
    assert [h["cycle"] for h in found["history"]] == list(range(cycles + 1))
    best = [h["best_fitness"] for h in found["history"]]
    assert best[-1] == found["fitness"]
    if found.get("aggregate") is None:  # a fixed fitness only grows; an aggregate is re-ranked
        assert best == sorted(best)
    assert found["evaluations"] == found["history"][-1]["evaluations"] >= population + cycles
    assert found["wall_seconds"] > 0
    return found


def check_export(path: Path, name: str, found: dict) -> None:
    """The exported evaluation network: valid ONNX, its weights those of the found model."""
    import onnxruntime as ort

    model = onnx.load(path)
    onnx.checker.check_model(model)
    space = get_space(name)
    arch = space.parse(found["architecture"])
    assert onnx_parameters(model) == found["evaluation_params"]
    assert onnx_parameters(model) == space.evaluation_param_count(arch)
    ops = {node.op_type for node in model.graph.node}
    assert "BatchNormalization" in ops and "Gemm" in ops  # classifier included, BN not folded
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": np.zeros((3, 3, 32, 32), np.float32)})
    assert logits.shape == (3, 10)  # CIFAR-10 classes, any batch size


def test_search_nb201(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, best_onnx = tmp_path / "out.json", tmp_path / "best.onnx"
    code, out, err = run(
        capsys, "search", "nb201", *TINY_SEARCH, "--json", out_json, "--export", best_onnx
    )
    assert code == 0, err
    assert "best architecture — nb201" in out
    assert re.search(r"wall time\s+\d+\.\d s", out)
    assert "P=6 C=3 mutants=2" in err and "repeats=2" in err

    found = check_search_json(out_json, "nb201", population=6, cycles=3)
    assert found["mu"] is None and found["reg_swap"] is None
    # nb201's default fitness: SWAP aggregated with the space's proxies by ranks (≤ 0)
    assert "fitness aggregate of swap,expressivity,trainability,flops" in err
    assert found["fitness"] == found["aggregate"] <= 0
    assert set(found["proxies"]) == set(get_space("nb201").defaults.proxies)
    assert 0 < found["swap"] <= 2**32  # nb201's default S = 32 bounds the distinct patterns

    check_export(best_onnx, "nb201", found)


def test_search_darts_regularised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, best_onnx, plot = tmp_path / "darts.json", tmp_path / "best.onnx", tmp_path / "s.png"
    code, out, err = run(
        capsys,
        "search",
        "darts",
        *TINY_SEARCH,
        "-S",
        8,
        "--mu",
        1.5,
        "--sigma",
        1.5,
        "--json",
        out_json,
        "--export",
        best_onnx,
        "--plot",
        plot,
    )
    assert code == 0, err
    assert "best architecture — darts" in out and "reg. SWAP" in out
    assert re.search(r"wall time\s+\d+\.\d s", out)
    assert re.search(r"μ=1\.5 σ=1\.5 \(Θ\s+in\s+K\)", err)
    assert "P=6 C=3 mutants=2" in err and "S=8 repeats=2" in err
    found = check_search_json(out_json, "darts", population=6, cycles=3)
    assert (found["mu"], found["sigma"], found["size_unit"]) == (1.5, 1.5, "K")
    theta = found["scoring_params"] / 1e3  # the DARTS scoring cell counts in thousands
    expected = found["swap"] * math.exp(-((theta - 1.5) ** 2) / 1.5)
    assert found["reg_swap"] == pytest.approx(expected, rel=1e-9)
    assert found["fitness"] == pytest.approx(found["reg_swap"], rel=1e-12)
    assert found["swap"] <= 2**8  # S = 8
    check_export(best_onnx, "darts", found)
    # the paper's evaluation size (20 cells, C = 36): SWAP-NAS-A/B/C have 3.06-4.3 M
    assert 1e6 < found["evaluation_params"] < 6e6
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot: {plot}" in err.replace(
        "\n", ""
    )


def test_search_resume_from_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a finished search in a store is resumed without rescoring and gives the same answer
    store, first, again = tmp_path / "run.h5", tmp_path / "a.json", tmp_path / "b.json"
    tiny = ["search", "darts", "--population", 3, "--cycles", 1, "--mutation-times", 1]
    tiny += ["--repeats", 1, "-S", 4, "--crossover-prob", 0]
    code, _, err = run(capsys, *tiny, "--store", store, "--json", first)
    assert code == 0, err
    before = store.read_bytes()
    code, _, err = run(capsys, *tiny, "--store", store, "--json", again)
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("swapprobe: error:")]
    assert len(errors) == 1 and "exists" in errors[0] and "--resume" in errors[0]
    assert store.read_bytes() == before and not again.exists()
    code, _, err = run(capsys, *tiny, "--store", store, "--resume", "--json", again)
    assert code == 0, err
    a, b = json.loads(first.read_text()), json.loads(again.read_text())
    assert (a["architecture"], a["fitness"], a["history"]) == (
        b["architecture"],
        b["fitness"],
        b["history"],
    )


# --- a size budget ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [("6M", 6_000_000), ("0.5M", 500_000), ("600m", 600_000_000), ("800K", 800_000)],
)
def test_budget_flags_read_suffixes(text: str, value: int) -> None:
    from swapprobe.cli import options

    assert options.count(text) == value
    assert options.count("1.2G") == 1_200_000_000 and options.count("1500") == 1500


@pytest.mark.parametrize("text", ["6X", "0", "-1M", "M", "6 MB"])
def test_budget_flags_refuse_what_is_not_a_count(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "search", "nb201", "--max-flops", text)
    assert code == 2 and "--max-flops" in err and "Traceback" not in err


def test_search_below_the_smallest_member_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from swapprobe.evaluate import Evaluator

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("nothing may be scored")

    monkeypatch.setattr(Evaluator, "evaluate", refuse)
    code, _, err = run(capsys, "search", "nb201", "--executor", "local", "--max-params", "10K")
    errors = [line for line in err.splitlines() if line.startswith("swapprobe: error:")]
    assert code != 0 and len(errors) == 1 and "Traceback" not in err
    assert "at most 0.010 M parameters" in errors[0] and "(--max-params)" in errors[0]
    assert "smallest seen 0.073 M after 1000 draws" in errors[0]
    assert "budget at most 0.010 M parameters" in err  # the setup line names the budget


def test_search_darts_imagenet_setting_exports_the_imagenet_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SWAP-NAS's ImageNet setting: ImageNet-sized inputs, the mobile budget, the export."""
    import onnxruntime as ort

    out_json, best_onnx = tmp_path / "best.json", tmp_path / "best.onnx"
    tiny = ["--population", 3, "--cycles", 1, "--mutation-times", 1, "--repeats", 1, "-S", 4]
    code, out, err = run(
        capsys,
        "search",
        "darts",
        *tiny,
        "--input-size",
        224,
        224,
        "--max-flops",
        "600M",
        "--json",
        out_json,
        "--export",
        best_onnx,
    )
    assert code == 0, err
    assert "budget at most 600.000 M multiply-adds" in err and "imagenet network" in out
    found = json.loads(out_json.read_text())
    space = get_space("darts")
    arch = space.parse(found["architecture"])
    assert found["evaluation_dataset"] == "imagenet" and found["max_flops"] == 600_000_000
    assert found["evaluation_params"] == space.evaluation_param_count(arch, "imagenet")
    assert found["evaluation_flops"] == space.evaluation_flops(arch, (224, 224)) <= 600_000_000
    model = onnx.load(best_onnx)
    assert onnx_parameters(model) == found["evaluation_params"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": np.zeros((1, 3, 224, 224), np.float32)})
    assert logits.shape == (1, 1000)


@pytest.fixture
def nb201_rows(shared_data: Path) -> list[list[str]]:
    path = shared_data / "nb201_cifar10_dev1000.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with open(path, newline="") as handle:
        return list(csv.reader(handle))[:7]  # header + 6 rows


def test_correlate_nb201(
    nb201_rows: list[list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "tiny.csv"
    with open(table, "w", newline="") as handle:
        csv.writer(handle).writerows(nb201_rows)
    plot, rows_csv, out_json, store = (
        tmp_path / n for n in ("p.png", "rows.csv", "c.json", "s.h5")
    )
    # S = 16, not 8: with 8 samples every NAS-Bench-201 network saturates at 2^8 = 256 patterns
    # and the SWAP column would be constant
    argv = ["correlate", "nb201", "--table", table, "--repeats", 2, "-S", 16, "--bootstrap", 200]
    code, out, err = run(
        capsys, *argv, "--plot", plot, "--csv", rows_csv, "--json", out_json, "--store", store
    )
    assert code == 0, err
    assert "6 architectures" in out

    with open(rows_csv, newline="") as handle:
        written = list(csv.DictReader(handle))
    target = nb201_rows[0][1]
    assert [r["arch"] for r in written] == [row[0] for row in nb201_rows[1:]]
    accuracy = np.array([float(r[target]) for r in written])
    np.testing.assert_array_equal(accuracy, [float(row[1]) for row in nb201_rows[1:]])
    swap = np.array([float(r["swap"]) for r in written])
    params = np.array([float(r["params"]) for r in written])
    assert len(set(swap)) > 1

    found = {
        (c["metric"], c["target"]): c for c in json.loads(out_json.read_text())["correlations"]
    }
    assert {m for m, _ in found} >= {"swap", "standard_ap", "nwot", "params"}
    swap_row = found[("swap", target)]
    assert swap_row["n"] == 6
    assert swap_row["spearman"] == pytest.approx(stats.spearmanr(swap, accuracy).statistic)
    assert swap_row["kendall"] == pytest.approx(stats.kendalltau(swap, accuracy).statistic)
    low, high = swap_row["spearman_ci"]
    assert low <= swap_row["spearman"] <= high
    params_row = found[("params", target)]
    assert params_row["spearman"] == pytest.approx(stats.spearmanr(params, accuracy).statistic)
    space = get_space("nb201")
    assert params.tolist() == [space.scoring_param_count(space.parse(r["arch"])) for r in written]
    # 16 samples and thousands of units: the standard pattern count is always S (SPEC)
    assert found[("standard_ap", target)]["extra"] == {"constant": 16.0}

    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 0
    with PatternStore.open(store) as saved:
        assert sorted(saved.keys()) == sorted(f"nb201:{r['arch']}" for r in written)

    # resuming the complete store re-reads every score: the same correlations
    again = tmp_path / "again.json"
    code, _, err = run(capsys, *argv, "--json", again, "--store", store, "--resume")
    assert code == 0, err
    assert json.loads(again.read_text()) == json.loads(out_json.read_text())


@pytest.mark.parametrize("command", ["search", "correlate"])
def test_resume_without_store_is_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "t.csv"
    table.write_text("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10\n")
    extra = ["--table", table] if command == "correlate" else []
    code, out, err = run(capsys, command, "nb201", *extra, "--resume")
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--resume needs --store" in lines[0]
    assert "Traceback" not in err and out == ""


def test_bad_architecture_in_table_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, store = tmp_path / "bad.csv", tmp_path / "s.h5"
    table.write_text(
        "arch,acc\n"
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10\n"
        "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|,11\n"
        "|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|,12\n"
    )
    code, _out, err = run(
        capsys, "correlate", "nb201", "--table", table, "--repeats", 1, "--store", store
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "bad.csv:4" in lines[0] and "conv_7x7" in lines[0]
    assert not store.exists()  # failed before creating anything


def test_search_and_correlate_default_to_a_pool_on_several_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from swapprobe.cli import build_parser
    from swapprobe.cli.options import execution

    parser = build_parser()
    search = parser.parse_args(["search", "nb201"])
    correlate = parser.parse_args(["correlate", "nb201", "--table", "t.csv"])
    score = parser.parse_args(["score", "model.onnx"])
    assert search.executor == correlate.executor == "auto"
    assert score.executor == "local"  # user models may not travel to workers
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert execution(search).name == execution(correlate).name == "pool"
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert execution(search).name == "local"
    assert execution(parser.parse_args(["search", "nb201", "--executor", "local"])).name == "local"


def test_reg_auto_calibrates_on_the_executor_and_hands_its_scores_on() -> None:
    """The 100 calibration scorings go through the given executor, in order, and come back
    as (architecture, Result) pairs for the search's initial population."""
    from swapprobe.data import load_batch
    from swapprobe.executors import LocalExecutor
    from swapprobe.regularisation import DEFAULT_SAMPLES
    from swapprobe.results import ScoreSettings
    from swapprobe.searching import calibrate_for_space

    class Recording(LocalExecutor):
        def __init__(self) -> None:
            super().__init__()
            self.tasks: list = []

        def map(self, evaluator, tasks):  # type: ignore[no-untyped-def]
            self.tasks.extend(tasks)
            return super().map(evaluator, tasks)

    space = get_space("darts")
    data = load_batch("synthetic", batch_size=16)
    executor = Recording()
    settings = ScoreSettings(batch_size=16, repeats=1, size_unit="K")
    chosen = calibrate_for_space(space, data, settings, executor=executor)
    assert len(executor.tasks) == DEFAULT_SAMPLES
    assert chosen.mu > 0 and chosen.sigma > 0
    assert len(chosen.scored) == DEFAULT_SAMPLES
    for task, (arch, result) in zip(executor.tasks, chosen.scored, strict=True):
        assert result.key == task.key == f"darts:{space.format(arch)}"


def test_search_help_lists_each_space_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from swapprobe.searchspaces import list_spaces

    with pytest.raises(SystemExit):
        main(["search", "--help"])
    search_help = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["correlate", "--help"])
    correlate_help = capsys.readouterr().out
    assert set(list_spaces()) >= {"darts", "nb201"}
    for name in list_spaces():
        d = get_space(name).defaults  # the one declaration the help, engine and API read
        scoring = f"S={d.batch_size} init={d.init} repeats={d.repeats}"
        proxies = f"proxies={','.join(d.proxies) or 'none'}"
        engine = f"fitness={d.fitness} P={d.population} C={d.cycles} mutants={d.mutation_times}"
        # the defaults' table comes first; the "how each was chosen" section repeats names
        (search_line, *_) = [x for x in search_help.splitlines() if x.startswith(f"  {name} ")]
        assert scoring in search_line and proxies in search_line and engine in search_line
        (line,) = [x for x in correlate_help.splitlines() if x.startswith(f"  {name} ")]
        assert scoring in line and proxies in line
