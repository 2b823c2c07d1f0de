"""The exactness oracle: swapprobe's patterns against a plain re-implementation of the reference.

The reference (SWAP-NAS code, SPEC.md) re-initialises Conv/Linear weights ~ N(0, 1), biases 0,
BatchNorm weight 1 and bias 0, runs BatchNorm on batch statistics (training mode), hooks the
output of every ``nn.ReLU`` and binarises it with ``> 0``. :func:`reference_patterns` does exactly
that with ``register_forward_hook``; functional ``F.relu``/``torch.relu``/``Tensor.relu`` calls are
first rewritten into ``nn.ReLU`` modules with ``torch.fx`` (a different interception from the
torch backend's TorchFunctionMode). SWAP is then ``torch.unique(dim=0)`` over the unit rows.

Weights are the same on both sides: the oracle draws them with
:func:`swapprobe.capture.weights.draw` keyed by parameter name, as both backends claim to.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import onnx
import pytest
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from swapprobe.capture import graph
from swapprobe.capture.export import export_module
from swapprobe.capture.session import PatternSession
from swapprobe.capture.torch_backend import module_parameters
from swapprobe.capture.weights import draw
from swapprobe.data import Batch, load_batch
from swapprobe.errors import NoActivationError, ShapeMismatchError
from swapprobe.evaluate import Evaluator
from swapprobe.results import Result, ScoreSettings

SEED = 11
REPEATS = 2


# =====================================================================================
# the oracle
# =====================================================================================
def reference_init(module: nn.Module, seed: int, repeat: int) -> nn.Module:
    """A copy with the reference weights: Conv/Linear N(0, 1) (drawn by name), biases 0, BN 1/0."""
    ref = copy.deepcopy(module)
    weights = [
        graph.ParameterInfo(f"{path}.weight", "weight", tuple(sub.weight.shape), 1)
        for path, sub in ref.named_modules()
        if isinstance(sub, (nn.Conv2d, nn.Linear))
    ]
    drawn = draw("gaussian", weights, seed, repeat)
    assert len(drawn) == len(weights)
    with torch.no_grad():
        for path, sub in ref.named_modules():
            if isinstance(sub, (nn.Conv2d, nn.Linear)):
                sub.weight.copy_(torch.from_numpy(drawn[f"{path}.weight"]))
                if sub.bias is not None:
                    sub.bias.zero_()
            elif isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.weight.fill_(1.0)
                sub.bias.zero_()
    return ref


def functional_relus_as_modules(module: nn.Module) -> nn.Module:
    """Trace with torch.fx and replace F.relu / torch.relu / x.relu() calls by nn.ReLU modules."""
    traced = fx.symbolic_trace(module)
    count = 0
    for node in list(traced.graph.nodes):
        functional = node.op == "call_function" and node.target in (F.relu, torch.relu)
        method = node.op == "call_method" and node.target == "relu"
        if not (functional or method):
            continue
        name = f"oracle_relu_{count}"
        count += 1
        traced.add_submodule(name, nn.ReLU())
        with traced.graph.inserting_after(node):
            replacement = traced.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(replacement)
        traced.graph.erase_node(node)
    traced.recompile()
    return traced


def reference_patterns(
    module: nn.Module, inputs: np.ndarray, *, batch_statistics: bool = True
) -> np.ndarray:
    """The paper's B: (S, V) booleans, V = every nn.ReLU output flattened, in call order."""
    net = functional_relus_as_modules(module)
    # BatchNorm on batch statistics (training mode), as the reference code runs it
    net.train(batch_statistics)
    recorded: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        recorded.append((output > 0).reshape(output.shape[0], -1).clone())

    handles = [sub.register_forward_hook(hook) for sub in net.modules() if isinstance(sub, nn.ReLU)]
    try:
        with torch.no_grad():
            net(torch.from_numpy(inputs))
    finally:
        for handle in handles:
            handle.remove()
    return torch.cat(recorded, dim=1).numpy()


def reference_swap(b: np.ndarray) -> int:
    """Distinct S-bit unit patterns: torch.unique over the rows of Bᵀ."""
    return int(torch.unique(torch.from_numpy(b.T.copy()), dim=0).shape[0])


