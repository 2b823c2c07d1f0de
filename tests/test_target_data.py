"""Scoring on the target dataset's images and labels (``--data cifar100``), issue 25.

A tiny CIFAR-100 folder in the official pickle layout (``cifar-100-python/{train,test,meta}``,
bytes keys ``b'data'`` and ``b'fine_labels'``) is written by the tests; its labels reach 99,
past a CIFAR-10 classifier, so a gradient pass that kept CIFAR-10's head would fail. No test
touches the network: the offline case replaces ``urlopen``.
"""

from __future__ import annotations

import json
import pickle
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from swapprobe.cli import main
from swapprobe.data import load_batch
from swapprobe.errors import DataError
from swapprobe.evaluate import Evaluator
from swapprobe.plan import Execution, Inputs, Scoring, SearchPlan
from swapprobe.results import ScoreSettings
from swapprobe.searchspaces import get_space, list_spaces

TRAIN = 40
CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $SWAPPROBE_DATA and an empty cache dir, so no test sees a real CIFAR copy."""
    monkeypatch.delenv("SWAPPROBE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "swapprobe"


@pytest.fixture
def cifar100(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A CIFAR-100 folder's parent, its train images (N, 3072) and fine labels."""
    folder = tmp_path / "data" / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (TRAIN, 3072), dtype=np.uint8)
    labels = rng.permutation(np.arange(100))[:TRAIN]  # distinct, so 99 may be among them
    labels[3] = 99  # past any CIFAR-10 head, among the first images every batch takes
    for name, data, fine in (("train", images, labels), ("test", images[:10], labels[:10])):
        content = {
            b"data": data,
            b"fine_labels": [int(v) for v in fine],
            b"coarse_labels": [int(v) // 5 for v in fine],
        }
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
    meta = {b"fine_label_names": [f"class{i}".encode() for i in range(100)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder.parent, images, labels


def test_a_cifar100_batch_carries_its_name_and_fine_labels(
    cifar100: tuple[Path, np.ndarray, np.ndarray], isolated: Path
) -> None:
    root, images, labels = cifar100
    batch = load_batch("cifar100", batch_size=8, data_dir=root, download=False)
    assert batch.dataset == "cifar100"
    np.testing.assert_array_equal(batch.labels, labels[:8])
    # the images are those rows, CHW, scaled by CIFAR-100's own constants
    mean = np.array([129.3, 124.1, 112.4]) / 255
    std = np.array([68.2, 65.4, 70.4]) / 255
    expected = (images[:8].reshape(8, 3, 32, 32) / 255 - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(batch.inputs, expected, atol=1e-6)
    assert load_batch("synthetic", batch_size=4).dataset is None


def test_nb201_and_darts_give_the_labelled_pass_cifar100s_classifier() -> None:
    nb201, darts = get_space("nb201"), get_space("darts")
    image = torch.zeros(2, 3, 32, 32)
    for space, arch in ((nb201, CELL), (darts, "DARTS_V2")):
        parsed = space.named_architectures().get(arch) or space.parse(arch)
        for dataset, classes in (("cifar10", 10), ("cifar100", 100)):
            network = space.for_dataset(dataset).proxy_network(parsed).eval()
            assert network(image).shape == (2, classes)
        assert space.for_dataset("synthetic") is space  # no named head: unchanged
    assert nb201.for_dataset("imagenet16-120").build_scoring_network(CELL)(image).shape == (2, 120)
    # the evaluation network a search counts and exports follows the named dataset
    assert nb201.evaluation_dataset((32, 32), "cifar100") == "cifar100"
    assert nb201.evaluation_dataset((32, 32), None) == "cifar10"
    assert darts.evaluation_dataset((32, 32), "cifar100") == "cifar100"
    assert darts.evaluation_dataset((224, 224), "cifar100") == "imagenet"
    assert get_space("nb101").evaluation_dataset((32, 32), "cifar100") == "cifar10"


def test_labels_past_the_networks_outputs_are_one_line(
    cifar100: tuple[Path, np.ndarray, np.ndarray], isolated: Path
) -> None:
    root, _, labels = cifar100
    batch = load_batch("cifar100", batch_size=8, data_dir=root, download=False)
    evaluator = Evaluator(batch, ScoreSettings(batch_size=8, proxies=("zico",)))
    ten = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with pytest.raises(DataError) as raised:
        evaluator.gradient_batches(ten, seed=0)
    message = str(raised.value)
    assert "\n" not in message
    assert f"labels of cifar100 reach {labels[:8].max()} but the network has 10 outputs" in message
    hundred = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 100))
    batches = evaluator.gradient_batches(hundred, seed=0)
    np.testing.assert_array_equal(
        np.concatenate([t.numpy() for _, t in batches]), labels[: 2 * len(batches[0][1])]
    )


def test_a_search_scores_cifar100_and_says_so(
    cifar100: tuple[Path, np.ndarray, np.ndarray], isolated: Path
) -> None:
    root, _, _ = cifar100
    plan = SearchPlan(
        "nb201",
        Inputs("cifar100", batch_size=16, data_dir=root),
        Scoring(proxies=("zico",)),
        Execution("local"),
        population=3,
        cycles=1,
        mutation_times=1,
        max_params="2M",
    )
    found = plan.run()
    outcome = found.outcome
    assert not outcome.failed
    assert outcome.data == found.setup.data.source and "cifar100 train" in outcome.data
    assert outcome.to_dict()["data"] == outcome.data
    assert outcome.evaluation_dataset == "cifar100"
    space = get_space("nb201")
    assert outcome.evaluation_params == space.evaluation_param_count(outcome.best_arch, "cifar100")
    assert all(r.metadata["gradient_labels"] == "data" for r in outcome.results.values())
    assert all(np.isfinite(r.proxies["zico"]) for r in outcome.results.values())


def test_score_on_cifar100_runs_the_labelled_pass(
    cifar100: tuple[Path, np.ndarray, np.ndarray],
    isolated: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    root, _, _ = cifar100
    out = tmp_path / "score.json"
    argv = ["score", f"nb201:{CELL}", "--data", "cifar100", "--data-dir", str(root)]
    argv += ["--batch-size", "16", "--repeats", "1", "--proxies", "zico", "--json", str(out)]
    code = main(argv)
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "data cifar100 train images 0-15" in printed.out
    (result,) = json.loads(out.read_text())["results"]
    assert np.isfinite(result["zico"])


def test_offline_without_cifar100_is_one_line_and_nothing_is_scored(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    def offline(url: str, timeout: float | None = None) -> None:
        raise urllib.error.URLError(OSError("Temporary failure in name resolution"))

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("nothing may be scored")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(Evaluator, "evaluate", refuse)
    given = tmp_path / "not-here"
    argv = ["search", "nb201", "--data", "cifar100", "--data-dir", str(given)]
    code = main([*argv, "--executor", "local"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("swapprobe: error:")]
    assert code != 0 and len(errors) == 1 and "Traceback" not in err
    line = errors[0]
    # where it looked (the given folder, then the cache), the URL, and where to put it
    assert f"CIFAR-100 is not in {given}, {isolated};" in line
    assert URL in line and "'cifar-100-python' folder in --data-dir" in line


# --- ImageNet16-120: read where it is, one line where it is not ---------------------------


@pytest.fixture
def imagenet16(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """NAS-Bench-201's ``ImageNet16`` folder (Python 3 pickles, str keys, labels 1 … 1000):
    its parent, and the train files' images and labels in file order."""
    folder = tmp_path / "in16" / "ImageNet16"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    images, labels = [], []
    for name in [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]:
        data = rng.integers(0, 256, (12, 3 * 16 * 16), dtype=np.uint8)
        marks = rng.integers(1, 241, 12)  # about half past class 120
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": marks.tolist()}))
        if name != "val_data":
            images.append(data)
            labels.append(marks)
    return folder.parent, np.concatenate(images), np.concatenate(labels)


def test_imagenet16_120_keeps_the_first_120_classes_with_nb201s_constants(
    imagenet16: tuple[Path, np.ndarray, np.ndarray], isolated: Path
) -> None:
    root, images, labels = imagenet16
    batch = load_batch("imagenet16-120", batch_size=10, data_dir=root, download=False)
    kept = np.flatnonzero(labels <= 120)[:10]
    np.testing.assert_array_equal(batch.labels, labels[kept] - 1)
    mean = np.array([122.68, 116.66, 104.01]) / 255
    std = np.array([63.22, 61.26, 65.09]) / 255
    raw = images[kept].reshape(10, 3, 16, 16) / 255
    np.testing.assert_allclose(
        batch.inputs, (raw - mean[:, None, None]) / std[:, None, None], atol=1e-6
    )
    assert batch.dataset == "imagenet16-120" and "imagenet16-120 train" in batch.source
    assert batch.inputs.shape == (10, 3, 16, 16)


def test_imagenet16_120_offline_is_one_line_saying_it_cannot_be_downloaded(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("nothing may be scored, nothing downloaded")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(Evaluator, "evaluate", refuse)
    code = main(["search", "nb201", "--data", "imagenet16-120", "--executor", "local"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("swapprobe: error:")]
    assert code != 0 and len(errors) == 1 and "Traceback" not in err
    line = errors[0]
    assert "ImageNet16-120 not found" in line and "cannot be downloaded" in line
    assert str(isolated) in line and "--data-dir" in line and "'ImageNet16' folder" in line


def test_a_search_on_imagenet16_120_counts_its_network(
    imagenet16: tuple[Path, np.ndarray, np.ndarray], isolated: Path
) -> None:
    root, _, _ = imagenet16
    plan = SearchPlan(
        "nb201",
        Inputs("imagenet16-120", batch_size=8, data_dir=root),
        Scoring(proxies=("zico",)),
        Execution("local"),
        population=2,
        cycles=0,
    )
    outcome = plan.run().outcome
    assert not outcome.failed and "imagenet16-120 train images 0-7" in outcome.data
    assert outcome.evaluation_dataset == "imagenet16-120" and outcome.input_size == (16, 16)
    space = get_space("nb201")
    assert outcome.evaluation_params == space.evaluation_param_count(
        outcome.best_arch, "imagenet16-120"
    )


@pytest.mark.parametrize("name", list_spaces())
def test_for_dataset_keeps_the_space_its_names_and_its_cells(name: str) -> None:
    """A space given a dataset's classifier is the same space to everything else: its name
    (store keys), text forms and sizes of the scoring network's cells other than a head."""
    space = get_space(name)
    for dataset in ("cifar10", "cifar100", "imagenet16-120", "synthetic"):
        other = space.for_dataset(dataset)
        assert isinstance(other, type(space)) and other.name == space.name
        arch = space.sample(np.random.default_rng(0))
        assert other.format(arch) == space.format(arch)
        assert other.parse(space.format(arch)) == arch
        assert other.evaluation_dataset((32, 32), None) == space.evaluation_dataset((32, 32))
