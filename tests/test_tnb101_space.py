"""The TransNAS-Bench-101 spaces: text form and sizes against NAS-Bench-Suite-Zero's tables
(NASLib's keys and ``params`` column, every row of every task), valid moves, each task's network
against its definition, and the captured patterns against torch hooks."""

from __future__ import annotations

import json
import re
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from swapprobe.errors import DataError, SettingsError, UnknownArchitectureError
from swapprobe.searchspaces import get_space
from swapprobe.searchspaces.tnb101 import (
    Tnb101MacroArch,
    Tnb101MacroSpace,
    Tnb101MicroArch,
    Tnb101MicroSpace,
    load_table,
)
from swapprobe.searchspaces.tnb101.encoding import TNB101_TASKS, macro_problem
from swapprobe.searchspaces.tnb101.networks import (
    FactorizedReduce,
    MicroCell,
    TaskNetwork,
    Zero,
    build_task_network,
)

TABLES = {"tnb101-micro": "tnb101_micro_dev.json", "tnb101-macro": "tnb101_macro_dev.json"}
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _table(shared_data: Path, space: str) -> Path:
    path = shared_data / "suitezero" / TABLES[space]
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def _built_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_both_spaces_are_registered_with_a_task() -> None:
    micro = get_space("tnb101-micro", task="jigsaw")
    assert isinstance(micro, Tnb101MicroSpace) and micro.task == "jigsaw"
    assert isinstance(get_space("tnb101-macro"), Tnb101MacroSpace)
    assert Tnb101MicroSpace.input_shape == (3, 256, 256)
    with pytest.raises(SettingsError, match="unknown TransNAS-Bench-101 task 'depth'"):
        get_space("tnb101-micro", task="depth")


# --- text form against the tables ------------------------------------------------------------
@pytest.mark.parametrize("space_name", sorted(TABLES))
def test_every_table_key_round_trips(shared_data: Path, space_name: str) -> None:
    path = _table(shared_data, space_name)
    raw = json.loads(path.read_text())
    space = get_space(space_name)
    rows = load_table(path, space)
    assert list(rows) == list(raw) == list(TNB101_TASKS)
    for task, entries in raw.items():
        assert len(rows[task]) == len(entries) > 300
        for (arch, values), (key, row) in zip(rows[task], entries.items(), strict=True):
            assert arch.task == task
            assert space.format(arch) == f"{task}:{key}"
            assert space.parse(space.format(arch)) == arch
            assert values["val_accuracy"] == row["val_accuracy"]


@pytest.mark.parametrize("space_name", sorted(TABLES))
def test_sizes_equal_naslibs_params_column_on_every_row(
    shared_data: Path, space_name: str
) -> None:
    """NASLib's ``params`` is tensorwatch's count of the modules a forward runs, in millions
    to the parameter: equal to ours on every row (its GAN's discriminator never runs in a
    forward, and jigsaw's shared encoder counts once)."""
    space = get_space(space_name)
    for task, rows in load_table(_table(shared_data, space_name), space).items():
        for arch, values in rows:
            assert space.scoring_param_count(arch) == round(values["params"] * 1e6), (task, arch)


CASES = [
    ("tnb101-micro", f"{task}:{cell}")
    for task, cell in zip(
        TNB101_TASKS,
        ["(0, 1, 2, 3, 0, 1)", "(3, 3, 3, 3, 3, 3)", "(1, 0, 0, 2, 1, 0)", "(2, 1, 3, 1, 2, 1)",
         "(0, 0, 0, 0, 0, 0)", "(1, 1, 1, 1, 1, 1)", "(3, 2, 1, 0, 3, 2)"],
        strict=True,
    )
] + [
    ("tnb101-macro", f"{task}:{stages}")
    for task, stages in zip(
        TNB101_TASKS,
        ["(1, 2, 4, 2, 0, 0)", "(4, 1, 3, 3, 3, 1)", "(3, 3, 3, 2, 0, 0)", "(4, 4, 4, 3, 1, 1)",
         "(2, 3, 1, 1, 1, 0)", "(1, 1, 1, 1, 4, 0)", "(4, 2, 1, 3, 0, 0)"],
        strict=True,
    )
]


@pytest.mark.parametrize(("space_name", "text"), CASES)
def test_closed_form_size_is_the_built_networks(space_name: str, text: str) -> None:
    space = get_space(space_name)
    arch = space.parse(text)
    with torch.device("meta"):
        network = space.build_scoring_network(arch)
    assert space.scoring_param_count(arch) == _built_params(network)
    assert space.evaluation_param_count(arch, arch.task) == _built_params(network)