# =====================================================================================
# test networks (spatial 3×8×8 images; MLP: 24 features)
# =====================================================================================
class Plain(nn.Module):
    """conv-BN-ReLU ×2 (the second with bias and stride 2), pooling and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 6, 3, stride=2, padding=1, bias=True),
            nn.BatchNorm2d(6),
            nn.ReLU(),
        )
        self.head = nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


PLAIN_UNITS = 8 * 8 * 8 + 6 * 4 * 4  # 512 + 96


class BasicBlock(nn.Module):
    """torchvision-style: one in-place nn.ReLU module called twice, optional 1×1 shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return self.relu(out)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.act = nn.ReLU()
        self.block1 = BasicBlock(4, 4, 1)
        self.block2 = BasicBlock(4, 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(self.act(self.stem(x))))


# stem 4·64; block1 two ReLUs of 4·64; block2 two ReLUs of 8·16
RESIDUAL_UNITS = 4 * 64 + 2 * 4 * 64 + 2 * 8 * 16


class Functional(nn.Module):
    """ReLUs only as function calls: F.relu (in place), torch.relu and Tensor.relu."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        z = torch.relu(self.bn2(self.conv2(y)))
        return (z + y).relu()


FUNCTIONAL_UNITS = 3 * 4 * 64


class SharedInput(nn.Module):
    """Two ReLU modules reading the same tensor (like DARTS' preprocessing on the raw image)."""

    def __init__(self) -> None:
        super().__init__()
        self.relu_a = nn.ReLU()
        self.relu_b = nn.ReLU()
        self.conv_a = nn.Conv2d(3, 4, 1, bias=False)
        self.conv_b = nn.Conv2d(3, 4, 1, bias=False)
        self.bn_a = nn.BatchNorm2d(4)
        self.bn_b = nn.BatchNorm2d(4)
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.bn_a(self.conv_a(self.relu_a(x)))
        b = self.bn_b(self.conv_b(self.relu_b(x)))
        return self.out(a + b)


SHARED_UNITS = 2 * 3 * 64 + 4 * 64  # both input ReLUs count


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(24, 32),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.Linear(32, 16),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Linear(16, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


MLP_UNITS = 32 + 16

NETS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int]] = {
    "plain": (Plain, (3, 8, 8), PLAIN_UNITS),
    "residual": (Residual, (3, 8, 8), RESIDUAL_UNITS),
    "functional": (Functional, (3, 8, 8), FUNCTIONAL_UNITS),
    "shared_input": (SharedInput, (3, 8, 8), SHARED_UNITS),
    "mlp": (MLP, (24,), MLP_UNITS),
}


def make_net(kind: str) -> nn.Module:
    torch.manual_seed(0)  # the module's own init is irrelevant under gaussian, but fixed
    return NETS[kind][0]()


