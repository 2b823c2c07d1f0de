"""NAS-Bench-101 space: NASLib's encoding, pruning, channel splitting, sizes, search moves, and
the network against ``nasbench_pytorch`` (the package NASLib builds it with) and torch hooks.

Independent expectations: NASLib's own ``params`` and ``flops`` columns for every architecture
of the dev table, hand counts for small cells, the ``nasbench_pytorch`` network on the same
weights, and ReLU sign bits read by forward hooks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from swapprobe.errors import DataError, SwapprobeError, UnknownArchitectureError
from swapprobe.searchspaces import get_space
from swapprobe.searchspaces.nb101 import NB101_LABELS, Nb101Arch, Nb101Space, load_table
from swapprobe.searchspaces.nb101.channels import network_flops, vertex_channels

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"


def _arch(edges: list[tuple[int, int]], interior: tuple[str, ...] = (C3,) * 5) -> Nb101Arch:
    matrix = [[0] * 7 for _ in range(7)]
    for i, j in edges:
        matrix[i][j] = 1
    return Nb101Arch(tuple(map(tuple, matrix)), ("input", *interior, "output"))


# input → 1 (conv3x3) → output; vertices 2..5 unused (edges among them are pruned away)
CHAIN = _arch([(0, 1), (1, 6), (2, 3), (3, 4)])
# input → output only: every cell is one projection
DIRECT = _arch([(0, 6)])
# output fed by 1, 2, 3 (128 = 43 + 43 + 42): vertex 1 (43) feeds vertex 3 (42), so it is
# truncated; the input feeds 1, 2 and the output (projection added to the concatenation)
SPLIT = _arch([(0, 1), (0, 2), (0, 6), (1, 3), (1, 6), (2, 6), (3, 6)], (C1, MP, C3, C3, C3))
CASES = [CHAIN, DIRECT, SPLIT]


@pytest.fixture(scope="module")
def space() -> Nb101Space:
    return Nb101Space()


@pytest.fixture(scope="module")
def table(shared_data: Path) -> dict[str, dict[str, object]]:
    path = shared_data / "suitezero" / "nb101_dev.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())["cifar10"]


def _built_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registered_with_the_papers_unit() -> None:
    space = get_space("nb101")
    assert isinstance(space, Nb101Space)
    assert space.size_unit == "M" and space.input_shape == (3, 32, 32)
    assert space.defaults.data == "cifar10"


# --- encoding --------------------------------------------------------------------------------
def test_encoding_reads_as_naslib_writes_it() -> None:
    # NASLib: matrix flattened row by row, then label codes over its all_ops list
    assert NB101_LABELS == ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")
    values = SPLIT.encoding
    assert len(values) == 56
    assert values[0 * 7 + 1] == values[1 * 7 + 3] == values[3 * 7 + 6] == 1
    assert sum(values[:49]) == 7
    assert values[49:] == (0, 3, 2, 4, 4, 4, 1)
    assert SPLIT.format() == "(" + ", ".join(map(str, values)) + ")"
    assert Nb101Arch.from_encoding(values) == SPLIT
    assert Nb101Arch.parse(" (" + ",".join(map(str, values)) + ",) ") == SPLIT


def test_every_table_key_round_trips(table: dict[str, object], space: Nb101Space) -> None:
    assert len(table) == 250
    archs = set()
    for key in table:
        arch = space.parse(key)
        assert space.format(arch) == key
        assert str(arch.encoding) == key  # NASLib's keys are Python's tuple repr
        archs.add(arch)
    assert len(archs) == 250


def test_sizes_equal_naslibs_columns_for_every_row(
    table: dict[str, dict[str, float]], space: Nb101Space
) -> None:
    """``params`` exactly (NASLib does not count nasbench_pytorch's placeholder scalars, nor
    does swapprobe); ``flops`` to the table's rounding (1e-6 M)."""
    for key, row in table.items():
        arch = space.parse(key)
        assert space.scoring_param_count(arch) == round(row["params"] * 1e6), key
        assert abs(network_flops(arch.pruned) - row["flops"] * 1e6) < 0.5, key