def test_text_forms_and_benchmark_codes() -> None:
    micro = get_space("tnb101-micro", task="normal")
    cell = micro.parse("(1, 0, 0, 2, 1, 0)")  # the space's task when none is given
    assert cell == Tnb101MicroArch("normal", (1, 0, 0, 2, 1, 0))
    assert micro.format(cell) == "normal:(1, 0, 0, 2, 1, 0)"
    assert micro.parse(" jigsaw:( 1,0,0, 2,1,0 ) ").task == "jigsaw"
    assert cell.benchmark_code == "64-41414-1_00_210"
    macro = get_space("tnb101-macro")
    net = macro.parse("class_object:(1, 2, 4, 2, 0, 0)")
    assert net == Tnb101MacroArch("class_object", (1, 2, 4, 2))
    assert net.codes == (1, 2, 4, 2, 0, 0) and net.benchmark_code == "64-1242-basic"


@pytest.mark.parametrize(
    ("space_name", "text", "needle"),
    [
        ("tnb101-micro", "class_scene:(1, 0, 0, 2, 1)", "6 edge ops, got 5"),
        ("tnb101-micro", "class_scene:(1, 0, 0, 2, 1, 4)", "edge 5 has op code 4"),
        ("tnb101-micro", "depth:(1, 0, 0, 2, 1, 0)", "unknown TransNAS-Bench-101 task 'depth'"),
        ("tnb101-micro", "class_scene:[1, 0, 0, 2, 1, 0]", "must be a tuple"),
        ("tnb101-micro", "class_scene:(1, 0, 0, 2, 1, True)", "tuple of integers"),
        ("tnb101-micro", "", "must be TASK:(codes)"),
        ("tnb101-macro", "jigsaw:(1, 2, 4, 2)", "6 numbers (zero-padded), got 4"),
        ("tnb101-macro", "jigsaw:(1, 0, 4, 2, 2, 0)", "zero before a stage"),
        ("tnb101-macro", "jigsaw:(1, 1, 1, 1, 0, 0)", "0 stages halve the resolution"),
        ("tnb101-macro", "jigsaw:(4, 4, 4, 4, 0, 0)", "4 stages double the channels"),
        ("tnb101-macro", "jigsaw:(3, 3, 3, 3, 3, 2)", "5 stages halve"),
        ("tnb101-macro", "jigsaw:(1, 2, 5, 3, 0, 0)", "stage 2 has code 5"),
        ("tnb101-macro", "jigsaw:(1, 2, 4, 0, 0, 0)", "4 to 6 stages, got 3"),
    ],
)
def test_bad_text_is_refused_in_one_line(space_name: str, text: str, needle: str) -> None:
    with pytest.raises(UnknownArchitectureError, match=re.escape(needle)) as caught:
        get_space(space_name).parse(text)
    assert "\n" not in str(caught.value)


def test_a_table_of_the_other_space_is_refused_naming_the_row(shared_data: Path) -> None:
    first_row = r"task class_scene row \({}\): "
    with pytest.raises(UnknownArchitectureError, match=first_row.format("1, 0, 0, 2, 1, 0")):
        load_table(_table(shared_data, "tnb101-micro"), "tnb101-macro")
    with pytest.raises(UnknownArchitectureError, match=first_row.format("1, 2, 4, 2, 0, 0")):
        load_table(_table(shared_data, "tnb101-macro"), "tnb101-micro")


def test_table_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"depth": {"(1, 0, 0, 2, 1, 0)": {"val_accuracy": 1.0}}}))
    with pytest.raises(DataError, match="task 'depth' is no TransNAS-Bench-101 task"):
        load_table(path, "tnb101-micro")
    path.write_text("{")
    with pytest.raises(DataError, match="is not JSON"):
        load_table(path, "tnb101-micro")
    with pytest.raises(DataError, match="cannot read"):
        load_table(tmp_path / "missing.json", "tnb101-micro")


# --- sampling and search moves ---------------------------------------------------------------
def test_macro_space_is_the_benchmarks_3256_networks() -> None:
    """Counted from the rule by hand: lengths 4, 5, 6 give (15·14) + (30·25) + (56·41)."""
    macro = get_space("tnb101-macro")
    everything = list(macro.enumerate())
    assert len(everything) == len(set(everything)) == len(macro) == 210 + 750 + 2296
    brute = [
        s
        for n in (4, 5, 6)
        for s in product((1, 2, 3, 4), repeat=n)
        if 1 <= sum(c > 2 for c in s) <= 4 and 1 <= sum(c % 2 == 0 for c in s) <= 3
    ]
    assert sorted(a.stages for a in everything) == sorted(brute)
    assert len(list(get_space("tnb101-micro").enumerate())) == 4096


