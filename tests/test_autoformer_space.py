"""The AutoFormer ViT spaces: text form, sizes, search moves, and the network's patterns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import swapprobe
from swapprobe.data import load_batch
from swapprobe.errors import ShapeMismatchError, UnknownArchitectureError
from swapprobe.models import resolve_one
from swapprobe.searchspaces import get_space
from swapprobe.searchspaces.autoformer import AutoFormerArch, load_table
from swapprobe.searchspaces.autoformer.encoding import multiply_adds
from swapprobe.searchspaces.autoformer.networks import AutoFormerNetwork
from swapprobe.searchspaces.autoformer.space import SMALL_SMALLEST, TINY_LARGEST, TINY_SMALLEST

TABLE = "vit/autoformer_ti_autoprox_200.json"
SPACES = ("autoformer-ti", "autoformer-s", "autoformer-b")
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@pytest.fixture(scope="module")
def table(shared_data: Path) -> list[tuple[AutoFormerArch, dict]]:
    path = shared_data / TABLE
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return load_table(path)


# --- text form -------------------------------------------------------------------------------
def test_every_table_record_round_trips_in_both_spellings(table: list) -> None:
    space = get_space("autoformer-ti")
    assert len(table) == 200
    for arch, record in table:
        text = space.format(arch)
        assert space.parse(text) == arch
        assert json.loads(text) == record["arch"]  # the table's own spelling, same numbers
        assert list(json.loads(text)) == ["hidden_dim", "depth", "mlp_ratio", "num_heads"]
        public = json.dumps(arch.to_autoformer_config())
        assert space.parse(public) == arch
        assert space.parse(json.dumps(record)) == arch  # a whole record reads too


def test_the_public_autoformer_spelling_reads_as_documented() -> None:
    space = get_space("autoformer-s")
    text = json.dumps(
        {"embed_dim": [384] * 12, "layer_num": 12, "mlp_ratio": [3] * 12, "num_heads": [6] * 12}
    )
    arch = space.parse(text)
    assert (arch.embed_dim, arch.depth, arch.mlp_ratios[0], arch.num_heads[0]) == (384, 12, 3.0, 6)
    assert space.format(arch).startswith('{"hidden_dim":384,"depth":12,"mlp_ratio":[3.0,')


def _tiny(embed: int, depth: int, ratios: list, heads: list) -> str:
    record = {"hidden_dim": embed, "depth": depth, "mlp_ratio": ratios, "num_heads": heads}
    return json.dumps(record)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"hidden_dim":192,"depth":13,"mlp_ratio":[4]*12}', "not JSON"),
        (_tiny(192, 13, [4] * 12, [3] * 12), "depth 13 disagrees"),
        (_tiny(192, 12, [3.0] * 12, [3] * 12), "layer 0: MLP ratio must be one of 3.5, 4.0"),
        (_tiny(192, 12, [4] * 12, [5] + [3] * 11), "layer 0: heads must be one of 3, 4"),
        (_tiny(200, 12, [4] * 12, [3] * 12), "embedding dimension must be one of 192, 216, 240"),
        (_tiny(192, 15, [4] * 15, [3] * 15), "depth must be one of 12, 13, 14"),
        (
            json.dumps({"embed_dim": [192, 216], "layer_num": 2, "mlp_ratio": [4] * 2}),
            "needs num_heads as a list",
        ),
        (
            json.dumps(
                {"embed_dim": [192, 216], "layer_num": 2, "mlp_ratio": [4, 4], "num_heads": [3, 3]}
            ),
            "one value repeated",
        ),
        ('{"depth":12}', "exactly one of hidden_dim or embed_dim"),
    ],
)
def test_bad_text_is_refused_in_one_line(text: str, reason: str) -> None:
    with pytest.raises(UnknownArchitectureError, match=reason) as error:
        get_space("autoformer-ti").parse(text)
    assert "\n" not in str(error.value)


def test_a_bad_table_row_is_named(tmp_path: Path) -> None:
    good = {"arch": TINY_SMALLEST.to_record(), "c100_kd_acc": 70.0}
    bad = {"arch": {**TINY_SMALLEST.to_record(), "depth": 13}, "c100_kd_acc": 71.0}
    path = tmp_path / "table.json"
    path.write_text(json.dumps([good, good, bad]))
    with pytest.raises(UnknownArchitectureError, match=r"row 2: AutoFormer depth 13 disagrees"):
        load_table(path)


def test_named_architectures_resolve_only_in_their_space() -> None:
    ref = resolve_one("autoformer-ti:TINY_LARGEST")
    assert ref.arch == TINY_LARGEST
    assert (TINY_LARGEST.embed_dim, TINY_LARGEST.depth) == (240, 14)
    assert resolve_one("autoformer-s:SMALL_SMALLEST").arch == SMALL_SMALLEST
    with pytest.raises(UnknownArchitectureError, match="TINY_LARGEST"):
        resolve_one("autoformer-s:TINY_LARGEST")  # another supernet's subnet


# --- sizes -----------------------------------------------------------------------------------
def test_parameter_count_of_two_subnets_by_hand(table: list) -> None:
    """Written out here from the layer list, independently of the module's formula."""
    space = get_space("autoformer-ti")
    # TINY_SMALLEST: E = 192, 12 layers, MLP 192 → 672 → 192, 3 heads (q/k/v 192 wide)
    embedding = (3 * 16 * 16 * 192 + 192) + 192 + 197 * 192  # conv, class token, positions
    layer = 2 * 192 + (192 * 576 + 576) + (192 * 192 + 192)  # LN, qkv, projection
    layer += 2 * 192 + (192 * 672 + 672) + (672 * 192 + 192)  # LN, fc1, fc2
    tail = 2 * 192 + 192 * 1000 + 1000  # final LN, ImageNet head
    assert space.scoring_param_count(TINY_SMALLEST) == embedding + 12 * layer + tail == 5_273_896

    # Table row 1: E = 240, 14 layers; ratios 4.0 (MLP 960) or 3.5 (MLP 840); heads 3 or 4
    arch = table[1][0]
    assert arch.embed_dim == 240 and arch.depth == 14
    total = (3 * 256 * 240 + 240) + 240 + 197 * 240 + 2 * 240 + 240 * 1000 + 1000
    for ratio, heads in zip(arch.mlp_ratios, arch.num_heads, strict=True):
        mlp = {4.0: 960, 3.5: 840}[ratio]
        qkv = 64 * heads
        total += 4 * 240 + (240 * 3 * qkv + 3 * qkv) + (qkv * 240 + 240)
        total += (240 * mlp + mlp) + (mlp * 240 + 240)
    assert space.scoring_param_count(arch) == total


