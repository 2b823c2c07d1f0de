"""Tests for swapprobe.data: each loader against an independent expectation (manual pickle reads,
hand-made files, hand-written normalisation), and the download path without any real network."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from swapprobe.data import (
    DATASETS,
    Batch,
    LoadRequest,
    cifar,
    cifar_root,
    download_cifar,
    find_source,
    fingerprint,
    load_batch,
    register_source,
    registry,
    source_names,
    synthetic_images,
)
from swapprobe.errors import DataError, DownloadError, SettingsError

CIFAR10_MEAN = np.array([125.3, 123.0, 113.9]) / 255
CIFAR10_STD = np.array([63.0, 62.1, 66.7]) / 255
CIFAR100_MEAN = np.array([129.3, 124.1, 112.4]) / 255
CIFAR100_STD = np.array([68.2, 65.4, 70.4]) / 255
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def _by_hand(images_u8_chw: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Independent float64 normalisation of uint8 (N, 3, H, W) images."""
    x = images_u8_chw.astype(np.float64) / 255.0
    return (x - mean[None, :, None, None]) / std[None, :, None, None]


def _read_batch_file(path: Path) -> np.ndarray:
    with path.open("rb") as f:
        content = pickle.load(f, encoding="bytes")
    raw = content.get(b"data", content.get("data"))
    return np.asarray(raw).reshape(-1, 3, 32, 32)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any test that would reach the real network fails loudly instead (tests re-patch this)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $SWAPPROBE_DATA and an empty cache dir, so no test sees a real CIFAR copy."""
    monkeypatch.delenv("SWAPPROBE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "swapprobe"


def _write_fake_cifar(folder: Path, *, n: int = 20, cifar100: bool = False, seed: int = 1) -> None:
    """Official-format files (Python-2 style bytes keys) holding small random images."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = ["train", "test"] if cifar100 else [f"data_batch_{i}" for i in range(1, 6)]
    names += ["meta"] if cifar100 else ["test_batch", "batches.meta"]
    for name in names:
        label_key = b"fine_labels" if cifar100 else b"labels"
        content = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: [int(v) for v in rng.integers(0, 10, n)],
        }
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))


# ------------------------------------------------------------------------------------------------
# CIFAR from the shared copy


def test_first_images_match_manual_read_of_data_batch_1(cifar10_dir: Path) -> None:
    batch = load_batch("cifar10", batch_size=16, data_dir=cifar10_dir)
    expected = _by_hand(
        _read_batch_file(cifar10_dir / "data_batch_1")[:16], CIFAR10_MEAN, CIFAR10_STD
    )
    assert isinstance(batch, Batch)
    assert batch.inputs.dtype == np.float32 and batch.inputs.flags.c_contiguous
    assert batch.inputs.shape == (16, 3, 32, 32)
    np.testing.assert_allclose(batch.inputs, expected, rtol=0, atol=1e-5)
    assert batch.source == f"cifar10 train images 0-15 ({cifar10_dir})"


