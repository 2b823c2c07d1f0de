"""Inputs from the user's own data: a folder of png/jpg/jpeg/bmp images (sorted by file name,
loaded as RGB), a ``.npy``/``.npz`` file (uint8 (N, H, W, 3) or (N, 3, H, W) arrays are images,
float arrays are used as given), or a numpy array (used exactly as given, cast to float32 only).

These are what :func:`~swapprobe.data.load_batch` falls back on when ``data`` is not a
registered source name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, cast

import numpy as np

from swapprobe.data.cifar import CIFAR_SPECS, from_cifar, is_cifar_folder
from swapprobe.data.common import (
    Batch,
    Normalize,
    Pick,
    Split,
    check_finite,
    draw_indices,
    finish_batch,
    normalisation_note,
    normalise,
    reason_of,
    resize_images,
    to_unit,
)
from swapprobe.data.registry import unknown_hint
from swapprobe.errors import DataError

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
_NPZ_PREFERRED = ("inputs", "x", "images")


def from_path(
    path: Path,
    batch_size: int,
    seed: int,
    input_size: tuple[int, int] | None,
    pick: Pick,
    split: Split,
    normalize: Normalize,
) -> Batch:
    text = str(path)
    suffix = path.suffix.lower()
    if not path.exists():
        looks_like_path = os.sep in text or "/" in text or suffix in (".npy", ".npz")
        if looks_like_path:
            raise DataError(f"data path {text} does not exist; check the path")
        raise DataError(f"unknown dataset {text!r}: {unknown_hint()}")
    if path.is_dir():
        # An official CIFAR folder given by path: load it as that dataset.
        for key, spec in CIFAR_SPECS.items():
            if is_cifar_folder(path, spec):
                return from_cifar(key, path, batch_size, seed, input_size, pick, split, normalize)
        return _from_folder(path, batch_size, seed, input_size, pick, normalize)
    if suffix in (".npy", ".npz"):
        return _from_array_file(path, batch_size, seed, input_size, pick, normalize)
    raise DataError(f"unknown dataset {text!r}: {unknown_hint()}")


def _from_folder(
    folder: Path,
    batch_size: int,
    seed: int,
    input_size: tuple[int, int] | None,
    pick: Pick,
    normalize: Normalize,
) -> Batch:
    from PIL import Image

    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: p.name,
    )
    if not files:
        raise DataError(
            f"no png/jpg/jpeg/bmp images in folder {folder}; point at a folder of images"
        )
    if pick == "first":
        if len(files) < batch_size:
            raise DataError(
                f"asked for {batch_size} images but folder {folder} holds {len(files)}; "
                f"lower the batch size or add images"
            )
        chosen = files[:batch_size]
        what = f"images {chosen[0].name}..{chosen[-1].name} from {folder}"
    else:
        index = draw_indices(len(files), batch_size, seed, f"folder {folder}")
        chosen = [files[i] for i in index]
        what = f"{batch_size} random images (seed {seed}) from {folder}"

    pictures = []
    for file in chosen:
        try:
            with Image.open(file) as opened:
                pictures.append(opened.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(
                f"cannot read image {file} ({reason_of(exc)}); remove or replace it"
            ) from exc

    sizes = {p.size for p in pictures}  # PIL sizes are (W, H)
    if len(sizes) > 1:
        # Stacking needs one size: the requested one, else the first image's.
        target = (input_size[1], input_size[0]) if input_size else pictures[0].size
        pictures = [
            p if p.size == target else p.resize(target, Image.Resampling.BILINEAR) for p in pictures
        ]
        what += f" (resized to {target[1]}x{target[0]})"
    images = np.stack([np.asarray(p, dtype=np.uint8) for p in pictures]).transpose(0, 3, 1, 2)
    norm = "imagenet" if normalize == "auto" else normalize
    inputs, resized = resize_images(normalise(to_unit(images), norm), input_size)
    return finish_batch(inputs, what + resized + normalisation_note(normalize))


def _from_array_file(
    path: Path,
    batch_size: int,
    seed: int,
    input_size: tuple[int, int] | None,
    pick: Pick,
    normalize: Normalize,
) -> Batch:
    array = _read_array_file(path)
    if array.ndim < 2:
        raise DataError(
            f"{path} holds an array of shape {array.shape}; it needs a leading sample axis, "
            f"e.g. (N, 3, H, W) or (N, F)"
        )
    if pick == "first":
        if len(array) < batch_size:
            raise DataError(
                f"asked for {batch_size} samples but {path} holds {len(array)}; lower the "
                f"batch size"
            )
        chosen = np.asarray(array[:batch_size])
        what = f"{path} samples 0-{batch_size - 1}"
    else:
        index = draw_indices(len(array), batch_size, seed, str(path))
        chosen = np.asarray(array[np.sort(index)])[np.argsort(np.argsort(index))]
        what = f"{path}, {batch_size} random samples (seed {seed})"

    layout = _image_layout(chosen)
    if layout is not None:
        images = chosen if layout == "chw" else chosen.transpose(0, 3, 1, 2)
        norm = "imagenet" if normalize == "auto" else normalize
        inputs = normalise(to_unit(images), norm)
    else:
        inputs = _as_float32(chosen, str(path))
        if _channels_last(inputs):  # images saved (N, H, W, C): the models take (N, C, H, W)
            inputs = np.ascontiguousarray(inputs.transpose(0, 3, 1, 2))
            what += f", channels-last {tuple(chosen.shape[1:])} transposed to (C, H, W)"
        check_finite(inputs)  # before resizing spreads them: the count is the file's own
        if normalize not in ("auto", "none"):
            inputs = normalise(inputs, normalize)
    inputs, resized = resize_images(inputs, input_size)
    return finish_batch(inputs, what + resized + normalisation_note(normalize))


def _channels_last(array: np.ndarray) -> bool:
    """A 4-D array whose last axis holds 1 or 3 channels and whose second does not: images
    saved height, width, channels (numpy's and Pillow's layout)."""
    return array.ndim == 4 and array.shape[3] in (1, 3) and array.shape[1] not in (1, 3)


def _read_array_file(path: Path) -> np.ndarray:
    """The one array of a .npy (memory-mapped) or .npz file."""
    try:
        if path.suffix.lower() == ".npy":
            return cast(np.ndarray, np.load(path, mmap_mode="r", allow_pickle=False))
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if len(names) == 1:
                chosen = names[0]
            else:
                preferred = [n for n in _NPZ_PREFERRED if n in names]
                if len(preferred) != 1:
                    raise DataError(
                        f"{path} holds arrays {', '.join(repr(n) for n in names) or 'none'}; "
                        f"keep one, or name the inputs 'inputs', 'x' or 'images'"
                    )
                chosen = preferred[0]
            return cast(np.ndarray, archive[chosen])
    except DataError:
        raise
    except Exception as exc:  # zip, header, pickle-refusal errors all mean an unusable file
        raise not_an_array_file(path, exc) from exc


def not_an_array_file(
    path: Path, error: Exception, instead: str = "give images in a folder"
) -> DataError:
    """The error for a file numpy cannot load: one that is no numpy file at all (text, say,
    where numpy's own message would advise ``allow_pickle``) is called so; ``instead`` is
    the other source to suggest."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
    except OSError:
        head = b""
    if head != b"\x93NUMPY" and not head.startswith(b"PK"):
        return DataError(
            f"{path} is not a numpy array file (it does not start as numpy.save writes "
            f"one); save the array with numpy.save, or {instead}"
        )
    return DataError(f"cannot read {path} ({reason_of(error)}); save it with numpy.save")


def _image_layout(array: np.ndarray) -> Literal["hwc", "chw"] | None:
    """uint8 (N, H, W, 3) → "hwc", uint8 (N, 3, H, W) → "chw", anything else → None."""
    if array.dtype != np.uint8 or array.ndim != 4:
        return None
    if array.shape[3] == 3:  # numpy/Pillow's own layout wins when both could be channels
        return "hwc"
    if array.shape[1] == 3:
        return "chw"
    return None


# --------------------------------------------------------------------------------------------
# user arrays


def from_user_array(
    array: np.ndarray, input_size: tuple[int, int] | None, normalize: Normalize
) -> Batch:
    if array.ndim < 2 or len(array) < 2:
        raise DataError(
            f"the array has shape {array.shape}; it needs a leading sample axis with at least 2 "
            f"samples, e.g. (16, 3, 32, 32)"
        )
    inputs = _as_float32(array, "the array")
    check_finite(inputs)  # before resizing spreads them: the count is the array's own
    if normalize not in ("auto", "none"):
        inputs = normalise(inputs, normalize)
    inputs, resized = resize_images(inputs, input_size)
    source = f"user array {tuple(array.shape)} {array.dtype}" + resized
    return finish_batch(inputs, source + normalisation_note(normalize))


def _as_float32(array: np.ndarray, what: str) -> np.ndarray:
    """A float32 copy (so later edits of the caller's array cannot change the batch)."""
    kind = array.dtype.kind
    if kind not in "fiub":  # float, signed, unsigned, bool
        raise DataError(f"{what} has dtype {array.dtype}; give real numbers (float or integer)")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported below
        return np.array(array, dtype=np.float32, order="C", copy=True)
