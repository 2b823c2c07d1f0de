"""The ``"imagenet16-120"`` source: NAS-Bench-201's third dataset, read from the folder its
benchmark trained on, where you have it.

ImageNet16-120 is downsampled ImageNet at 16×16 (Chrabaszcz, Loshchilov and Hutter, 2017)
restricted to its first 120 classes, as NAS-Bench-201 (and its ``ImageNet16`` loader) uses it:
a folder ``ImageNet16`` of pickled dicts, ``train_data_batch_1`` … ``train_data_batch_10`` and
``val_data``, each ``data`` uint8 (N, 3072) in CHW order and ``labels`` 1 … 1000; the samples
kept are those labelled 1 … 120, their labels made 0 … 119; normalised by NAS-Bench-201's
ImageNet16 mean and std. It has no public download (downsampled ImageNet needs an
image-net.org account), so when the folder is in none of the places looked in, loading fails
in one line that says so, where it looked and where to put it; nothing is downloaded.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from swapprobe.data.cifar import data_places, places_hint, unpickle_arrays
from swapprobe.data.common import (
    Batch,
    LoadRequest,
    draw_indices,
    finish_batch,
    normalisation_note,
    normalise,
    resize_images,
    to_unit,
)
from swapprobe.errors import DataError

__all__ = ["FOLDERS", "load_imagenet16"]

NAME = "imagenet16-120"
TITLE = "ImageNet16-120"
#: the folder's names in NAS-Bench-201's and its users' code, looked for in this order
FOLDERS = ("ImageNet16", "ImageNet16-120", "imagenet16")
TRAIN_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11))
TEST_FILES = ("val_data",)
#: classes kept (labels 1 … 120 of the 1000)
CLASSES = 120
SIDE = 16


def load_imagenet16(name: str, request: LoadRequest) -> Batch:
    """The registered loader of ``"imagenet16-120"``: S images and their labels (0 … 119)
    from the train files (``split="train"``) or ``val_data``, the first S of the kept classes
    in file order or S drawn from all of them (``pick="random"``)."""
    root = find_imagenet16(request.data_dir)
    if root is None:
        raise DataError(_not_found(request.data_dir))
    files = TRAIN_FILES if request.split == "train" else TEST_FILES
    count = request.batch_size
    if request.pick == "first":
        images, labels = _first(root, files, count)
        what = f"{NAME} {request.split} images 0-{count - 1}"
    else:
        parts = [_read(root / file) for file in files]
        everything = np.concatenate([p[0] for p in parts])
        all_labels = np.concatenate([p[1] for p in parts])
        index = draw_indices(len(everything), count, request.seed, f"{NAME} in {root}")
        images, labels = everything[index], all_labels[index]
        what = f"{NAME} {request.split}, {count} random images (seed {request.seed})"
    norm = NAME if request.normalize == "auto" else request.normalize
    unit = to_unit(images.reshape(-1, 3, SIDE, SIDE))
    inputs, resized = resize_images(normalise(unit, norm), request.input_size)
    batch = finish_batch(
        inputs, f"{what} ({root})" + resized + normalisation_note(request.normalize)
    )
    return replace(batch, labels=labels, dataset=NAME)


def find_imagenet16(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The ImageNet16 folder in ``data_dir``, ``$SWAPPROBE_DATA`` or the cache dir (each the
    folder itself or its parent), or None."""
    for place in data_places(data_dir):
        for folder in FOLDERS:
            if (place / folder).is_dir():
                return place / folder
        if (place / TRAIN_FILES[0]).is_file() or (place / TEST_FILES[0]).is_file():
            return place
    return None


def _first(root: Path, files: tuple[str, ...], count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` kept samples over ``files`` in order, reading only those needed."""
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    have = 0
    for file in files:
        if have >= count:
            break
        part_images, part_labels = _read(root / file)
        images.append(part_images[: count - have])
        labels.append(part_labels[: count - have])
        have += len(images[-1])
    if have < count:
        raise DataError(
            f"asked for {count} images but {NAME} in {root} holds {have} of its {CLASSES} "
            "classes; lower the batch size"
        )
    return np.concatenate(images), np.concatenate(labels)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One file's samples of the kept classes: images uint8 (N, 3072), labels 0 … 119."""
    if not path.is_file():
        raise DataError(
            f"{TITLE} file {path} is missing; the folder needs {', '.join(TRAIN_FILES[:1])} … "
            f"{TRAIN_FILES[-1]} and {TEST_FILES[0]}"
        )
    content = unpickle_arrays(path, TITLE)

    def field(key: str) -> Any:
        if not isinstance(content, dict):
            return None
        return content.get(key, content.get(key.encode()))

    images, labels = field("data"), field("labels")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2:
        raise DataError(f"{TITLE} file {path} has no uint8 'data' array; replace it")
    if images.shape[1] != 3 * SIDE * SIDE:
        raise DataError(
            f"{TITLE} file {path} holds images of {images.shape[1]} values, not "
            f"3×{SIDE}×{SIDE}; replace it with NAS-Bench-201's file"
        )
    if labels is None or len(labels) != len(images):
        raise DataError(f"{TITLE} file {path} has no 'labels' for its images; replace it")
    labels = np.asarray(labels, dtype=np.int64)
    keep = (labels >= 1) & (labels <= CLASSES)
    return images[keep], labels[keep] - 1


def _not_found(data_dir: str | os.PathLike[str] | None) -> str:
    looked = ", ".join(str(p) for p in data_places(data_dir))
    return (
        f"{TITLE} not found (looked for an '{FOLDERS[0]}' folder in {looked}) and it cannot "
        "be downloaded: downsampled ImageNet needs an image-net.org account; put NAS-Bench-201's "
        f"'{FOLDERS[0]}' folder ({TRAIN_FILES[0]} … {TRAIN_FILES[-1]}, {TEST_FILES[0]}) in "
        f"{places_hint()}, or score on another source"
    )