def test_parent_folder_and_env_var_are_accepted(
    cifar10_dir: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_folder = load_batch("cifar10", data_dir=cifar10_dir, download=False)
    by_parent = load_batch("cifar10", data_dir=cifar10_dir.parent, download=False)
    monkeypatch.setenv("SWAPPROBE_DATA", str(cifar10_dir.parent))
    by_env = load_batch("cifar10", download=False)
    assert by_folder.fingerprint == by_parent.fingerprint == by_env.fingerprint
    assert cifar_root("cifar10") == cifar10_dir


def test_first_pick_crosses_into_data_batch_2(cifar10_dir: Path) -> None:
    batch = load_batch("cifar10", batch_size=1018, data_dir=cifar10_dir)
    first = _read_batch_file(cifar10_dir / "data_batch_1")
    second = _read_batch_file(cifar10_dir / "data_batch_2")
    assert len(first) == 1017  # the shared copy is reduced; it must load unchanged
    np.testing.assert_allclose(
        batch.inputs[1016:],
        _by_hand(np.stack([first[-1], second[0]]), CIFAR10_MEAN, CIFAR10_STD),
        atol=1e-5,
    )


def test_first_pick_reads_only_the_files_it_needs(cifar10_dir: Path, tmp_path: Path) -> None:
    only_first = tmp_path / "cifar-10-batches-py"
    only_first.mkdir()
    (only_first / "data_batch_1").symlink_to(cifar10_dir / "data_batch_1")
    assert load_batch("cifar10", batch_size=16, data_dir=tmp_path).inputs.shape[0] == 16
    with pytest.raises(DataError, match="data_batch_2"):
        load_batch("cifar10", batch_size=1018, data_dir=tmp_path, download=False)


def test_random_pick_is_seeded_distinct_and_from_the_whole_split(cifar10_dir: Path) -> None:
    a = load_batch("cifar10", batch_size=16, pick="random", seed=3, data_dir=cifar10_dir)
    b = load_batch("cifar10", batch_size=16, pick="random", seed=3, data_dir=cifar10_dir)
    c = load_batch("cifar10", batch_size=16, pick="random", seed=4, data_dir=cifar10_dir)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert len(np.unique(a.inputs.reshape(16, -1), axis=0)) == 16

    files = [cifar10_dir / f"data_batch_{i}" for i in range(1, 6)]
    everything = np.concatenate([_read_batch_file(f) for f in files])
    index = np.random.default_rng(3).choice(len(everything), 16, replace=False)
    expected = _by_hand(everything[index], CIFAR10_MEAN, CIFAR10_STD)
    np.testing.assert_allclose(a.inputs, expected, atol=1e-5)


def test_test_split_and_too_many_images(cifar10_dir: Path) -> None:
    batch = load_batch("cifar10", batch_size=4, split="test", data_dir=cifar10_dir)
    expected = _by_hand(_read_batch_file(cifar10_dir / "test_batch")[:4], CIFAR10_MEAN, CIFAR10_STD)
    np.testing.assert_allclose(batch.inputs, expected, atol=1e-5)
    with pytest.raises(DataError, match=r"asked for 2000 .* holds 1017"):
        load_batch("cifar10", batch_size=2000, split="test", data_dir=cifar10_dir)


def test_folder_path_given_as_data_loads_as_cifar(cifar10_dir: Path) -> None:
    by_path = load_batch(str(cifar10_dir), batch_size=8)
    by_name = load_batch("cifar10", batch_size=8, data_dir=cifar10_dir)
    assert by_path.fingerprint == by_name.fingerprint


def test_input_size_resizes_after_normalisation(cifar10_dir: Path) -> None:
    batch = load_batch("cifar10", batch_size=4, data_dir=cifar10_dir, input_size=(16, 24))
    assert batch.inputs.shape == (4, 3, 16, 24)
    assert "resized to 16x24" in batch.source
    same = load_batch("cifar10", batch_size=4, data_dir=cifar10_dir, input_size=(32, 32))
    assert same.fingerprint == load_batch("cifar10", batch_size=4, data_dir=cifar10_dir).fingerprint


# ------------------------------------------------------------------------------------------------
# CIFAR from hand-made official-format files


def test_cifar100_bytes_keys_and_its_constants(tmp_path: Path, isolated: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    _write_fake_cifar(folder, cifar100=True)
    batch = load_batch("cifar100", batch_size=5, data_dir=tmp_path, download=False)
    expected = _by_hand(_read_batch_file(folder / "train")[:5], CIFAR100_MEAN, CIFAR100_STD)
    np.testing.assert_allclose(batch.inputs, expected, atol=1e-5)
    explicit = load_batch("cifar100", batch_size=5, data_dir=tmp_path, normalize="none")
    np.testing.assert_allclose(explicit.inputs, _read_batch_file(folder / "train")[:5] / 255.0)


def test_malformed_cifar_file_is_named(tmp_path: Path, isolated: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_fake_cifar(folder)
    (folder / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_1"):
        load_batch("cifar10", data_dir=tmp_path, download=False)
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8)}))
    with pytest.raises(DataError, match=r"data_batch_1 is malformed"):
        load_batch("cifar10", data_dir=tmp_path, download=False)


def test_pickle_cannot_run_code(tmp_path: Path, isolated: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_fake_cifar(folder)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match="data_batch_1"):
        load_batch("cifar10", data_dir=tmp_path, download=False)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------
