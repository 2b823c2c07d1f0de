"""The FlexiBERT space: text form against the 500-model table (SWAP_Universal, AFL-3.0), hand
counted sizes, valid moves, each mixer against its definition, and plain-ONNX export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from swapprobe.capture.export import export_module
from swapprobe.capture.graph import find_activations
from swapprobe.errors import UnknownArchitectureError
from swapprobe.searchspaces import get_space
from swapprobe.searchspaces.flexibert import (
    FLEXIBERT_OPS,
    FlexiBertArch,
    FlexiLayer,
    from_table_entry,
    network_dims,
)
from swapprobe.searchspaces.flexibert.networks import (
    EncoderLayer,
    FlexiBertNetwork,
    LinearTransformMixer,
    dct_matrix,
    dft_matrices,
)

OPS = [f"{t}-{p}" for t, p in FLEXIBERT_OPS]


def _layer(op: str, heads: int = 2, ff: int = 512, n: int = 1) -> FlexiLayer:
    kind, _, param = op.partition("-")
    return FlexiLayer(kind, int(param) if param.isdigit() else param, heads, ff, n)


# --- text form -------------------------------------------------------------------------------
def test_all_500_table_entries_round_trip(shared_data: Path) -> None:
    entries = json.loads((shared_data / "flexibert_glue_500.json").read_text())
    space = get_space("flexibert")
    assert len(entries) == 500
    for entry in entries:
        arch = from_table_entry(entry)
        overrides = entry["hparams"]["model_hparam_overrides"]
        assert space.parse(space.format(arch)) == arch
        assert space.parse(json.dumps(entry)) == arch  # the entry's JSON is accepted as text
        assert arch.to_entry() == overrides  # nothing of the configuration is lost
        assert arch.hidden == overrides["hidden_size"]
        assert len(arch.layers) == len(overrides["nas_config"]["encoder_layers"])


def test_text_form_reads_as_documented() -> None:
    arch = FlexiBertArch.parse("H128:DSC-9.h4.512x3,LT-DFT.h2.1024x1")
    assert arch.hidden == 128
    assert arch.layers == (FlexiLayer("DSC", 9, 4, 512, 3), FlexiLayer("LT", "DFT", 2, 1024, 1))
    assert arch.format() == "H128:DSC-9.h4.512x3,LT-DFT.h2.1024x1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "256:SA-SDP.h4.1024x1,SA-SDP.h4.1024x1",  # no H
        "H512:SA-SDP.h4.1024x1,SA-SDP.h4.1024x1",  # hidden size
        "H256:SA-SDP.h4.1024x1",  # one layer
        "H256:" + ",".join(["SA-SDP.h4.1024x1"] * 5),  # five layers
        "H256:SA-XYZ.h4.1024x1,SA-SDP.h4.1024x1",
        "H256:DSC-7.h4.1024x1,SA-SDP.h4.1024x1",
        "H256:SA-SDP.h3.1024x1,SA-SDP.h4.1024x1",
        "H256:SA-SDP.h4.768x1,SA-SDP.h4.1024x1",
        "H256:SA-SDP.h4.1024x4,SA-SDP.h4.1024x1",
        "H256:SA-SDP.4.1024x1,SA-SDP.h4.1024x1",
        '{"nas_config": {}}',
    ],
)
def test_bad_text_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(UnknownArchitectureError):
        get_space("flexibert").parse(text)


# --- sizes -----------------------------------------------------------------------------------
# Hand counts (weights + biases), embeddings (30522 + 512 + 2) · 128 + LayerNorm 2 · 128 =
# 3,972,864 in both.
#
# A, reference build (H = 256, I = 1024): projection 128·256 + 256 = 33,024;
# SA-SDP: Q, K, V 3 · (256·256 + 256) = 197,376, dense 65,792, LayerNorm 512 → 263,680;
# feed-forward x1: 256·1024 + 1024 = 263,168, 1024·256 + 256 = 262,400, LayerNorm 512 →
# 526,080; LT-DFT: input 65,792 (no output, no LayerNorm) + feed-forward 526,080.
# 3,972,864 + 33,024 + 263,680 + 526,080 + 65,792 + 526,080 = 5,387,520.
HAND_A = ("H128:SA-SDP.h4.512x1,LT-DFT.h2.512x1", "flexibert", 5_387_520)
# B, faithful build (H = 128, no projection): DSC-9 h2 → 1 attention head of 64, A = 64:
# Q, K, V 3 · (128·64 + 64) = 24,768; key conv depthwise 128·9 = 1,152, pointwise 128·64 =
# 8,192, bias 64; kernel Linear 64·9 + 9 = 585; conv out 128·64 + 64 = 8,256; dense 16,512 +
# LayerNorm 256 → 59,785; feed-forward 512 x3: 66,048 + 2 · 262,656 + 65,664 + 256 = 657,280.
# SA-WMA h4: Q, K, V 3 · 16,512 = 49,536, weight 16,384, dense 16,512, LayerNorm 256 → 82,688;
# feed-forward 1024 x2: 132,096 + 1,049,600 + 131,200 + 256 = 1,313,152.
# 3,972,864 + 59,785 + 657,280 + 82,688 + 1,313,152 = 6,085,769.
HAND_B = ("H128:DSC-9.h2.512x3,SA-WMA.h4.1024x2", "flexibert-faithful", 6_085_769)


@pytest.mark.parametrize(("text", "space_name", "expected"), [HAND_A, HAND_B])
def test_parameter_count_matches_a_hand_count(text: str, space_name: str, expected: int) -> None:
    space = get_space(space_name)
    arch = space.parse(text)
    assert space.scoring_param_count(arch) == expected
    network = space.build_scoring_network(arch)
    assert sum(p.numel() for p in network.parameters()) == expected


@pytest.mark.parametrize("seed", range(6))
def test_closed_form_counts_the_built_network(seed: int) -> None:
    for name in ("flexibert", "flexibert-faithful"):
        space = get_space(name)
        arch = space.sample(np.random.default_rng(seed))
        network = space.build_scoring_network(arch)
        assert space.scoring_param_count(arch) == sum(p.numel() for p in network.parameters())


def test_reference_build_ignores_the_table_sizes() -> None:
    arch = FlexiBertArch.parse("H128:SA-SDP.h2.512x1,DSC-5.h4.512x3")
    assert network_dims(arch, "reference") == (256, (1024, 1024))
    assert network_dims(arch, "faithful") == (128, (512, 512))


# --- moves -----------------------------------------------------------------------------------
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=200, deadline=None)
@given(seed=seeds)
def test_mutation_makes_one_valid_small_change(seed: int) -> None:
    space = get_space("flexibert")
    rng = np.random.default_rng(seed)
    parent = space.sample(rng)
    child = space.mutate(parent, rng)
    assert isinstance(child, FlexiBertArch) and child != parent
    assert space.parse(space.format(child)) == child
    if len(child.layers) == len(parent.layers):
        changed_layers = sum(a != b for a, b in zip(parent.layers, child.layers, strict=True))
        assert changed_layers + (child.hidden != parent.hidden) == 1
        for a, b in zip(parent.layers, child.layers, strict=True):
            fields = [
                (a.op_type, a.op_param) != (b.op_type, b.op_param),
                a.heads != b.heads,
                a.ff_dim != b.ff_dim,
                a.num_ff != b.num_ff,
            ]
            assert sum(fields) <= 1
    else:
        assert abs(len(child.layers) - len(parent.layers)) == 1
        assert child.hidden == parent.hidden


@settings(max_examples=200, deadline=None)
@given(seed=seeds)
def test_crossover_children_are_valid_and_keep_the_parents_layers(seed: int) -> None:
    space = get_space("flexibert")
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    c, d = space.crossover(a, b, rng)
    for child in (c, d):
        assert space.parse(space.format(child)) == child
    assert (len(c.layers), len(d.layers)) == (len(a.layers), len(b.layers))
    assert sorted([c.hidden, d.hidden]) == sorted([a.hidden, b.hidden])
    for i in range(min(len(a.layers), len(b.layers))):
        assert {c.layers[i], d.layers[i]} == {a.layers[i], b.layers[i]}


@settings(max_examples=50, deadline=None)
@given(seed=seeds)
def test_samples_are_valid_and_reproducible(seed: int) -> None:
    space = get_space("flexibert")
    first = space.sample(np.random.default_rng(seed))
    assert first == space.sample(np.random.default_rng(seed))
    assert space.parse(space.format(first)) == first


# --- layers against their definitions -------------------------------------------------------
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(("hidden", "heads"), [(256, 4), (128, 2)])
def test_each_layer_keeps_the_token_shape(op: str, hidden: int, heads: int) -> None:
    torch.manual_seed(0)
    layer = EncoderLayer(_layer(op, heads=heads, n=2), hidden, 512, dropout=False)
    x = torch.randn(3, 11, hidden)
    assert layer(x).shape == (3, 11, hidden)


def _identity_input(mixer: LinearTransformMixer) -> None:
    with torch.no_grad():
        mixer.input.weight.copy_(torch.eye(mixer.input.in_features))
        mixer.input.bias.zero_()


@pytest.mark.parametrize(("tokens", "hidden", "heads"), [(7, 12, 2), (16, 16, 4), (5, 8, 1)])
def test_dft_mixer_is_the_real_part_of_fft2_per_head(tokens: int, hidden: int, heads: int) -> None:
    mixer = LinearTransformMixer(hidden, heads, "DFT")
    _identity_input(mixer)
    x = torch.randn(2, tokens, hidden, generator=torch.Generator().manual_seed(1))
    split = x.reshape(2, tokens, heads, hidden // heads).permute(0, 2, 1, 3)
    expected = torch.fft.fft2(split.double()).real.permute(0, 2, 1, 3).reshape(x.shape)
    with torch.no_grad():
        got = mixer(x)
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-4)


def _dct2_direct(x: np.ndarray) -> np.ndarray:
    """Unnormalised 2-D DCT-II over the last two axes, from the sum itself (float64)."""
    rows, cols = x.shape[-2:]
    out = np.zeros(x.shape, np.float64)
    for k in range(rows):
        for m in range(cols):
            ck = np.cos(np.pi * k * (2 * np.arange(rows) + 1) / (2 * rows))
            cm = np.cos(np.pi * m * (2 * np.arange(cols) + 1) / (2 * cols))
            out[..., k, m] = 4.0 * np.einsum("...ij,i,j->...", x, ck, cm)
    return out


@pytest.mark.parametrize(("tokens", "hidden", "heads"), [(7, 12, 2), (6, 8, 4)])
def test_dct_mixer_is_the_unnormalised_dct2_per_head(tokens: int, hidden: int, heads: int) -> None:
    mixer = LinearTransformMixer(hidden, heads, "DCT")
    _identity_input(mixer)
    x = torch.randn(2, tokens, hidden, generator=torch.Generator().manual_seed(2))
    split = x.reshape(2, tokens, heads, hidden // heads).permute(0, 2, 1, 3).double().numpy()
    expected = np.transpose(_dct2_direct(split), (0, 2, 1, 3)).reshape(x.shape)
    with torch.no_grad():
        got = mixer(x).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_transform_matrices() -> None:
    c, s = dft_matrices(9)
    full = torch.fft.fft(torch.eye(9, dtype=torch.float64), dim=0).numpy()  # columns: F e_k
    np.testing.assert_allclose(c, full.real, atol=1e-6)
    np.testing.assert_allclose(s, -full.imag, atol=1e-6)
    x = np.random.default_rng(0).standard_normal(5)
    direct = [
        2 * sum(x[n] * math.cos(math.pi * k * (2 * n + 1) / 10) for n in range(5)) for k in range(5)
    ]
    np.testing.assert_allclose(dct_matrix(5) @ x, direct, atol=1e-5)


def _dsc_reference(mixer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ConvBERT's span-based dynamic convolution written with ``unfold`` (the reference's
    formulation): the dynamic-convolution half of a DSC mixer, (S, T, A)."""
    s, t, _ = x.shape
    k, d = mixer.kernel, mixer.head_size
    q = mixer.query(x)
    span = mixer.key_conv(x) * q
    kernels = torch.softmax(mixer.conv_kernel(span).reshape(-1, k, 1), dim=1)
    out = mixer.conv_out(x).transpose(1, 2).unsqueeze(-1)  # (S, A, T, 1)
    out = torch.nn.functional.unfold(out, kernel_size=[k, 1], padding=[(k - 1) // 2, 0])
    out = out.transpose(1, 2).reshape(s, t, -1, k).reshape(-1, d, k)
    return torch.matmul(out, kernels).reshape(s, t, -1)


@pytest.mark.parametrize(("kernel", "heads"), [(5, 2), (9, 4)])
def test_dynamic_convolution_equals_the_unfold_formulation(kernel: int, heads: int) -> None:
    torch.manual_seed(3)
    layer = EncoderLayer(_layer(f"DSC-{kernel}", heads=heads), 64, 128, dropout=False)
    mixer = layer.mixer
    for p in mixer.parameters():  # larger weights than N(0, 0.02): a sharper test
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 13, 64)
    captured: dict[str, torch.Tensor] = {}

    def keep_input(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured["mixed"] = args[0]

    handle = mixer.output.register_forward_pre_hook(keep_input)
    with torch.no_grad():
        mixer(x)
        expected = _dsc_reference(mixer, x)
    handle.remove()
    width = mixer.attention_heads * mixer.head_size
    torch.testing.assert_close(captured["mixed"][..., width:], expected, atol=1e-5, rtol=1e-5)


# --- ONNX -------------------------------------------------------------------------------------
def _network(op: str, space: str = "flexibert") -> tuple[FlexiBertNetwork, FlexiBertArch]:
    arch = FlexiBertArch(128, (_layer(op, heads=4, n=2), _layer(op, heads=2, ff=1024)))
    torch.manual_seed(0)
    return get_space(space).build_scoring_network(arch), arch


def _tokens(samples: int = 3, tokens: int = 24) -> np.ndarray:
    ids = np.random.default_rng(5).integers(1, 30522, size=(samples, tokens), dtype=np.int64)
    ids[0, -5:] = 0  # padding takes part like any other token
    return ids


def _run(model: onnx.ModelProto, ids: np.ndarray, outputs: list[str] | None = None) -> list:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(outputs, {session.get_inputs()[0].name: ids})


@pytest.mark.parametrize("op", OPS)
def test_onnx_export_runs_in_onnxruntime_and_matches_torch(op: str) -> None:
    network, _ = _network(op)
    ids = _tokens()
    with torch.no_grad():
        expected = network.eval()(torch.from_numpy(ids)).numpy()
    traced = export_module(network, ids, method="trace")  # torch.onnx.export (TorchScript)
    emitted = export_module(network, ids, method="emit")
    onnx.checker.check_model(emitted)
    for model in (traced, emitted):
        np.testing.assert_allclose(_run(model, ids)[0], expected, atol=1e-4, rtol=1e-4)
    ops = {node.op_type for node in emitted.graph.node}
    assert not ops & {"DFT", "Loop", "If", "Dropout"}  # plain products, no dropout by default


def _gelu_inputs(network: torch.nn.Module, ids: np.ndarray) -> list[torch.Tensor]:
    """The input of every nn.GELU call in an eval-mode forward, in call order (torch hooks:
    the reference's way of reading the units, independent of the ONNX graph)."""
    recorded: list[torch.Tensor] = []
    handles = [
        m.register_forward_hook(lambda mod, args, out: recorded.append(args[0]))
        for m in network.modules()
        if isinstance(m, torch.nn.GELU)
    ]
    with torch.no_grad():
        network.eval()(torch.from_numpy(ids))
    for handle in handles:
        handle.remove()
    return recorded


@pytest.mark.parametrize("op", OPS)
def test_only_the_feed_forward_gelus_are_counted(op: str) -> None:
    network, arch = _network(op)
    ids = _tokens(tokens=16)
    model = export_module(network, ids, method="emit")
    found = find_activations(model)  # the default selection: every gate kind
    assert [a.op for a in found] == ["Gelu"] * sum(layer.num_ff for layer in arch.layers)
    # and they are the GELUs' inputs: their signs equal a torch hook's on each nn.GELU
    hooked = [x > 0 for x in _gelu_inputs(network, ids)]
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(a.tensor, onnx.TensorProto.FLOAT, None) for a in found
    )
    values = _run(model, ids, [a.tensor for a in found])
    units = sum(v.size for v in values) // len(ids)
    _, inters = network_dims(arch, "reference")
    assert units == sum(16 * i * layer.num_ff for layer, i in zip(arch.layers, inters, strict=True))
    differing = sum(int(((v > 0) != h.numpy()).sum()) for v, h in zip(values, hooked, strict=True))
    assert differing <= 2  # float rounding may flip a sign at |x| ~ 1e-7, nothing more


def test_dropout_on_is_the_reference_quirk() -> None:
    arch = FlexiBertArch.parse("H256:SA-SDP.h4.512x1,DSC-5.h2.512x1")
    torch.manual_seed(0)
    network = get_space("flexibert", dropout=True).build_scoring_network(arch)
    ids = torch.from_numpy(_tokens())
    with torch.no_grad():
        first, second = network.eval()(ids), network(ids)
    assert not torch.equal(first, second)  # active even in eval mode, as the reference scores
    model = export_module(network, ids.numpy(), method="emit")
    assert sum(node.op_type == "Dropout" for node in model.graph.node) == 7
    out = _run(model, ids.numpy())[0]
    assert out.shape == (3, 24, 256) and np.isfinite(out).all()


# --- the JSON table ---------------------------------------------------------------------------
def test_json_table_reads_glue_first_and_every_task(shared_data: Path) -> None:
    from swapprobe.correlate import read_table

    path = shared_data / "flexibert_glue_500.json"
    truth = read_table(path)
    entries = json.loads(path.read_text())
    tasks = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst", "sts"]
    assert list(truth.accuracies) == ["glue", *tasks]
    space = get_space("flexibert")
    for index in (0, 137, 499):
        assert space.parse(truth.archs[index]) == from_table_entry(entries[index])
        for task in ["glue", *tasks]:
            assert truth.accuracies[task][index] == entries[index]["scores"][task]
    chosen = read_table(path, acc_cols=["rte"])
    assert list(chosen.accuracies) == ["rte"]


def test_json_table_errors_name_the_record(tmp_path: Path) -> None:
    from swapprobe.correlate import read_table
    from swapprobe.errors import DataError

    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"arch": "H256:a,b", "scores": {"glue": 1.0}}, {"arch": "x"}]))
    with pytest.raises(DataError, match="record 2 has no 'scores'"):
        read_table(path)
    path.write_text(json.dumps([{"arch": "x", "scores": {"glue": "high"}}]))
    with pytest.raises(DataError, match="record 1: 'glue' is missing or not a number"):
        read_table(path)
    path.write_text(json.dumps([{"scores": {"glue": 1.0}}]))
    with pytest.raises(DataError, match="neither an 'arch' text"):
        read_table(path)
    path.write_text("{")
    with pytest.raises(DataError, match="cannot read JSON table"):
        read_table(path)


