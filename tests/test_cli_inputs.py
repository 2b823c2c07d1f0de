"""Every input a user brings works or says why: one line on stderr, a non-zero exit, no
traceback, and any store left byte for byte as it was (issue 10, part 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from swapprobe import report
from swapprobe.cli import main
from swapprobe.errors import ModelLoadError

ARCH = "nb201:random:2"
SMALL = ["--repeats", "1", "-S", "8"]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stores") / "run.h5"
    assert main(["score", ARCH, *SMALL, "--store", str(path)]) == 0
    return path


def _copy(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


def _truncated(good: Path, tmp_path: Path) -> Path:
    path = _copy(good, tmp_path / "truncated.h5")
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    return path


def _bad_metadata(good: Path, tmp_path: Path) -> Path:
    path = _copy(good, tmp_path / "metadata.h5")
    with h5py.File(path, "r+") as handle:
        first = next(iter(handle["models"].values()))
        first.attrs["metadata"] = "{not json"
    return path


@pytest.mark.parametrize(
    ("damage", "needle"), [(_truncated, "is damaged"), (_bad_metadata, "damaged record")]
)
@pytest.mark.parametrize("command", ["inspect", "rescore", "resume"])
def test_damaged_stores_are_one_line_and_untouched(
    damage: object,
    needle: str,
    command: str,
    good_store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    path = damage(good_store, tmp_path)  # type: ignore[operator]
    before = path.read_bytes()
    argv = {
        "inspect": ["inspect", str(path)],
        "rescore": ["rescore", str(path), "--mu", "1", "--sigma", "1"],
        "resume": ["score", ARCH, *SMALL, "--store", str(path), "--resume"],
    }[command]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert line.startswith("swapprobe: error: ") and needle in line
    assert "lock" not in line  # a damaged file is not "open in another process"
    assert path.read_bytes() == before


@pytest.mark.parametrize("flag", ["--json", "--csv"])
def test_output_into_a_missing_folder_fails_before_any_work(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "never.h5"
    target = tmp_path / "missing" / "rows.out"
    assert main(["score", ARCH, *SMALL, "--store", str(store), flag, str(target)]) == 2
    assert "does not exist" in one_error_line(capsys)
    assert not store.exists()  # nothing was scored, no store was made


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_into_a_read_only_folder_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(["score", ARCH, *SMALL, "--json", str(folder / "x.json")]) == 2
        assert "not writable" in one_error_line(capsys)
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["search", "nb201", "--population", "0"], "--population"),
        (["search", "nb201", "--mutation-times", "0"], "--mutation-times"),
        (["search", "nb201", "--crossover-prob", "2"], "--crossover-prob"),
        (["correlate", "nb201", "--table", "t.csv", "--limit", "0"], "--limit"),
        (["correlate", "nb201", "--table", "t.csv", "--limit", "-1"], "--limit"),
        (["score", ARCH, "--repeats", "0"], "--repeats"),
        (["score", ARCH, "-S", "1"], "-S/--batch-size"),
        (["score", ARCH, "--mu", "0", "--sigma", "1"], "--mu"),
    ],
)
def test_bad_numbers_are_refused_where_parsed(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    line = one_error_line(capsys)
    assert ": error: " in line and needle in line


def test_huge_input_size_is_refused_with_the_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", ARCH, "--input-size", "100000", "100000"]) == 2
    line = one_error_line(capsys)
    assert "GiB" in line and "100000x100000" in line


def test_debug_after_the_command_shows_the_traceback() -> None:
    with pytest.raises(ModelLoadError):
        main(["score", "missing.onnx", "--debug"])
    with pytest.raises(ModelLoadError):
        main(["--debug", "score", "missing.onnx"])
    assert main(["score", "missing.onnx"]) == 2


def test_json_has_no_nan(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    report.dump_json({"rho": float("nan"), "deep": [1.0, float("inf")]}, path)

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-JSON constant {constant}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {"rho": None, "deep": [1.0, None]}


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigkill_of_a_pool_run_leaves_no_process_behind() -> None:
    command = ["score", "darts:random:400", "--repeats", "2", "--executor", "pool"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "swapprobe.cli", *command, "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        helpers: list[int] = []
        while time.monotonic() < deadline:  # resource tracker, forkserver, two workers
            helpers = _descendants(driver.pid)
            if len(helpers) >= 4:
                break
            time.sleep(0.5)
        assert len(helpers) >= 4, f"the pool never started: {helpers}"
        time.sleep(1.0)
        helpers = _descendants(driver.pid)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in helpers):
        time.sleep(0.25)
    assert not [p for p in helpers if _alive(p)]


def test_a_fixed_batch_export_says_how_to_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """torch 2.13's default (dynamo) export bakes the example's batch of 1 into a Reshape."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    fc = numpy_helper.from_array(np.ones((10, 4 * 32 * 32), np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [weight, shape, fc],
    )
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    store = tmp_path / "new.h5"
    capsys.readouterr()
    assert main(["score", str(path), *SMALL, "--store", str(store)]) == 1  # the model failed
    line = one_error_line(capsys)
    assert "fixed batch of 1" in line and "dynamic_axes" in line
    assert not store.exists()  # a store this run made and never wrote to is gone again
