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
