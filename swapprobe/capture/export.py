"""torch.nn.Module → ONNX, with BatchNorm kept as a node (never folded into convolutions).

Search-space networks write their own graph (:mod:`swapprobe.capture.emit`); everything else
is traced.

Uses the TorchScript exporter (``dynamo=False``, set explicitly): it keeps parameter names
(``layer1.0.conv1.weight``), which the torch backend relies on to draw the same weights, keeps
BatchNormalization nodes with ``do_constant_folding=False``, and is about 15× faster than the
dynamo exporter for the small networks of search spaces (whose ONNX optimiser also folds BN).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import onnx

from swapprobe.capture import graph
from swapprobe.capture.emit import EmitError, can_emit, emit_module
from swapprobe.capture.feeds import module_keywords
from swapprobe.errors import ExportError

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "ExportMethod",
    "export_module",
    "inference_mode",
    "keep_duplicate_activations",
    "keep_equal_initializers",
    "quiet_export_log",
]

DEFAULT_OPSET = 17
INPUT_NAME = "input"


@contextlib.contextmanager
def keep_duplicate_activations() -> Iterator[None]:
    """Switch off TorchScript's common-subexpression pass during export, then restore it.

    CSE merges two ``ReLU(x)`` calls on the same tensor into one node. The score is the same
    (duplicate units give identical patterns), but V, the saturation bound and NWOT would
    not be: the reference counts each ReLU module, e.g. both DARTS preprocessing ReLUs on the
    raw image.
    """
    import torch

    original = torch._C._jit_pass_cse
    torch._C._jit_pass_cse = lambda graph: False
    try:
        yield
    finally:
        torch._C._jit_pass_cse = original


@contextlib.contextmanager
def keep_equal_initializers() -> Iterator[None]:
    """Merge initializers only when they share storage (tied weights), never by equal value.

    In eval mode the TorchScript exporter also merges parameters that merely hold equal values
    (the ones and zeros of every fresh BatchNorm, constant-initialised convolutions) into one
    initializer read through Identity nodes: Θ would count them once, and re-drawn weights would
    be tied where the reference draws each independently. Its training-mode rule compares
    storage only, which is what we want for every export.
    """
    import torch

    original = torch._C._jit_pass_onnx_deduplicate_initializers
    torch._C._jit_pass_onnx_deduplicate_initializers = lambda graph, params, _is_train: original(
        graph, params, True
    )
    try:
        yield
    finally:
        torch._C._jit_pass_onnx_deduplicate_initializers = original


@contextlib.contextmanager
def quiet_export_log() -> Iterator[None]:
    """Silence the TorchScript exporter's own log during export, then restore it.

    torch 2.13 switches that log on for every export (``setup_onnx_logging`` tests a function
    for truth) and a failing export writes the whole TorchScript graph to stdout; the failure
    reaches the user as one :class:`~swapprobe.errors.ExportError` line instead.
    """
    import torch

    original = torch._C._jit_onnx_log
    torch._C._jit_onnx_log = lambda *args: None
    try:
        yield
    finally:
        torch._C._jit_onnx_log = original


@contextlib.contextmanager
def inference_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for export and restore every submodule's flag afterwards."""
    flags = {name: sub.training for name, sub in module.named_modules()}
    module.eval()
    try:
        yield module
    finally:
        for name, sub in module.named_modules():
            sub.training = flags.get(name, sub.training)


@contextlib.contextmanager
def keywords_by_position(module: nn.Module, names: list[str]) -> Iterator[None]:
    """Let ``module`` take its keyword inputs ``names`` positionally after the data, then
    restore its own ``forward``.

    The exporter's other way, a trailing dict of keyword arguments, fills every parameter of
    the signature in order and collides with keyword-only ones (transformers' BertModel:
    "got multiple values for argument 'use_cache'"). An instance attribute, not a wrapper
    module, so parameter names (the weights' draws) stay as they are.
    """
    if not names:
        yield
        return
    own = module.__dict__.get("forward")
    original = module.forward

    def forward(data: object, *values: object) -> object:
        return original(data, **dict(zip(names, values, strict=True)))

    module.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own is None:
            del module.forward
        else:
            module.forward = own


