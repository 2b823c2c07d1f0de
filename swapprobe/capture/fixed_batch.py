"""A batch baked into an exported graph, made symbolic so S samples can run.

torch's default (dynamo) exporter fixes the graph input to the example's batch (1) and, with
it, every shape it folds into a constant: a ``Flatten`` becomes ``Reshape(x, [1, 8])``. Fixing
the input to S samples then leaves that Reshape asking for 8 values of S × 8. :func:`free_batch`
makes the input's batch symbolic and rewrites each constant Reshape target whose first entry
is the old batch to -1 where shape inference proves the Reshape's data carries the batch on
axis 0 (and no other entry is -1), which is exactly the export a symbolic batch would have
given. Whatever else still fixes the batch (an Expand, a Slice end) surfaces in the forward
pass; :func:`fixed_batch_advice` then says why in one line and gives the export that works.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

__all__ = ["EXPORT_ADVICE", "declared_batch", "fixed_batch_advice", "free_batch"]

#: the torch export that keeps the batch symbolic and BatchNorm unfolded
EXPORT_ADVICE = (
    "torch.onnx.export(model, x, path, dynamo=False, do_constant_folding=False, "
    "input_names=['input'], dynamic_axes={'input': {0: 'batch'}})"
)

_SYMBOL = "swapprobe_free_batch"


def declared_batch(model: onnx.ModelProto, input_name: str) -> int | None:
    """The fixed batch the graph declares for ``input_name`` (None when symbolic or absent)."""
    for value in model.graph.input:
        if value.name == input_name:
            dims = value.type.tensor_type.shape.dim
            if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
                return int(dims[0].dim_value)
    return None


def free_batch(model: onnx.ModelProto, input_name: str) -> onnx.ModelProto:
    """``model`` with the batch of ``input_name`` symbolic and the constant Reshape targets
    that provably carry it rewritten to -1; the model itself when its batch is not fixed."""
    batch = declared_batch(model, input_name)
    if batch is None:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for value in out.graph.input:
        if value.name == input_name:
            first = value.type.tensor_type.shape.dim[0]
            first.Clear()
            first.dim_param = _SYMBOL
    _forget_shapes(out.graph)
    # Each pass rewrites the Reshapes proven so far; one after another frees the next.
    for _ in range(len(out.graph.node) + 1):
        if not _rewrite_proven(out, batch):
            break
    _forget_shapes(out.graph)
    return out


def fixed_batch_advice(batch: int, samples: int) -> str:
    """The one line for a graph whose batch of ``batch`` is still fixed inside it."""
    return (
        f"the graph fixes its batch to {batch} inside it (a shape baked in by the "
        f"export), so it cannot run S={samples} samples; export it with a symbolic batch: "
        f"{EXPORT_ADVICE}"
    )


def _forget_shapes(graph: onnx.GraphProto) -> None:
    """Intermediate and output shapes may carry the old batch: inference re-derives them."""
    del graph.value_info[:]
    for output in graph.output:
        if output.type.tensor_type.HasField("shape"):
            output.type.tensor_type.ClearField("shape")


def _rewrite_proven(model: onnx.ModelProto, batch: int) -> bool:
    """Rewrite every constant Reshape target proven to hold the batch; True if any was."""
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:  # inference that cannot run proves nothing
        return False
    leading = {
        value.name: value.type.tensor_type.shape.dim[0].dim_param
        for value in [*inferred.graph.input, *inferred.graph.value_info]
        if value.type.tensor_type.HasField("shape") and value.type.tensor_type.shape.dim
    }
    constants = _constants(model.graph)
    changed = False
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        target = constants[node.input[1]]
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        if (
            target.ndim != 1
            or target.size == 0
            or int(target[0]) != batch
            or -1 in target.tolist()
            or (allowzero and 0 in target.tolist())
            or leading.get(node.input[0]) != _SYMBOL
        ):
            continue
        freed = target.copy()
        freed[0] = -1
        name = f"{node.name or node.output[0]}_free_batch_shape"
        model.graph.initializer.append(numpy_helper.from_array(freed.astype(np.int64), name))
        node.input[1] = name
        changed = True
    return changed


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Integer shape tensors the graph holds as initializers or Constant nodes."""
    found = {
        init.name: numpy_helper.to_array(init)
        for init in graph.initializer
        if init.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
    }
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type in (
                    onnx.TensorProto.INT64,
                    onnx.TensorProto.INT32,
                ):
                    found[node.output[0]] = numpy_helper.to_array(attribute.t)
    return found
