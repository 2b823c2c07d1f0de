"""All repeats in one pass must be the per-repeat pass, bit for bit.

The independent expectation is :class:`~swapprobe.capture.session.PatternSession`, run once per
repeat on the same emitted graph: the grouped session (repeats as channel groups) fed its
weights must give every repeat's pattern words and layer table exactly, on every op of both
spaces (DARTS edges at stride 1 and 2, FactorizedReduce included; NAS-Bench-201 cell ops and
its stride-2 reduction blocks), DARTS_V2 and random architectures; and the Evaluator must give
the same scores whichever path it takes.

With each chunk's weights baked in (the CPU default: onnxruntime's NCHWc kernels), the sums
are the same but rounded in another order, so a bit may differ only where a pre-activation is
within float32 rounding of zero. With batch-normalised, unit-scale values and sums of at most
a few hundred terms that is about 10⁻⁶ of them or fewer: the tests allow 10⁻⁵ of the bits.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch.nn as nn

import swapprobe.capture.grouped as grouped_mod
from swapprobe.capture.emit import GraphEmitter
from swapprobe.capture.export import export_module
from swapprobe.capture.graph import load_model
from swapprobe.capture.grouped import (
    GroupedPatternSession,
    GroupingError,
    group_repeats,
    varying_tensors,
)
from swapprobe.capture.runtime import SharedCpuArena
from swapprobe.capture.session import PatternSession
from swapprobe.data import load_batch
from swapprobe.evaluate import Evaluator, ScoreSettings
from swapprobe.models import arch_ref
from swapprobe.results import RuntimeOptions
from swapprobe.searchspaces.darts import DARTS_OPS, DARTS_V2, DartsSpace, Genotype
from swapprobe.searchspaces.darts.networks import Cell
from swapprobe.searchspaces.nb201 import NB201_EDGES, NB201_OPS, Nb201Arch, Nb201Space

S = 8
#: the share of pattern bits a baked chunk may flip (see the module doc)
ROUNDING_BITS = 1e-5


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return load_batch("synthetic", batch_size=S, seed=5).inputs


def _loaded(network: nn.Module, images: np.ndarray) -> onnx.ModelProto:
    return load_model(export_module(network, images, method="emit"))


def _assert_grouped_is_per_repeat(
    network: nn.Module,
    images: np.ndarray,
    *,
    samples: int = S,
    repeats: int = 3,
    init: str = "gaussian",
    max_chunk_bytes: int | None = None,
    varies: bool = True,
) -> GroupedPatternSession:
    """Fed its weights, the grouped pass is the per-repeat pass bit for bit; baked, it differs
    in at most :data:`ROUNDING_BITS` of the bits."""
    model = _loaded(network, images)
    per_repeat = PatternSession(model, batch_size=samples, sample_shape=images.shape[1:], init=init)
    sessions = {
        bake: GroupedPatternSession(
            model,
            batch_size=samples,
            sample_shape=images.shape[1:],
            init=init,
            max_chunk_bytes=max_chunk_bytes,
            bake=bake,
        )
        for bake in (False, True)
    }
    got = sessions[False].run_all(images, seed=7, repeats=repeats)
    baked = sessions[True].run_all(images, seed=7, repeats=repeats)
    assert len(got) == len(baked) == repeats
    for repeat, (matrix, other) in enumerate(zip(got, baked, strict=True)):
        expected = per_repeat.run(images, seed=7, repeat=repeat)
        assert matrix.layers == other.layers == expected.layers  # names, shapes, offsets, order
        np.testing.assert_array_equal(matrix.words, expected.words, err_msg=f"repeat {repeat}")
        differing = int(np.bitwise_count(other.words ^ expected.words).sum())
        assert differing <= ROUNDING_BITS * expected.units * samples, f"repeat {repeat}"
    grouped = sessions[False]
    # Different repeats really are different draws (the test could not pass by repeating one);
    # ``varies=False`` where no weight precedes any activation (pools, identities).
    assert np.array_equal(got[0].words, got[1].words) != varies
    return grouped


def _darts_genotype(op: str) -> Genotype:
    """``op`` on every reduction-cell edge: from the cell inputs (stride 2) and from nodes."""
    reduce = ((op, 0), (op, 1), (op, 2), (op, 0), (op, 3), (op, 1), (op, 4), (op, 2))
    if op == "none":  # a cell of only zeros: mix in a conv so later nodes see data
        reduce = (("sep_conv_3x3", 0), *reduce[1:])
    normal = (("sep_conv_3x3", 0),) * 8
    return Genotype(normal, (2, 3, 4, 5), reduce, (2, 3, 4, 5))


@pytest.mark.parametrize("op", DARTS_OPS)
def test_every_darts_op_grouped_is_per_repeat(op: str, images: np.ndarray) -> None:
    network = DartsSpace().build_scoring_network(_darts_genotype(op))
    varies = "pool" not in op  # pools: no weight precedes any ReLU of the cell
    _assert_grouped_is_per_repeat(network, images, varies=varies)


def test_darts_v2_grouped_is_per_repeat_under_both_random_schemes(images: np.ndarray) -> None:
    # DARTS_V2's reduction cell is max pools and identities: its patterns (the preprocessing
    # ReLUs on the image) are the same in every repeat.
    network = DartsSpace().build_scoring_network(DARTS_V2)
    for init in ("gaussian", "kaiming"):
        _assert_grouped_is_per_repeat(network, images, init=init, varies=False)


def test_chunks_of_repeats_give_the_same_patterns(images: np.ndarray) -> None:
    """A memory bound small enough for 2 repeats per pass: 5 repeats in chunks 2+2+1 (a second
    session for the short chunk), still every repeat's own patterns."""
    network = DartsSpace().build_scoring_network(_darts_genotype("sep_conv_3x3"))
    model = _loaded(network, images)
    one = GroupedPatternSession(model, batch_size=S, sample_shape=images.shape[1:])
    bound = 2 * one.repeat_bytes
    session = _assert_grouped_is_per_repeat(network, images, repeats=5, max_chunk_bytes=bound)
    assert session.max_chunk == 2
    assert session.chunks(list(range(5))) == [[0, 1], [2, 3], [4]]


