"""Token inputs for Transformer models: a :class:`~swapprobe.data.Batch` of int64 token ids
(S, T) with further named inputs (``attention_mask``, ``token_type_ids``).

:func:`token_batch` makes such a batch from arrays (checked, fingerprinted); every token source
ends in it, as every image source ends in ``common._finish``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from swapprobe.data.common import Batch, _is_int, fingerprint
from swapprobe.errors import DataError

__all__ = ["token_batch"]


def token_batch(
    ids: np.ndarray,
    *,
    extra: Mapping[str, np.ndarray] | None = None,
    source: str | None = None,
    vocab_size: int | None = None,
) -> Batch:
    """A batch of token ids (S, T), copied as int64, with further named inputs.

    Args:
        ids: integer token ids, shape (S, T), S ≥ 2, every id ≥ 0 (and < ``vocab_size``).
        extra: further named inputs with S rows each (e.g. ``attention_mask``); integers and
            booleans are kept as int64, reals as float32.
        source: the batch's description (default: its shape).
        vocab_size: when given, every id must be below it.

    Raises:
        DataError: ids that are not integers, not 2-D, fewer than 2 rows, out of range; a
            further input without S rows or not numeric.
    """
    array = np.asarray(ids)
    if array.dtype.kind not in "iu":
        raise DataError(f"token ids must be integers, got dtype {array.dtype}")
    if array.ndim != 2 or len(array) < 2 or array.shape[1] < 1:
        raise DataError(
            f"token ids have shape {array.shape}; they need (S, T): S ≥ 2 sequences of T tokens"
        )
    low, high = int(array.min()), int(array.max())
    if low < 0:
        raise DataError(f"token ids must be non-negative, the smallest is {low}")
    if vocab_size is not None:
        if not _is_int(vocab_size) or vocab_size < 1:
            raise DataError(f"vocab_size must be a positive integer, got {vocab_size!r}")
        if high >= vocab_size:
            raise DataError(
                f"token id {high} is outside the vocabulary of {vocab_size} (ids 0-"
                f"{vocab_size - 1}); give the model's vocab size or other ids"
            )
    inputs = np.array(array, dtype=np.int64, order="C", copy=True)
    further = {name: _further(name, value, len(inputs)) for name, value in (extra or {}).items()}
    text = source or f"token ids {inputs.shape[0]}x{inputs.shape[1]}"
    return Batch(
        inputs=inputs, source=text, fingerprint=fingerprint(inputs, further), extra=further
    )


def _further(name: str, value: np.ndarray, samples: int) -> np.ndarray:
    array = np.asarray(value)
    if not isinstance(name, str) or not name:
        raise DataError(f"a further input needs a name, got {name!r}")
    if array.ndim < 1 or len(array) != samples:
        raise DataError(f"input {name!r} has shape {array.shape}; it needs {samples} rows")
    kind = array.dtype.kind
    if kind not in "biuf":
        raise DataError(f"input {name!r} has dtype {array.dtype}; give numbers")
    dtype = np.float32 if kind == "f" else np.int64
    return np.array(array, dtype=dtype, order="C", copy=True)
