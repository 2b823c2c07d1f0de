"""What every source shares: the :class:`Batch` it returns, the settings it receives, and the
steps all of them take (checks, uint8 → [0, 1], normalisation, resize, finite check, fingerprint).

Every image or array source ends in :func:`finish_batch`, so every such batch is float32,
C-contiguous, finite and fingerprinted the same way whichever loader made it; token sources end
in :func:`swapprobe.data.tokens.token_batch` (int64 ids, checked and fingerprinted alike).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from swapprobe.errors import DataError, SettingsError

Pick = Literal["first", "random"]
Split = Literal["train", "test"]
Normalize = Literal["auto", "cifar10", "cifar100", "imagenet", "none"]

_PICKS = ("first", "random")
_SPLITS = ("train", "test")
_NORMALIZE = ("auto", "cifar10", "cifar100", "imagenet", "none")

# Per-channel mean/std in [0, 1] units. The CIFAR values are the NAS-Bench-201 constants that the
# SWAP reference code normalises with; changing them changes every score.
_MEAN_STD: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": (
        (125.3 / 255, 123.0 / 255, 113.9 / 255),
        (63.0 / 255, 62.1 / 255, 66.7 / 255),
    ),
    "cifar100": (
        (129.3 / 255, 124.1 / 255, 112.4 / 255),
        (68.2 / 255, 65.4 / 255, 70.4 / 255),
    ),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # NAS-Bench-201's ImageNet16 constants (its loader's, for ImageNet16-120's "auto")
    "imagenet16-120": (
        (122.68 / 255, 116.66 / 255, 104.01 / 255),
        (63.22 / 255, 61.26 / 255, 65.09 / 255),
    ),
}


@dataclass(frozen=True)
class Batch:
    """The inputs a network is scored on, with where they came from and a fingerprint.

    Attributes:
        inputs: the data input, C-contiguous. Images and arrays: float32, all finite, shape
            (S, C, H, W), or (S, F) (any shape with a leading sample axis) for arrays given by
            the user. Token models: int64 token ids of shape (S, T). Treat it as read-only: the
            fingerprint describes these bytes.
        source: human-readable origin, e.g. ``"cifar10 train images 0-15 (/data/cifar-10-...)"``.
        fingerprint: first 16 hex chars of the sha256 of shape, dtype and bytes of ``inputs``
            (and of every array of ``extra``, by name); identical data gives an identical
            fingerprint, so stored scores can be matched to the exact inputs that produced them.
        extra: further named inputs, each with the same leading sample axis, e.g. a token
            model's ``attention_mask`` and ``token_type_ids`` (int64 (S, T)); a model is fed
            those of them it declares (an ONNX graph input, a ``forward`` argument of that
            name) and not the others. Empty for images.
        labels: the class label of each sample where the source has them (CIFAR), for the
            labelled gradient pass; None otherwise. Not in the fingerprint: the images decide
            them.
        dataset: the named dataset the samples are from (``"cifar10"``, ``"cifar100"``), so
            a space can give its networks that dataset's classifier (the labels need its
            classes) and a search count the network one trains on it; None for synthetic
            images, folders, files and arrays. Not in the fingerprint, as ``labels``.
    """

    inputs: np.ndarray
    source: str
    fingerprint: str
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)
    labels: np.ndarray | None = None
    dataset: str | None = None

    @property
    def is_tokens(self) -> bool:
        """Integer inputs: token ids, not images or real-valued arrays."""
        return self.inputs.dtype.kind in "iu"


@dataclass(frozen=True)
class LoadRequest:
    """:func:`~swapprobe.data.load_batch`'s settings, already checked, as a source receives them.

    One object rather than nine arguments, so that every source has the same signature
    (``loader(name, request)``) and a source ignores what it does not use (e.g. ``split``).
    """

    batch_size: int
    seed: int
    data_dir: str | os.PathLike[str] | None
    input_size: tuple[int, int] | None
    pick: Pick
    split: Split
    normalize: Normalize
    download: bool
    progress: Callable[[int, int], None] | None
    #: token sources: T tokens per sequence, the vocabulary size, a tokenizer's name (None:
    #: the source's stated default, see :mod:`swapprobe.data.tokens`)
    seq_len: int | None = None
    vocab_size: int | None = None
    tokenizer: str | None = None


def check_settings(
    batch_size: int,
    seed: int,
    input_size: tuple[int, int] | None,
    pick: str,
    split: str,
    normalize: str,
) -> None:
    if not is_int(batch_size) or batch_size < 2:
        raise SettingsError(f"batch size must be an integer >= 2, got {batch_size!r}")
    if not is_int(seed) or seed < 0:
        raise SettingsError(f"seed must be a non-negative integer, got {seed!r}")
    if input_size is not None:
        check_size(input_size, "input_size")
        _check_memory(batch_size, input_size)
    for value, allowed, label in (
        (pick, _PICKS, "pick"),
        (split, _SPLITS, "split"),
        (normalize, _NORMALIZE, "normalize"),
    ):
        if value not in allowed:
            raise SettingsError(f"{label} must be one of {', '.join(allowed)}; got {value!r}")


def _check_memory(batch_size: int, input_size: tuple[int, int]) -> None:
    """Refuse, before allocating, a batch that cannot fit: S × 3 × H × W float32 values, twice
    (the source images and their resized copy), against half of this machine's memory."""
    needed = 2 * batch_size * 3 * int(input_size[0]) * int(input_size[1]) * 4
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return
    if needed > total // 2:
        raise SettingsError(
            f"a batch of {batch_size} inputs at {input_size[0]}x{input_size[1]} needs about "
            f"{needed / 2**30:,.1f} GiB, more than half of this machine's {total / 2**30:.0f} "
            "GiB; use a smaller input size or batch"
        )


