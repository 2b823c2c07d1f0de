"""A damaged or full disk never loses the store (issue 23, items 2, 3 and 8).

* byte-corrupted stores: every read (``inspect``, ``rescore``, ``score --resume``) ends in one
  line that says the store is damaged and which records are still readable, never a traceback;
* a full disk: the store keeps its last complete state (every finished record, bit for bit),
  the run says "disk full" in one line, and ``--json``/``--csv`` leave no truncated file. The
  disk is simulated (writes refused past a byte budget) and, where a tmpfs can be mounted,
  real;
* ``rescore`` keeps the stored per-repeat baselines instead of recomputing them from the kept
  repeats only.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from swapprobe import safe_io
from swapprobe.cli import main
from swapprobe.errors import DamagedStoreError, DiskFullError
from swapprobe.patterns import LayerInfo, pack_sample_bits
from swapprobe.store import ModelRecord, PatternStore
from tests.test_store import SETTINGS, assert_same, make_record

ARCH = "nb201:random:2"
SMALL = ["--repeats", "1", "-S", "8"]


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return [line for line in captured.err.splitlines() if line.startswith("swapprobe: error:")]


# --- byte-corrupted stores ---------------------------------------------------------------
@pytest.fixture(scope="module")
def scored_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stores") / "run.h5"
    assert main(["score", ARCH, *SMALL, "--store", str(path)]) == 0
    return path


def _corrupt(good: Path, target: Path, offset: int, length: int) -> Path:
    data = bytearray(good.read_bytes())
    for index in range(offset, min(offset + length, len(data))):
        data[index] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


def _corruptions() -> list[tuple[int, int]]:
    """The issue's two (200 and 20 bytes past offset 2048), the superblock, pattern data (the
    store is about 210 KB, mostly patterns), and seeded ones over its first 40 KB (metadata)."""
    rng = np.random.default_rng(23)
    seeded = [(int(rng.integers(0, 40_000)), int(rng.choice([20, 200]))) for _ in range(6)]
    return [(2048, 200), (2048, 20), (96, 20), (120_000, 200), *seeded]


@pytest.mark.parametrize(("offset", "length"), _corruptions())
@pytest.mark.parametrize("command", ["inspect", "rescore", "resume"])
def test_corrupted_store_is_one_line_never_a_traceback(
    offset: int,
    length: int,
    command: str,
    scored_store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _corrupt(scored_store, tmp_path / "bad.h5", offset, length)
    before = path.read_bytes()
    argv = {
        "inspect": ["inspect", str(path)],
        "rescore": ["rescore", str(path), "--mu", "1", "--sigma", "1"],
        "resume": ["score", ARCH, *SMALL, "--store", str(path), "--resume"],
    }[command]
    capsys.readouterr()
    code = main(argv)
    lines = error_lines(capsys)  # never a traceback, whatever the bytes hit
    if code == 0:  # the flipped bytes were ones this command does not read
        assert lines == []
        return
    assert code == 2
    assert len(lines) == 1
    assert f"store {path} is damaged" in lines[0]
    readable = r"(\d+ of \d+ records are still readable|none of its records can be)"
    assert re.search(readable, lines[0])
    assert path.read_bytes() == before


def test_the_issues_corruption_is_refused_by_every_command(
    scored_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _corrupt(scored_store, tmp_path / "bad.h5", 2048, 200)
    for argv in (
        ["inspect", str(path)],
        ["rescore", str(path), "--mu", "1", "--sigma", "1"],
        ["score", ARCH, *SMALL, "--store", str(path), "--resume"],
    ):
        assert main(argv) == 2
        [line] = error_lines(capsys)
        assert "is damaged" in line


def test_damage_report_names_the_damaged_records_and_counts_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    keys = ["a", "b", "c", "d", "e"]
    with PatternStore.create(path, SETTINGS) as store:
        for seed, key in enumerate(keys):
            store.write(make_record(key, seed=seed))
    with h5py.File(path, "r+") as raw:  # two records' metadata no longer parse
        raw["models"]["b"].attrs["metadata"] = "{not json"
        raw["models"]["d"].attrs["metadata"] = "[1,"
    with PatternStore.open(path) as store:
        assert_same(store.read("a"), make_record("a", seed=0))  # the others still read
        with pytest.raises(DamagedStoreError) as caught:
            list(store.records())
    message = str(caught.value)
    assert "\n" not in message
    assert "damaged records: 'b', 'd'; 3 of 5 records are still readable" in message


def test_corrupted_pattern_chunk_is_found_when_patterns_are_read(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with PatternStore.create(path, SETTINGS) as store:
        store.write(make_record("a", seed=0, units=20_000))
        store.write(make_record("b", seed=1, units=20_000))
    with h5py.File(path, "r") as raw:
        offset = raw["models"]["b"]["patterns"]["0"].id.get_offset()
        chunk = raw["models"]["b"]["patterns"]["0"].id.get_chunk_info(0)
        start = (offset if offset is not None else chunk.byte_offset) + 16
    _corrupt(path, path, start, 64)
    with PatternStore.open(path) as store:
        assert [r.key for r in store.records(patterns=False)] == ["a", "b"]  # no pattern read
        with pytest.raises(DamagedStoreError, match="damaged records: 'b'; 1 of 2 records"):
            list(store.records(patterns=True))


# --- a full disk, simulated --------------------------------------------------------------
class SmallDisk:
    """``os.pwrite`` and ``os.posix_fallocate`` of one file refuse to go past ``capacity``
    bytes with ENOSPC, as a full disk does (``capacity=None``: room for everything)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.capacity: int | None = None
        self.refused = 0
        real_pwrite, real_fallocate = os.pwrite, os.posix_fallocate

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            self._check(offset + len(data))
            return real_pwrite(fd, data, offset)

        def fallocate(fd: int, offset: int, length: int) -> None:
            self._check(offset + length)
            real_fallocate(fd, offset, length)

        monkeypatch.setattr(safe_io.os, "pwrite", pwrite)
        monkeypatch.setattr(safe_io.os, "posix_fallocate", fallocate)

    def _check(self, end: int) -> None:
        if self.capacity is not None and end > self.capacity:
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def small_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmallDisk]:
    yield SmallDisk(monkeypatch)


