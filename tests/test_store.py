"""PatternStore: round trips, refusal of foreign or mismatching files, atomic records, resume."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from swapprobe.errors import SettingsError, StoreError
from swapprobe.patterns import LayerInfo, pack_sample_bits
from swapprobe.store import (
    ModelRecord,
    PatternStore,
    check_writable,
    estimate_bytes,
    group_name,
)

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "S": 16,
    "seed": 0,
    "repeats": 4,
    "init": "normal",
    "backend": "ort",
    "keep_patterns": True,
}

AWKWARD_KEYS = [
    "models/resnet18.onnx",
    "/abs/path with spaces/m.onnx",
    "Genotype(normal=[('sep_conv_3x3', 0), (\"skip_connect\", 1)], normal_concat=[2, 3])",
    ".",
    "..",
    ".hidden",
    "100%",
    "%41",  # must not collide with "A"
    "A",
    "ünïcödé ключ",
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|",
    "Genotype(" + ", ".join(f"('dil_conv_5x5', {i % 4})" for i in range(40)) + ")",
]


def make_record(
    key: str, samples: int = 16, units: int = 300, seed: int = 0, kept: tuple[int, ...] = (0,)
) -> ModelRecord:
    """A record with realistic-looking patterns: few distinct patterns, many duplicates."""
    rng = np.random.default_rng(seed)
    layers = (
        LayerInfo("/stem/Relu_output_0", "Relu", (3, 10), 0, 30),
        LayerInfo("cells.0/ops.1/op.0", "Relu", (units - 30,), 30, units - 30),
    )
    patterns = {}
    for repeat in kept:
        pool = rng.random((samples, 20)) > 0.5
        active = pool[:, rng.integers(0, 20, units)]
        patterns[repeat] = pack_sample_bits(active)
    return ModelRecord(
        key=key,
        name=f"model {seed}",
        metadata={
            "model_sha256": "ab" * 32,
            "param_count": np.int64(1234 + seed),
            "units": units,
            "samples": samples,
            "timings": {"forward": 0.25},
            "versions": ["1", "2"],
        },
        scores={
            "swap": rng.random(4) * 100,
            "standard_ap": np.full(4, 16.0),
            "nwot": rng.standard_normal(4),
        },
        layers=layers,
        patterns=patterns,
    )


def assert_same(read: ModelRecord, written: ModelRecord) -> None:
    assert read.key == written.key
    assert read.name == written.name
    assert read.metadata == {
        **written.metadata,
        "param_count": int(written.metadata["param_count"]),
    }
    assert list(read.scores) == list(written.scores)
    for metric, values in written.scores.items():
        assert read.scores[metric].dtype == np.float64
        np.testing.assert_array_equal(read.scores[metric], values)
    assert read.layers == written.layers
    assert sorted(read.patterns) == sorted(written.patterns)
    for repeat, words in written.patterns.items():
        assert read.patterns[repeat].dtype == np.uint64
        assert read.patterns[repeat].shape == words.shape
        assert np.array_equal(read.patterns[repeat], words)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "run.h5"


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("samples", [16, 64, 100])  # W = 1, 1, 2
def test_round_trip_is_bit_exact(store_path: Path, samples: int) -> None:
    first = make_record("a", samples=samples, seed=1, kept=(0, 3))
    second = make_record("b", samples=samples, units=5000, seed=2, kept=(1,))
    with PatternStore.create(store_path, SETTINGS) as store:
        store.write(first)
        store.write(second)
        assert store.settings == SETTINGS
    with PatternStore.open(store_path) as store:
        assert store.keys() == ["a", "b"]
        assert_same(store.read("a"), first)
        assert_same(store.read("b"), second)
        assert store.kept_repeats("a") == [0, 3]
        assert store.read("a", patterns=False).patterns == {}


def test_edge_cases_round_trip(store_path: Path) -> None:
    record = ModelRecord(
        "empty",
        "no units",
        {},
        {"swap": np.array([0.0])},
        patterns={0: np.zeros((0, 1), np.uint64)},
    )
    scores_only = ModelRecord("scores-only", "s", {"nan": float("nan")}, {})
    with PatternStore.create(store_path, {}) as store:
        store.write(record)
        store.write(scores_only)
        back = store.read("empty")
        assert back.layers == ()
        assert back.patterns[0].shape == (0, 1)
        assert store.read("scores-only").scores == {}


def test_awkward_keys(store_path: Path) -> None:
    names = [group_name(key) for key in AWKWARD_KEYS]
    assert len(set(names)) == len(names)
    assert all("/" not in name and not name.startswith(".") for name in names)
    assert all(len(name) <= 200 for name in names)
    records = [make_record(key, seed=i) for i, key in enumerate(AWKWARD_KEYS)]
    with PatternStore.create(store_path, SETTINGS) as store:
        for record in records:
            store.write(record)
    with PatternStore.open(store_path) as store:
        assert store.keys() == AWKWARD_KEYS
        for record in records:
            assert store.has(record.key)
            assert_same(store.read(record.key), record)
        assert not store.has("a")
        with pytest.raises(StoreError, match="no model"):
            store.read("a")


def test_rewrite_replaces_and_moves_to_end(store_path: Path) -> None:
    with PatternStore.create(store_path, SETTINGS) as store:
        for key in ("x", "y", "z"):
            store.write(make_record(key))
        replacement = make_record("x", seed=9, kept=(2,))
        store.write(replacement)
        assert store.keys() == ["y", "z", "x"]
        assert_same(store.read("x"), replacement)
        assert len(store) == 3


def test_bad_records_leave_no_trace(store_path: Path) -> None:
    with PatternStore.create(store_path, SETTINGS) as store:
        bad_patterns = make_record("p")
        bad_patterns.patterns = {0: np.zeros((5, 1), np.float32)}
        with pytest.raises(StoreError, match="unsigned integer"):
            store.write(bad_patterns)
        bad_meta = make_record("m")
        bad_meta.metadata = {"model": object()}
        with pytest.raises(StoreError, match="JSON"):
            store.write(bad_meta)
        with pytest.raises(StoreError, match="non-empty"):
            store.write(make_record(""))
        assert store.keys() == []
    with h5py.File(store_path, "r") as raw:
        assert len(raw["partial"]) == 0


# --- refusing what is not ours -------------------------------------------------------------


def test_settings_mismatch_lists_every_key(store_path: Path) -> None:
    PatternStore.create(store_path, {"S": 16, "seed": 0, "repeats": 8, "data": "cifar10"}).close()
    before = store_path.read_bytes()
    wanted = {"S": 16, "seed": 1, "repeats": 32, "init": "kaiming"}
    with pytest.raises(StoreError) as caught:
        PatternStore.resume(store_path, wanted)
    message = str(caught.value)
    assert "\n" not in message
    assert f"store {store_path} was made with other settings" in message
    for part in (
        "seed 0 != 1",
        "repeats 8 != 32",
        'data "cifar10" != <absent>',
        'init <absent> != "kaiming"',
        "another store path",
    ):
        assert part in message
    assert caught.value.option == "store"  # the parameter to change, for the CLI's flag
    assert "S " not in message
    assert store_path.read_bytes() == before


def test_create_refuses_existing_file_untouched(store_path: Path) -> None:
    with PatternStore.create(store_path, SETTINGS) as store:
        store.write(make_record("a"))
    before = store_path.read_bytes()
    with pytest.raises(StoreError, match=r"exists; pass resume=True"):
        PatternStore.create(store_path, SETTINGS)
    assert store_path.read_bytes() == before
    with PatternStore.open(store_path) as store:
        assert store.keys() == ["a"]


def test_foreign_files_refused_untouched(tmp_path: Path) -> None:
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5 at all\n")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as raw:
        raw["data"] = np.arange(10)
    for path, reason in ((text, "not an HDF5 file"), (foreign, "not a swapprobe store")):
        before = path.read_bytes()
        with pytest.raises(StoreError, match=reason):
            PatternStore.open(path)
        with pytest.raises(StoreError, match=reason):
            PatternStore.resume(path, SETTINGS)
        with pytest.raises(StoreError, match="exists"):
            PatternStore.create(path, SETTINGS)
        assert path.read_bytes() == before
    with pytest.raises(StoreError, match="no store at"):
        PatternStore.open(tmp_path / "missing.h5")


def test_unwritable_paths(tmp_path: Path) -> None:
    missing_parent = tmp_path / "no" / "such" / "run.h5"
    for call in (
        check_writable,
        lambda p: PatternStore.create(p, SETTINGS),
        lambda p: PatternStore.resume(p, SETTINGS),
    ):
        with pytest.raises(StoreError, match="does not exist"):
            call(missing_parent)
        with pytest.raises(StoreError, match="is a directory"):
            call(tmp_path)
    assert not (tmp_path / "no").exists()
    assert list(tmp_path.iterdir()) == []
    check_writable(tmp_path / "fine.h5")
    assert not (tmp_path / "fine.h5").exists()


def test_read_only_and_closed_stores_refuse_writes(store_path: Path) -> None:
    PatternStore.create(store_path, SETTINGS).close()
    with PatternStore.open(store_path) as store:
        with pytest.raises(StoreError, match="read-only"):
            store.write(make_record("a"))
        with pytest.raises(StoreError, match="read-only"):
            store.write_state("search", {})
    with pytest.raises(StoreError, match="closed"):
        store.keys()
    store.close()  # twice is fine


@pytest.mark.skipif(
    os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE",
    reason="HDF5 file locking disabled in this environment",
)
def test_open_while_another_process_writes(store_path: Path) -> None:
    PatternStore.create(store_path, SETTINGS).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, h5py
            f = h5py.File({str(store_path)!r}, "r+")
            print("open", flush=True)
            sys.stdin.read()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match="another process"):
            PatternStore.open(store_path)
    finally:
        holder.communicate("")
    with PatternStore.open(store_path) as store:
        assert store.keys() == []


# --- resume and interruption ---------------------------------------------------------------


def test_resume_keeps_records_and_has(store_path: Path) -> None:
    with PatternStore.resume(store_path, SETTINGS) as store:  # missing file: created
        store.write(make_record("a", seed=1))
        store.write(make_record("b", seed=2))
    reordered = dict(reversed(list(SETTINGS.items())))
    with PatternStore.resume(store_path, reordered) as store:
        assert store.keys() == ["a", "b"]
        assert store.has("a") and store.has("b") and not store.has("c")
        assert "a" in store and "c" not in store
        store.write(make_record("c", seed=3))
    with PatternStore.open(store_path) as store:
        assert store.keys() == ["a", "b", "c"]
        assert_same(store.read("b"), make_record("b", seed=2))


def test_settings_normalised_like_json(store_path: Path) -> None:
    PatternStore.create(store_path, {"shape": (3, 32, 32), "mu": np.float64(0.5)}).close()
    with PatternStore.resume(store_path, {"shape": [3, 32, 32], "mu": 0.5}) as store:
        assert store.settings == {"shape": [3, 32, 32], "mu": 0.5}


CHILD = """
import os, sys
import numpy as np
sys.path.insert(0, {tests!r})
sys.path.insert(0, {repo!r})
from test_store import make_record
from swapprobe.store import PatternStore

