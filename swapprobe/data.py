"""Batches of inputs for scoring: CIFAR-10/100, image folders, .npy/.npz files, user arrays, and
an embedded synthetic default.

A SWAP-Score is only comparable between architectures scored on *the same* inputs, so every
loader here is deterministic and every :class:`Batch` carries a fingerprint of its exact bytes
and a readable description of where it came from.

Sources
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
    * ``"synthetic"``: dead-leaves images, needing no files and no network.

The synthetic model
    Natural images are well described by the *dead leaves* model (Matheron 1968; Lee, Mumford &
    Huang 2001): opaque objects of random, scale-invariant sizes occluding each other. Scoring
    untrained networks only needs inputs with natural-image statistics (strong local
    correlation, edges at all scales), not real content, so this is a dependable offline
    default. Each image is drawn independently from its own random stream (``SeedSequence(seed)``
    spawned per image, so the first k images of a larger set equal a set of k):

    1. ``K`` disks, front to back, each occluding everything behind it. Centres are uniform over
       the image; radii follow the scale-invariant power law p(r) ∝ r^-3 between r_min = 3 px and
       r_max = max(H, W) / 2; ``K`` is chosen so the expected disk area covers the image about
       seven times over, and the few pixels no disk reaches show a random background colour
       (the "last leaf").
    2. Colours: ``0.95 · g + 0.05 · u`` with one grey level ``g`` and three channel values
       ``u``, all uniform in [0, 1]: channels move together, as in photographs.
    3. A [1, 2, 1] / 4 binomial blur in each direction (edges replicated), standing in for the
       optics and pixel integration of a camera.

    The parameters were chosen by measurement, since noise is not an acceptable stand-in:
    Spearman ρ of SWAP with the authors' DARTS accuracies, 200 architectures of
    ``darts_cifar10_1000.csv`` (S = 16, 8 repeats, subset seed 0):

    ==========================================  =====
    CIFAR-10 (first 16 training images)         0.909
    dead leaves r_min 1 px, channel mix 0.5     0.705
    dead leaves r_min 3 px, channel mix 0.5     0.828
    dead leaves r_min 3 px, channel mix 0.8     0.887
    **dead leaves r_min 3 px, channel mix 0.95**  **0.914** (0.918 with image seed 1)
    ==========================================  =====

    On a second subset (seed 1) CIFAR-10 gave 0.897 and the default 0.908. Its adjacent-pixel
    correlation is 0.947 (CIFAR-10: 0.937).

    Rendering is vectorised over all disks of similar size at once (a stencil per radius
    octave, then ``np.minimum.at`` keeps the front-most disk per pixel): 256 images of 32×32
    take about 0.1 s.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import numpy as np

from swapprobe.errors import DataError, DownloadError, SettingsError

__all__ = [
    "DATASETS",
    "Batch",
    "cifar_root",
    "download_cifar",
    "fingerprint",
    "load_batch",
    "synthetic_images",
]

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "synthetic")
"""Dataset names :func:`load_batch` knows; anything else must be a path or an array."""

Pick = Literal["first", "random"]
Split = Literal["train", "test"]
Normalize = Literal["auto", "cifar10", "cifar100", "imagenet", "none"]

_PICKS = ("first", "random")
_SPLITS = ("train", "test")
_NORMALIZE = ("auto", "cifar10", "cifar100", "imagenet", "none")
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
_NPZ_PREFERRED = ("inputs", "x", "images")
_UNKNOWN_HINT = "use cifar10, cifar100, synthetic, or a path to an image folder or .npy/.npz file"

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
}


@dataclass(frozen=True)
class Batch:
    """The inputs a network is scored on, with where they came from and a fingerprint.

    Attributes:
        inputs: float32, C-contiguous, all finite; shape (S, C, H, W), or (S, F) (any shape with a
            leading sample axis) for arrays given by the user. Treat it as read-only: the
            fingerprint describes these bytes.
        source: human-readable origin, e.g. ``"cifar10 train images 0-15 (/data/cifar-10-...)"``.
        fingerprint: first 16 hex chars of the sha256 of shape, dtype and bytes of ``inputs``;
            identical data gives an identical fingerprint, so stored scores can be matched to
            the exact inputs that produced them.
    """

    inputs: np.ndarray
    source: str
    fingerprint: str


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


_CIFAR: dict[str, _CifarSpec] = {
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


# --------------------------------------------------------------------------------------------
# public entry point


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
) -> Batch:
    """Load S inputs from a named dataset, a path, or an array, ready to feed a network.

    Args:
        data: ``"cifar10"``, ``"cifar100"``, ``"synthetic"``, a path to an image folder or to a
            ``.npy``/``.npz`` file, or a numpy array (used exactly as given: only cast to float32,
            never scaled, even uint8; ``batch_size`` and ``pick`` ignored).
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

    Returns:
        The batch: float32 inputs, source description, fingerprint.

    Raises:
        SettingsError: batch_size below 2, unknown pick/split/normalize, bad input_size or seed.
        DataError: unknown dataset, missing path, malformed file, too few samples, NaN/inf.
        DownloadError: CIFAR is missing and could not be downloaded or failed its checksum.
    """
    _check_settings(batch_size, seed, input_size, pick, split, normalize)
    if isinstance(data, np.ndarray):
        return _from_user_array(data, input_size, normalize)
    if not isinstance(data, str | os.PathLike):
        raise DataError(f"unknown dataset of type {type(data).__name__}: {_UNKNOWN_HINT}")
    name = os.fspath(data)
    key = data.lower() if isinstance(data, str) else ""  # a Path is always a path
    if key in _CIFAR:
        spec = _CIFAR[key]
        root = _find_cifar(spec, data_dir)
        if root is None:
            if not download:
                raise DataError(_not_found_message(spec, data_dir))
            root = download_cifar(key, _download_destination(spec, data_dir), progress)
        return _from_cifar(key, root, batch_size, seed, input_size, pick, split, normalize)
    if key == "synthetic":
        return _from_synthetic(batch_size, seed, input_size, normalize)
    return _from_path(Path(name).expanduser(), batch_size, seed, input_size, pick, split, normalize)


# --------------------------------------------------------------------------------------------
# synthetic dead-leaves images


def synthetic_images(n: int, size: tuple[int, int] = (32, 32), seed: int = 0) -> np.ndarray:
    """Draw ``n`` dead-leaves images (see the module docstring for the model).

    Args:
        n: number of images (≥ 1).
        size: (H, W) in pixels.
        seed: non-negative; image i depends only on (seed, i), so output is bit-identical for
            the same arguments and the first k images do not depend on ``n``.

    Returns:
        float32 array (n, 3, H, W) with values in [0, 1], C-contiguous.

    Raises:
        SettingsError: ``n`` below 1, a non-positive size, or a negative seed.
    """
    if not _is_int(n) or n < 1:
        raise SettingsError(f"synthetic_images needs n >= 1 images, got {n!r}")
    height, width = _check_size(size, "size")
    if not _is_int(seed) or seed < 0:
        raise SettingsError(f"seed must be a non-negative integer, got {seed!r}")

    r_min = 3.0
    r_max = max(max(height, width) / 2.0, r_min)
    k = _disk_count(height, width, r_min, r_max)
    # Bound memory: a group of images shares one stencil pass; ~64k disks per group.
    group = max(1, 65_536 // k)
    streams = np.random.SeedSequence(int(seed)).spawn(n)
    out = np.empty((n, 3, height, width), dtype=np.float32)
    for start in range(0, n, group):
        rngs = [np.random.default_rng(s) for s in streams[start : start + group]]
        out[start : start + len(rngs)] = _dead_leaves(rngs, height, width, k, r_min, r_max)
    return out


def _disk_count(height: int, width: int, r_min: float, r_max: float) -> int:
    """Disks per image so that their expected total area covers the image about 7 times."""
    if r_max > r_min:
        # E[π r²] for p(r) = 2 r^-3 / (r_min^-2 - r_max^-2) on [r_min, r_max].
        mean_area = 2 * math.pi * math.log(r_max / r_min) / (r_min**-2 - r_max**-2)
    else:
        mean_area = math.pi * r_min**2
    return max(1, math.ceil(7.0 * height * width / mean_area))


def _dead_leaves(
    rngs: Sequence[np.random.Generator], height: int, width: int, k: int, r_min: float, r_max: float
) -> np.ndarray:
    """Render one group of dead-leaves images, one random stream per image."""
    n = len(rngs)
    cx = np.empty((n, k))
    cy = np.empty((n, k))
    radius = np.empty((n, k))
    colours = np.empty((n, k + 1, 3), dtype=np.float32)  # index k: background
    a, b = r_min**-2, r_max**-2
    for i, rng in enumerate(rngs):
        u = rng.random((k, 3))
        cx[i] = u[:, 0] * width - 0.5  # pixel centres sit at integer coordinates
        cy[i] = u[:, 1] * height - 0.5
        # Inverse CDF of p(r) ∝ r^-3 on [r_min, r_max].
        radius[i] = r_min if r_max <= r_min else (a - u[:, 2] * (a - b)) ** -0.5
        grey = rng.random((k + 1, 1))
        colours[i] = 0.95 * grey + 0.05 * rng.random((k + 1, 3))

    image = np.repeat(np.arange(n, dtype=np.int64), k)
    depth = np.tile(np.arange(k, dtype=np.int32), n)  # 0 = front-most
    cx, cy, radius = cx.ravel(), cy.ravel(), radius.ravel()
    front = np.full(n * height * width, k, dtype=np.int32)

    # Radius octaves (lo, hi]: one (2·hi + 1)² stencil of pixel offsets per disk of the octave.
    lo = 0.0
    hi = 1.0
    while lo < r_max:
        sel = (radius > lo) & (radius <= hi)
        if sel.any():
            _stamp(front, image[sel], depth[sel], cx[sel], cy[sel], radius[sel], hi, height, width)
        lo, hi = hi, hi * 2

    front = front.reshape(n, height, width)
    pixels = colours[np.arange(n)[:, None, None], front]  # (n, H, W, 3)
    pixels = _binomial_blur(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
    return pixels


def _stamp(
    front: np.ndarray,
    image: np.ndarray,
    depth: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    radius: np.ndarray,
    bound: float,
    height: int,
    width: int,
) -> None:
    """Write, per covered pixel, the smallest depth (front-most disk) of the given disks."""
    offsets = np.arange(int(2 * bound) + 1)
    xs = np.ceil(cx - radius).astype(np.int64)[:, None] + offsets  # (m, L)
    ys = np.ceil(cy - radius).astype(np.int64)[:, None] + offsets
    dx2 = (xs - cx[:, None]) ** 2
    dy2 = (ys - cy[:, None]) ** 2
    dx2[(xs < 0) | (xs >= width)] = np.inf  # outside the image: never inside a disk
    dy2[(ys < 0) | (ys >= height)] = np.inf
    inside = dy2[:, :, None] + dx2[:, None, :] <= (radius * radius)[:, None, None]
    disk, iy, ix = np.nonzero(inside)
    pixel = (image[disk] * height + ys[disk, iy]) * width + xs[disk, ix]
    np.minimum.at(front, pixel, depth[disk])


def _binomial_blur(x: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 along H and W with replicated edges; keeps values inside [min, max]."""
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    rows = 0.25 * p[:, :, :, :-2] + 0.5 * p[:, :, :, 1:-1] + 0.25 * p[:, :, :, 2:]
    out = 0.25 * rows[:, :, :-2] + 0.5 * rows[:, :, 1:-1] + 0.25 * rows[:, :, 2:]
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def _from_synthetic(
    batch_size: int, seed: int, input_size: tuple[int, int] | None, normalize: Normalize
) -> Batch:
    size = input_size or (32, 32)  # drawn at the target size: no resampling blur
    images = synthetic_images(batch_size, size, seed)
    norm = "cifar10" if normalize == "auto" else normalize
    inputs = _normalise(images, norm)
    source = f"synthetic dead-leaves {size[0]}x{size[1]}, seed {seed}"
    return _finish(inputs, source + _norm_note(normalize))


