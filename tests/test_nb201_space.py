"""NAS-Bench-201 space: text form, canonical index, search moves, network and its size.

The parameter counts are the SPEC.md figures; the small ones are derived by hand below so a
structural slip (BN affine, the reduction shortcut, the last BN) shows up as a number.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from swapprobe.errors import DataError, UnknownArchitectureError
from swapprobe.searchspaces.nb201 import (
    NB201_EDGES,
    NB201_NUM_ARCHS,
    NB201_OPS,
    Nb201Arch,
    Nb201Space,
    load_table,
)

EXAMPLE = (  # the SPEC.md example
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


@pytest.fixture(scope="module")
def space() -> Nb201Space:
    return Nb201Space()


def _uniform(op: str) -> Nb201Arch:
    return Nb201Arch((op,) * len(NB201_EDGES))


def _built_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_space_constants_and_registry() -> None:
    assert Nb201Space.name == "nb201"
    assert Nb201Space.size_unit == "M"
    assert Nb201Space.input_shape == (3, 32, 32)
    # get_space imports every built-in space; skip until the sibling DARTS module exists
    pytest.importorskip("swapprobe.searchspaces.darts")
    from swapprobe.searchspaces import get_space

    space = get_space("nb201", channels=8)
    assert isinstance(space, Nb201Space) and space.channels == 8


# --- text form and index ---------------------------------------------------------------------
def test_example_parses_in_edge_order(space: Nb201Space) -> None:
    arch = space.parse(EXAMPLE)
    assert arch.ops == (
        "nor_conv_3x3",  # 1<-0
        "nor_conv_3x3",  # 2<-0
        "avg_pool_3x3",  # 2<-1
        "skip_connect",  # 3<-0
        "nor_conv_3x3",  # 3<-1
        "skip_connect",  # 3<-2
    )
    assert space.format(arch) == EXAMPLE
    assert str(arch) == EXAMPLE


def test_dev_table_round_trips(shared_data: Path, space: Nb201Space) -> None:
    path = shared_data / "nb201_cifar10_dev1000.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    rows = load_table(path)
    lines = path.read_text().splitlines()[1:]
    assert len(rows) == len(lines) == 1000
    for (arch, accs), line in zip(rows, lines, strict=True):
        text, acc = line.rsplit(",", 1)
        assert space.format(arch) == text
        assert space.parse(text) == arch
        assert accs == {"cifar10_test_acc_200ep": float(acc)}
    assert len({arch for arch, _ in rows}) == 1000


def test_all_indices_round_trip(space: Nb201Space) -> None:
    archs = list(space.enumerate())
    assert len(archs) == len(space) == NB201_NUM_ARCHS == 15_625
    texts = set()
    for i, arch in enumerate(archs):
        assert arch.index == i
        assert space.from_index(i) == arch
        text = space.format(arch)
        assert space.parse(text) == arch
        texts.add(text)
    assert len(texts) == NB201_NUM_ARCHS
    # documented enumeration: base 5, op codes in NB201_OPS order, edge 0 least significant
    assert archs[0] == _uniform("none")
    assert archs[-1] == _uniform("avg_pool_3x3")
    assert archs[1].ops == ("skip_connect",) + ("none",) * 5
    assert archs[5**5].ops == ("none",) * 5 + ("skip_connect",)
    assert space.index(EXAMPLE) == 3 + 3 * 5 + 4 * 25 + 1 * 125 + 3 * 625 + 1 * 3125


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("|none~0|+|none~0|none~1|", "3 node groups"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "3 node groups"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "wrapped"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 inputs"),
        ("|none~0|+|none~0|none~1|+|none~0|none~2|none~1|", "must read input 1"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "not of the form"),
        ("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NAS-Bench-201 op"),
        ("|none~00|+|none~0|none~1|+|none~0|none~1|none~2|", "must read input 0"),
    ],
)
def test_bad_strings_say_what_is_wrong(space: Nb201Space, text: str, needle: str) -> None:
    with pytest.raises(UnknownArchitectureError, match=needle) as info:
        space.parse(text)
    assert "\n" not in str(info.value)


def test_bad_values_are_rejected(space: Nb201Space) -> None:
    with pytest.raises(UnknownArchitectureError, match="6 edge ops"):
        Nb201Arch(("none",) * 5)
    with pytest.raises(UnknownArchitectureError, match="unknown NAS-Bench-201 op"):
        Nb201Arch(("none",) * 5 + ("max_pool_3x3",))
    with pytest.raises(UnknownArchitectureError, match="out of range"):
        space.from_index(NB201_NUM_ARCHS)
    with pytest.raises(UnknownArchitectureError, match="out of range"):
        space.from_index(-1)
    with pytest.raises(DataError, match="unknown NAS-Bench-201 dataset"):
        space.evaluation_param_count(_uniform("none"), "mnist")


def test_load_table_columns_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "t.csv"
    good.write_text(f"arch,a,b\n{EXAMPLE},1.5,2\n")
    [(arch, accs)] = load_table(good)
    assert arch == Nb201Arch.parse(EXAMPLE) and accs == {"a": 1.5, "b": 2.0}
    assert load_table(good, acc_cols=["b"])[0][1] == {"b": 2.0}
    with pytest.raises(DataError, match="lacks column"):
        load_table(good, acc_cols=["c"])
    bad = tmp_path / "bad.csv"
    bad.write_text(f"arch,a\n{EXAMPLE},x\n")
    with pytest.raises(DataError, match="line 2"):
        load_table(bad)
    bad.write_text("arch,a\n|none~0|,1\n")
    with pytest.raises(UnknownArchitectureError, match="line 2"):
        load_table(bad)
    with pytest.raises(DataError, match="cannot read"):
        load_table(tmp_path / "missing.csv")


# --- search moves ----------------------------------------------------------------------------
def test_sample_is_uniform_per_edge(space: Nb201Space) -> None:
    rng = np.random.default_rng(0)
    draws = [space.sample(rng) for _ in range(5000)]
    counts = Counter(op for arch in draws for op in arch.ops)
    assert set(counts) == set(NB201_OPS)
    expected = 5000 * 6 / 5
    assert all(abs(n - expected) < 0.06 * expected for n in counts.values())
    assert len(set(draws)) > 3500  # ~3710 distinct expected out of 15,625


def test_mutate_changes_exactly_one_edge(space: Nb201Space) -> None:
    rng = np.random.default_rng(1)
    changed_edges: Counter[int] = Counter()
    for _ in range(3000):
        parent = space.sample(rng)
        child = space.mutate(parent, rng)
        diff = [e for e in range(6) if parent.ops[e] != child.ops[e]]
        assert len(diff) == 1
        changed_edges[diff[0]] += 1
        assert space.parse(space.format(child)) == child
    assert set(changed_edges) == set(range(6))


def test_crossover_children_are_valid_and_complementary(space: Nb201Space) -> None:
    rng = np.random.default_rng(2)
    node_swaps = 0
    for _ in range(3000):
        a, b = space.sample(rng), space.sample(rng)
        c, d = space.crossover(a, b, rng)
        assert isinstance(c, Nb201Arch) and isinstance(d, Nb201Arch)
        for e in range(6):
            assert {c.ops[e], d.ops[e]} == {a.ops[e], b.ops[e]}
            assert c.ops[e] in (a.ops[e], b.ops[e])
        swapped = frozenset(e for e in range(6) if c.ops[e] != a.ops[e])
        if swapped in ({0}, {1, 2}, {3, 4, 5}):
            node_swaps += 1
    assert node_swaps > 1000  # half the draws swap one node's incoming edges


# --- network ---------------------------------------------------------------------------------
def test_parameter_counts_match_spec(space: Nb201Space) -> None:
    # all-none / all-skip (cells carry no parameters), 10 classes:
    #   stem        3·16·9 + 2·16                            =    464
    #   reduction 16→32: 16·32·9 + 64 + 32·32·9 + 64 + 16·32 = 14,464
    #   reduction 32→64: 32·64·9 + 128 + 64·64·9 + 128 + 32·64 = 57,600
    #   last BN     2·64                                     =    128
    #   classifier  64·10 + 10                               =    650
    #   total                                                = 73,306  (≈ 0.073 M)
    # all nor_conv_3x3 adds 5 cells × 6 edges × (9c² + 2c) per stage:
    #   c=16: 70,080   c=32: 278,400   c=64: 1,109,760   → 73,306 + 1,458,240 = 1,531,546
    base = 464 + 14_464 + 57_600 + 128 + 650
    assert base == 73_306
    assert 73_306 + 70_080 + 278_400 + 1_109_760 == 1_531_546
    expected = {
        "none": base,
        "skip_connect": base,
        "avg_pool_3x3": base,
        "nor_conv_3x3": 1_531_546,
        "nor_conv_1x1": base + 5 * 6 * sum(c * c + 2 * c for c in (16, 32, 64)),
    }
    for op, count in expected.items():
        arch = _uniform(op)
        assert space.scoring_param_count(arch) == count
        assert _built_params(space.build_scoring_network(arch)) == count
    # evaluation: only the classifier changes (64·K + K)
    conv = _uniform("nor_conv_3x3")
    assert space.evaluation_param_count(conv, "cifar10") == 1_531_546
    assert space.evaluation_param_count(conv, "cifar100") == 1_531_546 + 90 * 65
    assert space.evaluation_param_count(conv, "imagenet16-120") == 1_531_546 + 110 * 65


def test_analytic_counts_match_built_networks() -> None:
    rng = np.random.default_rng(3)
    small = Nb201Space(num_classes=7, channels=8, cells_per_stage=2)
    full = Nb201Space()
    for i in range(30):
        arch = full.sample(rng)
        assert full.scoring_param_count(arch) == _built_params(full.build_scoring_network(arch))
        if i < 10:
            dataset = ("cifar10", "cifar100", "imagenet16-120")[i % 3]
            built = _built_params(full.build_evaluation_network(arch, dataset))
            assert full.evaluation_param_count(arch, dataset) == built
            assert small.scoring_param_count(arch) == _built_params(
                small.build_scoring_network(arch)
            )


def test_forward_gives_logits(space: Nb201Space) -> None:
    torch.manual_seed(0)
    for text in (EXAMPLE, str(_uniform("none"))):
        net = space.build_scoring_network(space.parse(text))
        out = net(torch.randn(2, *space.input_shape))
        assert out.shape == (2, 10)
        assert torch.isfinite(out).all()
    net = space.build_evaluation_network(EXAMPLE, "cifar100")
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    # every ReLU is a module, so forward hooks see all of them
    relus = sum(isinstance(m, torch.nn.ReLU) for m in net.modules())
    assert relus == 3 * 15 + 2 * 2 + 1


@pytest.mark.parametrize(
    ("text", "module_relus", "onnx_relus"),
    [
        # 3 nor_conv edges: 3 × 15 cells + 2 per reduction block × 2 + 1 final = 50 modules.
        # Two of them (1<-0, 2<-0) read the same tensor, node 0, and the exporter's common-
        # subexpression pass merges identical Relu(x) nodes: 2 × 15 + 5 = 35 in ONNX.
        (EXAMPLE, 50, 35),
        # nor_conv on 1<-0, 2<-1, 3<-2: distinct inputs, nothing merges: 3 × 15 + 5 = 50.
        (
            "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|",
            50,
            50,
        ),
        # node 1 = skip(node 0) *is* node 0, so 2<-0 and 2<-1 ReLU the same tensor:
        # 2 × 15 + 5 = 35 modules, 1 × 15 + 5 = 20 ONNX Relu nodes.
        ("|skip_connect~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|none~0|none~1|none~2|", 35, 20),
    ],
)
def test_onnx_export_traces_cleanly(
    space: Nb201Space, text: str, module_relus: int, onnx_relus: int
) -> None:
    onnx = pytest.importorskip("onnx")
    arch = space.parse(text)
    net = space.build_scoring_network(arch)
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == module_relus
    buffer = io.BytesIO()
    torch.onnx.export(
        net,
        (torch.randn(2, 3, 32, 32),),
        buffer,
        dynamo=False,
        do_constant_folding=False,
        opset_version=17,
    )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["Relu"] == onnx_relus
    # every BN has its own parameters, so none merge: stem + one per nor_conv + 4 + last
    n_conv = sum(op.startswith("nor_conv") for op in arch.ops)
    assert ops["BatchNormalization"] == 1 + n_conv * 15 + 2 * 2 + 1
    assert not {"If", "Loop"} & set(ops)