def test_samples_cover_the_spaces_uniformly() -> None:
    rng = np.random.default_rng(0)
    micro = get_space("tnb101-micro", task="room_layout")
    cells = [micro.sample(rng) for _ in range(4000)]
    assert {c.task for c in cells} == {"room_layout"}
    counts = np.bincount([op for c in cells for op in c.ops], minlength=4)
    assert counts.min() > 0.9 * counts.mean()
    macro = get_space("tnb101-macro")
    lengths = np.bincount([len(macro.sample(rng).stages) for _ in range(3000)], minlength=7)
    assert np.allclose(lengths[4:] / 3000, np.array([210, 750, 2296]) / 3256, atol=0.03)


@pytest.mark.parametrize("space_name", sorted(TABLES))
@settings(max_examples=150, deadline=None)
@given(seed=seeds)
def test_mutation_makes_one_small_valid_change(space_name: str, seed: int) -> None:
    space = get_space(space_name, task="segmentsemantic")
    rng = np.random.default_rng(seed)
    parent = space.sample(rng)
    child = space.mutate(parent, rng)
    assert child != parent and child.task == parent.task
    assert space.parse(space.format(child)) == child
    if isinstance(parent, Tnb101MicroArch):
        assert sum(a != b for a, b in zip(parent.ops, child.ops, strict=True)) == 1
    else:
        a, b = parent.stages, child.stages
        assert abs(len(a) - len(b)) <= 1
        if len(a) == len(b):
            assert sum(x != y for x, y in zip(a, b, strict=True)) == 1
        else:
            longer, shorter = (a, b) if len(a) > len(b) else (b, a)
            assert any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer)))


def test_every_macro_network_can_be_mutated() -> None:
    macro = get_space("tnb101-macro")
    rng = np.random.default_rng(1)
    for arch in macro.enumerate():
        assert macro_problem(macro.mutate(arch, rng).stages) is None


@pytest.mark.parametrize("space_name", sorted(TABLES))
@settings(max_examples=150, deadline=None)
@given(seed=seeds)
def test_crossover_children_are_valid_and_mix_the_parents(space_name: str, seed: int) -> None:
    space = get_space(space_name)
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    c, d = space.crossover(a, b, rng)
    for child in (c, d):
        assert space.parse(space.format(child)) == child
    if isinstance(a, Tnb101MicroArch):
        for i in range(6):
            assert {c.ops[i], d.ops[i]} == {a.ops[i], b.ops[i]}
    else:  # one cut in each parent: the children hold the parents' stages between them
        cuts = [
            (i, j)
            for i in range(len(a.stages) + 1)
            for j in range(len(b.stages) + 1)
            if (c.stages, d.stages)
            == (a.stages[:i] + b.stages[j:], b.stages[:j] + a.stages[i:])
        ]
        assert cuts


# --- the networks against their definitions --------------------------------------------------
def test_micro_cell_ops_follow_the_benchmark_rules() -> None:
    """Edges leaving the input map C→2C at stride 2 (skip: factorized reduce, none: zeros of
    the output's shape); the others 2C→2C at stride 1."""
    cell = MicroCell((1, 0, 1, 0, 2, 3), 8, 16, 2)
    assert isinstance(cell.edges[0], FactorizedReduce) and isinstance(cell.edges[1], Zero)
    assert isinstance(cell.edges[2], torch.nn.Identity)
    x = torch.randn(2, 8, 10, 10)
    assert cell.edges[1](x).shape == (2, 16, 5, 5) and not cell.edges[1](x).any()
    assert cell(x).shape == (2, 16, 5, 5)
    # node 3 = none(x) + conv1x1(node 1) + conv3x3(node 2), node 2 = none(x) + node 1
    node1 = cell.edges[0](x)
    expected = cell.edges[4](node1) + cell.edges[5](node1 + cell.edges[1](x))
    assert torch.allclose(cell(x), expected)


@pytest.mark.parametrize(
    ("task", "shape"),
    [
        ("class_scene", (2, 63)),
        ("class_object", (2, 100)),
        ("room_layout", (2, 9)),
        ("jigsaw", (2, 1000)),
        ("autoencoder", (2, 3, 32, 32)),
        ("segmentsemantic", (2, 17, 32, 32)),
    ],
)
def test_each_task_head_puts_out_its_target(task: str, shape: tuple[int, ...]) -> None:
    """On 32×32 images (the tests' size), the pixel heads upsample back to the input's size
    from the micro encoder's 3 halvings and the macro one's 2 (at the benchmark's 256×256 they
    give 256×256)."""
    torch.manual_seed(0)
    if task in ("class_scene", "jigsaw", "autoencoder"):
        network = build_task_network(task, (4, 1, 4, 1, 4), (3, 1, 0, 2, 1, 3))
    else:
        network = build_task_network(task, (1, 3, 2, 4))
    with torch.no_grad():
        assert network(torch.randn(2, 3, 32, 32)).shape == shape