# synthetic dead leaves


def test_synthetic_is_deterministic_in_range_and_seeded() -> None:
    a = synthetic_images(32, seed=0)
    assert a.shape == (32, 3, 32, 32) and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert np.array_equal(a, synthetic_images(32, seed=0))
    assert not np.array_equal(a, synthetic_images(32, seed=1))
    # image i depends on (seed, i) only: a larger set starts with the smaller one
    assert np.array_equal(a[:5], synthetic_images(5, seed=0))
    assert synthetic_images(2, size=(20, 48), seed=7).shape == (2, 3, 20, 48)


def test_synthetic_has_natural_image_correlation() -> None:
    x = synthetic_images(64, seed=0).astype(np.float64)
    correlations = [np.corrcoef(img[:, :, :-1].ravel(), img[:, :, 1:].ravel())[0, 1] for img in x]
    assert np.mean(correlations) > 0.7
    # and it is not flat: images have real contrast and differ from each other
    assert x.std(axis=(1, 2, 3)).min() > 0.05
    assert len(np.unique(x.reshape(64, -1), axis=0)) == 64


def test_synthetic_batch_uses_cifar10_constants_and_input_size() -> None:
    batch = load_batch("synthetic", batch_size=8, seed=2)
    raw = synthetic_images(8, seed=2).astype(np.float64)
    expected = (raw - CIFAR10_MEAN[None, :, None, None]) / CIFAR10_STD[None, :, None, None]
    np.testing.assert_allclose(batch.inputs, expected, atol=1e-5)
    assert batch.source == "synthetic dead-leaves 32x32, seed 2"
    big = load_batch("synthetic", batch_size=2, input_size=(64, 40))
    assert big.inputs.shape == (2, 3, 64, 40)  # drawn at the size, not resampled
    assert big.source.startswith("synthetic dead-leaves 64x40")


# ------------------------------------------------------------------------------------------------
# files: .npy, .npz, image folders


def test_npy_uint8_images_in_both_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (6, 8, 10, 3), dtype=np.uint8)
    np.save(tmp_path / "hwc.npy", hwc)
    np.save(tmp_path / "chw.npy", hwc.transpose(0, 3, 1, 2))
    expected = _by_hand(hwc.transpose(0, 3, 1, 2)[:4], IMAGENET_MEAN, IMAGENET_STD)
    for name in ("hwc.npy", "chw.npy"):
        batch = load_batch(tmp_path / name, batch_size=4)
        assert batch.inputs.shape == (4, 3, 8, 10)
        np.testing.assert_allclose(batch.inputs, expected, atol=1e-5)


def test_npy_float_used_as_given_and_random_pick(tmp_path: Path) -> None:
    values = np.random.default_rng(1).normal(size=(10, 7)).astype(np.float64)
    np.save(tmp_path / "flat.npy", values)
    batch = load_batch(tmp_path / "flat.npy", batch_size=3)
    np.testing.assert_array_equal(batch.inputs, values[:3].astype(np.float32))
    chosen = load_batch(tmp_path / "flat.npy", batch_size=4, pick="random", seed=5)
    index = np.random.default_rng(5).choice(10, 4, replace=False)
    np.testing.assert_array_equal(chosen.inputs, values[index].astype(np.float32))
    with pytest.raises(DataError, match=r"asked for 11 samples .* holds 10"):
        load_batch(tmp_path / "flat.npy", batch_size=11)


def test_npz_choice_of_array(tmp_path: Path) -> None:
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    np.savez(tmp_path / "single.npz", whatever=x)
    np.savez(tmp_path / "named.npz", labels=np.arange(4), images=x)
    np.savez(tmp_path / "ambiguous.npz", a=x, b=x)
    for name in ("single.npz", "named.npz"):
        np.testing.assert_array_equal(load_batch(tmp_path / name, batch_size=4).inputs, x)
    with pytest.raises(DataError, match=r"'a', 'b'"):
        load_batch(tmp_path / "ambiguous.npz", batch_size=2)


