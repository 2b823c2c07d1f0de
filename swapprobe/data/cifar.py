"""The ``"cifar10"`` / ``"cifar100"`` sources: find the official python-format folder, download
it (md5-checked, safely extracted) when absent, and read its pickled batch files without ever
running code from them.

The format: pickled dicts, ``data`` uint8 (N, 3072) in CHW order. The folder
(``cifar-10-batches-py`` / ``cifar-100-python``) is looked for in ``data_dir``, then
``$SWAPPROBE_DATA``, then the cache dir (``$XDG_CACHE_HOME/swapprobe`` or
``~/.cache/swapprobe``); each may be the folder itself or its parent. ``pick="first"`` reads only
the batch files it needs.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from swapprobe.data.common import (
    Batch,
    LoadRequest,
    Normalize,
    Pick,
    Split,
    draw_indices,
    finish_batch,
    normalisation_note,
    normalise,
    reason_of,
    resize_images,
    to_unit,
)
from swapprobe.errors import DataError, DownloadError


@dataclass(frozen=True)
class _CifarSpec:
    """Everything that differs between CIFAR-10 and CIFAR-100 in the official python format."""

    title: str
    folder: str
    url: str
    md5: str
    size: int  # archive bytes, for progress when the server sends no Content-Length
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str


CIFAR_SPECS: dict[str, _CifarSpec] = {
    "cifar10": _CifarSpec(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        size=170_498_071,
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key="labels",
    ),
    "cifar100": _CifarSpec(
        title="CIFAR-100",
        folder="cifar-100-python",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        size=169_001_437,
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key="fine_labels",
    ),
}

_DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


def load_cifar(name: str, request: LoadRequest) -> Batch:
    """The registered loader of ``"cifar10"`` and ``"cifar100"``: find the folder (downloading
    it when allowed), then read the requested images."""
    spec = CIFAR_SPECS[name]
    root = _find_cifar(spec, request.data_dir)
    if root is None:
        if not request.download:
            raise DataError(_not_found_message(spec, request.data_dir))
        try:
            root = download_cifar(
                name, _download_destination(spec, request.data_dir), request.progress
            )
        except DownloadError as error:  # say where it was looked for, then why no download
            looked = ", ".join(str(p) for p in data_places(request.data_dir))
            raise DownloadError(f"{spec.title} is not in {looked}; {error.message}") from None
    batch = from_cifar(
        name,
        root,
        request.batch_size,
        request.seed,
        request.input_size,
        request.pick,
        request.split,
        request.normalize,
    )
    # the labels of the same images, for the labelled gradient pass (ZiCo, L-SWAG, VKDNW)
    labels = cifar_labels(
        name,
        request.batch_size,
        data_dir=root,
        seed=request.seed,
        pick=request.pick,
        split=request.split,
    )
    return replace(batch, labels=labels, dataset=name)


def cifar_root(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the official CIFAR folder is, or where a download would put it.

    Looks in ``data_dir``, ``$SWAPPROBE_DATA`` and the cache dir, in that order; each may be the
    folder itself or its parent. When none holds it, returns the folder inside the first
    writable one of them (the cache dir when none is writable).

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        data_dir: looked in first.

    Returns:
        The path of the ``cifar-10-batches-py`` / ``cifar-100-python`` folder.

    Raises:
        DataError: ``name`` is not a CIFAR dataset.
    """
    spec = _cifar_spec(name)
    found = _find_cifar(spec, data_dir)
    return found if found is not None else _download_destination(spec, data_dir)


