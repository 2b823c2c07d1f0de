"""Search-space networks written as ONNX without tracing must be the traced graph.

The independent expectation is the TorchScript exporter's graph of the same module: the
emitted graph must give bit-identical patterns with identical layer names, under both random
schemes, on every op of both spaces (NAS-Bench-201 edges; DARTS edges at stride 1 and 2).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
from onnx import numpy_helper

from swapprobe.capture import export as export_mod
from swapprobe.capture.emit import GraphEmitter, _unqualified, can_emit
from swapprobe.capture.export import export_module
from swapprobe.capture.graph import load_model
from swapprobe.capture.session import PatternSession
from swapprobe.data import load_batch
from swapprobe.errors import ExportError
from swapprobe.evaluate import Evaluator
from swapprobe.patterns import PatternMatrix
from swapprobe.results import ScoreSettings
from swapprobe.searchspaces.darts import DARTS_OPS, DARTS_V2, DartsSpace, Genotype
from swapprobe.searchspaces.nb201 import NB201_EDGES, NB201_OPS, Nb201Arch, Nb201Space

S = 8


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return load_batch("synthetic", batch_size=S, seed=5).inputs


def _patterns(model: onnx.ModelProto, images: np.ndarray, init: str) -> PatternMatrix:
    session = PatternSession(
        load_model(model), batch_size=S, sample_shape=images.shape[1:], init=init
    )
    return session.run(images, seed=11, repeat=1)


def _forward(model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": images})[0]


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _assert_same_as_traced(network: nn.Module, images: np.ndarray) -> onnx.ModelProto:
    emitted = export_module(network, images, method="emit")
    traced = export_module(network, images, method="trace")
    onnx.checker.check_model(emitted, full_check=True)
    emitted_init, traced_init = _initializers(emitted), _initializers(traced)
    assert emitted_init.keys() == traced_init.keys()
    for name, value in traced_init.items():
        np.testing.assert_array_equal(emitted_init[name], value, err_msg=name)
    # The network's own output (inference mode, its own weights): catches a slip in a layer
    # whose output no activation reads, e.g. pooling right before the global pool.
    np.testing.assert_array_equal(_forward(emitted, images), _forward(traced, images))
    for init in ("gaussian", "kaiming"):
        ours, reference = _patterns(emitted, images, init), _patterns(traced, images, init)
        assert ours.layers == reference.layers  # same names, offsets and sizes, same order
        np.testing.assert_array_equal(ours.words, reference.words)
    return emitted


def _nb201_archs() -> list[Nb201Arch]:
    uniform = [Nb201Arch((op,) * len(NB201_EDGES)) for op in NB201_OPS]
    rng = np.random.default_rng(3)
    return uniform + [Nb201Space().sample(rng) for _ in range(3)]


@pytest.mark.parametrize("arch", _nb201_archs(), ids=str)
def test_nb201_network_emits_the_traced_graph(arch: Nb201Arch, images: np.ndarray) -> None:
    network = Nb201Space().build_scoring_network(arch)
    emitted = _assert_same_as_traced(network, images)
    traced = export_module(network, images, method="trace")
    # NAS-Bench-201 needs no index bookkeeping, so even every node is the exporter's.
    assert [(n.op_type, n.name, list(n.input), list(n.output)) for n in emitted.graph.node] == [
        (n.op_type, n.name, list(n.input), list(n.output)) for n in traced.graph.node
    ]


def _darts_genotype(op: str) -> Genotype:
    """``op`` on every reduction-cell edge: from the cell inputs (stride 2) and from nodes."""
    reduce = ((op, 0), (op, 1), (op, 2), (op, 0), (op, 3), (op, 1), (op, 4), (op, 2))
    normal = (("sep_conv_3x3", 0),) * 8
    return Genotype(normal, (2, 3, 4, 5), reduce, (2, 3, 4, 5))


@pytest.mark.parametrize("op", [op for op in DARTS_OPS if op != "none"] + ["none"])
def test_darts_scoring_network_emits_the_traced_graph(op: str, images: np.ndarray) -> None:
    genotype = _darts_genotype(op)
    if op == "none":  # a cell of only zeros still has its preprocessing ReLUs; mix in a conv
        genotype = Genotype(
            genotype.normal,
            genotype.normal_concat,
            (("sep_conv_3x3", 0), *genotype.reduce[1:]),
            genotype.reduce_concat,
        )
    _assert_same_as_traced(DartsSpace().build_scoring_network(genotype), images)


def test_darts_v2_emits_the_traced_graph(images: np.ndarray) -> None:
    _assert_same_as_traced(DartsSpace().build_scoring_network(DARTS_V2), images)


def test_scoring_a_space_architecture_never_traces(
    images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_tracing(*args: object, **kwargs: object) -> None:
        raise AssertionError("traced")

    monkeypatch.setattr(export_mod, "_trace", no_tracing)
    data = load_batch("synthetic", batch_size=S, seed=5)
    evaluator = Evaluator(data, ScoreSettings(batch_size=S, repeats=1))
    for space in (Nb201Space(), DartsSpace()):
        arch = space.sample(np.random.default_rng(0))
        assert evaluator.evaluate_architecture(space, arch).swap > 0


class _Gelu(nn.Module):
    """Opts in to emission but holds a layer the emitter has no writer for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.act(self.conv(x)))

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        return g.node("Relu", [g(self.act, g(self.conv, x))])


def test_unsupported_layers_fall_back_to_tracing_or_say_why(images: np.ndarray) -> None:
    module = _Gelu()
    assert can_emit(module)
    model = export_module(module, images)  # auto: emission fails, tracing takes over
    assert "Relu" in {n.op_type for n in model.graph.node}
    with pytest.raises(ExportError, match="GELU"):
        export_module(module, images, method="emit")


@pytest.mark.parametrize(
    ("qualified", "scope"),
    [("cells.0.edges.1.0", "edges.1.0"), ("cells.0", "cells.0"), ("stem", "stem"), ("0.1", "0.1")],
)
def test_scope_names_follow_the_exporter(qualified: str, scope: str) -> None:
    assert _unqualified(qualified) == scope


class _Tied(nn.Module):
    """Two convolutions sharing one weight tensor, each followed by a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.relu_a = nn.ReLU()
        self.conv_b = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.conv_b.weight = self.conv_a.weight
        self.relu_b = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu_b(self.conv_b(self.relu_a(self.conv_a(x))))

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        return g(self.relu_b, g(self.conv_b, g(self.relu_a, g(self.conv_a, x))))


def test_tied_weights_stay_one_initializer(images: np.ndarray) -> None:
    emitted = _assert_same_as_traced(_Tied(), images)
    assert [t.name for t in emitted.graph.initializer] == ["conv_a.weight"]