def test_table_cells_need_pruning(table: dict[str, object]) -> None:
    """The keys are unpruned samples: some have more than 9 edges before pruning, none after."""
    archs = [Nb101Arch.parse(key) for key in table]
    assert max(sum(map(sum, a.matrix)) for a in archs) > 9
    assert max(a.pruned.num_edges for a in archs) <= 9
    assert any(len(a.pruned.ops) < 7 for a in archs)


def test_load_table(shared_data: Path, table: dict[str, dict[str, object]]) -> None:
    rows = load_table(shared_data / "suitezero" / "nb101_dev.json")
    assert [a.format() for a, _ in rows] == list(table)
    first = next(iter(table.values()))
    assert rows[0][1]["val_accuracy"] == first["val_accuracy"]


def test_load_table_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    good = CHAIN.format()
    no_path = _text([(0, 1), (2, 6)], (0, 4, 4, 4, 4, 4, 1))
    path.write_text(json.dumps({"cifar10": {good: {"val_accuracy": 90.0}, no_path: {}}}))
    with pytest.raises(UnknownArchitectureError, match=r"cifar10 row 2: .*no path") as info:
        load_table(path)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="no task 'class_scene'"):
        load_table(path, task="class_scene")
    path.write_text(json.dumps({"cifar10": {good: {"nwot": {"time": 1.0}}}}))
    with pytest.raises(DataError, match="row 1: column 'nwot' is not a number"):
        load_table(path)


def _text(matrix_edges: list[tuple[int, int]], codes: tuple[int, ...]) -> str:
    flat = [0] * 49
    for i, j in matrix_edges:
        flat[i * 7 + j] = 1
    return "(" + ", ".join(map(str, [*flat, *codes])) + ")"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("0, 1", "NASLib's tuple"),
        ("(0, 1, 2)", "56 integers"),
        (_text([(0, 6)], (0, 4, 4, 4, 4, 4, 1))[:-1] + ", x)", "not a number"),
        (_text([(0, 6)], (0, 4, 4, 5, 4, 4, 1)), "label code 5 out of range"),
        (_text([(0, 6)], (0, 4, 1, 4, 4, 4, 1)), "vertex 2 has label 'output'"),
        (_text([(0, 6)], (4, 4, 4, 4, 4, 4, 1)), "vertex 0 must be 'input'"),
        (_text([(0, 6), (3, 2)], (0, 4, 4, 4, 4, 4, 1)), "edge 3->2"),
        (_text([(0, 1), (2, 6)], (0, 4, 4, 4, 4, 4, 1)), "no path from the input"),
        (
            _text([(0, i) for i in range(1, 7)] + [(i, 6) for i in range(1, 6)], (0, *[4] * 5, 1)),
            "11 edges after pruning",
        ),
    ],
)
def test_invalid_cells_are_refused_in_one_line(space: Nb101Space, text: str, needle: str) -> None:
    with pytest.raises(UnknownArchitectureError, match=needle) as info:
        space.parse(text)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, SwapprobeError)


def test_pruning_keeps_vertices_on_an_input_output_path() -> None:
    # 0→1→6, 0→2 (2 is a dead end), 3→6 (3 is unreachable), 4→5 (both off every path)
    arch = _arch([(0, 1), (1, 6), (0, 2), (3, 6), (4, 5)])
    cell = arch.pruned
    assert cell.vertices == (0, 1, 6)
    assert cell.matrix == ((0, 1, 0), (0, 0, 1), (0, 0, 0))
    assert cell.ops == ("input", C3, "output")


# --- channels and sizes ----------------------------------------------------------------------
def test_channel_split_by_hand() -> None:
    # SPLIT's pruned cell: vertices 0, 1, 2, 3, 6; the output (128) split over 1, 2, 3
    assert vertex_channels(64, 128, SPLIT.pruned.matrix) == [64, 43, 43, 42, 128]
    assert vertex_channels(128, 512, SPLIT.pruned.matrix) == [128, 171, 171, 170, 512]
    # a vertex that only feeds others takes their largest width: 0→1→2→6, 1→3→6
    chain = _arch([(0, 1), (1, 2), (2, 6), (1, 3), (3, 6)])
    assert vertex_channels(128, 256, chain.pruned.matrix) == [128, 128, 128, 128, 256]
    assert vertex_channels(128, 128, DIRECT.pruned.matrix) == [128, 128]


