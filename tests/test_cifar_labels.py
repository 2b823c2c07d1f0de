"""CIFAR labels in the order of the images ``load_batch`` returns (for labelled passes)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from swapprobe.data import cifar_labels, load_batch
from swapprobe.errors import DataError


def _manual(folder: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in files:
        with (folder / name).open("rb") as f:
            content = pickle.load(f, encoding="bytes")
        # official files have bytes keys, re-pickled copies str keys
        images.append(content.get(b"data", content.get("data")))
        labels.extend(content.get(b"labels", content.get("labels")))
    return np.concatenate(images), np.array(labels)


def test_first_labels_cross_into_the_second_file(cifar10_dir: Path) -> None:
    _, labels = _manual(cifar10_dir, ["data_batch_1", "data_batch_2"])
    first = len(_manual(cifar10_dir, ["data_batch_1"])[1])
    got = cifar_labels("cifar10", first + 5, data_dir=cifar10_dir)
    assert got.dtype == np.int64
    assert np.array_equal(got, labels[: first + 5])


def test_random_labels_belong_to_the_random_images(cifar10_dir: Path) -> None:
    files = [f"data_batch_{i}" for i in range(1, 6)]
    images, labels = _manual(cifar10_dir, files)
    batch = load_batch(
        "cifar10", batch_size=12, data_dir=cifar10_dir, pick="random", seed=3, normalize="none"
    )
    got = cifar_labels("cifar10", 12, data_dir=cifar10_dir, pick="random", seed=3)
    as_bytes = np.rint(batch.inputs.reshape(12, -1) * 255).astype(np.uint8)
    for row, label in zip(as_bytes, got, strict=True):
        (where,) = np.flatnonzero(np.all(images == row, axis=1))[:1]
        assert labels[where] == label


def test_missing_folder_is_refused_without_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWAPPROBE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DataError, match="CIFAR-10"):
        cifar_labels("cifar10", 4, data_dir=tmp_path / "nowhere")
