"""Inputs a user brings that used to fail (issue 23): each scores, or fails in one stderr
line with a non-zero exit."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import swapprobe
from swapprobe.cli import main

torch = pytest.importorskip("torch")
nn = torch.nn


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def _torchvision() -> None:
    """Skip without a torchvision this torch can import (the zoo's own import, repair
    included)."""
    from swapprobe.errors import ModelLoadError
    from swapprobe.models.zoos import import_zoo

    try:
        import_zoo("torchvision", "torchvision")
    except ModelLoadError as error:
        pytest.skip(str(error))


# --- item 1: a typical torch export, its batch of 1 baked into a Reshape -------------------
def _typical() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    ).eval()


def _export(model: nn.Module, path: Path, **options: object) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), **options)
    return path


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None, reason="needs onnxscript")
def test_default_dynamo_export_scores_as_the_module_without_bn(tmp_path: Path) -> None:
    """torch's default export folds BN into the convolutions and bakes the batch of 1 into
    the Flatten's Reshape. Scored, it must be the same function as the module with its BN
    layers removed (folded BN is gone once the weights are re-drawn), so the SWAP must agree
    exactly with that module scored directly: same weights by name, same patterns."""
    module = _typical()
    path = _export(module, tmp_path / "typical.onnx")
    shape = [
        numpy_helper.to_array(t).tolist()
        for t in onnx.load(path).graph.initializer
        if t.data_type == TensorProto.INT64
    ]
    assert [1, 8] in shape  # the export this test is about: the batch baked in
    without_bn = nn.Sequential(
        *[nn.Identity() if isinstance(layer, nn.BatchNorm2d) else layer for layer in module]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = swapprobe.score(str(path), repeats=2)
        direct = swapprobe.score(without_bn, repeats=2, backend="torch")
    assert exported.swap == direct.swap
    assert exported.swap > 0
    assert main(["score", str(path), "--repeats", "1"]) == 0  # and from the CLI, as reported


def test_legacy_export_with_bn_kept_scores_as_the_module(tmp_path: Path) -> None:
    """The TorchScript export with BN kept and a batch of 1 fixed on the input: it scores, and
    as the module itself (BN on batch statistics in both)."""
    module = _typical()
    path = _export(module, tmp_path / "kept.onnx", dynamo=False, do_constant_folding=False)
    assert onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = swapprobe.score(str(path), repeats=2)
        direct = swapprobe.score(module, repeats=2, backend="torch")
    assert exported.swap == direct.swap


def _batch_fixed_elsewhere(path: Path) -> Path:
    """x (1, 3, 4, 4) → Relu → Transpose (batch to axis 1) → Reshape [1, 48]: the Reshape's
    first entry is the batch of 1, but its data has the channels on axis 0, so nothing proves
    the entry is the batch and it is left as it is."""
    shape = numpy_helper.from_array(np.array([1, 48], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0, 2, 3]),
        helper.make_node("Reshape", ["t", "shape"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48])],
        [shape],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_batch_fixed_elsewhere_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _batch_fixed_elsewhere(tmp_path / "fixed.onnx")
    code = main(["score", str(path), "--repeats", "1", "-S", "8", "--input-size", "4", "4"])
    line = one_error_line(capsys)
    assert code != 0
    assert "fixes its batch to 1" in line and "S=8" in line
    assert "dynamic_axes=" in line and "dynamo=False" in line


# --- item 5: a token model given no data is scored on token data ---------------------------
BERT = '''
from transformers import BertConfig, BertModel


def tiny_bert():
    config = BertConfig(
        vocab_size=500, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )
    return BertModel(config)
'''


def test_seq_len_past_the_positions_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "bert.py").write_text(BERT)
    model = f"{tmp_path / 'bert.py'}:tiny_bert"
    code = main(["score", model, "--repeats", "1", "--seq-len", "1000"])
    line = one_error_line(capsys)
    assert code != 0
    assert "64 positions" in line and "--seq-len" in line


def test_token_model_header_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "bert.py").write_text(BERT)
    code = main(["score", f"{tmp_path / 'bert.py'}:tiny_bert", "--repeats", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "data tokens:zipf: the models read token ids" in captured.out


def test_api_shortest_call_uses_the_space_data() -> None:
    from swapprobe.searchspaces import get_space

    space = get_space("flexibert")
    assert space.defaults.data is not None and space.defaults.data.startswith("tokens:")
    shortest = swapprobe.score("flexibert:random:1", repeats=1)
    explicit = swapprobe.score("flexibert:random:1", space.defaults.data, repeats=1)
    assert shortest.swap == explicit.swap


# --- item 6: detection models build without downloading ----------------------------------
def test_detection_model_fails_in_one_line_without_download(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _torchvision()
    code = main(["score", "torchvision:fasterrcnn_resnet50_fpn", "--repeats", "1", "-S", "2"])
    line = one_error_line(capsys)
    assert code != 0
    assert "fasterrcnn_resnet50_fpn" in line and "URLError" not in line


# --- item 7: torchvision built for another torch ------------------------------------------
def test_install_advice_keeps_the_torch() -> None:
    from swapprobe.models.zoos import install_advice

    advice = install_advice("torchvision")
    assert advice.startswith("pip install --no-deps torchvision")
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    if (major, minor) == (2, 13):
        assert advice == "pip install --no-deps torchvision==0.28.0"  # as .ci/run installs it
    assert "--no-deps" in install_advice("timm")


BROKEN = '''
try:
    raise RuntimeError("operator torchvision::nms does not exist")
except RuntimeError:
    raise ModuleNotFoundError("Could not import module 'BertModel'")


def model():
    return None
'''


def test_torchvision_named_when_it_breaks_an_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """transformers hides the cause behind "Could not import module"; the line names it."""
    (tmp_path / "broken.py").write_text(BROKEN)
    code = main(["score", f"{tmp_path / 'broken.py'}:model", "--repeats", "1"])
    line = one_error_line(capsys)
    assert code != 0
    assert "torchvision" in line and "pip install --no-deps torchvision" in line


# --- the S of the shortest command -------------------------------------------------------
def test_zoo_models_are_scored_unsaturated_without_a_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At the paper's S = 16 both are at their 2^16 bound; with no flag, S is chosen so that
    neither is (and the header says which S and why)."""
    import json

    _torchvision()
    models = ["torchvision:resnet18", "torchvision:mobilenet_v3_small"]
    rows_path = tmp_path / "rows.json"
    code = main(["score", *models, "--repeats", "1", "--no-baselines", "--json", str(rows_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "at its bound" not in captured.err
    rows = json.loads(rows_path.read_text())["results"]
    assert len(rows) == 2
    for row in rows:
        bound = 2 ** row["samples"]
        assert row["samples"] > 16
        assert row["units"] * 4 <= bound  # the chosen S lifts the bound above V
        assert row["swap"] < 0.99 * bound
    assert f"S {rows[0]['samples']}: chosen so no SWAP can reach" in captured.out


def test_small_model_keeps_the_paper_s(tmp_path: Path) -> None:
    from swapprobe.plan import ScorePlan

    path = _batch_fixed_free(tmp_path / "small.onnx")
    run = ScorePlan((str(path),), swapprobe.plan.Inputs(input_size=(8, 8))).run()
    assert run.settings.batch_size == 16 and run.notes == ()


def _batch_fixed_free(path: Path) -> Path:
    """x (N, 3, 8, 8) → Relu: 192 units, far below 2^16."""
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8])],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