def _fill(path: Path, disk: SmallDisk, capacity: int) -> tuple[list[ModelRecord], str]:
    """Write records until the disk of ``capacity`` bytes refuses one; the ones written and
    the error's message."""
    written: list[ModelRecord] = []
    store = PatternStore.create(path, SETTINGS)
    disk.capacity = capacity
    try:
        for seed in range(200):
            record = make_record(f"model {seed}", seed=seed, units=2_000 + 300 * seed)
            try:
                store.write(record)
            except DiskFullError as error:
                assert not store.writable  # what is left is read-only, at its last state
                assert len(store) == len(written)
                return written, str(error)
            written.append(record)
    finally:
        store.close()
        disk.capacity = None
    raise AssertionError("the disk never filled up")


@pytest.mark.parametrize("capacity", [30_000, 61_000, 97_531, 150_000, 211_111])
def test_full_disk_keeps_every_finished_record(
    capacity: int, small_disk: SmallDisk, tmp_path: Path
) -> None:
    path = tmp_path / "run.h5"
    written, message = _fill(path, small_disk, capacity)
    assert small_disk.refused > 0 and written
    refused = f"model 'model {len(written)}'"
    assert message.startswith(f"disk full: store {path} could not take {refused}")
    assert f"keeps the {len(written)} record(s) finished before" in message and "\n" not in message
    assert path.stat().st_size <= capacity
    with PatternStore.open(path) as store:  # every finished record, bit for bit
        assert store.keys() == [r.key for r in written]
        for record in written:
            assert_same(store.read(record.key), record)
    with PatternStore.resume(path, SETTINGS) as store:  # space freed: the run goes on
        assert store.keys() == [r.key for r in written]
        store.write(make_record("after", seed=99))
    with PatternStore.open(path) as store:
        assert store.keys() == [*(r.key for r in written), "after"]
        assert_same(store.read("after"), make_record("after", seed=99))


@pytest.mark.parametrize("records", [0, 1, 4])
def test_every_write_refused_after_some_records(
    records: int, small_disk: SmallDisk, tmp_path: Path
) -> None:
    """The disk fills at the first byte of record N + 1 (the issue's "after N records")."""
    path = tmp_path / "run.h5"
    with PatternStore.create(path, SETTINGS) as store:
        for seed in range(records):
            store.write(make_record(f"m{seed}", seed=seed))
        store.write_state("evolution", {"cycle": records})
        small_disk.capacity = 0
        with pytest.raises(DiskFullError, match="disk full"):
            store.write(make_record("refused", seed=50))
        with pytest.raises(Exception, match="read-only"):
            store.write_state("evolution", {"cycle": -1})
    small_disk.capacity = None
    with PatternStore.open(path) as store:
        assert store.keys() == [f"m{seed}" for seed in range(records)]
        assert store.read_state("evolution") == {"cycle": records}
        for seed in range(records):
            assert_same(store.read(f"m{seed}"), make_record(f"m{seed}", seed=seed))


def test_full_disk_while_creating_leaves_no_file(small_disk: SmallDisk, tmp_path: Path) -> None:
    small_disk.capacity = 100
    path = tmp_path / "run.h5"
    with pytest.raises(DiskFullError, match=f"disk full: store {path} could not take its header"):
        PatternStore.create(path, SETTINGS)
    assert not path.exists()


