"""Gates beyond ReLU, activations without a batch axis, folded BN, lost shapes, export of
transformer layers — each against an expectation computed independently of swapprobe.

The oracle for gates is the SWAP_Universal one, written plainly: forward hooks on the
activation modules read the sign of each module's *input*, flatten it per sample, and count
distinct unit patterns with ``torch.unique(dim=0)`` on the transposed sign matrix.
"""

from __future__ import annotations

import importlib.util
import io
import math
import warnings
from pathlib import Path

import google.protobuf.message
import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper, shape_inference

from swapprobe.capture import graph
from swapprobe.capture.activations import DEFAULT_ACTIVATIONS, GATE_KINDS, select_kinds
from swapprobe.capture.export import export_module
from swapprobe.capture.folding import FoldedBatchNormWarning, folded_batchnorm
from swapprobe.capture.session import PatternSession
from swapprobe.capture.shapes import static_shapes
from swapprobe.capture.torch_backend import TorchPatternRunner
from swapprobe.errors import ExportError, NoActivationError, SettingsError, ShapeMismatchError
from tests.test_capture import SEED, evaluate, make_inputs, reference_init

GATE_MODULES = (nn.ReLU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish, nn.ELU, nn.SELU, nn.CELU)


def oracle_patterns(
    module: nn.Module,
    inputs: np.ndarray,
    *,
    gates: tuple[type[nn.Module], ...] = GATE_MODULES,
    **keywords: np.ndarray,
) -> np.ndarray:
    """(S, V) signs of every gate module's input, flattened per sample, in call order
    (``gates``: the module types hooked; ``keywords``: further named inputs, passed to the
    module as keyword arguments)."""
    net = module.train()  # BatchNorm on batch statistics, as the reference runs it
    recorded: list[torch.Tensor] = []

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        recorded.append((args[0] > 0).reshape(args[0].shape[0], -1).clone())

    handles = [
        sub.register_forward_pre_hook(hook) for sub in net.modules() if isinstance(sub, gates)
    ]
    try:
        with torch.no_grad():
            net(torch.from_numpy(inputs), **{k: torch.from_numpy(v) for k, v in keywords.items()})
    finally:
        for handle in handles:
            handle.remove()
    return torch.cat(recorded, dim=1).numpy()


def oracle_swap(b: np.ndarray) -> int:
    return int(torch.unique(torch.from_numpy(b.T.copy()), dim=0).shape[0])


# =====================================================================================
# small networks
# =====================================================================================
def gate_cnn(act: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False),
        nn.BatchNorm2d(6),
        act(),
        nn.Conv2d(6, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4),
        act(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    )


CNN_UNITS = 6 * 8 * 8 + 4 * 4 * 4


class Encoder(nn.Module):
    """Embedding-free transformer encoder: Linear in, hand-written attention, GELU FFN, LN."""

    def __init__(self, features: int = 6, width: int = 8, hidden: int = 12) -> None:
        super().__init__()
        self.inp = nn.Linear(features, width)
        self.q, self.k, self.v = (nn.Linear(width, width) for _ in range(3))
        self.o = nn.Linear(width, width)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.ff1, self.ff2 = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
        h = self.norm1(h + self.o(attention @ v))
        return self.norm2(h + self.ff2(self.act(self.ff1(h))))


TOKENS = 5
ENCODER_UNITS = TOKENS * 12


def both_backends(module: nn.Module, inputs: np.ndarray, **settings: object) -> dict:
    return {b: evaluate(module, inputs, backend=b, **settings) for b in ("onnx", "torch")}


def assert_matches_oracle(module: nn.Module, inputs: np.ndarray, units: int) -> None:
    expected = [oracle_patterns(reference_init(module, SEED, r), inputs) for r in range(2)]
    assert expected[0].shape == (len(inputs), units)
    for backend, result in both_backends(module, inputs).items():
        assert result.units == units, backend
        for repeat, b in enumerate(expected):
            np.testing.assert_array_equal(result.patterns[repeat].to_bool(), b, err_msg=backend)
            assert result.swap_per_repeat[repeat] == oracle_swap(b), (backend, repeat)


@pytest.mark.parametrize("act", [nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish, nn.ELU])
def test_gate_cnns_match_the_oracle_on_both_backends(act: type[nn.Module]) -> None:
    assert_matches_oracle(gate_cnn(act), make_inputs((3, 8, 8), 24), CNN_UNITS)