# --- through the pipeline ---------------------------------------------------------------------
def _oracle_swap(network: torch.nn.Module, ids: np.ndarray) -> tuple[int, int]:
    """The straightforward count: torch hooks on every nn.GELU, bit = input > 0, distinct
    columns of the (S, V) matrix; (SWAP, V)."""
    matrix = torch.cat([x.reshape(len(ids), -1) for x in _gelu_inputs(network, ids)], dim=1) > 0
    return int(torch.unique(matrix.T, dim=0).shape[0]), int(matrix.shape[1])


PIPELINE_CASES = [
    (space, FlexiBertArch(hidden, (_layer(op, heads=h, ff=ff, n=n), _layer("SA-SDP", heads=2))))
    for op in OPS
    for space, hidden, h, ff, n in (
        ("flexibert", 128, 4, 512, 2),
        ("flexibert-faithful", 256, 2, 1024, 1),
    )
]


@pytest.mark.parametrize(("space_name", "arch"), PIPELINE_CASES, ids=lambda v: str(v))
def test_pipeline_scores_what_torch_hooks_see(space_name: str, arch: FlexiBertArch) -> None:
    """Both backends, two configurations of every mixer: exactly the hooks' count."""
    from swapprobe.data import token_batch
    from swapprobe.evaluate import Evaluator
    from swapprobe.models import arch_ref
    from swapprobe.results import ScoreSettings

    space = get_space(space_name)
    ids = _tokens(samples=12, tokens=20)
    evaluator = Evaluator(
        token_batch(ids), ScoreSettings(batch_size=12, repeats=1, init="keep", keep_patterns="none")
    )
    ref = arch_ref(space, arch)
    onnx_result = evaluator.evaluate(ref)
    expected, units = _oracle_swap(evaluator._build_network(ref), ids)
    assert onnx_result.units == units
    assert onnx_result.swap == expected
    assert onnx_result.param_count == space.scoring_param_count(arch)
    assert "Gelu" in onnx_result.metadata["activations"]
    torch_settings = ScoreSettings(
        batch_size=12, repeats=1, init="keep", keep_patterns="none", backend="torch"
    )
    assert Evaluator(token_batch(ids), torch_settings).evaluate(ref).swap == expected