def test_more_than_64_samples_pack_into_several_words() -> None:
    """S = 80: five 16-sample groups in two 64-bit words per unit."""
    images = load_batch("synthetic", batch_size=80, seed=3).inputs
    network = DartsSpace().build_scoring_network(_darts_genotype("dil_conv_3x3"))
    session = _assert_grouped_is_per_repeat(network, images, samples=80, repeats=3)
    assert session.run(images, seed=7, repeat=0).words.shape[1] == 2


def _nb201_archs() -> list[Nb201Arch]:
    uniform = [Nb201Arch((op,) * len(NB201_EDGES)) for op in NB201_OPS if op != "none"]
    # all-none: the cells add nothing, but stem, reductions and the last ReLU still count
    uniform.append(Nb201Arch(("none",) * len(NB201_EDGES)))
    return uniform


@pytest.mark.parametrize("arch", _nb201_archs(), ids=str)
def test_every_nb201_op_grouped_is_per_repeat(arch: Nb201Arch, images: np.ndarray) -> None:
    """Cell ops at stride 1 and the stride-2 reduction blocks (conv and pooled shortcut)."""
    network = Nb201Space().build_scoring_network(arch)
    varies = set(arch.ops) != {"none"}  # all-none: zeros from the first cell on, every repeat
    _assert_grouped_is_per_repeat(network, images, repeats=2, varies=varies)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_architectures_grouped_is_per_repeat(seed: int, images: np.ndarray) -> None:
    rng = np.random.default_rng(seed)
    for space in (DartsSpace(), Nb201Space()):
        network = space.build_scoring_network(space.sample(rng))
        _assert_grouped_is_per_repeat(network, images, repeats=2)