def test_transformer_encoder_matches_the_oracle_on_both_backends() -> None:
    torch.manual_seed(0)
    assert_matches_oracle(Encoder(), make_inputs((TOKENS, 6), 32), ENCODER_UNITS)


class TokensFirst(nn.Module):
    """A (tokens, batch, features) activation: the batch is not the leading axis."""

    def __init__(self) -> None:
        super().__init__()
        self.ff = nn.Linear(6, 7)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.ff(x.transpose(0, 1))).sum(0)


def test_batch_axis_not_first_is_read_per_sample_on_both_backends() -> None:
    module = TokensFirst()
    inputs = make_inputs((TOKENS, 6), 16)
    ref = reference_init(module, SEED, 0)
    with torch.no_grad():
        pre = ref.ff(torch.from_numpy(inputs).transpose(0, 1))  # (T, S, 7)
    expected = (pre > 0).transpose(0, 1).reshape(16, -1).numpy()  # sample s: its T×7 units
    for backend, result in both_backends(module, inputs, repeats=1).items():
        assert result.units == TOKENS * 7, backend
        np.testing.assert_array_equal(result.patterns[0].to_bool(), expected, err_msg=backend)


# =====================================================================================
# decomposed gates in hand-made ONNX graphs
# =====================================================================================
FEATURES, WIDTH = 4, 9


def constant(name: str, value: float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, np.float32), name)


def gate_graph(
    tail: list[onnx.NodeProto], constants: list[onnx.TensorProto], opset: int = 17
) -> onnx.ModelProto:
    """x (N, 4) → MatMul W → ``pre`` (N, 9) → ``tail`` → ``y``."""
    weight = np.random.default_rng(3).standard_normal((FEATURES, WIDTH)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["pre"]), *tail],
        "gates",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", WIDTH])],
        initializer=[numpy_helper.from_array(weight, "W"), *constants],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def erf_gelu() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Div", ["pre", "sqrt2"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["erf1"]),
        helper.make_node("Mul", ["pre", "erf1"], ["xe"]),
        helper.make_node("Mul", ["xe", "half"], ["y"]),
    ]
    return gate_graph(
        nodes, [constant("sqrt2", math.sqrt(2)), constant("one", 1), constant("half", 0.5)]
    )


def tanh_gelu() -> onnx.ModelProto:
    """0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), with x³ as torch writes it: x·(x·x)."""
    nodes = [
        helper.make_node("Mul", ["pre", "pre"], ["x2"]),
        helper.make_node("Mul", ["pre", "x2"], ["x3"]),
        helper.make_node("Mul", ["c", "x3"], ["cx3"]),
        helper.make_node("Add", ["pre", "cx3"], ["inner"]),
        helper.make_node("Mul", ["k", "inner"], ["arg"]),
        helper.make_node("Tanh", ["arg"], ["t"]),
        helper.make_node("Add", ["one", "t"], ["t1"]),
        helper.make_node("Mul", ["pre", "t1"], ["xt"]),
        helper.make_node("Mul", ["half", "xt"], ["y"]),
    ]
    values = {"c": 0.044715, "k": math.sqrt(2 / math.pi), "one": 1.0, "half": 0.5}
    return gate_graph(nodes, [constant(n, v) for n, v in values.items()])


def sigmoid_mul() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Sigmoid", ["pre"], ["s"]),
        helper.make_node("Mul", ["pre", "s"], ["y"]),
    ]
    return gate_graph(nodes, [])


def hardsigmoid_mul() -> onnx.ModelProto:
    nodes = [
        helper.make_node("HardSigmoid", ["pre"], ["h"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["h", "pre"], ["y"]),
    ]
    return gate_graph(nodes, [])


def softplus_tanh_mul() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Softplus", ["pre"], ["sp"]),
        helper.make_node("Tanh", ["sp"], ["t"]),
        helper.make_node("Mul", ["pre", "t"], ["y"]),
    ]
    return gate_graph(nodes, [])


def gelu_op() -> onnx.ModelProto:
    return gate_graph([helper.make_node("Gelu", ["pre"], ["y"])], [], opset=20)


