"""One path to a score: the Python API, ``score_many`` and every executor give bit-identical
results for the same references and settings, under every ``--init``; and the model specs a
user types (issue 15: long DARTS genotypes, ``(space, arch)`` pairs, printed names) resolve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

import swapprobe
from swapprobe.api import score_many
from swapprobe.capture.export import export_module
from swapprobe.cli import main
from swapprobe.data import Batch, load_batch
from swapprobe.errors import ModelLoadError, UnknownArchitectureError
from swapprobe.executors import LocalExecutor, PoolExecutor
from swapprobe.models import resolve_models, resolve_one
from swapprobe.results import ScoreSettings
from swapprobe.searchspaces import get_space

S = 16
NB201_TEXT = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


class Net(nn.Module):
    """Conv-BN-ReLU twice and a ReLU head: module level, so pool workers can unpickle it."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(6 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.head(self.body(x).flatten(1)))


@pytest.fixture(scope="module")
def data() -> Batch:
    return load_batch("synthetic", batch_size=S)


@pytest.fixture(scope="module")
def models(data: Batch, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """An ONNX file, a torch module, an NB201 and a DARTS architecture."""
    torch.manual_seed(7)
    module = Net()
    path = tmp_path_factory.mktemp("one_path") / "net.onnx"
    onnx.save(export_module(module, data.inputs), str(path))
    darts = get_space("darts")
    genotype = darts.sample(np.random.default_rng(5))
    return [str(path), module, f"nb201:{NB201_TEXT}", ("darts", darts.format(genotype))]


def _swaps(results: Any) -> list[list[float]]:
    return [list(np.asarray(r.swap_per_repeat)) for r in results]


@pytest.mark.parametrize("init", ["gaussian", "kaiming", "keep"])
def test_api_score_many_and_every_executor_agree_bit_for_bit(
    init: str, data: Batch, models: list[Any]
) -> None:
    settings = ScoreSettings(batch_size=S, repeats=2, seed=4, init=init, keep_patterns="none")
    direct = [swapprobe.score(m, data=data, repeats=2, seed=4, init=init) for m in models]
    again = [swapprobe.score(m, data=data, repeats=2, seed=4, init=init) for m in models]
    # the bug of issue 10: init="keep" gave another score on a second call in one process
    assert _swaps(direct) == _swaps(again)
    reference = _swaps(direct)
    assert _swaps(score_many(models, data, settings)) == reference
    with LocalExecutor() as local:
        assert _swaps(score_many(models, data, settings, executor=local)) == reference
    with PoolExecutor(workers=2) as pool:
        pooled = score_many(models, data, settings, executor=pool)
    assert not pooled.failed
    assert _swaps(pooled) == reference
    assert [r.units for r in pooled] == [r.units for r in direct]
    assert [r.param_count for r in pooled] == [r.param_count for r in direct]
    if init == "keep":  # the weights as built: every repeat is the same draw
        assert all(len(set(row)) == 1 for row in reference)


def test_keep_leaves_the_callers_torch_random_state_alone(data: Batch) -> None:
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    swapprobe.score(f"nb201:{NB201_TEXT}", data=data, repeats=1, init="keep")
    assert torch.equal(torch.rand(3), expected)


# --- issue 15: model specs ---------------------------------------------------------------
def _first_darts_genotype() -> str:
    """A real full-length genotype text (the first row's shape of the authors' table)."""
    space = get_space("darts")
    return space.format(space.sample(np.random.default_rng(0)))


def test_darts_genotype_text_scores_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    text = _first_darts_genotype()
    assert len(f"darts:{text}") > 255  # longer than a file name may be
    code = main(["score", f"darts:{text}", "--repeats", "1", "--json", "-"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert '"key": "darts:' in captured.out


def test_space_pairs_resolve_by_name_text_and_value() -> None:
    space = get_space("darts")
    genotype = space.sample(np.random.default_rng(0))
    text = space.format(genotype)
    keys = {
        resolve_one(("darts", text)).key,
        resolve_one(("darts", genotype)).key,
        resolve_one((space, genotype)).key,
        resolve_one(f"darts:{text}").key,
    }
    assert keys == {f"darts:{text}"}
    nb201 = resolve_one(("nb201", NB201_TEXT))
    assert nb201.key == f"nb201:{NB201_TEXT}"
    # the name the reports print is accepted back
    assert resolve_one(nb201.name).key == nb201.key


def test_unknown_named_genotype_lists_the_known_ones() -> None:
    with pytest.raises(UnknownArchitectureError, match="DARTS_V2"):
        resolve_models(["darts:DARTS_V9"])


def test_a_path_too_long_for_the_file_system_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    long_path = "x" * 5000 + ".onnx"
    with pytest.raises(ModelLoadError, match="not found"):
        resolve_models([long_path])
    assert main(["score", long_path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("swapprobe: error: model file not found")


def test_factory_with_arguments_or_raising_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "helper.py").write_text("WIDTH = 4\n")
    (tmp_path / "nets.py").write_text(
        "import torch.nn as nn\n"
        "from helper import WIDTH\n"  # a sibling import: the file's folder is on sys.path
        "def needs(width):\n    return nn.Linear(width, 2)\n"
        "def broken():\n    raise RuntimeError('no such layer')\n"
        "def good():\n    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, WIDTH), "
        "nn.ReLU())\n"
    )
    nets = tmp_path / "nets.py"
    with pytest.raises(ModelLoadError, match=r"needs arguments \(width\)"):
        resolve_models([f"{nets}:needs"])
    with pytest.raises(ModelLoadError, match="raised RuntimeError: no such layer"):
        resolve_models([f"{nets}:broken"])
    (ref,) = resolve_models([f"{nets}:good"])
    assert ref.name == "nets.py:good"
    assert main(["score", f"{nets}:needs"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_an_architecture_scores_with_its_spaces_defaults_unless_told(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nb201 = get_space("nb201").defaults
    result = swapprobe.score(f"nb201:{NB201_TEXT}", repeats=1)
    assert (result.samples, result.metadata["init"]) == (nb201.batch_size, nb201.init)
    assert swapprobe.score(f"nb201:{NB201_TEXT}", repeats=1, batch_size=8).samples == 8
    assert main(["score", "nb201:random:2", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert {(r["samples"], r["repeats"]) for r in rows} == {(nb201.batch_size, nb201.repeats)}
    # models of several kinds keep the paper's setting
    assert main(["score", "nb201:random:1", "darts:DARTS_V2", "--repeats", "1", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert {r["samples"] for r in rows} == {16}


def test_a_printed_hash_name_says_how_to_give_the_architecture() -> None:
    with pytest.raises(UnknownArchitectureError, match="short name swapprobe prints"):
        resolve_models(["darts:8c6485ba"])