def test_the_evaluator_scores_darts_grouped_and_identically() -> None:
    data = load_batch("synthetic", batch_size=16, seed=2)
    settings = ScoreSettings(batch_size=16, repeats=6, keep_patterns="all")
    evaluator = Evaluator(data, settings)
    fed = Evaluator(data, replace(settings, runtime=RuntimeOptions(bake=False)))
    per_repeat = Evaluator(data, replace(settings, runtime=RuntimeOptions(grouped=False)))
    rng = np.random.default_rng(4)
    space = DartsSpace()
    for arch in (DARTS_V2, space.sample(rng), space.sample(rng)):
        ref = arch_ref(space, arch)
        baked = evaluator.evaluate(ref)  # the default on the CPU
        grouped = fed.evaluate(ref)
        assert "group_rewrite" in grouped.timings  # it did take the grouped path
        plain = per_repeat.evaluate(ref)
        assert "group_rewrite" not in plain.timings
        np.testing.assert_array_equal(grouped.swap_per_repeat, plain.swap_per_repeat)
        np.testing.assert_array_equal(grouped.standard_ap_per_repeat, plain.standard_ap_per_repeat)
        np.testing.assert_array_equal(grouped.nwot_per_repeat, plain.nwot_per_repeat)
        assert grouped.swap == plain.swap
        assert grouped.param_count == baked.param_count == plain.param_count
        assert grouped.metadata["model_sha256"] == plain.metadata["model_sha256"]
        assert grouped.layers == baked.layers == plain.layers
        for repeat in range(6):
            np.testing.assert_array_equal(
                grouped.patterns[repeat].words, plain.patterns[repeat].words
            )
            # A flipped bit changes at most one unit's pattern: SWAP moves by at most the flips.
            flips = int(
                np.bitwise_count(baked.patterns[repeat].words ^ plain.patterns[repeat].words).sum()
            )
            assert flips <= ROUNDING_BITS * plain.units * 16
            assert abs(baked.swap_per_repeat[repeat] - plain.swap_per_repeat[repeat]) <= flips


def test_baked_chunks_give_depthwise_convs_whole_nchwc_blocks(images: np.ndarray) -> None:
    """A DARTS cell's depthwise convs have C = 6 channels per repeat: baked chunks are 8 repeats
    (48 channels, three blocks of 16) where the memory bound alone would give 7, and stay
    near-equal unbaked."""
    network = DartsSpace().build_scoring_network(_darts_genotype("sep_conv_3x3"))
    model = _loaded(network, images)
    one = GroupedPatternSession(model, batch_size=S, sample_shape=images.shape[1:], bake=False)
    bound = 7 * one.repeat_bytes + 1
    sizes = {}
    for bake in (False, True):
        session = GroupedPatternSession(
            model, batch_size=S, sample_shape=images.shape[1:], max_chunk_bytes=bound, bake=bake
        )
        assert session.max_chunk == 7
        sizes[bake] = [len(chunk) for chunk in session.chunks(list(range(32)))]
    assert sizes[False] == [7, 7, 7, 7, 4]
    assert sizes[True] == [8, 8, 8, 8]
    groups = [
        attribute.i
        for node in model.graph.node
        if node.op_type == "Conv"
        for attribute in node.attribute
        if attribute.name == "group" and attribute.i > 1
    ]
    assert set(groups) == {6}  # one repeat's depthwise convs: 6 channels, 6 groups
    block = grouped_mod._NCHWC_BLOCK
    assert all(size * 6 % block == 0 for size in sizes[True])  # whole blocks baked
    assert 7 * 6 % block != 0  # which the memory bound's own chunks of 7 would not give


def test_large_networks_keep_the_per_repeat_path() -> None:
    """NAS-Bench-201 at S = 32 is compute-bound: grouping would only add memory."""
    data = load_batch("synthetic", batch_size=32, seed=2)
    evaluator = Evaluator(data, ScoreSettings(batch_size=32, repeats=2))
    space = Nb201Space()
    result = evaluator.evaluate(arch_ref(space, space.sample(np.random.default_rng(0))))
    assert "group_rewrite" not in result.timings