DECOMPOSED = {
    "erf_gelu": (erf_gelu, "Gelu"),
    "tanh_gelu": (tanh_gelu, "Gelu"),
    "sigmoid_mul": (sigmoid_mul, "Silu"),
    "hardsigmoid_mul": (hardsigmoid_mul, "HardSwish"),
    "softplus_tanh_mul": (softplus_tanh_mul, "Mish"),
    "gelu_op": (gelu_op, "Gelu"),
}


@pytest.mark.parametrize("form", list(DECOMPOSED))
def test_decomposed_gates_are_recognised_with_their_units(form: str) -> None:
    build, kind = DECOMPOSED[form]
    model = build()
    acts = graph.find_activations(model)
    assert [(a.op, a.tensor) for a in acts] == [(kind, "pre")]
    x = make_inputs((FEATURES,), 16)
    session = PatternSession(
        graph.load_model(model), batch_size=16, sample_shape=(FEATURES,), init="keep"
    )
    got = session.run(x, seed=0, repeat=0)
    weight = numpy_helper.to_array(model.graph.initializer[0])
    assert got.units == WIDTH
    assert session.kinds == {kind: WIDTH}
    np.testing.assert_array_equal(got.to_bool(), x @ weight > 0)  # the sign of the input
    # under the ReLU family it is present, not counted, and the message says so
    with pytest.raises(NoActivationError, match=f"not counted: {kind}"):
        graph.find_activations(model, "relu")