def download_cifar(
    name: str, dest: Path, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Download, verify and extract the official CIFAR archive into ``dest``.

    The archive streams into a temporary file beside ``dest``; only after its md5 matches and
    it has been extracted (with tarfile's ``"data"`` filter, which refuses absolute paths,
    links out of the tree and devices) is the folder moved into place, so an interrupted run
    never leaves a half-written dataset that a later run would trust.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        dest: the official folder to create (``.../cifar-10-batches-py``) or its parent.
        progress: called as ``progress(done_bytes, total_bytes)`` after each chunk.

    Returns:
        The path of the extracted official folder.

    Raises:
        DataError: ``name`` is not a CIFAR dataset.
        DownloadError: network failure, checksum mismatch, or an archive that cannot be
            extracted; nothing partial is left behind.
    """
    spec = _cifar_spec(name)
    dest = Path(dest)
    if dest.name != spec.folder:
        dest = dest / spec.folder
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _download_error(spec, f"cannot create {parent}: {reason_of(exc)}") from exc

    try:
        fd, part_name = tempfile.mkstemp(
            dir=parent, prefix=f".{spec.folder}.", suffix=".tar.gz.part"
        )
    except OSError as exc:
        raise _download_error(spec, f"cannot write in {parent}: {reason_of(exc)}") from exc
    part = Path(part_name)
    staging: Path | None = None
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(spec, out, progress)
        if digest != spec.md5:
            raise DownloadError(
                f"checksum mismatch for {spec.url} (md5 {digest}, expected {spec.md5}); the "
                f"download was removed: try again, or put the official '{spec.folder}' folder "
                f"in {places_hint()}"
            )
        try:
            staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{spec.folder}.extract."))
            _extract(spec, part, staging)
            extracted = staging / spec.folder
            if not extracted.is_dir():
                raise _download_error(spec, f"the archive holds no '{spec.folder}' folder")
            if not dest.exists():  # another process may have finished first; keep its copy
                os.replace(extracted, dest)
        except OSError as exc:
            raise _download_error(spec, f"cannot extract into {parent}: {reason_of(exc)}") from exc
    finally:
        part.unlink(missing_ok=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return dest


def _fetch(spec: _CifarSpec, out: BinaryIO, progress: Callable[[int, int], None] | None) -> str:
    """Stream the archive into ``out``; return its md5 hex digest."""
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(spec.url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length") if response.headers else None
            total = int(length) if length and str(length).isdigit() else spec.size
            done = 0
            if progress is not None:
                progress(done, total)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                md5.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
        raise _download_error(spec, reason_of(exc)) from exc
    return md5.hexdigest()


def _extract(spec: _CifarSpec, archive: Path, into: Path) -> None:
    """Extract safely: the ``"data"`` filter, or an equivalent check on old Python 3.11."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                root = into.resolve()
                for member in tar.getmembers():
                    target = (into / member.name).resolve()
                    if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
                        raise tarfile.TarError(f"unsafe member {member.name!r}")
                tar.extractall(into)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _download_error(spec, f"cannot extract the archive: {reason_of(exc)}") from exc


def _cifar_spec(name: str) -> _CifarSpec:
    spec = CIFAR_SPECS.get(str(name).lower())
    if spec is None:
        raise DataError(f"unknown CIFAR dataset {name!r}: use cifar10 or cifar100")
    return spec


def _cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "swapprobe"


def data_places(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The places a dataset folder is looked for, in order: ``data_dir``,
    ``$SWAPPROBE_DATA``, the cache dir (CIFAR's and every other named dataset's)."""
    places = []
    if data_dir is not None and os.fspath(data_dir) != "":
        places.append(Path(data_dir).expanduser())
    env = os.environ.get("SWAPPROBE_DATA")
    if env:
        places.append(Path(env).expanduser())
    places.append(_cache_dir())
    return places


def _find_cifar(spec: _CifarSpec, data_dir: str | os.PathLike[str] | None) -> Path | None:
    for place in data_places(data_dir):
        if (place / spec.folder).is_dir():
            return place / spec.folder
        if is_cifar_folder(place, spec):
            return place
    return None


def is_cifar_folder(path: Path, spec: _CifarSpec) -> bool:
    """The official folder, by name, or by its first batch file and meta file under any name."""
    if not path.is_dir():
        return False
    if path.name == spec.folder:
        return True
    return (path / spec.train_files[0]).is_file() and (path / spec.meta_file).is_file()


def _download_destination(spec: _CifarSpec, data_dir: str | os.PathLike[str] | None) -> Path:
    places = data_places(data_dir)
    chosen = next((p for p in places if _writable(p)), places[-1])
    return chosen if chosen.name == spec.folder else chosen / spec.folder


def _writable(path: Path) -> bool:
    """Whether ``path`` exists as a writable folder, or could be created."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def places_hint() -> str:
    """Where to put a dataset folder, in an error's words (``{data_dir}`` is the flag)."""
    return f"{{data_dir}}, $SWAPPROBE_DATA or {_cache_dir()}"


def _download_error(spec: _CifarSpec, reason: str) -> DownloadError:
    return DownloadError(
        f"could not download {spec.title} from {spec.url} ({reason}); put the official "
        f"'{spec.folder}' folder in {places_hint()}"
    )


def _not_found_message(spec: _CifarSpec, data_dir: str | os.PathLike[str] | None) -> str:
    looked = ", ".join(str(p) for p in data_places(data_dir))
    return (
        f"{spec.title} not found (looked in {looked}) and download is off; put the official "
        f"'{spec.folder}' folder in {places_hint()}"
    )


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, lists and dicts only: a data file must never run code."""

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def cifar_labels(
    name: str,
    batch_size: int,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    pick: Pick = "first",
    split: Split = "train",
) -> np.ndarray:
    """The class labels (int64) of the images ``load_batch(name, ...)`` returns for the same
    ``batch_size``, ``seed``, ``pick`` and ``split``, in the same order: what a labelled pass
    (a task loss at initialisation) needs beside the images. Never downloads."""
    spec = CIFAR_SPECS[name]
    root = _find_cifar(spec, data_dir)
    if root is None:
        raise DataError(_not_found_message(spec, data_dir))
    files = spec.train_files if split == "train" else spec.test_files
    read = partial(_read_cifar_labels, spec=spec)
    if pick == "first":
        return _first_rows(root, files, read, batch_size, f"labels but {name} {split}")
    everything = np.concatenate([read(root / f) for f in files])
    return everything[draw_indices(len(everything), batch_size, seed, f"{name} {split} in {root}")]


def _first_rows(
    root: Path, files: Sequence[str], read: Callable[[Path], np.ndarray], batch_size: int, what: str
) -> np.ndarray:
    """The first ``batch_size`` rows over ``files`` in order, reading only the files they
    need (images and labels take the same path, so they stay aligned)."""
    parts: list[np.ndarray] = []
    have = 0
    for file in files:
        if have >= batch_size:
            break
        part = read(root / file)
        parts.append(part[: batch_size - have])
        have += len(parts[-1])
    if have < batch_size:
        raise DataError(
            f"asked for {batch_size} {what} in {root} holds {have}; lower the batch size"
        )
    return np.concatenate(parts)


def _read_cifar_labels(path: Path, spec: _CifarSpec) -> np.ndarray:
    """One official batch file's labels as int64 (N,), checked against its images."""
    images = _read_cifar_file(path, spec)  # checks the file and its images
    content = _unpickle(path, spec)
    labels = content.get(spec.label_key.encode(), content.get(spec.label_key))
    if labels is None:
        raise DataError(f"{spec.title} file {path} has no '{spec.label_key}'; replace it")
    out = np.asarray(labels, dtype=np.int64)
    if out.shape != (len(images),):
        raise DataError(f"{spec.title} file {path} has labels of shape {out.shape}; replace it")
    return out


def _unpickle(path: Path, spec: _CifarSpec) -> Any:
    return unpickle_arrays(path, spec.title)


def unpickle_arrays(path: Path, title: str) -> Any:
    """A pickled dataset file of arrays, lists and dicts (never code: see
    :class:`_ArrayUnpickler`); ``title`` names the dataset in the error of a bad file."""
    try:
        with path.open("rb") as f:
            return _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means the same thing: a bad file
        raise DataError(
            f"cannot read {title} file {path} ({reason_of(exc)}); replace it with the "
            f"official file"
        ) from exc


def _read_cifar_file(path: Path, spec: _CifarSpec) -> np.ndarray:
    """Read one official batch file; return its images as uint8 (N, 3072)."""
    if not path.is_file():
        raise DataError(
            f"{spec.title} file {path} is missing; replace the folder with a complete copy of "
            f"the official '{spec.folder}'"
        )
    content = _unpickle(path, spec)

    def field(key: str) -> Any:
        # Official files are Python 2 pickles (bytes keys); re-pickled copies have str keys.
        return content.get(key.encode(), content.get(key))

    images = field("data") if isinstance(content, dict) else None
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 2
        or images.shape[1] != 3072
    ):
        got = (
            f"'data' of shape {images.shape} and dtype {images.dtype}"
            if isinstance(images, np.ndarray)
            else "no uint8 'data' array"
        )
        raise DataError(
            f"{spec.title} file {path} is malformed ({got}, expected uint8 (N, 3072)); replace "
            f"it with the official file"
        )
    labels = field(spec.label_key)
    if labels is not None and (not hasattr(labels, "__len__") or len(labels) != len(images)):
        raise DataError(
            f"{spec.title} file {path} is malformed ({len(images)} images but labels "
            f"'{spec.label_key}' do not match); replace it with the official file"
        )
    return images


def from_cifar(
    key: str,
    root: Path,
    batch_size: int,
    seed: int,
    input_size: tuple[int, int] | None,
    pick: Pick,
    split: Split,
    normalize: Normalize,
) -> Batch:
    spec = CIFAR_SPECS[key]
    files = spec.train_files if split == "train" else spec.test_files
    if pick == "first":
        read = partial(_read_cifar_file, spec=spec)
        flat = _first_rows(root, files, read, batch_size, f"images but {key} {split}")
        what = f"{key} {split} images 0-{batch_size - 1}"
    else:
        everything = np.concatenate([_read_cifar_file(root / f, spec) for f in files])
        index = draw_indices(len(everything), batch_size, seed, f"{key} {split} in {root}")
        flat = everything[index]
        what = f"{key} {split}, {batch_size} random images (seed {seed})"
    images = flat.reshape(-1, 3, 32, 32)
    norm = key if normalize == "auto" else normalize
    inputs, resized = resize_images(normalise(to_unit(images), norm), input_size)
    return finish_batch(inputs, f"{what} ({root})" + resized + normalisation_note(normalize))