def test_image_folder_sorted_rgb_and_resized_to_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    arrays = {}
    for name in ("b.png", "a.png", "c.bmp"):
        arrays[name] = rng.integers(0, 256, (12, 9, 3), dtype=np.uint8)
        Image.fromarray(arrays[name]).save(tmp_path / name)
    Image.fromarray(arrays["c.bmp"][:, :, 0]).convert("L").save(tmp_path / "d.png")  # greyscale
    (tmp_path / "notes.txt").write_text("not an image")

    batch = load_batch(tmp_path, batch_size=3)
    ordered = np.stack([arrays[n] for n in ("a.png", "b.png", "c.bmp")]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(
        batch.inputs, _by_hand(ordered, IMAGENET_MEAN, IMAGENET_STD), atol=1e-5
    )

    grey = load_batch(tmp_path, batch_size=4, normalize="none").inputs[3]
    assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[1], grey[2])  # loaded as RGB

    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "e.jpg")
    mixed = load_batch(tmp_path, batch_size=5)
    assert mixed.inputs.shape == (5, 3, 12, 9)
    resized = load_batch(tmp_path, batch_size=5, input_size=(16, 16))
    assert resized.inputs.shape == (5, 3, 16, 16)
    with pytest.raises(DataError, match=r"asked for 6 images .* holds 5"):
        load_batch(tmp_path, batch_size=6)


def test_empty_folder_and_unreadable_image(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no png/jpg"):
        load_batch(tmp_path, batch_size=2)
    (tmp_path / "a.png").write_bytes(b"garbage")
    (tmp_path / "b.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"a\.png"):
        load_batch(tmp_path, batch_size=2)


# ------------------------------------------------------------------------------------------------
# user arrays, fingerprints, checks


def test_user_array_used_exactly_as_given() -> None:
    x = np.random.default_rng(0).normal(size=(5, 3, 4, 4)).astype(np.float32)
    batch = load_batch(x, batch_size=2)  # batch_size ignored for arrays
    assert np.array_equal(batch.inputs, x) and batch.inputs.shape == (5, 3, 4, 4)
    x[0, 0, 0, 0] = 99.0
    assert batch.inputs[0, 0, 0, 0] != 99.0  # a copy: later edits cannot change the batch
    flat64 = np.linspace(-3, 3, 12).reshape(3, 4)
    np.testing.assert_array_equal(load_batch(flat64).inputs, flat64.astype(np.float32))
    assert load_batch(x, input_size=(8, 2)).inputs.shape == (5, 3, 8, 2)


def test_fingerprint_depends_on_exact_data() -> None:
    x = np.arange(48, dtype=np.float32).reshape(2, 24)
    a = load_batch(x)
    assert a.fingerprint == load_batch(x.copy()).fingerprint == fingerprint(x)
    assert len(a.fingerprint) == 16 and int(a.fingerprint, 16) >= 0
    y = x.copy()
    y[1, 3] += 1e-3
    assert load_batch(y).fingerprint != a.fingerprint
    assert load_batch(x.reshape(4, 12)).fingerprint != a.fingerprint  # same bytes, other shape
    expected = hashlib.sha256(b"(2, 24)|<f4|" + x.tobytes()).hexdigest()[:16]
    assert a.fingerprint == expected


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad: float, tmp_path: Path) -> None:
    x = np.zeros((4, 3), dtype=np.float32)
    x[1, 1] = bad
    x[2, 0] = bad
    with pytest.raises(DataError, match=r"data holds 2 non-finite values \(NaN/inf\)"):
        load_batch(x)
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(DataError, match="non-finite"):
        load_batch(tmp_path / "x.npy", batch_size=4)


def test_non_finite_count_is_the_datas_own_even_when_resized() -> None:
    x = np.zeros((2, 3, 4, 4), dtype=np.float32)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="data holds 1 non-finite"):
        load_batch(x, input_size=(8, 8))


def test_overflow_on_cast_is_refused() -> None:
    with pytest.raises(DataError, match="non-finite"):
        load_batch(np.full((2, 2), 1e300))