def make_inputs(shape: tuple[int, ...], samples: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((samples, *shape)).astype(np.float32)


def evaluate(model: object, inputs: np.ndarray | Batch, **settings: object) -> Result:
    batch = inputs if isinstance(inputs, Batch) else load_batch(inputs)
    options: dict[str, object] = {
        "batch_size": len(batch.inputs),
        "repeats": REPEATS,
        "seed": SEED,
        "keep_patterns": "all",
    }
    options.update(settings)
    return Evaluator(batch, ScoreSettings(**options)).evaluate(model)  # type: ignore[arg-type]


# =====================================================================================
# the oracle comparison
# =====================================================================================
@pytest.mark.parametrize("samples", [16, 64, 100])
@pytest.mark.parametrize("kind", list(NETS))
def test_both_backends_match_the_reference(kind: str, samples: int) -> None:
    module = make_net(kind)
    _, shape, units = NETS[kind]
    inputs = make_inputs(shape, samples)
    before = {k: v.clone() for k, v in module.state_dict().items()}

    expected = [reference_patterns(reference_init(module, SEED, r), inputs) for r in range(REPEATS)]
    assert expected[0].shape == (samples, units)  # the oracle's V, counted by hand

    results = {backend: evaluate(module, inputs, backend=backend) for backend in ("onnx", "torch")}
    for backend, result in results.items():
        assert result.units == units, backend
        assert result.samples == samples
        for repeat, b in enumerate(expected):
            assert result.swap_per_repeat[repeat] == reference_swap(b), (backend, repeat)
            np.testing.assert_array_equal(result.patterns[repeat].to_bool(), b, err_msg=backend)
            assert result.standard_ap_per_repeat is not None
            assert result.standard_ap_per_repeat[repeat] == np.unique(b, axis=0).shape[0]
        assert result.param_count == sum(p.numel() for p in module.parameters())

    # The two swapprobe backends produce bit-identical packed words.
    for repeat in range(REPEATS):
        np.testing.assert_array_equal(
            results["onnx"].patterns[repeat].words, results["torch"].patterns[repeat].words
        )
    # Repeats draw different weights.
    assert not np.array_equal(expected[0], expected[1])
    # Scoring never changes the caller's module.
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_keep_init_scores_the_given_weights() -> None:
    """init="keep": weights, biases and BN affine exactly as set in the module."""
    module = make_net("residual")
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator))
    inputs = make_inputs((3, 8, 8), 32, seed=1)
    expected = reference_patterns(module, inputs)  # no re-initialisation
    for backend in ("onnx", "torch"):
        result = evaluate(module, inputs, backend=backend, init="keep", repeats=3)
        for repeat in range(3):
            np.testing.assert_array_equal(result.patterns[repeat].to_bool(), expected)
        assert list(result.swap_per_repeat) == [reference_swap(expected)] * 3
    # A sanity check of the check: the reference init gives other patterns.
    assert not np.array_equal(reference_patterns(reference_init(module, 0, 0), inputs), expected)


def test_relu6_counts_and_hardtanh_does_not_on_both_backends() -> None:
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(4)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu6(self.bn(self.conv(x)))
            return F.hardtanh(self.conv2(y), -1.0, 1.0)

    module = Mixed()
    inputs = make_inputs((3, 8, 8), 16)
    ref = reference_init(module, SEED, 0)
    with torch.no_grad():
        ref.train()
        pre = ref.bn(ref.conv(torch.from_numpy(inputs)))
    expected = (pre > 0).reshape(16, -1).numpy()
    results = [evaluate(module, inputs, backend=b, repeats=1) for b in ("onnx", "torch")]
    for result in results:
        assert result.units == 4 * 64  # the hardtanh(-1, 1) adds nothing
        assert [info.op for info in result.layers] == ["Clip"]
        np.testing.assert_array_equal(result.patterns[0].to_bool(), expected)


# =====================================================================================
# sessions, parameters, batch norm
# =====================================================================================
@pytest.mark.parametrize("kind", ["plain", "residual", "mlp"])
def test_optimised_session_gives_bit_identical_patterns(kind: str) -> None:
    _, shape, _ = NETS[kind]
    inputs = make_inputs(shape, 64)
    model = graph.load_model(export_module(make_net(kind), inputs))
    sessions = [
        PatternSession(model, batch_size=64, sample_shape=shape, optimize=flag)
        for flag in (True, False)
    ]
    for repeat in range(3):
        optimised, plain = (s.run(inputs, seed=SEED, repeat=repeat) for s in sessions)
        np.testing.assert_array_equal(optimised.words, plain.words)
        assert optimised.layers == plain.layers