def test_gating_by_another_tensor_is_not_a_gate() -> None:
    """SE block: x·Sigmoid(mean(x)) gates x by a function of another tensor; bare Tanh too."""
    nodes = [
        helper.make_node("ReduceMean", ["pre"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Sigmoid", ["m"], ["s"]),
        helper.make_node("Mul", ["pre", "s"], ["se"]),
        helper.make_node("Tanh", ["se"], ["y"]),
    ]
    model = gate_graph(nodes, [])
    assert graph.all_activations(model) == []
    with pytest.raises(NoActivationError):
        graph.find_activations(model)


def test_selector() -> None:
    assert select_kinds("relu") == {"Relu", "LeakyRelu", "PRelu", "Clip"}
    assert select_kinds("gates") == set(GATE_KINDS)
    assert select_kinds(DEFAULT_ACTIVATIONS) == set(GATE_KINDS)
    assert select_kinds("Relu, gelu,swish") == {"Relu", "Gelu", "Silu"}
    with pytest.raises(SettingsError, match="Sigmoid"):
        select_kinds("Relu,Sigmoid")


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 10), nn.Linear(10, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(self.b(torch.relu(self.a(x))))


def test_kinds_not_selected_are_reported_with_their_units_on_both_backends() -> None:
    module = Mixed()
    x = make_inputs((6,), 8)
    proto = graph.load_model(export_module(module, x))
    onnx_side = PatternSession(proto, batch_size=8, sample_shape=(6,), activations="relu")
    torch_side = TorchPatternRunner(module, batch_size=8, activations="relu")
    results = [runner.run(x, seed=1, repeat=0) for runner in (onnx_side, torch_side)]
    np.testing.assert_array_equal(results[0].words, results[1].words)
    for runner, result in zip((onnx_side, torch_side), results, strict=True):
        assert result.units == 10
        assert runner.kinds == {"Relu": 10}
        assert runner.not_counted == {"HardSwish": 7}
        assert runner.activation_summary() == ("counted Relu 10; present, not counted: HardSwish 7")
    gates = PatternSession(proto, batch_size=8, sample_shape=(6,))
    assert gates.kinds == {"Relu": 10, "HardSwish": 7} and gates.not_counted == {}


# =====================================================================================
# activations without a batch axis (issue 16 case 1)
# =====================================================================================
class ParameterRelu(nn.Module):
    """A ReLU on a learned (N, D) table (swin_v2's position-bias MLP) beside an image ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(12, 5))
        self.mlp = nn.Linear(5, 3)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.mlp(F.relu(self.table)).mean(0)  # (3,)
        return self.act(self.conv(x) + bias.reshape(1, 3, 1, 1))


def test_activation_without_batch_axis_is_left_out_on_both_backends() -> None:
    module = ParameterRelu()
    by_s = {}
    for samples in (8, 16):
        inputs = make_inputs((3, 6, 6), samples)
        results = both_backends(module, inputs, repeats=1)
        for backend, result in results.items():
            assert result.units == 3 * 6 * 6, (backend, samples)  # the image ReLU alone
        np.testing.assert_array_equal(
            results["onnx"].patterns[0].words, results["torch"].patterns[0].words
        )
        by_s[samples] = results["onnx"].units
    assert by_s[8] == by_s[16]
    x = make_inputs((3, 6, 6), 8)
    session = PatternSession(
        graph.load_model(export_module(module, x)), batch_size=8, sample_shape=(3, 6, 6)
    )
    assert [(a.op, units) for a, units in session.no_batch] == [("Relu", 12 * 5)]
    runner = TorchPatternRunner(module, batch_size=8)
    runner.run(x, seed=0, repeat=0)
    assert runner.no_batch == {"Relu": 12 * 5}
    assert "left out, no batch axis: Relu 60" in runner.activation_summary()


def test_only_batch_free_activations_is_refused() -> None:
    class Only(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Parameter(torch.randn(4, 4))
            self.lin = nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) + F.relu(self.table).sum(0)

    x = make_inputs((6,), 8)
    for backend in ("onnx", "torch"):
        with pytest.raises(NoActivationError, match=r"batch axis|on its samples"):
            evaluate(Only(), x, backend=backend, repeats=1)


# =====================================================================================
# folded BatchNorm (issue 16 case 3)
# =====================================================================================
def torchscript_export(module: nn.Module, x: np.ndarray, **options: object) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.from_numpy(x),), buffer, dynamo=False, **options)  # type: ignore[arg-type]
    return onnx.load_from_string(buffer.getvalue())


def test_torchscript_folded_batchnorm_warns_naming_the_model() -> None:
    module = gate_cnn(nn.ReLU)
    x = make_inputs((3, 8, 8), 8)
    folded = torchscript_export(module, x, do_constant_folding=True)
    assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node)
    with pytest.warns(FoldedBatchNormWarning, match=r"resnetish: 2 convolutions .*dynamo=False"):
        PatternSession(
            graph.load_model(folded), batch_size=8, sample_shape=(3, 8, 8), name="resnetish"
        )


def test_the_suggested_export_keeps_batchnorm_and_scores_as_the_module() -> None:
    module = gate_cnn(nn.SiLU)
    x = make_inputs((3, 8, 8), 16)
    kept = torchscript_export(module, x, do_constant_folding=False)
    assert sum(n.op_type == "BatchNormalization" for n in kept.graph.node) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", FoldedBatchNormWarning)
        from_file = evaluate(kept, x)
        from_module = evaluate(module, x)
    np.testing.assert_array_equal(from_file.swap_per_repeat, from_module.swap_per_repeat)


def test_no_warning_for_models_that_never_had_batchnorm() -> None:
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Conv2d(4, 4, 3))
    x = make_inputs((3, 8, 8), 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FoldedBatchNormWarning)
        evaluate(plain, x, repeats=1)  # module known: no BN in it
        evaluate(torchscript_export(plain, x, do_constant_folding=True), x, repeats=1)


class AuxHead(nn.Module):
    """GoogLeNet-style: a BN in an auxiliary head that only runs in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.aux = nn.Sequential(nn.Conv2d(4, 2, 1, bias=False), nn.BatchNorm2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y + self.aux(y).mean() if self.training else y


def test_no_warning_for_a_module_whose_unused_batchnorm_is_not_exported() -> None:
    x = make_inputs((3, 8, 8), 8)
    module = AuxHead()
    exported = export_module(module, x)
    assert sum(n.op_type == "BatchNormalization" for n in exported.graph.node) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", FoldedBatchNormWarning)
        result = evaluate(module, x, repeats=1)
    assert result.units == 4 * 6 * 6


def test_module_truth_decides() -> None:
    module = gate_cnn(nn.ReLU)
    x = make_inputs((3, 8, 8), 8)
    folded = graph.load_model(torchscript_export(module, x, do_constant_folding=True))
    assert folded_batchnorm(folded, batchnorm_layers=2).startswith(
        "2 of its 2 BatchNorm layers are not in the graph"
    )
    assert folded_batchnorm(folded, batchnorm_layers=0) is None


def dynamo_like(rule: str | None, kept_batchnorm: bool = False) -> onnx.ModelProto:
    """A conv graph with dynamo's node metadata (keys as torch 2.13 + onnxscript write them),
    optionally with a BatchNormalization left on a second branch (as densenet's after concat)."""
    conv = helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])
    relu = helper.make_node("Relu", ["c"], ["y"])
    nodes = [conv, relu]
    extra: list[onnx.TensorProto] = []
    if kept_batchnorm:
        relu.output[0] = "r"
        nodes += [
            helper.make_node("BatchNormalization", ["r", "g", "b", "m", "v"], ["y"]),
        ]
        extra = [
            numpy_helper.from_array(np.full(4, v, np.float32), n)
            for n, v in (("g", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0))
        ]
    for node in nodes:
        entry = node.metadata_props.add()
        entry.key, entry.value = "namespace", ": torch.nn.modules.container.Sequential"
    if rule is not None:
        entry = conv.metadata_props.add()
        entry.key, entry.value = "pkg.onnxscript.rewriter.rule_name", rule
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = helper.make_graph(
        nodes,
        "dynamo",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])],
        initializer=[numpy_helper.from_array(w, "w"), *extra],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def test_dynamo_metadata_tells_folded_from_never_had() -> None:
    folded = dynamo_like("RemoveOptionalBiasFromConv, FuseBatchNormIntoConv")
    assert folded_batchnorm(folded) == "1 of 1 BatchNorm layers were folded into convolutions"
    assert folded_batchnorm(dynamo_like(None)) is None
    partial = dynamo_like("FuseBatchNormIntoConv", kept_batchnorm=True)
    assert folded_batchnorm(partial) == "1 of 2 BatchNorm layers were folded into convolutions"
    assert folded_batchnorm(dynamo_like(None, kept_batchnorm=True)) is None
    with pytest.warns(FoldedBatchNormWarning, match="branchy: 1 of 2"):
        PatternSession(
            graph.load_model(partial), batch_size=4, sample_shape=(3, 6, 6), name="branchy"
        )


