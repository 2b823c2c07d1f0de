"""Bit-packed sample-wise activation patterns and exact distinct counting.

A :class:`PatternMatrix` holds the binarised activations of one forward pass: one row per
activation *unit* (V rows) and one bit per *sample* (S bits), packed little-endian into
``W = ceil(S / 64)`` unsigned 64-bit words per unit (sample ``s`` is bit ``s % 64`` of word
``s // 64``). A unit's row is its S-bit sample-wise pattern, so

* SWAP  = number of distinct rows (distinct columns of the paper's S×V matrix B),
* standard activation patterns = number of distinct samples (distinct rows of B).

Counting is exact: sorting the packed words, never hashing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LayerInfo",
    "PatternMatrix",
    "count_distinct_rows",
    "pack_sample_bits",
    "transpose_bits",
    "unique_rows",
    "unpack_rows",
    "words_for",
]

WORD_BITS = 64


def words_for(samples: int) -> int:
    """Number of 64-bit words that hold ``samples`` bits."""
    return -(-samples // WORD_BITS)


@dataclass(frozen=True)
class LayerInfo:
    """Where one activation layer's units sit in the pattern matrix.

    Attributes:
        name: the activation's output tensor name (ONNX) or module path (torch).
        op: the activation op type, e.g. ``"Relu"``.
        shape: per-sample shape of the activation, e.g. ``(16, 8, 8)``.
        offset: first row of this layer in the pattern matrix.
        size: number of units (product of ``shape``).
    """

    name: str
    op: str
    shape: tuple[int, ...]
    offset: int
    size: int


def pack_sample_bits(active: np.ndarray) -> np.ndarray:
    """Pack a boolean activation array of shape ``(S, ...)`` into ``(V, W)`` uint64 words.

    ``V`` is the product of the per-sample dimensions; sample ``s`` becomes bit ``s % 64`` of
    word ``s // 64``. Works on any S ≥ 1.
    """
    active = np.asarray(active)
    samples = active.shape[0]
    flat = active.reshape(samples, -1)
    if flat.dtype != np.bool_:
        flat = flat > 0
    # Transpose the booleans first (cheap, one byte each), then pack along the contiguous
    # sample axis: 2-3x faster than packing along axis 0 and transposing the bytes.
    by_unit = np.packbits(np.ascontiguousarray(flat.T), axis=1, bitorder="little")
    nbytes = words_for(samples) * 8
    if by_unit.shape[1] != nbytes:
        padded = np.zeros((by_unit.shape[0], nbytes), dtype=np.uint8)
        padded[:, : by_unit.shape[1]] = by_unit
        by_unit = padded
    return by_unit.view("<u8").astype(np.uint64, copy=False)


def unique_rows(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a ``(V, W)`` uint64 array and how often each occurs (exact, sorted)."""
    if words.ndim == 1:
        words = words[:, None]
    if words.shape[0] == 0:
        return words[:0], np.zeros(0, dtype=np.int64)
    if words.shape[1] == 1:
        column = words[:, 0]
        if column.size > 4096:
            top = int(column.max())
            if top < (1 << 22) and top < 8 * column.size:
                # Small patterns (S ≤ 22): a counting pass beats sorting.
                counts = np.bincount(column.astype(np.intp), minlength=top + 1)
                values = np.flatnonzero(counts)
                return values.astype(np.uint64)[:, None], counts[values].astype(np.int64)
        values, counts = np.unique(column, return_counts=True)
        return values[:, None], counts.astype(np.int64)
    order = np.lexsort(words.T[::-1])
    ordered = words[order]
    starts = np.flatnonzero(np.concatenate(([True], np.any(ordered[1:] != ordered[:-1], axis=1))))
    counts = np.diff(np.append(starts, len(ordered)))
    return ordered[starts], counts.astype(np.int64)