class _TileRecorder(torch.nn.Module):
    """Stands in for the encoder: records what it is given, returns one channel of it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x)
        return x[:, :1]


def test_jigsaw_runs_the_encoder_on_the_centres_of_a_3x3_grid() -> None:
    """256×256 images: grid cells of 85 pixels, each tile the central 64×64 (offset 10)."""
    recorder = _TileRecorder()
    network = TaskNetwork(recorder, torch.nn.Flatten(1), tiles=True)
    x = torch.arange(2 * 3 * 256 * 256, dtype=torch.float32).reshape(2, 3, 256, 256)
    out = network(x)
    assert len(recorder.seen) == 9
    for n, tile in enumerate(recorder.seen):
        top, left = 85 * (n // 3) + 10, 85 * (n % 3) + 10
        assert torch.equal(tile, x[:, :, top : top + 64, left : left + 64])
    assert out.shape == (2, 9 * 64 * 64)  # the 9 tiles' features side by side


# --- the captured patterns against torch hooks -----------------------------------------------
def _oracle_swap(network: torch.nn.Module, x: np.ndarray) -> tuple[int, int]:
    """Hooks on every nn.ReLU and nn.LeakyReLU: bit = gate input > 0, distinct columns of the
    (S, V) matrix; (SWAP, V)."""
    inputs: list[torch.Tensor] = []
    handles = [
        m.register_forward_pre_hook(lambda _, args: inputs.append(args[0].detach()))
        for m in network.modules()
        if isinstance(m, torch.nn.ReLU | torch.nn.LeakyReLU)
    ]
    network.train()
    with torch.no_grad():
        network(torch.from_numpy(x))
    for handle in handles:
        handle.remove()
    matrix = torch.cat([t.reshape(len(x), -1) for t in inputs], dim=1) > 0
    return int(torch.unique(matrix.T, dim=0).shape[0]), int(matrix.shape[1])


ORACLE_CASES = [  # (space, architecture, backends)
    ("tnb101-micro", "class_scene:(0, 1, 2, 3, 1, 3)", ("onnx", "torch")),  # every op, stride 2
    ("tnb101-micro", "jigsaw:(3, 1, 0, 0, 2, 2)", ("torch",)),  # the default backend
    ("tnb101-macro", "autoencoder:(1, 2, 3, 4, 0, 0)", ("torch",)),  # every stage kind
    ("tnb101-macro", "segmentsemantic:(4, 1, 3, 2, 0, 0)", ("torch",)),
]


@pytest.mark.slow
@pytest.mark.parametrize(("space_name", "text", "backends"), ORACLE_CASES)
def test_pipeline_scores_what_torch_hooks_see(
    space_name: str, text: str, backends: tuple[str, ...]
) -> None:
    """One repeat with the built weights on 32×32 images (kept small for the 2-core budget;
    S=24 so that SWAP stays below its 2^S cap): exactly the hooks' count. The ONNX backend on
    one architecture only: exporting the jigsaw network takes minutes, the decoders' weights
    tens of megabytes (the space's default backend is torch)."""
    from swapprobe.data import load_batch
    from swapprobe.evaluate import Evaluator
    from swapprobe.models import arch_ref
    from swapprobe.results import ScoreSettings

    space = get_space(space_name)
    ref = arch_ref(space, space.parse(text))
    batch = load_batch("synthetic", batch_size=24, seed=0, input_size=(32, 32))
    for backend in backends:
        evaluator = Evaluator(
            batch,
            ScoreSettings(
                batch_size=24, repeats=1, init="keep", keep_patterns="none", backend=backend
            ),
        )
        result = evaluator.evaluate(ref)
        expected, units = _oracle_swap(evaluator._build_network(ref), batch.inputs)
        assert (result.swap, result.units) == (expected, units), backend
        assert result.swap < 2**24
        assert result.param_count == space.scoring_param_count(ref.arch)


def test_a_naslib_table_keeps_each_task_its_own_network(tmp_path: Path) -> None:
    """The same NASLib key under two tasks is two networks (the head differs), so the rows do
    not merge: each keeps its own task's accuracy and the other task's is missing."""
    from swapprobe.correlate import for_space, read_table

    key = "(1, 0, 0, 2, 1, 0)"
    table = tmp_path / "tnb101_micro_dev.json"
    table.write_text(
        json.dumps(
            {
                "class_scene": {key: {"val_accuracy": 50.0, "nwot": 1.0}},
                "autoencoder": {key: {"val_accuracy": 0.4, "nwot": 2.0}},
            }
        )
    )
    truth = for_space(read_table(table), get_space("tnb101-micro"))
    assert sorted(truth.archs) == sorted(
        [f"autoencoder:{key}", f"class_scene:{key}"]
    )
    scene = truth.accuracies["class_scene"]
    assert sorted(np.nan_to_num(scene, nan=-1.0).tolist()) == [-1.0, 50.0]