def test_large_networks_are_refused_before_any_rewrite(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision comes from the loaded graph's shapes (the emitted graphs' scalar
    constants included): no grouped session is built and thrown away."""

    def built(*args: object, **kwargs: object) -> None:
        raise AssertionError("a grouped session was built for a network over the bound")

    space = Nb201Space()
    x = load_batch("synthetic", batch_size=32, seed=5).inputs
    model = _loaded(space.build_scoring_network(space.sample(np.random.default_rng(1))), x)
    estimate = grouped_mod._estimated_repeat_bytes(model, 32)
    assert estimate is not None and estimate > grouped_mod.GROUP_BELOW_BYTES
    monkeypatch.setattr(grouped_mod, "GroupedPatternSession", built)
    assert grouped_mod.grouped_session(model, batch_size=32, sample_shape=x.shape[1:]) is None


class _Tied(nn.Module):
    """Two convolutions sharing one weight (each repeat's draw must stay tied)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.relu_a = nn.ReLU()
        self.conv_b = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.conv_b.weight = self.conv_a.weight
        self.relu_b = nn.ReLU()

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.relu_b(self.conv_b(self.relu_a(self.conv_a(x))))


class _ChannelSlice(nn.Module):
    """A slice on the channel axis: mixes repeats under grouping, so it must be refused."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.relu = nn.ReLU()

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.relu(self.conv(x)[:, :2])


@pytest.mark.parametrize("module", [_Tied(), _ChannelSlice()], ids=["tied", "channel-slice"])
def test_graphs_the_rewrite_cannot_prove_are_refused(module: nn.Module, images: np.ndarray) -> None:
    model = load_model(export_module(module, images, method="trace"))
    with pytest.raises(GroupingError):
        GroupedPatternSession(model, batch_size=S, sample_shape=images.shape[1:])
    assert grouped_mod.grouped_session(model, batch_size=S, sample_shape=images.shape[1:]) is None


class _TwoCells(nn.Module):
    """A reduction cell, then a normal cell after it: the second cell's preprocessing ReLUs
    read the first cell's output concat and a FactorizedReduce of the image (the cell output
    concat, which the scoring network only pools, here feeds activations)."""

    def __init__(self) -> None:
        super().__init__()
        reduce = (("sep_conv_3x3", 0), ("dil_conv_3x3", 1), ("skip_connect", 0))
        reduce += (("max_pool_3x3", 2), ("avg_pool_3x3", 1), ("sep_conv_5x5", 3))
        reduce += (("skip_connect", 2), ("dil_conv_5x5", 4))
        self.cell0 = Cell(reduce, (2, 3, 4, 5), 3, 3, 4, reduction=True, reduction_prev=False)
        self.cell1 = Cell(
            DARTS_V2.normal, (2, 3, 4, 5), 3, 16, 4, reduction=False, reduction_prev=True
        )

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.cell1(x, self.cell0(x, x))

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        return g(self.cell1, x, g(self.cell0, x, x))


def test_two_stacked_cells_grouped_is_per_repeat(images: np.ndarray) -> None:
    session = _assert_grouped_is_per_repeat(_TwoCells(), images, repeats=3)
    rewritten = group_repeats(
        session._base, 4, input_name="input", drawn=[p.name for p in session._drawn]
    )
    # the structure the exactness rests on, read off the rewritten graph: every conv's groups
    # times 4, except a one-group conv reading a tensor no repeat changes (the image's ReLU),
    # whose 4·C_out output channels are each repeat's own
    convs_before = {n.name: n for n in session._base.graph.node if n.op_type == "Conv"}
    varying = varying_tensors(session._base.graph.node, {p.name for p in session._drawn})
    seen = set()
    for node in rewritten.graph.node:
        if node.op_type == "Conv":
            original = convs_before[node.name]
            before = next(a.i for a in original.attribute if a.name == "group")
            after = next(a.i for a in node.attribute if a.name == "group")
            once = original.input[0] not in varying and before == 1
            assert after == (1 if once else 4 * before)
            seen.add(once)
    assert seen == {True, False}
    inputs = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in rewritten.graph.input
    }
    for param in session._drawn:
        assert inputs[param.name] == [4 * param.shape[0], *param.shape[1:]]
    concats = [n for n in rewritten.graph.node if n.op_type == "Concat"]
    names = {n.name for n in concats}
    assert "/cell0/Concat" + "__swapprobe_group_cat" in names  # the cell output, per repeat
    assert "/cell1/preprocess0/Concat__swapprobe_group_cat" in names  # FactorizedReduce


def test_baked_chunks_run_without_the_shared_arena(
    images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An onnxruntime that refuses the environment's arena (older, or the caller registered
    one): baked chunk sessions allocate their own and give the same patterns."""
    import onnxruntime as ort

    def refuse(*args: object) -> None:
        raise RuntimeError("an allocator is already registered")

    arena = SharedCpuArena()  # not tried yet, unlike the process's own
    monkeypatch.setattr(ort, "create_and_register_allocator", refuse)
    network = DartsSpace().build_scoring_network(_darts_genotype("dil_conv_5x5"))
    model = _loaded(network, images)
    runs = {}
    for bake in (True, False):
        session = GroupedPatternSession(
            model, batch_size=S, sample_shape=images.shape[1:], bake=bake, arena=arena
        )
        runs[bake] = session.run_all(images, seed=7, repeats=3)
    assert arena.available() is False
    for baked, fed in zip(runs[True], runs[False], strict=True):
        differing = int(np.bitwise_count(baked.words ^ fed.words).sum())
        assert differing <= ROUNDING_BITS * fed.units * S