def test_unknown_names_bad_paths_and_settings(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_batch("foo")
    assert str(info.value) == (
        "unknown dataset 'foo': use cifar10, cifar100, imagenet16-120, synthetic, tokens:..., "
        "or a path to an image folder or .npy/.npz file"
    )
    with pytest.raises(DataError, match="does not exist"):
        load_batch(str(tmp_path / "missing.npy"))
    with pytest.raises(SettingsError, match="batch size"):
        load_batch("synthetic", batch_size=1)
    with pytest.raises(SettingsError, match="pick"):
        load_batch("synthetic", pick="last")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="input_size"):
        load_batch("synthetic", input_size=(0, 32))
    with pytest.raises(DataError, match="at least 2"):
        load_batch(np.zeros((1, 3)))
    assert DATASETS == ("cifar10", "cifar100", "imagenet16-120", "synthetic", "tokens:")


# ------------------------------------------------------------------------------------------------
# download (never the real network)


class _FakeResponse(io.BytesIO):
    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def _fake_archive(tmp_path: Path) -> bytes:
    source = tmp_path / "archive-src" / "cifar-10-batches-py"
    _write_fake_cifar(source)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    return buffer.getvalue()


def _serve(monkeypatch: pytest.MonkeyPatch, payload: bytes) -> list[str]:
    calls: list[str] = []

    def fake_urlopen(url: str, timeout: float | None = None) -> _FakeResponse:
        calls.append(url)
        return _FakeResponse(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return calls


def test_offline_download_is_one_line_with_url_and_hint(
    monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    def offline(url: str, timeout: float | None = None) -> None:
        raise urllib.error.URLError(OSError("Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError) as info:
        load_batch("cifar10")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"CIFAR-10 is not in {isolated}; ")  # where it looked
    assert (
        "could not download CIFAR-10 from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz "
        "(Temporary failure in name resolution); put the official 'cifar-10-batches-py' folder in "
        "data_dir, $SWAPPROBE_DATA or "
    ) in message
    assert message.endswith(str(isolated))
    assert info.value.option == "data_dir"  # the CLI writes it as --data-dir
    assert not isolated.exists() or not any(isolated.iterdir())  # nothing left behind


def test_download_off_gives_the_same_hint(isolated: Path) -> None:
    with pytest.raises(DataError, match=r"download is off; put the official 'cifar-10-batches-py'"):
        load_batch("cifar10", download=False)


def test_checksum_mismatch_removes_the_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolated: Path
) -> None:
    calls = _serve(monkeypatch, _fake_archive(tmp_path))
    target = tmp_path / "dl"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        load_batch("cifar10", data_dir=target)
    assert calls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert list(target.iterdir()) == []  # neither the partial archive nor a folder


def test_verified_download_extracts_and_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolated: Path
) -> None:
    payload = _fake_archive(tmp_path)
    spec = dataclasses.replace(cifar.CIFAR_SPECS["cifar10"], md5=hashlib.md5(payload).hexdigest())
    monkeypatch.setitem(cifar.CIFAR_SPECS, "cifar10", spec)
    _serve(monkeypatch, payload)
    seen: list[tuple[int, int]] = []

    target = tmp_path / "dl"
    assert cifar_root("cifar10", target) == target / "cifar-10-batches-py"
    batch = load_batch(
        "cifar10", batch_size=4, data_dir=target, progress=lambda d, t: seen.append((d, t))
    )
    folder = target / "cifar-10-batches-py"
    assert sorted(p.name for p in target.iterdir()) == ["cifar-10-batches-py"]  # no leftovers
    expected = _by_hand(_read_batch_file(folder / "data_batch_1")[:4], CIFAR10_MEAN, CIFAR10_STD)
    np.testing.assert_allclose(batch.inputs, expected, atol=1e-5)
    assert seen[0] == (0, len(payload)) and seen[-1] == (len(payload), len(payload))

    _serve(monkeypatch, b"")  # found now: no second download
    assert load_batch("cifar10", batch_size=4, data_dir=target).fingerprint == batch.fingerprint


def test_download_goes_to_first_writable_place(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolated: Path
) -> None:
    payload = _fake_archive(tmp_path)
    spec = dataclasses.replace(cifar.CIFAR_SPECS["cifar10"], md5=hashlib.md5(payload).hexdigest())
    monkeypatch.setitem(cifar.CIFAR_SPECS, "cifar10", spec)
    _serve(monkeypatch, payload)
    blocked = tmp_path / "a-file"
    blocked.write_text("a file, so no folder can be made under it (even as root)")
    monkeypatch.setenv("SWAPPROBE_DATA", str(tmp_path / "env"))
    load_batch("cifar10", batch_size=2, data_dir=blocked / "data")
    assert (tmp_path / "env" / "cifar-10-batches-py" / "data_batch_1").is_file()
    assert cifar_root("cifar10", blocked / "data") == tmp_path / "env" / "cifar-10-batches-py"


def test_unsafe_archive_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    payload = buffer.getvalue()
    spec = dataclasses.replace(cifar.CIFAR_SPECS["cifar10"], md5=hashlib.md5(payload).hexdigest())
    monkeypatch.setitem(cifar.CIFAR_SPECS, "cifar10", spec)
    _serve(monkeypatch, payload)
    with pytest.raises(DownloadError, match="cannot extract"):
        download_cifar("cifar10", tmp_path / "dl")
    assert not (tmp_path / "escape.txt").exists()
    assert list((tmp_path / "dl").iterdir()) == []


# ------------------------------------------------------------------------------------------------
# the source registry


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the registry, so a test's registrations vanish after it."""
    monkeypatch.setattr(registry, "_SOURCES", dict(registry._SOURCES))


def test_builtin_names_are_registered_in_order() -> None:
    builtin = ("cifar10", "cifar100", "imagenet16-120", "synthetic", "tokens:")
    assert source_names() == DATASETS == builtin
    assert find_source("CIFAR10") is find_source("cifar100") is cifar.load_cifar
    assert find_source("imagenet") is None


def test_a_registered_source_gets_the_name_and_every_setting(own_registry: None) -> None:
    seen: list[tuple[str, LoadRequest]] = []

    def ramp(name: str, request: LoadRequest) -> Batch:
        seen.append((name, request))
        inputs = np.arange(request.batch_size * 6, dtype=np.float32).reshape(-1, 6)
        return Batch(inputs=inputs, source=f"ramp {request.batch_size}", fingerprint="x")

    def progress(done: int, total: int) -> None:
        pass

    register_source("Ramp", ramp)
    batch = load_batch(
        "RAMP",
        batch_size=3,
        seed=4,
        data_dir="somewhere",
        input_size=(5, 6),
        pick="random",
        split="test",
        normalize="none",
        download=False,
        progress=progress,
    )
    assert batch.source == "ramp 3" and batch.inputs.shape == (3, 6)
    assert seen == [
        (
            "ramp",
            LoadRequest(
                batch_size=3,
                seed=4,
                data_dir="somewhere",
                input_size=(5, 6),
                pick="random",
                split="test",
                normalize="none",
                download=False,
                progress=progress,
            ),
        )
    ]
    assert source_names() == (*DATASETS, "ramp")
    assert DATASETS == ("cifar10", "cifar100", "imagenet16-120", "synthetic", "tokens:")
    with pytest.raises(DataError) as info:
        load_batch("foo")
    assert str(info.value) == (
        "unknown dataset 'foo': use cifar10, cifar100, imagenet16-120, synthetic, tokens:..., "
        "ramp, or a path to an image folder or .npy/.npz file"
    )
    # settings are checked before any loader runs
    with pytest.raises(SettingsError, match="batch size"):
        load_batch("ramp", batch_size=1)
    assert len(seen) == 1


def test_register_source_refuses_bad_names_and_silent_replacement(
    own_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def other(name: str, request: LoadRequest) -> Batch:
        return load_batch(np.ones((2, 2)))

    with pytest.raises(SettingsError, match="already registered"):
        register_source("Synthetic", other)
    assert find_source("synthetic") is not other
    register_source("synthetic", other, replace=True)
    assert load_batch("synthetic").source == "user array (2, 2) float64"
    for bad in ("", "a/b", 3):
        with pytest.raises(SettingsError, match="source name"):
            register_source(bad, other)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="callable"):
        register_source("x", "not a function")  # type: ignore[arg-type]
    # a Path is always a path, even when its text is a registered name
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="unknown dataset 'synthetic'"):
        load_batch(Path("synthetic"))