def count_distinct_rows(words: np.ndarray) -> int:
    """Exact number of distinct rows of a ``(V, W)`` uint64 array (or distinct values of 1-D)."""
    if words.ndim == 1:
        words = words[:, None]
    if words.shape[0] == 0:
        return 0
    if words.shape[1] == 1:
        column = words[:, 0]
        if column.size > 4096:
            top = int(column.max())
            if top < (1 << 22) and top < 8 * column.size:
                return int(np.count_nonzero(np.bincount(column.astype(np.intp), minlength=top + 1)))
            if top < (1 << 32):
                column = column.astype(np.uint32)  # S ≤ 32: the same values, sorted faster
        ordered = np.sort(column)
        return 1 + int(np.count_nonzero(ordered[1:] != ordered[:-1]))
    order = np.lexsort(words.T[::-1])
    ordered = words[order]
    return 1 + int(np.count_nonzero(np.any(ordered[1:] != ordered[:-1], axis=1)))


def unpack_rows(words: np.ndarray, samples: int) -> np.ndarray:
    """``(R, W)`` packed rows → ``(samples, R)`` booleans (sample-major, like the paper's B)."""
    as_bytes = np.ascontiguousarray(words.astype("<u8", copy=False)).view(np.uint8)
    needed = -(-samples // 8)  # only the bytes that hold sample bits
    used = as_bytes.reshape(len(words), -1)[:, :needed]
    bits = np.unpackbits(used, axis=1, count=samples, bitorder="little")
    return np.ascontiguousarray(bits.T).view(np.bool_)


_TRANSPOSE_STEPS = tuple(
    (np.uint64(shift), np.uint64(mask))
    for shift, mask in ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0))
)