@pytest.mark.skipif(
    importlib.util.find_spec("onnxscript") is None,
    reason="torch's dynamo exporter needs onnxscript, which is not installed",
)
def test_dynamo_export_folds_batchnorm_and_is_told() -> None:
    module = gate_cnn(nn.ReLU).eval()
    x = torch.from_numpy(make_inputs((3, 8, 8), 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.onnx.export(module, (x,), dynamo=True, verbose=False).model_proto
    assert folded_batchnorm(exported) == "2 of 2 BatchNorm layers were folded into convolutions"
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = torch.onnx.export(plain, (x,), dynamo=True, verbose=False).model_proto
    assert folded_batchnorm(clean) is None


# =====================================================================================
# shapes lost after a Reshape (issue 16 case 4)
# =====================================================================================
class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle (view → transpose → view), then ReLUs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.after = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        b, c, h, w = y.shape
        y = y.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)
        y = torch.relu(y)
        return torch.relu(self.after(y))


def test_shapes_lost_after_a_reshape_still_give_one_pass() -> None:
    module = Shuffle()
    x = make_inputs((3, 6, 6), 8)
    proto = graph.load_model(export_module(module, x))
    fixed = graph.set_batch_size(proto, "input", 8, (3, 6, 6))
    plain = shape_inference.infer_shapes(fixed)
    known = {
        v.name
        for v in plain.graph.value_info
        if all(d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)
    }
    tensors = [a.tensor for a in graph.find_activations(proto)]
    assert [t in known for t in tensors] == [True, False, False]  # lost to default inference
    session = PatternSession(proto, batch_size=8, sample_shape=(3, 6, 6))
    assert session.passes == 1
    got = session.run(x, seed=2, repeat=0)
    runner = TorchPatternRunner(module, batch_size=8)
    np.testing.assert_array_equal(got.words, runner.run(x, seed=2, repeat=0).words)
    assert got.units == 3 * 8 * 36
    assert [info.shape for info in got.layers] == [(8, 6, 6)] * 3


# =====================================================================================
# export of transformer layers (issue 16 case 6), export noise (case 7)
# =====================================================================================
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_transformer_encoder_exports_and_scores_as_the_torch_backend(act: str) -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, activation=act, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    x = make_inputs((TOKENS, 8), 16)
    results = both_backends(encoder, x)
    for result in results.values():
        assert result.units == 2 * TOKENS * 16
    for repeat in range(2):
        np.testing.assert_array_equal(
            results["onnx"].patterns[repeat].words, results["torch"].patterns[repeat].words
        )
    np.testing.assert_array_equal(results["onnx"].swap_per_repeat, results["torch"].swap_per_repeat)


def test_export_failure_is_one_line_and_prints_nothing(capfd: pytest.CaptureFixture) -> None:
    class Eigen(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(torch.linalg.eigvals(x @ x.transpose(-1, -2)).real)

    with pytest.raises(ExportError) as caught:
        export_module(Eigen(), make_inputs((4, 4), 2))
    assert "\n" not in str(caught.value) and "linalg_eigvals" in str(caught.value)
    out, err = capfd.readouterr()
    assert "Torch IR graph" not in out + err
    assert out == ""


# =====================================================================================
# models over protobuf's 2 GiB limit (issue 16 case 5), shown with the limit made small
# =====================================================================================
def test_external_data_model_scores_as_the_inline_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = Shuffle()  # its activation shapes need inference beyond onnx's own
    x = make_inputs((3, 6, 6), 8)
    inline = export_module(module, x)
    path = tmp_path / "model.onnx"
    stored = onnx.ModelProto()
    stored.CopyFrom(inline)  # onnx converts the proto it saves in place
    onnx.save_model(
        stored, str(path), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    assert (tmp_path / "w.bin").stat().st_size > 0
    expected = evaluate(inline, x)
    monkeypatch.setattr(graph, "INLINE_LIMIT", 1000)  # every model here is now "large"
    loaded = graph.load_model(path)
    assert graph.is_large(loaded)
    session = PatternSession(loaded, batch_size=8, sample_shape=(3, 6, 6))
    assert session._external_dir is not None and session.passes == 1
    assert session.kinds == {"Relu": 3 * 8 * 36}
    got = evaluate(path, x)
    np.testing.assert_array_equal(got.swap_per_repeat, expected.swap_per_repeat)
    for repeat in range(2):
        np.testing.assert_array_equal(got.patterns[repeat].words, expected.patterns[repeat].words)


def test_a_large_torch_module_is_exported_through_external_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A module over the limit is exported into a folder (weights as external data files) and
    loaded back: the same graph and the same score as the in-memory export."""
    module = Shuffle()
    x = make_inputs((3, 6, 6), 8)
    inline = export_module(module, x)
    expected = evaluate(module, x)
    monkeypatch.setattr(graph, "INLINE_LIMIT", 1000)  # Shuffle's weights are now "large"
    exported = export_module(module, x)
    assert [n.op_type for n in exported.graph.node] == [n.op_type for n in inline.graph.node]
    assert graph.model_digest(exported) == graph.model_digest(inline)
    got = evaluate(module, x)
    np.testing.assert_array_equal(got.swap_per_repeat, expected.swap_per_repeat)


def test_a_model_protobuf_cannot_measure_is_large() -> None:
    """Past 2 GiB protobuf's ByteSize raises EncodeError ("Failed to serialize proto"): the
    model is large, not an error."""

    class Unmeasurable:  # a protobuf message class cannot be subclassed: its one method
        def ByteSize(self) -> int:
            raise google.protobuf.message.EncodeError("Failed to serialize proto")

    assert graph.is_large(Unmeasurable())  # type: ignore[arg-type]


def test_onnxruntime_failure_is_one_line_without_its_log(capfd: pytest.CaptureFixture) -> None:
    """A Reshape to a shape computed at run time that does not fit: onnxruntime fails inside
    the forward pass (and, left at its default severity, logs a coloured block to stderr)."""
    nodes = [
        helper.make_node("Relu", ["pre"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Add", ["s", "grow"], ["s1"]),
        helper.make_node("Reshape", ["r", "s1"], ["flat"]),
        helper.make_node("Relu", ["flat"], ["y"]),
    ]
    grow = numpy_helper.from_array(np.array([1, 0], np.int64), "grow")
    model = gate_graph(nodes, [grow])
    with pytest.raises(ShapeMismatchError) as caught:
        session = PatternSession(
            graph.load_model(model), batch_size=8, sample_shape=(FEATURES,), optimize=False
        )
        session.run(make_inputs((FEATURES,), 8), seed=0, repeat=0)
    assert "\n" not in str(caught.value)
    out, err = capfd.readouterr()
    assert out == "" and "onnxruntime" not in err


def test_activation_of_parameters_with_unknown_shape_is_left_out() -> None:
    """NonZero's output size depends on values: no shape inference knows it, but the graph
    shows the ReLU reads only a parameter table, never the input."""
    table = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], np.float32)
    nodes = [
        helper.make_node("Relu", ["pre"], ["y"]),
        helper.make_node("NonZero", ["table"], ["where"]),
        helper.make_node("Cast", ["where"], ["where_f"], to=TensorProto.FLOAT),
        helper.make_node("Relu", ["where_f"], ["t"]),
    ]
    model = gate_graph(nodes, [numpy_helper.from_array(table, "table")])
    model.graph.output.append(helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, "nnz"]))
    x = make_inputs((FEATURES,), 8)
    session = PatternSession(
        graph.load_model(model), batch_size=8, sample_shape=(FEATURES,), init="keep"
    )
    assert [(a.name, units) for a, units in session.no_batch] == [("t", None)]
    got = session.run(x, seed=0, repeat=0)
    weight = numpy_helper.to_array(model.graph.initializer[0])
    np.testing.assert_array_equal(got.to_bool(), x @ weight > 0)


def test_weightless_copy_infers_the_same_shapes() -> None:
    """Shapes of a model over the limit are inferred on a copy without its large weights."""
    module = nn.Sequential(nn.Conv2d(3, 64, 5, padding=2), nn.ReLU(), nn.Flatten(), nn.GELU())
    x = make_inputs((3, 6, 6), 4)
    proto = graph.set_batch_size(export_module(module, x), "input", 4, (3, 6, 6))
    light = graph.weightless(proto, keep_elements=100)
    assert [len(t.raw_data) for t in light.graph.initializer] == [0, 64 * 4]  # weight stubbed
    names = [a.tensor for a in graph.all_activations(proto)]
    expected = static_shapes(proto, names)
    assert expected == {names[0]: (4, 64, 6, 6), names[1]: (4, 64 * 36)}
    assert static_shapes(light, names) == expected


# =====================================================================================
# gates written out by hand: both backends find them (and an SE block's gating is not one)
# =====================================================================================
class HandSwish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class HandHardSwish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardsigmoid(x) * x


class HandMish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(torch.tanh(F.softplus(x)))


class NewGELU(nn.Module):
    """GPT-2's (and transformers' NewGELUActivation) tanh approximation, as written there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))
        return 0.5 * x * (1.0 + torch.tanh(inner))


class ErfGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class SqueezeExcite(nn.Module):
    """Gates x by a function of its channel means: not a gate of x."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))


HAND_GATES = {
    "swish": (HandSwish, "Silu"),
    "hardswish": (HandHardSwish, "HardSwish"),
    "mish": (HandMish, "Mish"),
    "new_gelu": (NewGELU, "Gelu"),
    "erf_gelu": (ErfGELU, "Gelu"),
    "quick_gelu": (QuickGELU, "Silu"),
}


@pytest.mark.parametrize("form", list(HAND_GATES))
def test_hand_written_gates_match_the_oracle_on_both_backends(form: str) -> None:
    gate, kind = HAND_GATES[form]
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False),
        nn.BatchNorm2d(6),
        gate(),
        SqueezeExcite(6),
        nn.Conv2d(6, 4, 3, stride=2, padding=1),
        gate(),
    )
    inputs = make_inputs((3, 8, 8), 16)
    expected = []
    for repeat in range(2):
        ref = reference_init(module, SEED, repeat).train()
        recorded: list[torch.Tensor] = []

        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...], sink=recorded) -> None:
            sink.append((args[0] > 0).reshape(16, -1).clone())

        handles = [
            sub.register_forward_pre_hook(hook) for sub in ref.modules() if isinstance(sub, gate)
        ]
        with torch.no_grad():
            ref(torch.from_numpy(inputs))
        for handle in handles:
            handle.remove()
        expected.append(torch.cat(recorded, dim=1).numpy())
    units = 6 * 64 + 4 * 16
    assert expected[0].shape == (16, units)
    for backend, result in both_backends(module, inputs).items():
        assert result.units == units, backend
        assert {info.op for info in result.layers} == {kind}, backend
        for repeat, b in enumerate(expected):
            np.testing.assert_array_equal(result.patterns[repeat].to_bool(), b, err_msg=backend)
