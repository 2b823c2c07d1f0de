"""What a model is fed: the data input in the dtype it declares, further named inputs by name.

A token model takes int64 ids (and often an ``attention_mask`` and ``token_type_ids``), an image
model float32 pixels. Both backends feed the data the same way: an ONNX graph gets each array
in its input's declared dtype (within the same family: integers as integers, reals as reals;
ids are never silently turned into pixels or back), a torch module gets the data input
positionally and the further inputs its ``forward`` names as keyword arguments. Further inputs
a model does not take are not fed to it (a mask beside a model without one).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from swapprobe.errors import ShapeMismatchError

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = ["as_declared", "declared_dtype", "module_keywords", "takes_token_ids", "token_shape"]

#: the further inputs token batches bring (see :mod:`swapprobe.data.tokens`): never the ids
_FURTHER = ("attention_mask", "token_type_ids")


def declared_dtype(value: onnx.ValueInfoProto) -> np.dtype[Any]:
    """The numpy dtype of a graph input (float32 where the graph leaves it unset)."""
    elem = value.type.tensor_type.elem_type
    if elem == onnx.TensorProto.UNDEFINED:
        return np.dtype(np.float32)
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))


def _family(dtype: np.dtype[Any]) -> str:
    return "real" if dtype.kind in "fc" else "integer"


def as_declared(array: np.ndarray, dtype: np.dtype[Any], name: str) -> np.ndarray:
    """``array`` as a C-contiguous array of the input's dtype (the same object when it is one).

    Raises:
        ShapeMismatchError: integer data (token ids) for a real-valued input, or real data
            for an integer input: the data does not fit the model.
    """
    if _family(array.dtype) != _family(dtype):
        if _family(dtype) == "integer":
            raise ShapeMismatchError(
                f"model input {name!r} takes {dtype} values (token ids), the data are "
                f"{array.dtype}; use token data (tokens:zipf, tokens:english, tokens:FILE)"
            )
        raise ShapeMismatchError(
            f"model input {name!r} takes {dtype} values, the data are {array.dtype} token ids; "
            "use image or array data"
        )
    return np.ascontiguousarray(array, dtype=dtype)


def module_keywords(module: nn.Module, extra: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The further inputs ``module.forward`` takes by name, in the order of its signature (the
    order the TorchScript exporter gives the graph's inputs), then, when it takes
    ``**kwargs``, all the others in the batch's order."""
    if not extra:
        return {}
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):  # a forward without a signature: feed the data alone
        return {}
    named = [  # the first parameter takes the data input itself
        name
        for name, p in list(parameters.items())[1:]
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    found = {name: extra[name] for name in named if name in extra}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        found.update((name, array) for name, array in extra.items() if name not in found)
    return found


def token_shape(model: Any, input_name: str | None = None) -> tuple[int | None, int | None]:
    """(vocabulary size, sequence length) a token model states; None for what it does not.

    The one place both are read. ONNX (a path or proto): the data input (``input_name``, else
    the one input not named ``attention_mask``/``token_type_ids``) must be an integer tensor;
    V is the row count of the initializer a ``Gather`` reads with it as indices (directly or
    through Cast/Identity), T its second dim when fixed. torch: V is ``num_embeddings`` of the
    module's first ``nn.Embedding`` (BERT, ELECTRA, GPT-2 and FlexiBERT register the word
    embedding first); a module states no T. A model that takes real values states neither.
    """
    import torch.nn as nn

    if isinstance(model, nn.Module):
        for sub in model.modules():
            if isinstance(sub, nn.Embedding):
                return int(sub.num_embeddings), None
        return None, None
    from swapprobe.capture import graph

    loaded = graph.load_model(model)
    try:
        value = graph.model_input(loaded, input_name, others=_FURTHER)
    except ShapeMismatchError:
        return None, None
    if _family(declared_dtype(value)) != "integer":
        return None, None
    dims = graph.input_shape(value)
    length = dims[1] if len(dims) == 2 and isinstance(dims[1], int) and dims[1] > 0 else None
    return _embedding_rows(loaded.graph, value.name), length


def takes_token_ids(model: Any, input_name: str | None = None) -> bool:
    """Whether ``model`` reads token ids: a torch module whose first layer with parameters is
    an ``nn.Embedding`` (the ids' first consumer in BERT, GPT-2, FlexiBERT), an ONNX graph
    whose data input is an integer tensor. Undecidable models count as not."""
    import torch.nn as nn

    if isinstance(model, nn.Module):
        for sub in model.modules():
            if next(sub.parameters(recurse=False), None) is not None:
                return isinstance(sub, nn.Embedding)
        return False
    from swapprobe.capture import graph

    try:
        loaded = graph.load_model(model)
        value = graph.model_input(loaded, input_name, others=_FURTHER)
    except Exception:  # not a model this can read: the scoring says why
        return False
    return _family(declared_dtype(value)) == "integer"


def _embedding_rows(g: onnx.GraphProto, ids: str) -> int | None:
    """Rows of the table a Gather reads with ``ids`` (or a Cast/Identity of them)."""
    tables = {init.name: init for init in g.initializer}
    alias = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Identity" and n.input}
    names, frontier = {ids}, [ids]
    while frontier:
        current = frontier.pop()
        for node in g.node:
            if current not in node.input:
                continue
            if node.op_type in ("Cast", "Identity") and node.output[0] not in names:
                names.add(node.output[0])
                frontier.append(node.output[0])
            elif node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == current:
                table = node.input[0]
                for _ in range(64):
                    if table not in alias:
                        break
                    table = alias[table]
                if table in tables and tables[table].dims:
                    return int(tables[table].dims[0])
    return None