def test_full_disk_while_saving_state(small_disk: SmallDisk, tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with PatternStore.create(path, SETTINGS) as store:
        store.write(make_record("a"))
        store.write_state("evolution", {"cycle": 1})
        small_disk.capacity = path.stat().st_size
        with pytest.raises(DiskFullError, match="could not take state 'evolution'"):
            store.write_state("evolution", {"cycle": 2, "population": ["x" * 5000]})
    small_disk.capacity = None
    with PatternStore.open(path) as store:
        assert store.keys() == ["a"]
        assert store.read_state("evolution") == {"cycle": 1}


def test_text_outputs_are_whole_or_absent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from swapprobe import report
    from swapprobe.results import Result

    results = [Result(f"m{i}", f"k{i}", np.array([10.0 * i]), 100, 1000, 16) for i in range(3)]
    target = tmp_path / "rows.json"
    report.write_json(results, target)
    whole = target.read_text()
    real_write = safe_io.write_text_atomically

    def full_disk(path: Path, write: object) -> None:
        def failing(handle: object) -> None:
            write(handle)  # type: ignore[operator]
            handle.flush()  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        real_write(path, failing)

    monkeypatch.setattr(report, "write_text_atomically", full_disk)
    for writer, name in ((report.write_json, "rows.json"), (report.write_csv, "new.csv")):
        with pytest.raises(DiskFullError, match=f"disk full: could not write .*{name}"):
            writer(results, tmp_path / name)
    assert target.read_text() == whole  # the earlier file is kept whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.json"]  # no temporary file


# --- a full disk, real (a 300 KB tmpfs) ----------------------------------------------------
@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 300 KB tmpfs here: {done.stderr.strip() or 'not root'}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_tmpfs_keeps_the_store_readable(
    tiny_tmpfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tiny_tmpfs / "full.h5"
    argv = ["score", "darts:random:30", "--repeats", "4", "--store", str(store)]
    capsys.readouterr()
    assert main(argv) == 2
    [line] = error_lines(capsys)
    found = re.search(r"disk full: .* keeps the (\d+) record\(s\) finished before", line)
    assert found, line
    kept = int(found.group(1))
    assert 0 < kept < 30
    with PatternStore.open(store) as opened:  # every finished record reads whole
        assert len(opened) == kept
        assert len(list(opened.records(patterns=True))) == kept
    assert main(["inspect", str(store)]) == 0
    assert error_lines(capsys) == []
    assert main([*argv, "--resume"]) == 2  # reads the kept ones, fills up again at the next
    [line] = error_lines(capsys)
    assert f"keeps the {kept} record(s) finished before" in line
    # the disk is full now; an output file is whole or absent, never a truncated one
    filler = os.open(tiny_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="No space left"):
            while True:
                os.write(filler, b"\0" * 512)
    finally:
        os.close(filler)
    for flag in ("--json", "--csv"):
        target = tiny_tmpfs / f"rows.{flag[2:]}"
        assert main(["rescore", str(store), "--mu", "1", "--sigma", "1", flag, str(target)]) == 2
        [line] = error_lines(capsys)
        assert line.startswith("swapprobe: error: disk full: could not write")
        assert not target.exists()
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler", "full.h5"]


# --- rescore keeps the stored baselines --------------------------------------------------
def test_rescore_keeps_stored_baselines(tmp_path: Path) -> None:
    from swapprobe.api import rescore

    path = tmp_path / "run.h5"
    # three repeats, patterns kept of the first only (the default --keep-patterns first)
    assert main(["score", ARCH, "--repeats", "3", "-S", "8", "--store", str(path)]) == 0
    with PatternStore.open(path) as store:
        stored = {r.key: r.scores for r in store.records()}
        assert all(store.kept_repeats(key) == [0] for key in stored)
    again = {r.key: r for r in rescore(path, mu=0.08, sigma=0.05)}
    for key, scores in stored.items():
        np.testing.assert_array_equal(again[key].nwot_per_repeat, scores["nwot"])
        np.testing.assert_array_equal(again[key].standard_ap_per_repeat, scores["standard_ap"])
        assert again[key].nwot == pytest.approx(float(np.mean(scores["nwot"])))
        assert "baselines_recomputed_from" not in again[key].metadata


def test_rescore_computes_absent_baselines_from_kept_patterns(tmp_path: Path) -> None:
    from swapprobe.api import rescore

    rng = np.random.default_rng(4)
    active = rng.random((8, 50)) > 0.5  # S = 8 samples × V = 50 units
    active[3] = active[1]  # two samples share a pattern: 7 distinct rows
    record = ModelRecord(
        key="old",
        name="old",
        metadata={"param_count": 1000, "units": 50, "samples": 8, "size_unit": "M"},
        scores={"swap": np.array([40.0, 41.0])},  # written before baselines were stored
        layers=(LayerInfo("relu", "Relu", (50,), 0, 50),),
        patterns={0: pack_sample_bits(active)},
    )
    path = tmp_path / "old.h5"
    with PatternStore.create(path, SETTINGS) as store:
        store.write(record)
    [result] = rescore(path, mu=1.0, sigma=1.0)
    binary = active.astype(float)
    kernel = binary @ binary.T + (1 - binary) @ (1 - binary).T  # SPEC: K = BBᵀ + (1−B)(1−B)ᵀ
    np.testing.assert_allclose(result.nwot_per_repeat, [np.linalg.slogdet(kernel)[1]])
    np.testing.assert_array_equal(result.standard_ap_per_repeat, [7.0])
    assert result.metadata["baselines_recomputed_from"] == [0]