def test_parameter_counts_by_hand(space: Nb101Space) -> None:
    # stem 3·128·9 + 2·128 = 3,712; classifier 512·10 + 10 = 5,130;
    # cells (c_in → c_out): 128→128 ×3, 128→256, 256→256 ×2, 256→512, 512→512 ×2
    stem, head = 3 * 128 * 9 + 2 * 128, 512 * 10 + 10
    cells = [(128, 128)] * 3 + [(128, 256)] + [(256, 256)] * 2 + [(256, 512)] + [(512, 512)] * 2
    # DIRECT: each cell is a 1×1 projection c_in → c_out with BN:
    #   3·(128·128 + 256) + (128·256 + 512) + 2·(256·256 + 512) + (256·512 + 1024)
    #   + 2·(512·512 + 1024) = 49,920 + 33,280 + 132,096 + 132,096 + 526,336 = 873,728
    direct = stem + head + sum(a * b + 2 * b for a, b in cells)
    assert direct == 3_712 + 5_130 + 873_728 == 882_570
    # CHAIN: projection c_in → c_out, then a 3×3 conv c_out → c_out, each with BN
    chain = direct + sum(9 * b * b + 2 * b for _, b in cells)
    for arch, expected in ((DIRECT, direct), (CHAIN, chain)):
        assert space.scoring_param_count(arch) == expected
        assert _built_params(space.build_scoring_network(arch)) == expected
    assert space.evaluation_param_count(CHAIN) == chain
    with pytest.raises(DataError, match="cifar10"):
        space.evaluation_param_count(CHAIN, "cifar100")


def test_closed_form_counts_the_built_network(space: Nb101Space) -> None:
    rng = np.random.default_rng(7)
    for arch in [*CASES, *(space.sample(rng) for _ in range(6))]:
        assert space.scoring_param_count(arch) == _built_params(space.build_scoring_network(arch))


# --- search moves ----------------------------------------------------------------------------
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=60, deadline=None)
@given(seed=seeds)
def test_samples_are_valid_and_reproducible(seed: int) -> None:
    space = Nb101Space()
    arch = space.sample(np.random.default_rng(seed))
    assert Nb101Arch(arch.matrix, arch.ops) == arch  # the constructor validates
    assert space.parse(space.format(arch)) == arch
    assert space.sample(np.random.default_rng(seed)) == arch


def test_sampling_covers_ops_and_unpruned_matrices(space: Nb101Space) -> None:
    rng = np.random.default_rng(0)
    draws = [space.sample(rng) for _ in range(400)]
    assert {op for a in draws for op in a.ops[1:-1]} == {C3, C1, MP}
    assert any(sum(map(sum, a.matrix)) > 9 for a in draws)  # pruned to ≤ 9
    assert len(set(draws)) == 400


@settings(max_examples=150, deadline=None)
@given(seed=seeds)
def test_mutation_makes_one_valid_change(seed: int) -> None:
    space = Nb101Space()
    rng = np.random.default_rng(seed)
    parent = space.sample(rng)
    child = space.mutate(parent, rng)
    assert Nb101Arch(child.matrix, child.ops) == child
    flat = [np.array(x.matrix).ravel() for x in (parent, child)]
    edges = int((flat[0] != flat[1]).sum())
    ops = sum(a != b for a, b in zip(parent.ops, child.ops, strict=True))
    assert edges + ops == 1
    if len(parent.pruned.ops) > 2:  # an op change of a kept vertex always changes the network
        assert child.pruned != parent.pruned


def test_mutation_falls_back_to_a_pruned_away_change() -> None:
    """DIRECT's one change of the network, removing 0→6, is invalid; every other single
    change (an edge or op of vertices 1..5, none on a path) leaves the network as it is."""
    space = Nb101Space()
    rng = np.random.default_rng(3)
    children = {space.mutate(DIRECT, rng) for _ in range(20)}
    assert len(children) > 1 and DIRECT not in children
    assert all(child.pruned == DIRECT.pruned for child in children)


@settings(max_examples=150, deadline=None)
@given(seed=seeds)
def test_crossover_children_are_valid_and_mix_vertices(seed: int) -> None:
    space = Nb101Space()
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    c, d = space.crossover(a, b, rng)
    for child in (c, d):
        assert Nb101Arch(child.matrix, child.ops) == child
    for v in range(1, 7):
        column = {p: (*(p.matrix[i][v] for i in range(v)), p.ops[v]) for p in (a, b, c, d)}
        assert {column[c], column[d]} == {column[a], column[b]}