def test_closed_form_counts_the_built_networks(table: list) -> None:
    """A dozen table rows and three samples of Small and Base, built on the meta device."""
    archs = [arch for arch, _ in table[::17]]
    spaces = {name: get_space(name) for name in SPACES}
    checks = [(spaces["autoformer-ti"], a) for a in archs]
    for name in ("autoformer-s", "autoformer-b"):
        checks += [(spaces[name], spaces[name].sample(np.random.default_rng(i))) for i in range(3)]
    for space, arch in checks:
        with torch.device("meta"):
            network = space.build_scoring_network(arch)
            evaluation = space.build_evaluation_network(arch, "cifar100")
        assert space.scoring_param_count(arch) == sum(p.numel() for p in network.parameters())
        assert space.evaluation_param_count(arch, "cifar100") == sum(
            p.numel() for p in evaluation.parameters()
        )


def test_multiply_adds_match_torch_flop_counter() -> None:
    """torch's FlopCounterMode counts 2 FLOPs per multiply-add of convs and matmuls; attention
    runs on the math kernel (matmuls it sees: it has no rule for CPU's fused kernel). At 64×64
    (16 patches) to keep it quick: the count's token terms are what is checked."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    arch = get_space("autoformer-ti").parse(_tiny(216, 12, [3.5, 4] * 6, [3, 4] * 6))
    network = AutoFormerNetwork(arch, image_size=64).eval()
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter, torch.no_grad():
        network(torch.zeros(1, 3, 64, 64))
    assert counter.get_total_flops() == 2 * multiply_adds(arch, image_size=64)
    assert get_space("autoformer-ti").multiply_adds(arch) == multiply_adds(arch, image_size=224)


# --- search moves ----------------------------------------------------------------------------
def _changes(a: AutoFormerArch, b: AutoFormerArch) -> tuple[int, int, int]:
    """(embed changed, depth changed, layer fields changed among the shared layers)."""
    shared = min(a.depth, b.depth)
    fields = sum(a.mlp_ratios[i] != b.mlp_ratios[i] for i in range(shared))
    fields += sum(a.num_heads[i] != b.num_heads[i] for i in range(shared))
    return int(a.embed_dim != b.embed_dim), int(a.depth != b.depth), fields


@settings(max_examples=150, deadline=None)
@given(seed=seeds, name=st.sampled_from(SPACES))
def test_mutation_makes_one_valid_change(seed: int, name: str) -> None:
    space = get_space(name)
    rng = np.random.default_rng(seed)
    parent = space.sample(rng)
    child = space.mutate(parent, rng)
    assert space.parse(space.format(child)) == child  # in the space
    embed, depth, fields = _changes(parent, child)
    assert embed + depth + min(fields, 1) == 1  # exactly one kind of move
    assert fields <= 1  # one layer's one choice at most, and none when the depth moved
    if depth:
        assert fields == 0


@settings(max_examples=150, deadline=None)
@given(seed=seeds, name=st.sampled_from(SPACES))
def test_crossover_children_are_valid_and_keep_the_parents_choices(seed: int, name: str) -> None:
    space = get_space(name)
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    c, d = space.crossover(a, b, rng)
    for child in (c, d):
        assert space.parse(space.format(child)) == child
    assert (c.depth, d.depth) == (a.depth, b.depth)
    assert {c.embed_dim, d.embed_dim} == {a.embed_dim, b.embed_dim}
    for i in range(min(a.depth, b.depth)):
        assert {c.mlp_ratios[i], d.mlp_ratios[i]} == {a.mlp_ratios[i], b.mlp_ratios[i]}
        assert {c.num_heads[i], d.num_heads[i]} == {a.num_heads[i], b.num_heads[i]}


@settings(max_examples=50, deadline=None)
@given(seed=seeds, name=st.sampled_from(SPACES))
def test_samples_are_valid_and_reproducible(seed: int, name: str) -> None:
    space = get_space(name)
    arch = space.sample(np.random.default_rng(seed))
    assert arch == space.sample(np.random.default_rng(seed))
    assert space.parse(space.format(arch)) == arch


# --- the network against a plain torch ViT -----------------------------------------------------
class _ReferenceBlock(nn.Module):
    """A pre-norm block on torch's own ``nn.MultiheadAttention``. Its in-projection is
    E → E wide, AutoFormer's q/k/v are 64·h wide: when they differ, q, k and v are projected
    first (separate Linear layers) and the attention's own in-projection is the identity."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        qkv, proj = block.attn.qkv, block.attn.proj
        embed, inner = qkv.in_features, proj.in_features
        heads = block.attn.heads
        self.norm1, self.norm2 = block.norm1, block.norm2
        self.pre = embed != inner
        self.attention = nn.MultiheadAttention(inner, heads, batch_first=True)
        with torch.no_grad():
            if self.pre:
                self.q, self.k, self.v = (nn.Linear(embed, inner) for _ in range(3))
                for i, linear in enumerate((self.q, self.k, self.v)):
                    linear.weight.copy_(qkv.weight[i * inner : (i + 1) * inner])
                    linear.bias.copy_(qkv.bias[i * inner : (i + 1) * inner])
                self.attention.in_proj_weight.copy_(torch.eye(inner).repeat(3, 1))
                self.attention.in_proj_bias.zero_()
                self.attention.out_proj.weight.copy_(torch.eye(inner))
                self.attention.out_proj.bias.zero_()
                self.out = proj
            else:
                self.attention.in_proj_weight.copy_(qkv.weight)
                self.attention.in_proj_bias.copy_(qkv.bias)
                self.attention.out_proj.weight.copy_(proj.weight)
                self.attention.out_proj.bias.copy_(proj.bias)
        self.fc1, self.act, self.fc2 = block.mlp[0], nn.GELU(), block.mlp[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        if self.pre:
            mixed, _ = self.attention(self.q(h), self.k(h), self.v(h), need_weights=False)
            mixed = self.out(mixed)
        else:
            mixed, _ = self.attention(h, h, h, need_weights=False)
        x = x + mixed
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class _PlainViT(nn.Module):
    """The ViT's forward written out on the network's weights: patches by unfolding (not the
    conv), class token first, positions added, the reference blocks, final norm, head on the
    class token."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.embed, self.norm, self.head = network.embed, network.norm, network.head
        self.blocks = nn.ModuleList(_ReferenceBlock(block) for block in network.blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patch = self.embed.patch
        s, p = images.shape[0], patch.kernel_size[0]
        patches = images.unfold(2, p, p).unfold(3, p, p)  # (S, 3, 14, 14, p, p)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(s, -1, 3 * p * p)
        tokens = patches @ patch.weight.reshape(patch.out_channels, -1).T + patch.bias
        x = torch.cat([self.embed.cls_token.expand(s, 1, -1), tokens], dim=1)
        x = x + self.embed.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def _gelu_inputs(network: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, args, _out: found.append(args[0].detach()))
        for m in network.modules()
        if isinstance(m, nn.GELU)
    ]
    try:
        with torch.no_grad():
            network(images)
    finally:
        for hook in hooks:
            hook.remove()
    return found


@pytest.mark.parametrize("which", ["smallest", "row 0"])
def test_network_equals_a_plain_vit_on_the_same_weights(which: str, table: list) -> None:
    """Same output, same GELU units, same sign patterns (up to rounding within 1e-4 of zero).
    At 64×64 (16 patches) to keep it quick; the 224×224 build is the same modules."""
    arch = TINY_SMALLEST if which == "smallest" else table[0][0]
    torch.manual_seed(0)
    network = AutoFormerNetwork(arch, image_size=64).eval()
    batch = load_batch("synthetic", batch_size=3, seed=0, input_size=(64, 64))
    images = torch.from_numpy(batch.inputs)
    plain = _PlainViT(network).eval()
    with torch.no_grad():
        torch.testing.assert_close(network(images), plain(images), atol=1e-4, rtol=1e-4)
    mine, theirs = _gelu_inputs(network, images), _gelu_inputs(plain, images)
    assert len(mine) == len(theirs) == arch.depth
    for a, b in zip(mine, theirs, strict=True):
        assert a.shape == b.shape == (3, 17, a.shape[-1])
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        sure = (a.abs() > 1e-4) & (b.abs() > 1e-4)
        assert torch.equal((a > 0)[sure], (b > 0)[sure])


def test_the_network_refuses_inputs_of_another_size() -> None:
    network = get_space("autoformer-ti").build_scoring_network(TINY_SMALLEST)
    with pytest.raises(ShapeMismatchError, match="196 patches per image, got 4"):
        network(torch.zeros(2, 3, 32, 32))


# --- SWAP against a hook oracle -------------------------------------------------------------
def _oracle_swap(network: nn.Module, images: np.ndarray) -> tuple[int, int]:
    """(distinct sign columns over every GELU unit, how many inputs lie within 1e-5 of 0)."""
    acts = _gelu_inputs(network.eval(), torch.from_numpy(images))
    columns = np.concatenate([(a > 0).reshape(a.shape[0], -1).numpy() for a in acts], axis=1)
    near_zero = sum(int((a.abs() < 1e-5).sum()) for a in acts)
    return len(np.unique(columns.T, axis=0)), near_zero


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_swap_equals_the_hook_oracle(backend: str) -> None:
    """torch backend: the same bits as the eager oracle. onnxruntime computes in another
    order; a sign may flip only where a GELU input is within rounding of zero. A two-layer
    64×64 build (16 patches; ratios 3.5 and 4, 3 and 4 heads: 17 × 1440 units) at S = 24
    keeps it quick without saturating SWAP (2^24 columns possible)."""
    torch.manual_seed(1)
    network = AutoFormerNetwork(AutoFormerArch(192, (3.5, 4.0), (3, 4)), image_size=64)
    batch = load_batch("synthetic", batch_size=24, seed=0, input_size=(64, 64))
    expected, near_zero = _oracle_swap(network, batch.inputs)
    assert 2**12 < expected < 17 * 1440  # neither saturated nor every unit distinct
    result = swapprobe.score(network, data=batch, init="keep", repeats=1, backend=backend)
    if backend == "torch":
        assert result.swap == expected
    else:
        assert abs(result.swap - expected) <= near_zero


def test_the_spaces_score_at_224_by_default() -> None:
    """A space's architecture reference carries its benchmark's input size, so the shortest
    call scores on 224×224 images (196 patches) without being told."""
    result = swapprobe.score("autoformer-ti:TINY_SMALLEST", batch_size=4, repeats=1)
    assert result.units == 197 * sum(
        int(192 * ratio) for ratio in TINY_SMALLEST.mlp_ratios
    )
