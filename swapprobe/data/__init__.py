"""Batches of inputs for scoring: CIFAR-10/100, image folders, .npy/.npz files, user arrays, and
an embedded synthetic default.

A SWAP-Score is only comparable between architectures scored on *the same* inputs, so every
loader here is deterministic and every :class:`Batch` carries a fingerprint of its exact bytes
and a readable description of where it came from.

Sources
    * ``"imagenet16-120"``: NAS-Bench-201's ImageNet16 folder, where you have it (it has no
      public download; see :mod:`swapprobe.data.imagenet16`), 16×16 images of 120 classes
      with their labels;
    * ``"cifar10"`` / ``"cifar100"``: the official python format (pickled dicts, ``data`` uint8
      (N, 3072) in CHW order). The folder (``cifar-10-batches-py`` / ``cifar-100-python``) is
      looked for in ``data_dir``, then ``$SWAPPROBE_DATA``, then the cache dir
      (``$XDG_CACHE_HOME/swapprobe`` or ``~/.cache/swapprobe``); each may be the folder itself or
      its parent. When absent it is downloaded from the official URL, checked against the official
      md5 and extracted safely. ``pick="first"`` reads only the batch files it needs.
    * a folder of png/jpg/jpeg/bmp images (sorted by file name, loaded as RGB);
    * a ``.npy``/``.npz`` file; uint8 (N, H, W, 3) or (N, 3, H, W) arrays are images, float
      arrays are used as given;
    * a numpy array, used exactly as given (cast to float32 only);
    * ``"synthetic"``: dead-leaves images, needing no files and no network;
    * ``"tokens:..."``: token ids (S, T) for Transformer models, with an ``attention_mask`` and
      ``token_type_ids``: ``tokens:zipf`` (seeded synthetic Zipf stream, offline default),
      ``tokens:uniform``, ``tokens:english`` (English text shipped with Python),
      ``tokens:FILE.txt`` (a text, by a built-in offline scheme or a named tokenizer),
      ``tokens:FILE.npy`` (ids as given); see :mod:`swapprobe.data.tokens`.

Where each lives
    ``common.py`` the :class:`Batch`, the settings a source receives and the steps all share
    (checks, normalisation, resize, fingerprint); ``registry.py`` names → loaders; ``cifar.py``,
    ``synthetic.py``, ``tokens.py`` the named sources; ``files.py`` folders, .npy/.npz files
    and arrays, the fallback when ``data`` is no registered name. A new source is one module and one
    :func:`register_source` call below.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from swapprobe.data.cifar import cifar_labels, cifar_root, download_cifar, load_cifar
from swapprobe.data.common import (
    Batch,
    LoadRequest,
    Normalize,
    Pick,
    Split,
    check_settings,
    fingerprint,
)
from swapprobe.data.files import from_path, from_user_array
from swapprobe.data.imagenet16 import load_imagenet16
from swapprobe.data.registry import (
    Loader,
    find_source,
    register_source,
    source_name,
    source_names,
    unknown_hint,
)
from swapprobe.data.synthetic import load_synthetic, synthetic_images
from swapprobe.data.tokens import PREFIX, is_token_source, load_tokens, token_batch
from swapprobe.errors import DataError, SettingsError

__all__ = [
    "DATASETS",
    "Batch",
    "LoadRequest",
    "Loader",
    "cifar_labels",
    "cifar_root",
    "download_cifar",
    "find_source",
    "fingerprint",
    "is_token_source",
    "load_batch",
    "register_source",
    "source_names",
    "synthetic_images",
    "token_batch",
]

register_source("cifar10", load_cifar)
register_source("cifar100", load_cifar)
register_source("imagenet16-120", load_imagenet16)
register_source("synthetic", load_synthetic)
register_source(PREFIX, load_tokens)

DATASETS: tuple[str, ...] = source_names()
"""The built-in dataset names; :func:`source_names` also lists ones registered later. Anything
else must be a path or an array."""


def load_batch(
    data: str | os.PathLike[str] | np.ndarray,
    *,
    batch_size: int = 16,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    input_size: tuple[int, int] | None = None,
    pick: Pick = "first",
    split: Split = "train",
    normalize: Normalize = "auto",
    download: bool = True,
    progress: Callable[[int, int], None] | None = None,
    seq_len: int | None = None,
    vocab_size: int | None = None,
    tokenizer: str | None = None,
) -> Batch:
    """Load S inputs from a named dataset, a path, or an array, ready to feed a network.

    Args:
        data: ``"cifar10"``, ``"cifar100"``, ``"synthetic"``, ``"tokens:..."`` (or a name given
            to :func:`register_source`; any letter case), a path to an image folder or to a
            ``.npy``/``.npz`` file, or a numpy array (used exactly as given: only cast to float32,
            never scaled, even uint8; ``batch_size`` and ``pick`` ignored). Token ids as arrays:
            :func:`token_batch`.
        batch_size: S, the number of samples; at least 2 (patterns need several samples).
        seed: seeds ``pick="random"`` and the synthetic images.
        data_dir: where to look for (and download) CIFAR before ``$SWAPPROBE_DATA`` and the cache.
        input_size: (H, W) to resize to after normalisation (bilinear, antialiased); for
            ``"synthetic"`` the images are drawn at this size instead.
        pick: ``"first"`` S samples in the official order (file-name order for folders), or S
            distinct ``"random"`` ones drawn with ``np.random.default_rng(seed)`` from the whole
            split; ignored by ``"synthetic"``, whose images are drawn from ``seed``.
        split: CIFAR ``"train"`` or ``"test"``; ignored by other sources.
        normalize: ``"auto"`` (CIFAR: its own constants, synthetic: CIFAR-10's, image folders
            and uint8 image arrays from .npy/.npz: ImageNet's, everything else: none) or an
            explicit choice, which also applies to arrays (it needs 3 channels on axis 1).
        download: fetch CIFAR from the official URL when it is not found.
        progress: called as ``progress(done_bytes, total_bytes)`` while downloading.
        seq_len: token sources: T tokens per sequence (default 128; a .npy file's own).
        vocab_size: token sources: ids are below it (default 30,522, BERT's vocabulary).
        tokenizer: token text sources: a Hugging Face tokenizer's name or folder, loaded from
            local files only (needs ``transformers``); default: the built-in offline scheme.

    Returns:
        The batch: float32 inputs (int64 token ids for token sources), source description,
        fingerprint.

    Raises:
        SettingsError: batch_size below 2, unknown pick/split/normalize, bad input_size or seed,
            token options for a source that is not a token source.
        DataError: unknown dataset, missing path, malformed file, too few samples, NaN/inf.
        DownloadError: CIFAR is missing and could not be downloaded or failed its checksum.
    """
    check_settings(batch_size, seed, input_size, pick, split, normalize)
    tokens = is_token_source(data)
    for value, label in (
        (seq_len, "seq_len"),
        (vocab_size, "vocab_size"),
        (tokenizer, "tokenizer"),
    ):
        if value is not None and not tokens:
            raise SettingsError(
                f"{label} applies to token sources (tokens:...), not to "
                f"{'an array' if isinstance(data, np.ndarray) else repr(os.fspath(data))[:60]}"
            )
    if isinstance(data, np.ndarray):
        return from_user_array(data, input_size, normalize)
    if not isinstance(data, str | os.PathLike):
        raise DataError(f"unknown dataset of type {type(data).__name__}: {unknown_hint()}")
    name = os.fspath(data)
    key = data.lower() if isinstance(data, str) else ""  # a Path is always a path
    loader = find_source(key) if key else None
    if loader is not None:
        request = LoadRequest(
            batch_size=batch_size,
            seed=seed,
            data_dir=data_dir,
            input_size=input_size,
            pick=pick,
            split=split,
            normalize=normalize,
            download=download,
            progress=progress,
            seq_len=seq_len,
            vocab_size=vocab_size,
            tokenizer=tokenizer,
        )
        return loader(source_name(name), request)
    return from_path(Path(name).expanduser(), batch_size, seed, input_size, pick, split, normalize)