store = PatternStore.create({path!r}, {settings!r})
for i, key in enumerate(["done/1", "done 2", "done'3"]):
    store.write(make_record(key, seed=i))

real = PatternStore._write_patterns
def die_after_writing(group, name, words):
    real(group, name, words)          # the pattern chunks really reach the file
    print("dying in", group.name, flush=True)
    os._exit(1)

PatternStore._write_patterns = staticmethod(die_after_writing)
big = make_record("half written", samples=100, units=400_000, seed=7)
store.write(big)
print("not reached", flush=True)
"""


def test_interrupted_write_keeps_completed_records(store_path: Path) -> None:
    script = CHILD.format(
        tests=str(REPO / "tests"), repo=str(REPO), path=str(store_path), settings=SETTINGS
    )
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert child.returncode == 1, child.stderr
    assert "dying in /partial/" in child.stdout
    assert "not reached" not in child.stdout

    done = ["done/1", "done 2", "done'3"]
    with PatternStore.open(store_path) as store:
        assert store.keys() == done
        assert not store.has("half written")
        for i, key in enumerate(done):
            assert_same(store.read(key), make_record(key, seed=i))
    with PatternStore.resume(store_path, SETTINGS) as store:
        assert [key for key in done if store.has(key)] == done
        assert not store.has("half written")
        store.write(make_record("half written", seed=7))
        assert store.keys() == [*done, "half written"]
    with h5py.File(store_path, "r") as raw:
        assert len(raw["partial"]) == 0


# --- state, streaming, summary -------------------------------------------------------------


def test_state_write_read_overwrite(store_path: Path) -> None:
    with PatternStore.create(store_path, SETTINGS) as store:
        assert store.read_state("evolution") is None
        store.write_state("evolution", {"cycle": 1, "population": ["a", "b"]})
        assert store.read_state("evolution") == {"cycle": 1, "population": ["a", "b"]}
        big = {"cycle": 2, "population": [f"Genotype({i})" * 20 for i in range(2000)]}
        store.write_state("evolution", big)
        store.write_state("other/state name", {"x": np.int32(3)})
    with PatternStore.open(store_path) as store:
        assert store.read_state("evolution") == big
        assert store.read_state("other/state name") == {"x": 3}
        assert store.read_state("missing") is None
    with pytest.raises(StoreError, match="JSON"), PatternStore.resume(store_path, SETTINGS) as s:
        s.write_state("evolution", {"bad": {1, 2}})
    with PatternStore.open(store_path) as store:
        assert store.read_state("evolution") == big


def test_records_stream_in_order_without_pattern_reads(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"m{i}" for i in range(6)]
    with PatternStore.create(store_path, SETTINGS) as store:
        for i, key in enumerate(keys):
            store.write(make_record(key, seed=i))

    touched: list[str] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, args: object) -> object:
        touched.append(self.name)
        return original(self, args)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    with PatternStore.open(store_path) as store:
        stream = store.records()
        assert isinstance(stream, Iterator)
        assert next(stream).key == "m0"
        assert [record.key for record in stream] == keys[1:]
        assert touched and not any("/patterns/" in name for name in touched)
        with_patterns = list(store.records(patterns=True))
        assert [record.key for record in with_patterns] == keys
        assert all(record.patterns for record in with_patterns)
        assert any("/patterns/" in name for name in touched)


def test_summary(store_path: Path) -> None:
    with PatternStore.create(store_path, SETTINGS) as store:
        store.write(make_record("a", units=3000, kept=(0, 1)))
        store.write(make_record("b", units=3000, kept=()))
        store.write(make_record("c", units=3000, kept=(2,)))
        summary = store.summary()
    assert summary.path == store_path
    assert summary.settings == SETTINGS
    assert summary.n_models == 3
    assert summary.n_pattern_blocks == 3
    assert summary.file_bytes == store_path.stat().st_size > 0
    assert 0 < summary.pattern_bytes < 3 * 3000 * 8
    assert summary.created[:2] == "20" and summary.version
    assert summary.format_version == 1
    with PatternStore.open(store_path) as store:
        assert store.summary().n_models == 3


def test_estimate_bytes() -> None:
    assert estimate_bytes(30_000, 16, 0) == estimate_bytes(0, 16, 5)
    assert estimate_bytes(30_000, 16, 1) - estimate_bytes(30_000, 16, 0) == 30_000 * 8
    assert estimate_bytes(30_000, 65, 2) - estimate_bytes(30_000, 65, 0) == 2 * 30_000 * 16
    with pytest.raises(SettingsError, match="samples >= 1"):
        estimate_bytes(10, 0, 1)
