"""HDF5 PatternStore: every scoring run (one model or thousands × repeats) in one file.

A run can take hours (a search scores thousands of architectures), so the store is built to
survive being killed: each model is written *atomically* and flushed, and a resumed run finds
every model that was complete before the interruption. Only the driver process writes; workers
hand their records to it.

Layout (format ``swapprobe-store``, ``format_version`` 1)::

    /                        attrs: format="swapprobe-store", format_version=1,
                                    swapprobe_version, created (ISO 8601, UTC),
                                    settings (JSON text: the run settings that decide the numbers)
    /models/<name>/          one complete record; links kept in completion order
                             attrs: key (the original key), name, metadata (JSON text)
        scores/<metric>      float64 [repeats]    e.g. swap, standard_ap, nwot; attrs: metric
                             (the original metric name; <metric> is escaped like <name>)
        layers               compound [n_layers]: name, op, shape (JSON text) as fixed-length
                             UTF-8 text, offset, size (int64)
        patterns/<repeat>    uint64 [V, W]  gzip(4) + shuffle, chunks of at most 1 MiB
                             (only the repeats whose patterns were kept; W = ceil(S / 64))
    /partial/<name>          a record being written; moved to /models/<name> when complete.
                             Readers never look here; resume deletes leftovers.
    /state/<name>/           attrs: json (JSON text), e.g. a search checkpoint; replaced each time

``<name>`` is the key made HDF5-safe (see :func:`group_name`): ASCII letters, digits, ``_``,
``-`` and ``.`` are kept, every other byte of the UTF-8 key becomes ``%XX`` (and a leading
``.`` too), so the name reads like the key in ``h5ls``. Escaped names longer than
200 characters (DARTS genotype strings) are cut to 160 characters plus ``~`` and 32 hex digits
of the key's SHA-256. The original key is always the ``key`` attribute; it is what the API
returns.

Why it is atomic: HDF5 holds metadata changes in its cache until ``flush()``. A record is
built under ``/partial`` and only its last step links it into ``/models`` (delete the old record
of that key, then ``move``), followed by ``flush()``. A process killed at any earlier point
leaves ``/models`` as it was at the previous flush (tested with ``os._exit`` in the middle of a
record, and by SIGKILL at random moments of a long run). This protects against the process
dying (crash, Ctrl-C, ``kill``); it is not a guarantee against power loss (no fsync).

A full disk: HDF5 rewrites metadata in place and cannot be trusted after a failed write, so a
writer writes through :class:`swapprobe.safe_io.GuardedFile`, which keeps the bytes of the last
flush on disk until the next flush has all the space it needs. When the disk (or quota) fills
up, :meth:`PatternStore.write` raises :class:`DiskFullError` ("disk full: ...", one line) and
the store falls back to read-only at its last complete state, with every finished record;
``--resume`` continues it once there is room. The cost is nil within the noise: 1000 records
took 12-16 ms each either way on this machine, scores only or with one kept pattern block.

Damaged bytes: whatever h5py raises while reading becomes one :class:`DamagedStoreError` that
names the damaged records (up to three) and counts the records still readable.

Space: patterns dominate. :func:`estimate_bytes` gives the uncompressed bound; with S ≤ 32 most
bytes of each uint64 are zero, and shuffle + gzip remove them (≈ 0.85 bytes/unit at S = 16 for
real-looking patterns). Deleted or replaced records leave free space that HDF5 does not return;
``h5repack`` compacts a store.

HDF5's default file locking is kept: while a writer has the file open, other processes cannot
open it, not even read-only; :meth:`PatternStore.open` says so in a :class:`StoreError`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata as _metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import h5py
import numpy as np

from swapprobe.errors import (
    DamagedStoreError,
    DiskFullError,
    SettingsError,
    StoreError,
    SwapprobeError,
)
from swapprobe.patterns import LayerInfo, words_for
from swapprobe.safe_io import GuardedFile, is_disk_full

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelRecord",
    "PatternStore",
    "StoreSummary",
    "check_writable",
    "estimate_bytes",
    "group_name",
    "open_for_run",
]

FORMAT = "swapprobe-store"
FORMAT_VERSION = 1

_MODELS = "models"
_PARTIAL = "partial"
_STATE = "state"
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_MAX_NAME = 200
_CUT_NAME = 160
_CHUNK_BYTES = 1 << 20
_GZIP_LEVEL = 4
# Allowance for one record's non-pattern bytes (object headers, score vectors, layer table,
# attributes). Measured: ~4.4 KB for 3 metrics × 32 repeats and 16 layers without patterns,
# ~6.6 KB with one pattern block; 16 KiB leaves room for networks with hundreds of layers.
_RECORD_OVERHEAD = 16 * 1024
#: what h5py and HDF5 raise on damaged bytes (a bad checksum is a KeyError, a broken object
#: header can surface as an AttributeError on None, a cut chunk as an OSError, ...)
#: the array of per-layer gradient statistics and the metadata key naming its rows (written
#: by :mod:`swapprobe.runs`; checked against each other when a record is read)
GRADIENT_ROWS, GRADIENT_ROW_NAMES = "gradient_layers", "gradient_layer_names"
_HDF5_ERRORS = (
    OSError,
    KeyError,
    RuntimeError,
    AttributeError,
    ValueError,
    TypeError,
    IndexError,
)
#: damaged records a message names before it only counts them
_NAMED = 3


@dataclass
class ModelRecord:
    """Everything the store keeps about one scored model.

    Attributes:
        key: unique id within the store (model sha256, or canonical architecture text).
        name: display name.
        metadata: JSON-able facts about the run of this model: model_sha256, param_count,
            units (V), samples (S), device, backend, timings, versions, ...
        scores: metric name -> per-repeat float64 array.
        layers: where each activation layer sits in the pattern rows.
        patterns: repeat index -> packed ``(V, W)`` uint64 patterns (only kept repeats).
        arrays: small named float64 arrays a scorer keeps to recompute scores later (the
            gradient pass's per-layer statistics, Ψ per depth bin, Fisher eigenvalues); a
            record without any has no ``arrays`` group.
    """

    key: str
    name: str
    metadata: dict[str, Any]
    scores: dict[str, np.ndarray]
    layers: tuple[LayerInfo, ...] = ()
    patterns: dict[int, np.ndarray] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreSummary:
    """What a store holds, for ``swapprobe store info`` and logs.

    Attributes:
        path: the store file.
        settings: the run settings the store was made with.
        n_models: number of complete records.
        n_pattern_blocks: number of kept ``(V, W)`` pattern arrays over all records.
        file_bytes: size of the file on disk.
        pattern_bytes: bytes the pattern arrays take on disk (compressed).
        created: ISO 8601 creation time.
        version: swapprobe version that created the store.
        format_version: layout version of the store.
    """

    path: Path
    settings: dict[str, Any]
    n_models: int
    n_pattern_blocks: int
    file_bytes: int
    pattern_bytes: int
    created: str
    version: str
    format_version: int = FORMAT_VERSION


# --- helpers -----------------------------------------------------------------------------


def group_name(key: str) -> str:
    """The HDF5 link name for ``key``: readable, reversible when short, never containing '/'.

    Args:
        key: any non-empty string (paths, genotype text with quotes and brackets, ...).

    Returns:
        A name made of ``[A-Za-z0-9_.%~-]`` that does not start with ``.``; distinct keys give
        distinct names (long ones up to a SHA-256 collision).
    """
    parts: list[str] = []
    for index, byte in enumerate(key.encode("utf-8")):
        char = chr(byte)
        if char in _SAFE and not (index == 0 and char == "."):
            parts.append(char)
        else:
            parts.append(f"%{byte:02X}")
    escaped = "".join(parts)
    if len(escaped) <= _MAX_NAME:
        return escaped
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"{escaped[:_CUT_NAME]}~{digest}"


def estimate_bytes(units: int, samples: int, kept_repeats: int) -> int:
    """Upper bound of the bytes one model's record takes, before compression.

    The README quotes it so users can size a run before starting it: patterns are
    ``units × ceil(samples / 64) × 8`` bytes per kept repeat; compression usually shrinks
    them several-fold (S ≤ 32 leaves most bytes of each word zero).

    Args:
        units: V, activation units of the model.
        samples: S, samples in the batch.
        kept_repeats: how many repeats keep their patterns (0 = scores only).

    Returns:
        Bytes, including a fixed allowance for the record's scores, layer table and headers.

    Raises:
        SettingsError: a negative count or fewer than one sample.
    """
    if units < 0 or samples < 1 or kept_repeats < 0:
        raise SettingsError(
            f"cannot estimate a store size for units={units}, samples={samples}, "
            f"kept_repeats={kept_repeats}; counts must be >= 0 and samples >= 1"
        )
    return kept_repeats * units * words_for(samples) * 8 + _RECORD_OVERHEAD


def open_for_run(
    path: str | os.PathLike[str], settings: Mapping[str, Any], *, resume: bool
) -> PatternStore:
    """The store a run writes to: a new one, or (``resume``) one made with equal settings."""
    return PatternStore.resume(path, settings) if resume else PatternStore.create(path, settings)


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail early, before any scoring starts, if the store file cannot be created or written.

    Args:
        path: the store file to be created or resumed.

    Raises:
        StoreError: the path is a directory, its parent directory is missing or not writable,
            or the existing file is not writable.
    """
    target = Path(path)
    if target.is_dir():
        raise StoreError(f"store path {target} is a directory; give a file path such as run.h5")
    if target.exists():
        if not target.is_file():
            raise StoreError(f"store path {target} is not a regular file; choose another path")
        if not os.access(target, os.R_OK | os.W_OK):
            raise StoreError(
                f"store {target} is not writable; fix its permissions or choose another path"
            )
        return
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise StoreError(
            f"cannot create store {target}: directory {parent} does not exist; create it first"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create store {target}: directory {parent} is not writable")


def _json_default(value: Any) -> Any:
    """Let numpy scalars/arrays and paths through ``json.dumps``; they come up in metadata."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} cannot be stored: {exc}; pass JSON-able values") from exc


def _normalise(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as they will read back (tuples -> lists, numpy -> Python), so equal means equal."""
    if not isinstance(settings, Mapping):
        raise StoreError(f"store settings must be a dict, got {type(settings).__name__}")
    result: dict[str, Any] = json.loads(_to_json(dict(settings), "store settings"))
    return result


_ABSENT = object()


def _show(value: Any) -> str:
    return "<absent>" if value is _ABSENT else json.dumps(value, sort_keys=True)


def _settings_diff(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """``"seed 0 != 1"`` for each key whose stored and wanted values differ, in stable order."""
    diffs: list[str] = []
    for key in sorted(set(stored) | set(wanted)):
        old = stored.get(key, _ABSENT)
        new = wanted.get(key, _ABSENT)
        # Equal values (1 == 1.0) match; so does NaN with NaN, through the JSON text.
        if old != new and _show(old) != _show(new):
            diffs.append(f"{key} {_show(old)} != {_show(new)}")
    return diffs


def _as_text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _version() -> str:
    try:
        return _metadata.version("swapprobe")
    except _metadata.PackageNotFoundError:
        return "unknown"


def _layer_table(layers: tuple[LayerInfo, ...]) -> np.ndarray:
    """The layer index as a compound array of fixed-length UTF-8 text.

    Fixed-length (sized to the longest entry of this record) rather than variable-length
    strings: HDF5 keeps variable-length strings in a global heap that costs about 2 KB per
    record, as much as everything else in a scores-only record.
    """
    rows = [
        (
            info.name.encode("utf-8"),
            info.op.encode("utf-8"),
            json.dumps([int(d) for d in info.shape]).encode("utf-8"),
            int(info.offset),
            int(info.size),
        )
        for info in layers
    ]

    def text(column: int) -> np.dtype:
        return h5py.string_dtype("utf-8", max([len(row[column]) for row in rows], default=1) or 1)

    dtype = np.dtype(
        [
            ("name", text(0)),
            ("op", text(1)),
            ("shape", text(2)),
            ("offset", np.int64),
            ("size", np.int64),
        ]
    )
    return np.array(rows, dtype=dtype)


def _chunk_rows(width: int) -> int:
    return max(1, _CHUNK_BYTES // (8 * max(1, width)))


# --- the store ---------------------------------------------------------------------------


class PatternStore:
    """One HDF5 file of model records, written by one process, readable by many afterwards.

    Make one with :meth:`create` (new file), :meth:`resume` (continue a run with equal
    settings) or :meth:`open` (read-only). Use it as a context manager so the file is closed.
    """

    def __init__(
        self, path: Path, handle: h5py.File, writable: bool, guard: GuardedFile | None = None
    ) -> None:
        """Wrap an already validated file; use the classmethods instead of calling this."""
        self.path = path
        self._file: h5py.File | None = handle
        self._guard = guard  # the file a writable store writes through (see swapprobe.safe_io)
        self.writable = writable
        self.settings: dict[str, Any] = json.loads(_as_text(handle.attrs["settings"]))

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], settings: Mapping[str, Any]) -> PatternStore:
        """Create a new store; refuse (and leave untouched) anything already at ``path``.

        Args:
            path: the file to create.
            settings: JSON-able run settings that decide the numbers (S, seed, repeats, ...).

        Returns:
            The store, open for writing.

        Raises:
            StoreError: the path exists, is a directory, or cannot be created.
        """
        target = Path(path)
        wanted = _normalise(settings)
        if target.is_dir():
            check_writable(target)
        if target.exists():
            raise StoreError(
                f"{target} exists; pass {{resume=True}} to continue it, or choose another path"
            )
        check_writable(target)
        try:
            guard = GuardedFile(target, create=True)
        except FileExistsError as exc:
            raise StoreError(
                f"{target} exists; pass {{resume=True}} to continue it, or choose another path"
            ) from exc
        except OSError as exc:
            raise StoreError(f"cannot create store {target}: {exc}") from exc
        handle: h5py.File | None = None
        try:
            handle = h5py.File(guard, "w", track_order=True)
            handle.attrs["format"] = FORMAT
            handle.attrs["format_version"] = FORMAT_VERSION
            handle.attrs["swapprobe_version"] = _version()
            handle.attrs["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            handle.attrs["settings"] = json.dumps(wanted, sort_keys=True)
            for group in (_MODELS, _PARTIAL, _STATE):
                handle.create_group(group, track_order=True)
            handle.flush()
            if guard.failure is not None:
                raise guard.failure
        except BaseException as exc:
            failure = guard.failure
            _close_quietly(handle, guard)
            target.unlink(missing_ok=True)
            if failure is not None:
                raise _write_error(target, "its header", failure, "it was removed") from exc
            raise
        return cls(target, handle, writable=True, guard=guard)

    @classmethod
    def resume(cls, path: str | os.PathLike[str], settings: Mapping[str, Any]) -> PatternStore:
        """Continue a store made with equal settings, or create it if it does not exist.

        Records half-written by an interrupted run are deleted; complete ones stay, and the
        caller skips them with :meth:`has`.

        Args:
            path: the store file.
            settings: the run settings; must equal the stored ones exactly.

        Returns:
            The store, open for writing.

        Raises:
            StoreError: the file is not a swapprobe store, was made with other settings (every
                differing key is listed), is locked by another process, or is not writable.
        """
        target = Path(path)
        wanted = _normalise(settings)
        check_writable(target)
        if not target.exists():
            return cls.create(target, wanted)
        # Validate read-only first, so a foreign or mismatching file is never modified.
        with cls.open(target) as existing:
            diffs = _settings_diff(existing.settings, wanted)
        if diffs:
            raise StoreError(
                f"store {target} was made with other settings: {', '.join(diffs)}; "
                "use another {store} path"
            )
        try:
            guard = GuardedFile(target, create=False)
        except BlockingIOError as exc:
            raise _locked(target) from exc
        except OSError as exc:
            raise StoreError(f"cannot open store {target} for writing: {exc}") from exc
        try:
            handle = cls._open_handle(target, "r+", guard)
        except BaseException:
            guard.close()
            raise
        try:
            partial = handle.require_group(_PARTIAL)
            handle.require_group(_STATE)
            for leftover in list(partial):
                del partial[leftover]
            handle.flush()
            if guard.failure is not None:
                raise guard.failure
        except BaseException as exc:
            failure = guard.failure
            _close_quietly(handle, guard)
            if failure is not None:
                raise _write_error(target, "a resume", failure, "it is as it was") from exc
            raise
        return cls(target, handle, writable=True, guard=guard)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> PatternStore:
        """Open a store read-only (no writer may have it open at the same time).

        Args:
            path: the store file.

        Returns:
            The store; :meth:`write` and :meth:`write_state` raise on it.

        Raises:
            StoreError: the file is missing, not HDF5, not a swapprobe store, from a newer
                format, or open for writing by another process.
        """
        target = Path(path)
        if not target.is_file():
            raise StoreError(f"no store at {target}; check the path")
        return cls(target, cls._open_handle(target, "r"), writable=False)

    @staticmethod
    def _open_handle(
        target: Path, mode: Literal["r", "r+"], guard: GuardedFile | None = None
    ) -> h5py.File:
        """Open an existing file and make sure it is a store this code can read (through
        ``guard`` when it is opened for writing)."""
        # Written to, another path helps; read (inspect, rescore), a store must be given.
        other = "choose another {store} path" if mode != "r" else "give a swapprobe store file"
        if not h5py.is_hdf5(target):
            raise StoreError(f"{target} is not an HDF5 file; {other}")
        try:
            handle = h5py.File(target if guard is None else guard, mode)
        except _HDF5_ERRORS as exc:
            text = str(exc).lower()
            if "unable to lock file" in text or "file locking" in text:
                raise _locked(target) from exc
            if "truncated file" in text or "signature" in text or "superblock" in text:
                raise StoreError(
                    f"store {target} is damaged (truncated or cut short while being written "
                    f"or copied); the records in it cannot be read; {other}"
                ) from exc
            raise DamagedStoreError(
                f"store {target} is damaged ({_reason(exc)}); its header cannot be read, so "
                "none of its records can be; score into a new store"
            ) from exc
        try:
            attrs = handle.attrs
            if _as_text(attrs.get("format", "")) != FORMAT or _MODELS not in handle:
                raise StoreError(
                    f"{target} is an HDF5 file but not a swapprobe store; {other}"
                )
            version = int(attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise StoreError(
                    f"{target} has store format {version}, newer than this "
                    f"swapprobe reads ({FORMAT_VERSION}); upgrade swapprobe"
                )
            try:
                settings = json.loads(_as_text(attrs["settings"]))
            except (KeyError, ValueError) as exc:
                raise StoreError(
                    f"{target} is a damaged swapprobe store (no readable "
                    f"settings); {other}"
                ) from exc
            if not isinstance(settings, dict):
                raise StoreError(
                    f"{target} is a damaged swapprobe store (settings are not a "
                    f"mapping); {other}"
                )
            len(handle[_MODELS])  # the list of records must be readable too
        except _HDF5_ERRORS as exc:
            try:
                raise _damage_report(target, handle, exc, patterns=False) from exc
            finally:
                handle.close()
        except BaseException:
            handle.close()
            raise
        return handle

    # --- plumbing ------------------------------------------------------------------------
    @property
    def _h5(self) -> h5py.File:
        if self._file is None:
            raise StoreError(f"store {self.path} is closed")
        return self._file

    def _writable_h5(self) -> h5py.File:
        handle = self._h5
        if not self.writable:
            raise StoreError(f"store {self.path} was opened read-only; use resume() to add to it")
        return handle

    def _group(self, key: str) -> h5py.Group | None:
        """The complete record of ``key``, or None; checks the key to rule out name clashes."""
        with self._readable():
            models = self._h5[_MODELS]
            name = group_name(key)
            if name not in models:
                return None
            group = models[name]
            stored = _as_text(group.attrs.get("key", ""))
        if stored != key:
            # names are the key escaped (or its SHA-256): a different key there is damage
            raise self._damaged(
                KeyError(f"the record of {key[:60]!r} holds a damaged key"),
                patterns=False,
            )
        return group

    def close(self) -> None:
        """Flush and close the file; closing twice is fine.

        Every write already ended with a flush, so a store whose disk filled up closes quietly
        at its last complete state (the write that failed said so)."""
        handle, guard = self._file, self._guard
        if handle is None:
            return
        self._file = self._guard = None
        try:
            if self.writable:
                handle.flush()
            handle.close()
        except BaseException:
            if guard is None or guard.failure is None:
                raise
            _close_quietly(handle, None)
        finally:
            if guard is not None:
                guard.close()

    @contextmanager
    def _readable(self, *, patterns: bool = False) -> Iterator[None]:
        """Turn what h5py raises on damaged bytes into one DamagedStoreError that says which
        records can still be read (``patterns``: counting their pattern data too)."""
        try:
            yield
        except _HDF5_ERRORS as exc:
            raise self._damaged(exc, patterns=patterns) from exc

    def _damaged(self, error: BaseException, *, patterns: bool) -> DamagedStoreError:
        return _damage_report(self.path, self._file, error, patterns=patterns)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._file is None else ("rw" if self.writable else "r")
        return f"PatternStore({str(self.path)!r}, {state})"

    # --- records -------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        """Whether a complete record of ``key`` exists (half-written ones never count)."""
        return self._group(key) is not None

    def keys(self) -> list[str]:
        """Original keys of all complete records, in the order they were completed.

        A record written again moves to the end.
        """
        with self._readable():
            models = self._h5[_MODELS]
            return [_as_text(models[name].attrs["key"]) for name in models]

    def __len__(self) -> int:
        with self._readable():
            return len(self._h5[_MODELS])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.has(key)

    def write(self, record: ModelRecord) -> None:
        """Store one record atomically, replacing any earlier record of the same key.

        Args:
            record: the record; scores are stored as float64, patterns must be 2-D unsigned
                integer arrays ``(V, W)``.

        Raises:
            StoreError: the store is read-only or closed, or the record holds values that
                cannot be stored (non-JSON metadata, malformed patterns).
            DiskFullError: the disk filled up; the store keeps every record written before
                and is read-only from then on.
        """
        handle = self._writable_h5()
        if not isinstance(record.key, str) or not record.key:
            raise StoreError("a model record needs a non-empty string key")
        # Validate and convert everything before touching the file.
        metadata_text = _to_json(record.metadata, f"metadata of model {record.key!r}")
        scores = {
            str(metric): np.atleast_1d(np.asarray(values, dtype=np.float64))
            for metric, values in record.scores.items()
        }
        for metric, values in scores.items():
            if values.ndim != 1:
                raise StoreError(
                    f"score {metric!r} of model {record.key!r} must be one value "
                    f"per repeat, got shape {values.shape}"
                )
        patterns = {
            self._repeat_index(record.key, r): self._packed(record.key, r, a)
            for r, a in record.patterns.items()
        }
        layers = _layer_table(record.layers)
        arrays = {
            str(name): np.asarray(values, dtype=np.float64)
            for name, values in record.arrays.items()
        }
        with self._guarded(f"model {record.key[:80]!r}"):
            self._write_group(handle, record, metadata_text, scores, patterns, layers, arrays)

    def _write_group(
        self,
        handle: h5py.File,
        record: ModelRecord,
        metadata_text: str,
        scores: dict[str, np.ndarray],
        patterns: dict[int, np.ndarray],
        layers: np.ndarray,
        arrays: dict[str, np.ndarray],
    ) -> None:
        """Build the record under /partial, link it into /models, flush (the commit)."""
        name = group_name(record.key)
        partial = handle.require_group(_PARTIAL)
        if name in partial:
            del partial[name]
        group = partial.create_group(name, track_order=True)
        try:
            group.attrs["key"] = record.key
            group.attrs["name"] = str(record.name)
            group.attrs["metadata"] = metadata_text
            score_group = group.create_group("scores", track_order=True)
            for metric, values in scores.items():
                dataset = score_group.create_dataset(group_name(metric), data=values)
                dataset.attrs["metric"] = metric
            group.create_dataset("layers", data=layers)
            if arrays:
                array_group = group.create_group("arrays", track_order=True)
                for array_name, values in arrays.items():
                    dataset = array_group.create_dataset(group_name(array_name), data=values)
                    dataset.attrs["name"] = array_name
            pattern_group = group.create_group("patterns", track_order=True)
            for repeat in sorted(patterns):
                self._write_patterns(pattern_group, str(repeat), patterns[repeat])
            models = handle[_MODELS]
            if name in models:
                del models[name]
            handle.move(f"{_PARTIAL}/{name}", f"{_MODELS}/{name}")
        except BaseException:
            if name in partial:
                del partial[name]
            raise
        handle.flush()

    @contextmanager
    def _guarded(self, what: str) -> Iterator[None]:
        """A write whose disk failure leaves the store at its last complete state, reopened
        read-only, and raises one line that says so."""
        guard = self._guard
        cause: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            if guard is None or guard.failure is None:
                raise
            cause = exc
        if guard is None or guard.failure is None:
            return
        failure = guard.failure
        self._fall_back_to_read_only()
        kept = (
            f"it keeps the {len(self)} record(s) finished before, readable"
            if self._file is not None
            else "it keeps its last complete state"
        )
        raise _write_error(self.path, what, failure, kept) from (cause or failure)

    def _fall_back_to_read_only(self) -> None:
        """Close a store whose writes failed without touching its file again, then open its
        last complete state read-only (so ``len`` and reads still work for the caller)."""
        handle, guard = self._file, self._guard
        self._file = self._guard = None
        self.writable = False
        _close_quietly(handle, guard)
        with contextlib.suppress(StoreError):
            self._file = self._open_handle(self.path, "r")

    @staticmethod
    def _repeat_index(key: str, repeat: Any) -> int:
        if isinstance(repeat, bool) or not isinstance(repeat, int | np.integer) or repeat < 0:
            raise StoreError(f"pattern repeat {repeat!r} of model {key!r} must be an integer >= 0")
        return int(repeat)

    @staticmethod
    def _packed(key: str, repeat: int, array: Any) -> np.ndarray:
        words = np.asarray(array)
        if words.ndim != 2 or words.dtype.kind != "u":
            raise StoreError(
                f"patterns of model {key!r}, repeat {repeat} must be a (V, W) "
                f"unsigned integer array, got {words.dtype} {words.shape}"
            )
        return np.ascontiguousarray(words, dtype=np.uint64)

    @staticmethod
    def _write_patterns(group: h5py.Group, name: str, words: np.ndarray) -> None:
        """One compressed, chunked pattern array; chunking needs at least one row."""
        units, width = words.shape
        if units == 0 or width == 0:
            group.create_dataset(name, data=words)
            return
        group.create_dataset(
            name,
            data=words,
            chunks=(min(units, _chunk_rows(width)), width),
            compression="gzip",
            compression_opts=_GZIP_LEVEL,
            shuffle=True,
        )

    def read(self, key: str, *, patterns: bool = True) -> ModelRecord:
        """Read one complete record.

        Args:
            key: the record's key.
            patterns: also read the kept pattern arrays; False reads no pattern data at all.

        Returns:
            The record as written (scores float64, patterns uint64).

        Raises:
            StoreError: no complete record of ``key`` exists, or the store is closed.
        """
        group = self._group(key)
        if group is None:
            raise StoreError(f"no model {key!r} in store {self.path}; list them with keys()")
        return self._read_group(group_name(key), patterns=patterns)

    def records(self, *, patterns: bool = False) -> Iterator[ModelRecord]:
        """Stream all complete records in completion order, one at a time.

        Args:
            patterns: also read each record's pattern arrays.

        Yields:
            Records; only the current one is held in memory.
        """
        with self._readable(patterns=patterns):
            models = self._h5[_MODELS]
            names = list(models)
        for name in names:
            yield self._read_group(name, patterns=patterns)

    def _read_group(self, name: str, *, patterns: bool) -> ModelRecord:
        """One record; damaged bytes are a DamagedStoreError that names the damaged records
        and counts the readable ones (not a KeyError from deep inside h5py)."""
        with self._readable(patterns=patterns):
            return self._parse_group(self._h5[_MODELS][name], patterns=patterns)

    @staticmethod
    def _parse_group(group: h5py.Group, *, patterns: bool) -> ModelRecord:
        scores = {
            _as_text(dataset.attrs["metric"]): np.asarray(dataset[()], dtype=np.float64)
            for dataset in group["scores"].values()
        }

        layers = tuple(
            LayerInfo(
                _as_text(row["name"]),
                _as_text(row["op"]),
                tuple(json.loads(_as_text(row["shape"]))),
                int(row["offset"]),
                int(row["size"]),
            )
            for row in group["layers"][()]
        )
        kept: dict[int, np.ndarray] = {}
        if patterns:
            for name in sorted(group["patterns"], key=int):
                kept[int(name)] = group["patterns"][name][()]
        arrays = {
            _as_text(dataset.attrs["name"]): np.asarray(dataset[()], dtype=np.float64)
            for dataset in (group["arrays"].values() if "arrays" in group else ())
        }
        metadata = json.loads(_as_text(group.attrs["metadata"]))
        # the one cross-field check: the gradient pass's per-layer rows are named in the
        # metadata, so flipped bytes in either show as a count that disagrees
        rows = metadata.get(GRADIENT_ROW_NAMES)
        gradient = arrays.get(GRADIENT_ROWS)
        if rows is not None and gradient is not None and len(gradient) != len(rows):
            raise KeyError(f"{GRADIENT_ROWS}: {len(gradient)} rows for {len(rows)} names")
        return ModelRecord(
            key=_as_text(group.attrs["key"]),
            name=_as_text(group.attrs["name"]),
            metadata=metadata,
            scores=scores,
            layers=layers,
            patterns=kept,
            arrays=arrays,
        )

    def kept_repeats(self, key: str) -> list[int]:
        """Repeat indices whose patterns ``key`` kept, without reading pattern data."""
        group = self._group(key)
        if group is None:
            raise StoreError(f"no model {key!r} in store {self.path}; list them with keys()")
        with self._readable():
            return sorted(int(name) for name in group["patterns"])

    # --- search state --------------------------------------------------------------------
    def write_state(self, name: str, state: Mapping[str, Any]) -> None:
        """Save a JSON-able state (e.g. a search checkpoint), replacing the previous one.

        Args:
            name: the state's name, e.g. ``"evolution"``.
            state: JSON-able mapping.

        Raises:
            StoreError: the store is read-only or closed, or ``state`` is not JSON-able.
        """
        handle = self._writable_h5()
        text = _to_json(dict(state), f"state {name!r}")
        with self._guarded(f"state {name!r}"):
            group = handle.require_group(_STATE).require_group(group_name(name))
            group.attrs["json"] = text  # one attribute write: the old or the new value
            handle.flush()

    def read_state(self, name: str) -> dict[str, Any] | None:
        """The last state saved under ``name``, or None if there is none."""
        handle = self._h5
        with self._readable():
            if _STATE not in handle:
                return None
            states = handle[_STATE]
            key = group_name(name)
            if key not in states or "json" not in states[key].attrs:
                return None
            value: dict[str, Any] = json.loads(_as_text(states[key].attrs["json"]))
        return value

    # --- summary -------------------------------------------------------------------------
    def summary(self) -> StoreSummary:
        """Counts and sizes of the store; reads only metadata, never pattern data."""
        handle = self._h5
        with self._readable():
            models = handle[_MODELS]
            blocks = 0
            pattern_bytes = 0
            for name in models:
                pattern_group = models[name].get("patterns") or {}
                for repeat in pattern_group:
                    blocks += 1
                    pattern_bytes += int(pattern_group[repeat].id.get_storage_size())
            n_models = len(models)
            created = _as_text(handle.attrs.get("created", ""))
            version = _as_text(handle.attrs.get("swapprobe_version", "unknown"))
            format_version = int(handle.attrs.get("format_version", FORMAT_VERSION))
        if self.writable:
            with self._guarded("its summary"):
                handle.flush()
        return StoreSummary(
            path=self.path,
            settings=dict(self.settings),
            n_models=n_models,
            n_pattern_blocks=blocks,
            file_bytes=os.path.getsize(self.path),
            pattern_bytes=pattern_bytes,
            created=created,
            version=version,
            format_version=format_version,
        )


# --- failures ----------------------------------------------------------------------------


def _reason(error: BaseException) -> str:
    """What h5py (or the JSON reader) said about the damage, cut to one short line."""
    # a KeyError's str() is the repr of its text; the text is what h5py said
    said = error.args[0] if isinstance(error, KeyError) and error.args else error
    text = str(said).strip().splitlines()
    return text[0][:120] if text else type(error).__name__


def _damage_report(
    target: Path, handle: h5py.File | None, error: BaseException, *, patterns: bool
) -> DamagedStoreError:
    """The one-line report on a damaged store: what h5py said, the records it cannot read
    (named up to three), and how many it still can."""
    where = f"store {target} is damaged ({_reason(error)})"
    survey = None if handle is None else _survey(handle, patterns=patterns)
    if survey is None:
        return DamagedStoreError(
            f"{where}; its list of records cannot be read, so none of its records can be; "
            "score into a new store"
        )
    good, bad = survey
    named = ", ".join(repr(key[:60]) for key in bad[:_NAMED])
    more = f" and {len(bad) - _NAMED} more" if len(bad) > _NAMED else ""
    broken = f"; damaged records: {named}{more}" if bad else ""
    return DamagedStoreError(
        f"{where}{broken}; {len(good)} of {len(good) + len(bad)} records are still readable; "
        "score into a new store"
    )


def _survey(handle: h5py.File, *, patterns: bool) -> tuple[list[str], list[str]] | None:
    """Keys of the records that read whole and of those that do not (their key, or their
    name where even the key is damaged); None when the list of records cannot be read."""
    try:
        models = handle[_MODELS]
        names = list(models)
    except _HDF5_ERRORS:
        return None
    good: list[str] = []
    bad: list[str] = []
    for name in names:
        try:
            record = PatternStore._parse_group(models[name], patterns=patterns)
            if group_name(record.key) != name:
                raise KeyError(name)  # a damaged key
        except _HDF5_ERRORS:
            bad.append(urllib.parse.unquote(name))  # the name is the key, %-escaped
            continue
        good.append(record.key)
    return good, bad


def _locked(target: Path) -> StoreError:
    return StoreError(
        f"store {target} is open in another process (HDF5 file lock); wait for that run to finish"
    )


def _write_error(target: Path, what: str, failure: OSError, state: str) -> SwapprobeError:
    """One line for a write the disk refused: disk full (or another OS error), and ``state``,
    what the store holds now."""
    if is_disk_full(failure):
        return DiskFullError(
            f"disk full: store {target} could not take {what} ({failure.strerror}); {state}; "
            "free space, then continue with {resume=True}"
        )
    return StoreError(f"cannot write store {target} ({failure.strerror}) at {what}; {state}")


def _close_quietly(handle: h5py.File | None, guard: GuardedFile | None) -> None:
    """Close after a failed write: whatever HDF5 still tries to write is ignored by the guard,
    and whatever it raises about its torn in-memory state is of no use to anyone."""
    if handle is not None:
        with contextlib.suppress(Exception):
            handle.close()
    if guard is not None:
        guard.close()