# --------------------------------------------------------------------------------------------
# CIFAR: locating, downloading, reading


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
        raise _download_error(spec, f"cannot create {parent}: {_reason(exc)}") from exc

    try:
        fd, part_name = tempfile.mkstemp(
            dir=parent, prefix=f".{spec.folder}.", suffix=".tar.gz.part"
        )
    except OSError as exc:
        raise _download_error(spec, f"cannot write in {parent}: {_reason(exc)}") from exc
    part = Path(part_name)
    staging: Path | None = None
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(spec, out, progress)
        if digest != spec.md5:
            raise DownloadError(
                f"checksum mismatch for {spec.url} (md5 {digest}, expected {spec.md5}); the "
                f"download was removed: try again, or put the official '{spec.folder}' folder "
                f"in {_places_hint()}"
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
            raise _download_error(spec, f"cannot extract into {parent}: {_reason(exc)}") from exc
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
        raise _download_error(spec, _reason(exc)) from exc
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
        raise _download_error(spec, f"cannot extract the archive: {_reason(exc)}") from exc


def _cifar_spec(name: str) -> _CifarSpec:
    spec = _CIFAR.get(str(name).lower())
    if spec is None:
        raise DataError(f"unknown CIFAR dataset {name!r}: use cifar10 or cifar100")
    return spec


def _cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "swapprobe"


def _locations(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The places CIFAR is looked for, in order: data_dir, $SWAPPROBE_DATA, cache dir."""
    places = []
    if data_dir is not None and os.fspath(data_dir) != "":
        places.append(Path(data_dir).expanduser())
    env = os.environ.get("SWAPPROBE_DATA")
    if env:
        places.append(Path(env).expanduser())
    places.append(_cache_dir())
    return places


def _find_cifar(spec: _CifarSpec, data_dir: str | os.PathLike[str] | None) -> Path | None:
    for place in _locations(data_dir):
        if (place / spec.folder).is_dir():
            return place / spec.folder
        if _is_cifar_folder(place, spec):
            return place
    return None


def _is_cifar_folder(path: Path, spec: _CifarSpec) -> bool:
    """The official folder, by name, or by its first batch file and meta file under any name."""
    if not path.is_dir():
        return False
    if path.name == spec.folder:
        return True
    return (path / spec.train_files[0]).is_file() and (path / spec.meta_file).is_file()


def _download_destination(spec: _CifarSpec, data_dir: str | os.PathLike[str] | None) -> Path:
    places = _locations(data_dir)
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


def _places_hint() -> str:
    return f"--data-dir, $SWAPPROBE_DATA or {_cache_dir()}"


def _download_error(spec: _CifarSpec, reason: str) -> DownloadError:
    return DownloadError(
        f"could not download {spec.title} from {spec.url} ({reason}); put the official "
        f"'{spec.folder}' folder in {_places_hint()}"
    )


def _not_found_message(spec: _CifarSpec, data_dir: str | os.PathLike[str] | None) -> str:
    looked = ", ".join(str(p) for p in _locations(data_dir))
    return (
        f"{spec.title} not found (looked in {looked}) and download is off; put the official "
        f"'{spec.folder}' folder in {_places_hint()}"
    )


def _reason(exc: BaseException) -> str:
    """A one-line reason for an exception (URLError wraps the useful one in ``reason``)."""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = str(exc.reason)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


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


def _read_cifar_file(path: Path, spec: _CifarSpec) -> np.ndarray:
    """Read one official batch file; return its images as uint8 (N, 3072)."""
    if not path.is_file():
        raise DataError(
            f"{spec.title} file {path} is missing; replace the folder with a complete copy of "
            f"the official '{spec.folder}'"
        )
    try:
        with path.open("rb") as f:
            content = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means the same thing: a bad file
        raise DataError(
            f"cannot read {spec.title} file {path} ({_reason(exc)}); replace it with the "
            f"official file"
        ) from exc

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


def _from_cifar(
    key: str,
    root: Path,
    batch_size: int,
    seed: int,
    input_size: tuple[int, int] | None,
    pick: Pick,
    split: Split,
    normalize: Normalize,
) -> Batch:
    spec = _CIFAR[key]
    files = spec.train_files if split == "train" else spec.test_files
    if pick == "first":
        parts: list[np.ndarray] = []
        have = 0
        for file in files:  # only as many files as the first S images need
            if have >= batch_size:
                break
            part = _read_cifar_file(root / file, spec)
            parts.append(part[: batch_size - have])
            have += len(parts[-1])
        if have < batch_size:
            raise DataError(
                f"asked for {batch_size} images but {key} {split} in {root} holds {have}; "
                f"lower the batch size"
            )
        flat = np.concatenate(parts)
        what = f"{key} {split} images 0-{batch_size - 1}"
    else:
        everything = np.concatenate([_read_cifar_file(root / f, spec) for f in files])
        index = _draw(len(everything), batch_size, seed, f"{key} {split} in {root}")
        flat = everything[index]
        what = f"{key} {split}, {batch_size} random images (seed {seed})"
    images = flat.reshape(-1, 3, 32, 32)
    norm = key if normalize == "auto" else normalize
    inputs, resized = _resize(_normalise(_to_unit(images), norm), input_size)
    return _finish(inputs, f"{what} ({root})" + resized + _norm_note(normalize))


# --------------------------------------------------------------------------------------------
# paths: image folders, .npy/.npz


def _from_path(
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
        raise DataError(f"unknown dataset {text!r}: {_UNKNOWN_HINT}")
    if path.is_dir():
        # An official CIFAR folder given by path: load it as that dataset.
        for key, spec in _CIFAR.items():
            if _is_cifar_folder(path, spec):
                return _from_cifar(key, path, batch_size, seed, input_size, pick, split, normalize)
        return _from_folder(path, batch_size, seed, input_size, pick, normalize)
    if suffix in (".npy", ".npz"):
        return _from_array_file(path, batch_size, seed, input_size, pick, normalize)
    raise DataError(f"unknown dataset {text!r}: {_UNKNOWN_HINT}")


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
        index = _draw(len(files), batch_size, seed, f"folder {folder}")
        chosen = [files[i] for i in index]
        what = f"{batch_size} random images (seed {seed}) from {folder}"

    pictures = []
    for file in chosen:
        try:
            with Image.open(file) as opened:
                pictures.append(opened.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(
                f"cannot read image {file} ({_reason(exc)}); remove or replace it"
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
    inputs, resized = _resize(_normalise(_to_unit(images), norm), input_size)
    return _finish(inputs, what + resized + _norm_note(normalize))


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
        index = _draw(len(array), batch_size, seed, str(path))
        chosen = np.asarray(array[np.sort(index)])[np.argsort(np.argsort(index))]
        what = f"{path}, {batch_size} random samples (seed {seed})"

    layout = _image_layout(chosen)
    if layout is not None:
        images = chosen if layout == "chw" else chosen.transpose(0, 3, 1, 2)
        norm = "imagenet" if normalize == "auto" else normalize
        inputs = _normalise(_to_unit(images), norm)
    else:
        inputs = _as_float32(chosen, str(path))
        _check_finite(inputs)  # before resizing spreads them: the count is the file's own
        if normalize not in ("auto", "none"):
            inputs = _normalise(inputs, normalize)
    inputs, resized = _resize(inputs, input_size)
    return _finish(inputs, what + resized + _norm_note(normalize))


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
        raise DataError(f"cannot read {path} ({_reason(exc)}); save it with numpy.save") from exc


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


def _from_user_array(
    array: np.ndarray, input_size: tuple[int, int] | None, normalize: Normalize
) -> Batch:
    if array.ndim < 2 or len(array) < 2:
        raise DataError(
            f"the array has shape {array.shape}; it needs a leading sample axis with at least 2 "
            f"samples, e.g. (16, 3, 32, 32)"
        )
    inputs = _as_float32(array, "the array")
    _check_finite(inputs)  # before resizing spreads them: the count is the array's own
    if normalize not in ("auto", "none"):
        inputs = _normalise(inputs, normalize)
    inputs, resized = _resize(inputs, input_size)
    source = f"user array {tuple(array.shape)} {array.dtype}" + resized + _norm_note(normalize)
    return _finish(inputs, source)


def _as_float32(array: np.ndarray, what: str) -> np.ndarray:
    """A float32 copy (so later edits of the caller's array cannot change the batch)."""
    kind = array.dtype.kind
    if kind not in "fiub":  # float, signed, unsigned, bool
        raise DataError(f"{what} has dtype {array.dtype}; give real numbers (float or integer)")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported below
        return np.array(array, dtype=np.float32, order="C", copy=True)


# --------------------------------------------------------------------------------------------
# shared steps


def _check_settings(
    batch_size: int,
    seed: int,
    input_size: tuple[int, int] | None,
    pick: str,
    split: str,
    normalize: str,
) -> None:
    if not _is_int(batch_size) or batch_size < 2:
        raise SettingsError(f"batch size must be an integer >= 2, got {batch_size!r}")
    if not _is_int(seed) or seed < 0:
        raise SettingsError(f"seed must be a non-negative integer, got {seed!r}")
    if input_size is not None:
        _check_size(input_size, "input_size")
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


def _check_size(size: object, label: str) -> tuple[int, int]:
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(_is_int(v) and v >= 1 for v in size)
    ):
        raise SettingsError(f"{label} must be two positive integers (H, W), got {size!r}")
    return int(size[0]), int(size[1])


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _draw(total: int, count: int, seed: int, what: str) -> np.ndarray:
    """``count`` distinct indices in [0, total), reproducible from ``seed``."""
    if total < count:
        raise DataError(f"asked for {count} samples but {what} holds {total}; lower the batch size")
    return np.random.default_rng(seed).choice(total, size=count, replace=False)


def _to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 → float32 in [0, 1], as torchvision's ToTensor does (the reference pipeline)."""
    return images.astype(np.float32) / np.float32(255.0)


def _normalise(x: np.ndarray, which: str) -> np.ndarray:
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


def _resize(x: np.ndarray, input_size: tuple[int, int] | None) -> tuple[np.ndarray, str]:
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


def _norm_note(normalize: Normalize) -> str:
    return "" if normalize == "auto" else f", normalize={normalize}"


def _finish(inputs: np.ndarray, source: str) -> Batch:
    """Check, make contiguous float32, describe and fingerprint a batch."""
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    _check_finite(inputs)
    return Batch(inputs=inputs, source=source, fingerprint=fingerprint(inputs))


def _check_finite(x: np.ndarray) -> None:
    """NaN/inf would silently turn every activation pattern into garbage: refuse them."""
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise DataError(
            f"data holds {bad} non-finite values (NaN/inf); clean the data (np.nan_to_num) or "
            f"check its preprocessing"
        )


def fingerprint(inputs: np.ndarray) -> str:
    """First 16 hex chars of sha256 over shape, dtype and bytes: equal data, equal print."""
    array = np.ascontiguousarray(inputs)
    h = hashlib.sha256()
    h.update(f"{tuple(array.shape)}|{array.dtype.str}|".encode())
    h.update(array.tobytes())
    return h.hexdigest()[:16]