ExportMethod = Literal["auto", "trace", "emit"]


def export_module(
    module: nn.Module,
    sample: np.ndarray,
    *,
    opset: int = DEFAULT_OPSET,
    method: ExportMethod = "auto",
    extra: Mapping[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """Export ``module`` for batches shaped like ``sample`` (first axis dynamic).

    ``method``: ``trace`` runs the TorchScript exporter on ``sample``; ``emit`` writes the
    graph from the modules (:mod:`swapprobe.capture.emit`, the search spaces' networks, 25–30×
    faster); ``auto`` emits when the module supports it and traces otherwise.

    ``sample`` keeps its dtype (int64 token ids give an int64 input); ``extra`` are further
    named inputs (e.g. ``attention_mask``): those ``forward`` takes by name become graph inputs
    of the same names, with a dynamic first axis too. The data input is named
    :data:`INPUT_NAME`.

    Raises:
        ExportError: when tracing or export fails (message names the torch error).
    """
    keywords = module_keywords(module, extra or {})
    # emitted graphs take one input: float images, or int64 token ids (a FlexiBERT network)
    if method == "emit" or (method == "auto" and not keywords and can_emit(module)):
        try:
            return emit_module(
                module,
                np.shape(sample)[1:],
                input_name=INPUT_NAME,
                opset=opset,
                elem_type=_elem_type(sample),
            )
        except EmitError as error:
            if method == "emit":
                raise ExportError(f"cannot emit {type(module).__name__}: {error}") from None
    return _trace(module, sample, keywords, opset=opset)


def _elem_type(sample: np.ndarray) -> int:
    """The ONNX type of the model's input: INT64 for integer samples (token ids), else FLOAT."""
    kind = np.asarray(sample).dtype.kind
    return onnx.TensorProto.INT64 if kind in "iu" else onnx.TensorProto.FLOAT


def _trace(
    module: nn.Module, sample: np.ndarray, keywords: Mapping[str, np.ndarray], *, opset: int
) -> onnx.ModelProto:
    with contextlib.ExitStack() as stack:
        # protobuf cannot hold 2 GiB in one message: a large module is exported into a folder
        # (its weights in external data files) and loaded back, weights and all
        target: io.BytesIO | str = io.BytesIO()
        if _weight_bytes(module) >= graph.INLINE_LIMIT:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="swapprobe-export-"))
            target = os.path.join(folder, "model.onnx")
        _export(module, sample, keywords, target, opset=opset)
        if isinstance(target, str):
            return onnx.load(target)
        return onnx.load_from_string(target.getvalue())


def _weight_bytes(module: nn.Module) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _holds_embedding(module: nn.Module) -> bool:
    import torch.nn as nn

    return any(isinstance(sub, nn.Embedding) for sub in module.modules())


def _export(
    module: nn.Module,
    sample: np.ndarray,
    keywords: Mapping[str, np.ndarray],
    target: io.BytesIO | str,
    *,
    opset: int,
) -> None:
    import torch

    from swapprobe.capture.torch_backend import plain_attention

    def example(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array[:2] if len(array) > 1 else array))

    args = (example(sample), *(example(array) for array in keywords.values()))
    names = [INPUT_NAME, *keywords]
    with (
        keywords_by_position(module, list(keywords)),
        inference_mode(module),
        plain_attention(),
        quiet_export_log(),
        keep_duplicate_activations(),
        keep_equal_initializers(),
        warnings.catch_warnings(),
        torch.no_grad(),
    ):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                args,
                target,
                dynamo=False,
                do_constant_folding=False,
                opset_version=opset,
                input_names=names,
                output_names=["output"],
                dynamic_axes={name: {0: "batch"} for name in names},
            )
        except Exception as error:
            if sample.dtype.kind == "f" and _holds_embedding(module):
                raise ExportError(
                    f"{type(module).__name__} holds an nn.Embedding, so it likely reads token "
                    f"ids, and the data are {sample.dtype} images, which do not fit it; give "
                    "token data (tokens:zipf is the offline default)"
                ) from None
            text = str(error).strip().splitlines()
            raise ExportError(
                f"cannot export {type(module).__name__} to ONNX: {text[0] if text else error!r}"
            ) from None