# --- --help ------------------------------------------------------------------------------
def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["inspect", "rescore"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(command, capsys)
    assert "examples:" in text and f"swapprobe {command} run.h5" in text


@pytest.mark.parametrize(
    ("command", "flags"),
    [("rescore", ["--mu", "--sigma"]), ("correlate", ["--table", "--resume"])],
)
def test_every_flag_has_help(
    command: str, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse lists a flag without help as the flag alone on its line."""
    lines = _help(command, capsys).splitlines()
    for flag in flags:
        listed = [line for line in lines if line.strip().startswith(flag)]
        assert listed, flag
        described = [line for line in listed if len(line.split()) > 2]
        following = lines[lines.index(listed[0]) + 1].strip() if not described else "x"
        assert described or (following and not following.startswith("-")), flag


def test_correlate_help_says_json_tables_are_read(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help("correlate", capsys)
    assert "The table is a CSV:" not in text and "JSON" in text


# --- item 9: smaller messages, one line each ------------------------------------------------
def test_text_file_named_npy_is_called_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "text.npy"
    path.write_text("hello world\n")
    code = main(["score", "nb201:random:1", "--data", str(path), "-S", "4", "--repeats", "1"])
    line = one_error_line(capsys)
    assert code != 0
    assert "is not a numpy array file" in line and "allow_pickle" not in line


def test_channels_last_array_is_transposed_and_said(tmp_path: Path) -> None:
    from swapprobe.data import load_batch

    images = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    np.save(tmp_path / "hwc.npy", images)
    np.save(tmp_path / "chw.npy", images.transpose(0, 3, 1, 2))
    hwc = load_batch(str(tmp_path / "hwc.npy"), batch_size=4)
    chw = load_batch(str(tmp_path / "chw.npy"), batch_size=4)
    assert hwc.inputs.shape == (4, 3, 8, 8)
    np.testing.assert_array_equal(hwc.inputs, chw.inputs)
    assert "channels-last" in hwc.source and "channels-last" not in chw.source


def test_inspect_errors_name_no_store_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.h5"
    path.write_text("not a store")
    code = main(["inspect", str(path)])
    line = one_error_line(capsys)
    assert code != 0
    assert "--store" not in line and "not an HDF5 file" in line


def test_an_object_that_is_no_model_says_what_can_be_scored() -> None:
    from swapprobe.errors import ModelLoadError

    with pytest.raises(ModelLoadError) as caught:
        swapprobe.score(5)
    message = str(caught.value)
    assert "a int" not in message and "of type int" in message
    assert "ONNX" in message and "torch.nn.Module" in message and "darts:random" in message


def test_proxies_on_onnx_name_the_model_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "small.onnx"
    _batch_fixed_free(path)
    argv = ["score", str(path), "--proxies", "expressivity", "--input-size", "8", "8"]
    code = main([*argv, "--repeats", "1"])
    line = one_error_line(capsys)
    assert code != 0
    assert line.count("small.onnx") == 1 and "backward pass" in line


def test_a_huge_spec_is_cut_in_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    spec = "nb201:" + "x" * 100_000
    code = main(["score", spec])
    line = one_error_line(capsys)
    assert code != 0
    assert len(line) < 400 and "x" * 79 + "…" in line and "x" * 81 not in line


HIDDEN_IDS = '''
import torch
import torch.nn as nn


class Wrapped(nn.Module):
    """Reads ids, but its first layer with parameters is a LayerNorm: not detected."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.emb = nn.Embedding(50, 8)

    def forward(self, ids):
        return self.norm(torch.relu(self.emb(ids)))


def model():
    return Wrapped()
'''


def test_undetected_token_model_given_images_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "hidden.py").write_text(HIDDEN_IDS)
    code = main(["score", f"{tmp_path / 'hidden.py'}:model", "--repeats", "1", "-S", "4"])
    line = one_error_line(capsys)
    assert code != 0
    assert "do not fit" in line and "token data (tokens:zipf is the offline default)" in line


def test_resume_without_s_keeps_the_store_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store scored at -S 20 resumed with no S continues at 20 (not the chosen 16)."""
    model, store = _batch_fixed_free(tmp_path / "small.onnx"), tmp_path / "run.h5"
    argv = ["score", str(model), "--input-size", "8", "8", "--repeats", "1", "--store", str(store)]
    assert main([*argv, "-S", "20"]) == 0
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    captured = capsys.readouterr()
    assert "S 20: the S the resumed store was scored with" in captured.out
    from swapprobe.api import stored_results

    assert stored_results(str(store))[0].samples == 20


def _wide(path: Path, side: int) -> Path:
    """x (N, 3, side, side) → Relu: 3 side² units."""
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, side, side])],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_s_is_the_smallest_that_lifts_the_bound_four_times_above_v(tmp_path: Path) -> None:
    """V = 3 · 128² = 49,152 > 2^16 / 4: S = ceil(log2 V) + 2 = 18."""
    from swapprobe.plan import Inputs, ScorePlan, Scoring

    path = _wide(tmp_path / "wide.onnx", 128)
    run = ScorePlan((str(path),), Inputs(input_size=(128, 128)), Scoring(repeats=1)).run()
    assert run.settings.batch_size == 18
    assert run.results[0].units == 49_152 and run.results[0].samples == 18
    assert run.notes and run.notes[0].startswith("S 18: chosen")


def test_data_too_few_for_the_s_keep_their_s_and_say_so(tmp_path: Path) -> None:
    from swapprobe.plan import Inputs, ScorePlan, Scoring

    path = _wide(tmp_path / "wide.onnx", 128)
    data = tmp_path / "few.npy"
    np.save(data, np.random.default_rng(0).random((16, 3, 128, 128), dtype=np.float32))
    run = ScorePlan((str(path),), Inputs(data=str(data)), Scoring(repeats=1)).run()
    assert run.settings.batch_size == 16
    assert run.notes and "cannot give the S 18" in run.notes[0]