def transpose_bits(words: np.ndarray, samples: int) -> np.ndarray:
    """``(V, ceil(S/64))`` packed unit rows → ``(S, ceil(V/64))`` packed sample rows.

    Why: NWOT and the standard patterns read each sample's V-bit row. Unpacking all V·S bits
    to booleans, transposing them and packing them again cost as much as a NAS-Bench-201
    forward's counting; instead each 8 units × 8 samples block of bits, gathered into one
    uint64 (byte i = unit i's byte of those samples), is transposed in place by three
    shift-and-mask swaps (Hacker's Delight, ``transpose8``), which leaves byte j = sample j's
    byte of those units. Only bytes move otherwise. Equal, bit for bit, to packing
    :meth:`PatternMatrix.to_bool` along the units (a test holds it to that).
    """
    units = words.shape[0]
    blocks = -(-units // 8)
    if words.shape[1] == 1:  # the narrowest integer that holds S bits: contiguous bytes
        per_sample = next(size for size in (1, 2, 4, 8) if 8 * size >= samples)
        raw = words[:, 0].astype(f"<u{per_sample}").view(np.uint8).reshape(units, per_sample)
    else:
        per_sample = 8 * words.shape[1]
        raw = np.ascontiguousarray(words, dtype="<u8").view(np.uint8).reshape(units, per_sample)
    grid = np.zeros((blocks * 8, per_sample), np.uint8)
    grid[:units] = raw
    # (blocks, 8 units, bytes) → (blocks, bytes, 8 units): one uint64 per 8×8 bit block
    x = np.ascontiguousarray(grid.reshape(blocks, 8, per_sample).transpose(0, 2, 1))
    x = x.view("<u8").reshape(blocks, per_sample)
    for shift, mask in _TRANSPOSE_STEPS:
        swap = (x ^ (x >> shift)) & mask
        x = x ^ swap ^ (swap << shift)
    by_sample = x.astype("<u8", copy=False).view(np.uint8).reshape(blocks, per_sample * 8)
    width = words_for(units) * 8  # bytes of a sample row, whole words
    out = np.zeros((samples, width), np.uint8)
    out[:, :blocks] = by_sample.T[:samples]
    return out.view("<u8").astype(np.uint64, copy=False)


class PatternMatrix:
    """V units × S samples of binary activations, packed into ``(V, W)`` uint64 words.

    Build one with :meth:`from_layers` (one boolean array per activation layer) or
    :meth:`concatenate` (already packed blocks). Immutable by convention.
    """

    __slots__ = ("layers", "samples", "words")

    def __init__(self, words: np.ndarray, samples: int, layers: Sequence[LayerInfo] = ()) -> None:
        words = np.asarray(words, dtype=np.uint64)
        if words.ndim != 2 or words.shape[1] != words_for(samples):
            raise ValueError(
                f"packed words must have shape (V, {words_for(samples)}) for S={samples}, "
                f"got {words.shape}"
            )
        self.words = words
        self.samples = int(samples)
        self.layers: tuple[LayerInfo, ...] = tuple(layers)

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_layers(cls, activations: Iterable[tuple[str, str, np.ndarray]]) -> PatternMatrix:
        """Pack ``(name, op, array)`` triples; each array is ``(S, ...)`` bool or float."""
        blocks: list[np.ndarray] = []
        layers: list[LayerInfo] = []
        samples: int | None = None
        offset = 0
        for name, op, array in activations:
            if samples is None:
                samples = int(array.shape[0])
            elif array.shape[0] != samples:
                raise ValueError(f"layer {name!r} has {array.shape[0]} samples, expected {samples}")
            block = pack_sample_bits(array)
            layers.append(
                LayerInfo(name, op, tuple(int(d) for d in array.shape[1:]), offset, len(block))
            )
            offset += len(block)
            blocks.append(block)
        if samples is None:
            raise ValueError("no activation layers given")
        return cls(
            np.concatenate(blocks) if blocks else np.zeros((0, words_for(samples)), np.uint64),
            samples,
            layers,
        )

    @classmethod
    def concatenate(
        cls, parts: Sequence[tuple[LayerInfo, np.ndarray]], samples: int
    ) -> PatternMatrix:
        """Join already packed per-layer blocks; offsets are recomputed in the given order."""
        layers: list[LayerInfo] = []
        offset = 0
        for info, block in parts:
            layers.append(LayerInfo(info.name, info.op, info.shape, offset, len(block)))
            offset += len(block)
        words = (
            np.concatenate([block for _, block in parts])
            if parts
            else np.zeros((0, words_for(samples)), np.uint64)
        )
        return cls(words, samples, layers)

    # --- views --------------------------------------------------------------------------
    @property
    def units(self) -> int:
        """V, the number of activation units."""
        return int(self.words.shape[0])

    def layer(self, name: str) -> PatternMatrix:
        """The sub-matrix of one layer."""
        for info in self.layers:
            if info.name == name:
                block = self.words[info.offset : info.offset + info.size]
                return PatternMatrix(
                    block, self.samples, [LayerInfo(info.name, info.op, info.shape, 0, info.size)]
                )
        raise KeyError(name)

    def to_bool(self) -> np.ndarray:
        """The unpacked ``(S, V)`` boolean matrix B of the paper (rows = samples)."""
        return unpack_rows(self.words, self.samples)

    def sample_rows(self) -> np.ndarray:
        """Each sample's V-bit pattern packed into bytes: ``(S, ceil(V/8))`` uint8."""
        return np.packbits(self.to_bool(), axis=1)

    def sample_words(self) -> np.ndarray:
        """Each sample's V-bit pattern as uint64 words, ``(S, ceil(V/64))``, zero padded
        (unit v is bit v % 64 of word v // 64): the packed words transposed bit-wise."""
        return transpose_bits(self.words, self.samples)

    # --- counts -------------------------------------------------------------------------
    def distinct_unit_patterns(self) -> int:
        """Ψ, the SWAP-Score: distinct S-bit patterns over the V units."""
        return count_distinct_rows(self.words)

    def unique_unit_patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct unit patterns ``(U, W)`` and their multiplicities ``(U,)``.

        Lossless for every score here: SWAP is U, and two samples agree on V units exactly
        when they agree on the distinct patterns weighted by multiplicity.
        """
        return unique_rows(self.words)

    def distinct_sample_patterns(self) -> int:
        """|A|, the standard activation pattern count: distinct V-bit patterns over S samples."""
        if self.units == 0:
            return 1
        return int(np.unique(self.sample_words(), axis=0).shape[0])

    def __repr__(self) -> str:
        return f"PatternMatrix(V={self.units}, S={self.samples}, layers={len(self.layers)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternMatrix):
            return NotImplemented
        return self.samples == other.samples and np.array_equal(self.words, other.words)

    __hash__ = None  # type: ignore[assignment]
