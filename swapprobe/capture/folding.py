"""Was BatchNorm folded into the convolutions at export? Say so, per model, when it can be told.

SWAP runs BN on the batch's statistics; a BN folded into a convolution is gone (re-drawn weights
replace the folded ones), so the score is not the paper's. torch 2.13's default exporter
(dynamo) folds every Conv→BN pair and drops the zero biases this leaves; the TorchScript
exporter folds them when constant folding is on in eval mode. What the graph tells:

* a torch module swapprobe exports itself: BN is kept, nothing to warn about; a module beside
  a graph exported elsewhere: its ``nn.BatchNorm*`` layers are the truth;
* dynamo's node metadata names the rewrite (``FuseBatchNormIntoConv``) and the module path of
  every node — folded BN is certain, and a graph with that metadata and no such rewrite never
  had a folded BN (no warning for a VGG);
* TorchScript's folded weights are new constants named ``onnx::Conv_N``, not module paths.

Without either trace, a plain conv net (an AlexNet, or bias-free convolutions without any norm)
cannot be told from a folded one: no warning there, rather than one that is often wrong.
"""

from __future__ import annotations

import warnings

import onnx

__all__ = [
    "EXPORT_HINT",
    "FoldedBatchNormWarning",
    "folded_batchnorm",
    "module_batchnorm_layers",
    "warn_if_folded",
]

#: an export that keeps BN as nodes (checked in tests/test_capture_gates.py with torch 2.13)
EXPORT_HINT = (
    "export with BN kept: torch.onnx.export(model, x, path, dynamo=False, "
    "do_constant_folding=False), or score the torch module itself"
)


class FoldedBatchNormWarning(UserWarning):
    """Issued when BatchNorm was (or very likely was) folded into convolutions at export."""


def folded_batchnorm(model: onnx.ModelProto, *, batchnorm_layers: int | None = None) -> str | None:
    """Why BN looks folded in ``model``, or None when nothing says so.

    ``batchnorm_layers``: how many BN layers the source module has, when it is known.
    """
    nodes = model.graph.node
    kept = sum(node.op_type == "BatchNormalization" for node in nodes)
    if batchnorm_layers is not None:
        if batchnorm_layers > kept:
            missing = batchnorm_layers - kept
            return (
                f"{missing} of its {batchnorm_layers} BatchNorm layers are not in the graph "
                "(folded at export, or never called)"
            )
        return None
    fused = sum(_fused_batchnorm(node) for node in nodes)
    if fused:
        return f"{fused} of {fused + kept} BatchNorm layers were folded into convolutions"
    if any(prop.key == "namespace" for node in nodes for prop in node.metadata_props):
        return None  # dynamo's metadata records every rewrite: none folded BN
    convs = [node for node in nodes if node.op_type == "Conv"]
    computed = sum(len(c.input) > 1 and c.input[1].startswith("onnx::Conv_") for c in convs)
    if computed:
        return f"{computed} convolutions have weights computed at export (BN folded into them)"
    return None


def _fused_batchnorm(node: onnx.NodeProto) -> bool:
    return any(
        prop.key == "pkg.onnxscript.rewriter.rule_name" and "FuseBatchNorm" in prop.value
        for prop in node.metadata_props
    )


def warn_if_folded(
    model: onnx.ModelProto, name: str, *, batchnorm_layers: int | None = None
) -> str | None:
    """Warn (:class:`FoldedBatchNormWarning`, naming the model) when BN looks folded."""
    reason = folded_batchnorm(model, batchnorm_layers=batchnorm_layers)
    if reason is None:
        return None
    message = (
        f"{name}: {reason}, so its score runs without BN on batch statistics and is not the "
        f"paper's SWAP; {EXPORT_HINT}"
    )
    warnings.warn(message, FoldedBatchNormWarning, stacklevel=3)
    return message


def module_batchnorm_layers(module: object) -> int:
    """How many ``nn.BatchNorm*`` layers a torch module has: the truth to check a graph
    exported from it elsewhere against (``batchnorm_layers``).

    Not needed for a module swapprobe exports itself (BN is always kept), and an overcount
    where a layer never runs in eval mode (GoogLeNet's auxiliary heads: 2 of its 59 BN layers
    are not in any eval-mode export), so only for modules whose every BN layer runs.
    """
    import torch.nn as nn

    assert isinstance(module, nn.Module)
    return sum(isinstance(sub, nn.modules.batchnorm._BatchNorm) for sub in module.modules())