def test_parameter_roles_and_count() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(5)
            self.conv_b = nn.Conv2d(5, 4, 1, bias=True)
            self.fc = nn.Linear(4, 7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu(self.bn(self.conv(x)))
            return self.fc(F.relu(self.conv_b(y)).mean(dim=(2, 3)))

    module = Net()
    inputs = make_inputs((3, 8, 8), 4)
    model = graph.load_model(export_module(module, inputs))
    found = {p.name: (p.role, p.shape, p.fan_in) for p in graph.parameters(model)}
    assert found == {
        "conv.weight": ("weight", (5, 3, 3, 3), 27),
        "bn.weight": ("bn_scale", (5,), 1),
        "bn.bias": ("bn_bias", (5,), 1),
        "conv_b.weight": ("weight", (4, 5, 1, 1), 5),
        "conv_b.bias": ("bias", (4,), 5),
        "fc.weight": ("weight", (7, 4), 4),
        "fc.bias": ("bias", (7,), 4),
    }
    # The torch backend sees the same names, roles and shapes.
    torch_side = {p.name: (p.role, p.shape, p.fan_in) for p in module_parameters(module)}
    assert torch_side == found
    total = sum(p.numel() for p in module.parameters())
    assert total == 135 + 10 + 24 + 35  # counted by hand
    session = PatternSession(model, batch_size=4, sample_shape=(3, 8, 8))
    assert session.param_count == total
    # An ONNX model (not a module) is counted from the graph alone.
    assert evaluate(model, make_inputs((3, 8, 8), 4), repeats=1).param_count == total


def test_eval_mode_export_still_scores_on_batch_statistics() -> None:
    """The exported BatchNormalization carries running statistics; swapprobe must ignore them."""
    module = make_net("plain")
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.BatchNorm2d):
                sub.running_mean.fill_(3.0)
                sub.running_var.fill_(0.05)
    module.eval()
    inputs = make_inputs((3, 8, 8), 32)
    proto = export_module(module, inputs)
    assert "BatchNormalization" in {node.op_type for node in proto.graph.node}

    result = evaluate(proto, inputs)  # an ONNX model: nothing but the graph
    for repeat in range(REPEATS):
        expected = reference_patterns(reference_init(module, SEED, repeat), inputs)
        np.testing.assert_array_equal(result.patterns[repeat].to_bool(), expected)
        # With running statistics (eval mode) the patterns would be different.
        frozen = reference_patterns(
            reference_init(module, SEED, repeat), inputs, batch_statistics=False
        )
        assert frozen.shape == expected.shape
        assert not np.array_equal(frozen, expected)


# =====================================================================================
# repeats and seeds
# =====================================================================================
def test_keep_repeats_are_identical_and_gaussian_repeats_differ() -> None:
    module = make_net("plain")
    inputs = make_inputs((3, 8, 8), 16)
    kept = evaluate(module, inputs, init="keep", repeats=3)
    assert kept.patterns[0] == kept.patterns[1] == kept.patterns[2]
    assert len(set(kept.swap_per_repeat)) == 1
    drawn = evaluate(module, inputs, repeats=3)
    assert drawn.patterns[0] != drawn.patterns[1]
    assert drawn.patterns[1] != drawn.patterns[2]


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_same_seed_same_scores(backend: str) -> None:
    module = make_net("residual")
    inputs = make_inputs((3, 8, 8), 16)
    first = evaluate(module, inputs, backend=backend, seed=3, repeats=3)
    second = evaluate(module, inputs, backend=backend, seed=3, repeats=3)
    np.testing.assert_array_equal(first.swap_per_repeat, second.swap_per_repeat)
    np.testing.assert_array_equal(first.nwot_per_repeat, second.nwot_per_repeat)
    assert all(first.patterns[r] == second.patterns[r] for r in range(3))
    other = evaluate(module, inputs, backend=backend, seed=4, repeats=3)
    assert all(first.patterns[r] != other.patterns[r] for r in range(3))