def check_size(size: object, label: str) -> tuple[int, int]:
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(is_int(v) and v >= 1 for v in size)
    ):
        raise SettingsError(f"{label} must be two positive integers (H, W), got {size!r}")
    return int(size[0]), int(size[1])


def is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def draw_indices(total: int, count: int, seed: int, what: str) -> np.ndarray:
    """``count`` distinct indices in [0, total), reproducible from ``seed``."""
    if total < count:
        raise DataError(f"asked for {count} samples but {what} holds {total}; lower the batch size")
    return np.random.default_rng(seed).choice(total, size=count, replace=False)


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 → float32 in [0, 1], as torchvision's ToTensor does (the reference pipeline)."""
    return images.astype(np.float32) / np.float32(255.0)


def normalise(x: np.ndarray, which: str) -> np.ndarray:
    """Per-channel (x - mean) / std in float32, like torchvision's Normalize."""
    if which in ("none", "auto"):
        return x
    if x.ndim < 2 or x.shape[1] != 3:
        raise SettingsError(
            f"normalize={which!r} needs 3 channels on axis 1, the data has shape {x.shape}; use "
            f"normalize='none'"
        )
    mean, std = _MEAN_STD[which]
    shape = (1, 3) + (1,) * (x.ndim - 2)
    m = np.asarray(mean, dtype=np.float32).reshape(shape)
    s = np.asarray(std, dtype=np.float32).reshape(shape)
    return (x - m) / s


def resize_images(x: np.ndarray, input_size: tuple[int, int] | None) -> tuple[np.ndarray, str]:
    """Bilinear, antialiased resize of (S, C, H, W) to ``input_size``; no-op when it matches.

    Returns the array and a note for the batch's source ("" when nothing was resized).
    """
    if input_size is None:
        return x, ""
    size = (int(input_size[0]), int(input_size[1]))
    if x.ndim != 4:
        raise SettingsError(
            f"input_size needs 4-D (S, C, H, W) data, the data has shape {x.shape}; drop input_size"
        )
    if tuple(x.shape[2:]) == size:
        return x, ""
    import torch  # lazily: loading data must not pay for torch unless it resizes

    with torch.no_grad():
        out = torch.nn.functional.interpolate(
            torch.from_numpy(np.ascontiguousarray(x)),
            size=size,
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
    return out.numpy(), f", resized to {size[0]}x{size[1]}"


def normalisation_note(normalize: Normalize) -> str:
    return "" if normalize == "auto" else f", normalize={normalize}"


def finish_batch(inputs: np.ndarray, source: str) -> Batch:
    """Check, make contiguous float32, describe and fingerprint a batch."""
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    check_finite(inputs)
    return Batch(inputs=inputs, source=source, fingerprint=fingerprint(inputs))


def check_finite(x: np.ndarray) -> None:
    """NaN/inf would silently turn every activation pattern into garbage: refuse them."""
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise DataError(
            f"data holds {bad} non-finite values (NaN/inf); clean the data (np.nan_to_num) or "
            f"check its preprocessing"
        )


def fingerprint(inputs: np.ndarray, extra: Mapping[str, np.ndarray] | None = None) -> str:
    """First 16 hex chars of sha256 over shape, dtype and bytes (then name, shape, dtype and
    bytes of each further input, in name order): equal data, equal print. A batch without
    further inputs prints as it always did."""
    array = np.ascontiguousarray(inputs)
    h = hashlib.sha256()
    h.update(f"{tuple(array.shape)}|{array.dtype.str}|".encode())
    h.update(array.tobytes())
    extras = extra or {}
    for name in sorted(extras):
        value = np.ascontiguousarray(extras[name])
        h.update(f"|{name}|{tuple(value.shape)}|{value.dtype.str}|".encode())
        h.update(value.tobytes())
    return h.hexdigest()[:16]


def reason_of(exc: BaseException) -> str:
    """A one-line reason for an exception (URLError wraps the useful one in ``reason``)."""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = str(exc.reason)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