# --- network ---------------------------------------------------------------------------------
def _relu_bits(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign bits of every nn.ReLU output in call order, BN on batch statistics; and logits."""
    recorded: list[torch.Tensor] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, o: recorded.append((o > 0).reshape(len(x), -1)))
        for m in net.modules()
        if isinstance(m, torch.nn.ReLU)
    ]
    net.train()
    try:
        with torch.no_grad():
            logits = net(x)
    finally:
        for handle in handles:
            handle.remove()
    return torch.cat(recorded, dim=1), logits


def _oracle_network(arch: Nb101Arch) -> torch.nn.Module:
    model = pytest.importorskip("nasbench_pytorch.model")
    spec = model.ModelSpec(np.array(arch.matrix), list(arch.ops))
    return model.Network(
        spec, num_labels=10, in_channels=3, stem_out_channels=128, num_stacks=3,
        num_modules_per_stack=3,
    )  # fmt: skip


def _copy_weights(mine: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """nasbench_pytorch's weights into swapprobe's network, module by module."""
    mine.layers[0].load_state_dict(theirs.layers[0].conv_bn_relu.state_dict())
    for ours, their in zip(mine.layers[1:], theirs.layers[1:], strict=True):
        for v, op in getattr(ours, "ops", {}).items():
            inner = getattr(their.vertex_op[int(v)], "conv3x3", None) or getattr(
                their.vertex_op[int(v)], "conv1x1", None
            )
            if inner is not None:
                op.load_state_dict(inner.conv_bn_relu.state_dict())
        for v, projection in getattr(ours, "projections", {}).items():
            projection.load_state_dict(their.input_op[int(v)].conv_bn_relu.state_dict())
    mine.classifier.load_state_dict(theirs.classifier.state_dict())


@pytest.mark.parametrize("arch", CASES, ids=["chain", "direct", "split"])
def test_network_is_nasbench_pytorchs_on_the_same_weights(
    space: Nb101Space, arch: Nb101Arch
) -> None:
    torch.manual_seed(0)
    theirs = _oracle_network(arch)
    mine = space.build_scoring_network(arch)
    placeholders = sum(p.numel() for n, p in theirs.named_parameters() if n.endswith(".a"))
    assert _built_params(theirs) - placeholders == _built_params(mine)
    _copy_weights(mine, theirs)
    x = torch.randn(4, 3, 8, 8)  # any size runs (global pooling); small keeps it quick
    bits, logits = _relu_bits(mine, x)
    their_bits, their_logits = _relu_bits(theirs, x)
    assert bits.shape == their_bits.shape  # the same units, in the same order
    assert torch.equal(bits, their_bits)
    assert torch.equal(logits, their_logits)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_swap_is_what_torch_hooks_count(space: Nb101Space, backend: str) -> None:
    """One repeat, init="keep", SPLIT (all three ops, a truncation, a concatenation): the
    torch backend's patterns are the hooks' sign bits exactly; onnxruntime's convolutions
    round differently, which may flip a bit whose BN output is within float rounding of zero
    (measured on 8×8 inputs: 2-3 of 2.2 M bits, at |x| ~ 1e-6 against a spread of 0.6), and
    SWAP moves by at most the flipped bits."""
    import swapprobe

    torch.manual_seed(1)
    net = space.build_scoring_network(SPLIT)
    x = torch.randn(16, 3, 4, 4)  # 27,161 units: below 2^16, so SWAP need not saturate
    bits, _ = _relu_bits(net, x)
    expected = int(torch.unique(bits.T, dim=0).shape[0])
    assert expected < min(bits.shape[1], 2**16)  # neither bound: the count is informative
    result = swapprobe.score(net, x.numpy(), init="keep", repeats=1, backend=backend)
    assert result.units == bits.shape[1]
    flips = int((result.patterns[0].to_bool() != bits.numpy()).sum())
    if backend == "torch":
        assert flips == 0
        assert result.swap == expected
    else:
        assert flips <= 1e-5 * bits.numel()
        assert abs(result.swap - expected) <= flips