# =====================================================================================
# hand-made ONNX graphs
# =====================================================================================
def linear_model(
    tail: list[onnx.NodeProto],
    output: str,
    weight: np.ndarray,
    *,
    bias: np.ndarray | None = None,
    extra: list[onnx.TensorProto] | None = None,
) -> onnx.ModelProto:
    """x (N, F) → MatMul(W) [→ Add(b)] → ``tail`` nodes → ``output``."""
    features, width = weight.shape
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"])]
    inits = [numpy_helper.from_array(weight.astype(np.float32), "W")]
    if bias is not None:
        nodes.append(helper.make_node("Add", ["xw", "b"], ["pre"]))
        inits.append(numpy_helper.from_array(bias.astype(np.float32), "b"))
    else:
        nodes.append(helper.make_node("Identity", ["xw"], ["pre"]))
    g = helper.make_graph(
        nodes + tail,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", width])],
        initializer=inits + list(extra or []),
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def clip(
    low: float, high: float, source: str = "pre", out: str = "y"
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    tensors = [
        numpy_helper.from_array(np.array(low, np.float32), f"{out}_lo"),
        numpy_helper.from_array(np.array(high, np.float32), f"{out}_hi"),
    ]
    return [helper.make_node("Clip", [source, f"{out}_lo", f"{out}_hi"], [out])], tensors


def session(
    model: onnx.ModelProto, samples: int, features: int, **options: object
) -> PatternSession:
    return PatternSession(
        graph.load_model(model),
        batch_size=samples,
        sample_shape=(features,),
        **options,  # type: ignore[arg-type]
    )


def test_matmul_add_linear_layer_by_hand() -> None:
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((6, 40))
    bias = np.full(40, 3.0)  # large: patterns change visibly if it were not reset to 0
    model = linear_model([helper.make_node("Relu", ["pre"], ["y"])], "y", weight, bias=bias)
    roles = {p.name: (p.role, p.shape, p.fan_in) for p in graph.parameters(model)}
    assert roles == {"W": ("weight", (6, 40), 6), "b": ("bias", (40,), 6)}

    x = make_inputs((6,), 20)
    # gaussian: W ~ N(0, 1) drawn under its name, b = 0
    drawn = draw("gaussian", graph.parameters(model), SEED, 1)
    assert set(drawn) == {"W"}
    expected = x @ drawn["W"] > 0
    got = session(model, 20, 6).run(x, seed=SEED, repeat=1)
    np.testing.assert_array_equal(got.to_bool(), expected)
    assert got.units == 40 and got.layers[0].op == "Relu"
    # keep: W and b as stored
    kept = session(model, 20, 6, init="keep").run(x, seed=SEED, repeat=1)
    np.testing.assert_array_equal(kept.to_bool(), x @ weight.astype(np.float32) + 3.0 > 0)


def test_relu6_clip_counts_and_clip_minus_one_one_does_not() -> None:
    rng = np.random.default_rng(6)
    weight = rng.standard_normal((5, 30))
    x = make_inputs((5,), 16)
    nodes, tensors = clip(0.0, 6.0)
    relu6 = linear_model(nodes, "y", weight, extra=tensors)
    acts = graph.find_activations(relu6)
    assert [(a.op, a.tensor) for a in acts] == [("Clip", "y")]
    got = session(relu6, 16, 5, init="keep").run(x, seed=0, repeat=0)
    np.testing.assert_array_equal(got.to_bool(), x @ weight.astype(np.float32) > 0)

    nodes, tensors = clip(-1.0, 1.0)
    hardtanh = linear_model(nodes, "y", weight, extra=tensors)
    with pytest.raises(NoActivationError, match="Clip"):
        graph.find_activations(hardtanh)
    with pytest.raises(NoActivationError):
        session(hardtanh, 16, 5)

    # Clip(-1, 1) beside a Relu: only the Relu's 30 units count.
    nodes, tensors = clip(-1.0, 1.0, source="r", out="y")
    both = linear_model(
        [helper.make_node("Relu", ["pre"], ["r"]), *nodes], "y", weight, extra=tensors
    )
    got = session(both, 16, 5, init="keep").run(x, seed=0, repeat=0)
    assert got.units == 30
    assert [info.op for info in got.layers] == ["Relu"]


def test_leaky_relu_counts_by_the_sign_of_its_input() -> None:
    rng = np.random.default_rng(8)
    weight = rng.standard_normal((4, 25))
    x = make_inputs((4,), 16)
    model = linear_model([helper.make_node("LeakyRelu", ["pre"], ["y"], alpha=0.1)], "y", weight)
    acts = graph.find_activations(model)
    assert [(a.name, a.op, a.tensor) for a in acts] == [("y", "LeakyRelu", "pre")]
    got = session(model, 16, 4, init="keep").run(x, seed=0, repeat=0)
    assert got.units == 25
    np.testing.assert_array_equal(got.to_bool(), x @ weight.astype(np.float32) > 0)

    # nn.LeakyReLU through both backends: same bits, read from the pre-activation.
    module = nn.Sequential(
        nn.Linear(4, 12), nn.BatchNorm1d(12), nn.LeakyReLU(0.2), nn.Linear(12, 3)
    )
    results = [evaluate(module, x, backend=b, repeats=1) for b in ("onnx", "torch")]
    ref = reference_init(module, SEED, 0).train()
    with torch.no_grad():
        pre = ref[1](ref[0](torch.from_numpy(x)))
    for result in results:
        assert result.units == 12
        np.testing.assert_array_equal(result.patterns[0].to_bool(), (pre > 0).numpy())


def test_sigmoid_only_model_has_no_activation() -> None:
    model = linear_model([helper.make_node("Sigmoid", ["pre"], ["y"])], "y", np.ones((3, 4)))
    with pytest.raises(NoActivationError, match="Sigmoid"):
        evaluate(model, make_inputs((3,), 8))


def test_input_shape_mismatch_names_both_shapes() -> None:
    module = make_net("functional")
    model = export_module(module, make_inputs((3, 64, 64), 2))
    with pytest.raises(ShapeMismatchError) as caught:
        evaluate(model, make_inputs((3, 32, 32), 16))
    message = str(caught.value)
    assert "(3, 64, 64)" in message
    assert "(3, 32, 32)" in message


def test_oracle_sees_functional_relus() -> None:
    """The oracle's own interception: without the fx rewrite, hooks would see no ReLU."""
    rewritten = functional_relus_as_modules(make_net("functional"))
    assert sum(isinstance(m, nn.ReLU) for m in rewritten.modules()) == 3
    assert sum(isinstance(m, nn.ReLU) for m in make_net("functional").modules()) == 0
    b = reference_patterns(make_net("functional"), make_inputs((3, 8, 8), 4))
    assert b.shape == (4, FUNCTIONAL_UNITS)


def test_parameters_with_equal_values_stay_separate() -> None:
    """Fresh BatchNorms all hold ones/zeros and these convolutions hold equal constants: each is
    still its own parameter, counted in Θ and re-drawn independently (as the reference does)."""

    class Twins(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_a = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.conv_b = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.stem = nn.Conv2d(3, 4, 1, bias=False)
            self.bn_0 = nn.BatchNorm2d(4)
            self.bn_a = nn.BatchNorm2d(4)
            self.bn_b = nn.BatchNorm2d(4)
            with torch.no_grad():
                self.conv_a.weight.fill_(0.1)
                self.conv_b.weight.fill_(0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu(self.bn_0(self.stem(x)))
            return F.relu(self.bn_b(self.conv_b(F.relu(self.bn_a(self.conv_a(x))))))

    module = Twins()
    inputs = make_inputs((3, 8, 8), 16)
    total = sum(p.numel() for p in module.parameters())
    assert total == 12 + 2 * 144 + 3 * 8
    proto = export_module(module, inputs)
    assert (
        PatternSession(graph.load_model(proto), batch_size=16, sample_shape=(3, 8, 8)).param_count
        == total
    )
    assert evaluate(proto, inputs, repeats=1).param_count == total
    expected = [reference_patterns(reference_init(module, SEED, r), inputs) for r in range(REPEATS)]
    for backend in ("onnx", "torch"):
        result = evaluate(module, inputs, backend=backend)
        for repeat in range(REPEATS):
            np.testing.assert_array_equal(
                result.patterns[repeat].to_bool(), expected[repeat], err_msg=backend
            )


def test_layer_groups_give_identical_patterns() -> None:
    """A pattern-memory budget splits the layers over several passes, never the samples."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
    )
    inputs = np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32)
    proto = graph.load_model(export_module(model, inputs))
    whole = PatternSession(proto, batch_size=16, sample_shape=(3, 8, 8))
    # each layer returns 8 · 8 · 8 units × one float32 (16 samples) = 2048 bytes: a 2500-byte
    # budget forces 3 passes
    split = PatternSession(proto, batch_size=16, sample_shape=(3, 8, 8), max_pattern_bytes=2_500)
    assert whole.passes == 1
    assert split.passes == 3
    for repeat in range(2):
        a = whole.run(inputs, seed=3, repeat=repeat)
        b = split.run(inputs, seed=3, repeat=repeat)
        assert np.array_equal(a.words, b.words)
        assert a.layers == b.layers


@pytest.mark.parametrize("samples", [2, 16, 33, 64, 100])
def test_packing_in_the_graph_with_io_binding_is_bit_identical(samples: int) -> None:
    """The CUDA path's in-graph packing and I/O binding, exercised on the CPU provider."""
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 8),
        nn.ReLU(),
    )
    inputs = np.random.default_rng(samples).standard_normal((samples, 3, 6, 6)).astype(np.float32)
    proto = graph.load_model(export_module(model, inputs))
    host = PatternSession(proto, batch_size=samples, sample_shape=(3, 6, 6), pack="host")
    packed = PatternSession(
        proto, batch_size=samples, sample_shape=(3, 6, 6), pack="graph", io_binding=True
    )
    assert not host.pack_in_graph and packed.pack_in_graph
    for repeat in range(2):
        a = host.run(inputs, seed=5, repeat=repeat)
        b = packed.run(inputs, seed=5, repeat=repeat)
        assert np.array_equal(a.words, b.words)
        assert a.layers == b.layers


def test_each_pattern_is_read_right_after_its_activation() -> None:
    """Patterns appended at the graph's end kept every activation's floats alive to the end
    (ResNet-50, S = 64: 2.6 GB peak against 1.1 GB); each must follow its producer instead."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, bias=False),
        nn.ReLU(),
    )
    inputs = np.zeros((4, 3, 6, 6), np.float32)
    proto = graph.load_model(export_module(model, inputs))
    activations = graph.find_activations(proto)
    for packed in (None, 4):
        exposed, names = graph.expose_patterns(proto, activations, packed_samples=packed)
        ops = [node.op_type for node in exposed.graph.node]
        per_pattern = 1 if packed is None else 4  # Greater (+ Cast, Reshape, MatMul)
        assert len(names) == 3
        for activation in activations:
            producer = next(
                i for i, n in enumerate(exposed.graph.node) if activation.tensor in n.output
            )
            reader = producer + 1
            assert exposed.graph.node[reader].op_type == "Greater"
            assert activation.tensor in exposed.graph.node[reader].input
        assert ops.count("Greater") == 3 and len(ops) == len(proto.graph.node) + 3 * per_pattern


def _selection(session: PatternSession) -> tuple[object, ...]:
    return (
        [(a.name, a.op, a.tensor) for a in session.activations],
        session._sample_shapes,
        session._permutations,
        session.no_batch,
        session.not_counted,
        session.kinds,
    )


@pytest.mark.parametrize("kind", [*NETS, "nb201", "darts"])
def test_batch_axes_read_off_symbolic_shapes_equal_the_two_inferences(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where every activation of a loaded model is (batch, *static), the session reads its
    shapes and batch axes without inferring at S and S + 1; what it selects, and the patterns,
    are those the two inferences give."""
    import swapprobe.capture.prepare as prepare_mod
    from swapprobe.capture.shapes import leading_batch_shapes
    from swapprobe.searchspaces import get_space

    if kind in NETS:
        _, shape, _ = NETS[kind]
        network = make_net(kind)
    else:
        space = get_space(kind)
        network = space.build_scoring_network(space.sample(np.random.default_rng(3)))
        shape = (3, 32, 32)
    inputs = make_inputs(shape, 16)
    model = graph.load_model(export_module(network, inputs))
    tensors = [a.tensor for a in graph.all_activations(model)]
    assert leading_batch_shapes(model, "input", tensors, 16) is not None  # the fast path runs
    fast = PatternSession(model, batch_size=16, sample_shape=shape)
    monkeypatch.setattr(prepare_mod, "leading_batch_shapes", lambda *args: None)
    inferred = PatternSession(model, batch_size=16, sample_shape=shape)
    assert _selection(fast) == _selection(inferred)
    assert fast.groups == inferred.groups
    for repeat in range(2):
        a, b = (s.run(inputs, seed=SEED, repeat=repeat) for s in (fast, inferred))
        np.testing.assert_array_equal(a.words, b.words)
        assert a.layers == b.layers