def test_search_runs_on_the_space_and_finds_a_valid_model() -> None:
    from swapprobe.data import token_batch
    from swapprobe.evolution import EvolutionConfig
    from swapprobe.results import ScoreSettings
    from swapprobe.searching import run_search

    space = get_space("flexibert")
    d = space.defaults
    settings = ScoreSettings(batch_size=8, repeats=d.repeats, init=d.init, keep_patterns="none")
    outcome = run_search(
        space,
        token_batch(_tokens(samples=8, tokens=12)),
        settings,
        EvolutionConfig(population=3, cycles=2, mutation_times=1),
    )
    found = space.parse(outcome.best_text)
    assert outcome.best.swap == max(r.swap for r in outcome.results.values())
    assert outcome.evaluation_params == space.evaluation_param_count(found)


# --- the commands -----------------------------------------------------------------------------
def test_correlate_command_reads_the_json_table(shared_data: Path, tmp_path: Path) -> None:
    from swapprobe.cli import main

    out = tmp_path / "c.json"
    table = str(shared_data / "flexibert_glue_500.json")
    args = ["correlate", "flexibert", "--table", table, "--limit", "3", "-S", "4"]
    args += ["--seq-len", "8", "--executor", "local", "--bootstrap", "0", "--json", str(out)]
    assert main(args) == 0
    found = json.loads(out.read_text())["correlations"]
    assert {c["target"] for c in found} == {
        "glue",
        "cola",
        "mnli",
        "mrpc",
        "qnli",
        "qqp",
        "rte",
        "sst",
        "sts",
    }
    assert {c["n"] for c in found} == {3}


def test_search_command_finds_a_model(tmp_path: Path) -> None:
    from swapprobe.cli import main

    out = tmp_path / "s.json"
    args = ["search", "flexibert", "-S", "4", "--seq-len", "8", "--population", "2"]
    args += ["--cycles", "1", "--mutation-times", "1", "--executor", "local", "--json", str(out)]
    assert main(args) == 0
    found = json.loads(out.read_text())
    assert get_space("flexibert").parse(found["architecture"])


def test_the_space_runs_on_the_torch_backend_unless_told_and_both_agree() -> None:
    """The space's declared backend is what score uses; --backend onnx still runs the graph,
    and the two count the same patterns."""
    import swapprobe
    from swapprobe.data import token_batch

    data = token_batch(_tokens(samples=8, tokens=16))
    text = "flexibert:H256:SA-SDP.h2.512x2,LT-DFT.h2.512x1"
    by_default = swapprobe.score(text, data=data)
    on_onnx = swapprobe.score(text, data=data, backend="onnx")
    assert get_space("flexibert").defaults.backend == "torch"
    assert by_default.metadata["backend"] == "torch"
    assert on_onnx.metadata["backend"] == "onnx"
    assert by_default.swap == on_onnx.swap and by_default.units == on_onnx.units
