"""The task loss of the gradient pass, for heads that are not plain classifiers.

ZiCo, L-SWAG's Λ and VKDNW read gradients of *a* task loss at initialisation. For a classifier
that is cross-entropy on the batch's labels (seeded random labels where the data has none).
TransNAS-Bench-101's dense-prediction and regression heads output images or vectors, and
cross-entropy on class labels is not defined for them, so the space names its head's kind
(:meth:`swapprobe.searchspaces.base.SearchSpace.task_loss`) and this module makes the targets
and the loss, following the losses NASLib trains those heads with
(``naslib/search_spaces/transbench101``), with targets that need no Taskonomy files:

- ``classification``: cross-entropy on labels (N,), the data's or seeded uniform ones;
- ``segmentation``: per-pixel cross-entropy on seeded uniform labels (N, H, W) over the
  output's channels (semantic segmentation);
- ``reconstruction``: L1 between the output and the input image itself (the autoencoder's
  target *is* its input, so nothing is invented);
- ``regression``: L1 for image-shaped outputs (surface normals), mean squared error for
  vectors (room layout), against seeded standard-normal targets of the output's shape.

The random targets are seeded per architecture like the labels, so a rerun gives the same
gradients. VKDNW's Fisher matrix is defined on a classifier's softmax and is refused for the
other kinds (:func:`check_fisher`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from swapprobe.errors import SettingsError

__all__ = ["TASK_KINDS", "check_fisher", "task_loss_fn", "task_targets"]

#: the head kinds a space may name
TASK_KINDS = ("classification", "segmentation", "reconstruction", "regression")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(kind: str) -> str:
    if kind not in TASK_KINDS:
        raise SettingsError(f"unknown task kind {kind!r}; kinds: {', '.join(TASK_KINDS)}")
    return kind


def task_targets(
    kind: str,
    inputs: torch.Tensor,
    output_shape: tuple[int, ...],
    generator: torch.Generator,
) -> torch.Tensor:
    """Targets for all N inputs of a head of ``kind`` whose output for N samples has
    ``output_shape`` (labels where the data has none; see the module docstring)."""
    count = len(inputs)
    if _check(kind) == "classification":
        return torch.randint(0, int(output_shape[-1]), (count,), generator=generator)
    if kind == "segmentation":
        if len(output_shape) != 4:
            raise SettingsError(f"a segmentation head outputs (N, C, H, W), got {output_shape}")
        _, classes, height, width = output_shape
        return torch.randint(0, classes, (count, height, width), generator=generator)
    if kind == "reconstruction":
        if tuple(inputs.shape) != tuple(output_shape):
            raise SettingsError(
                f"a reconstruction head outputs its input's shape {tuple(inputs.shape)}, "
                f"got {output_shape}"
            )
        return inputs.clone()
    return torch.randn((count, *output_shape[1:]), generator=generator)


def task_loss_fn(kind: str, output_ndim: int) -> LossFn:
    """The loss of a head of ``kind`` whose output has ``output_ndim`` dimensions."""
    if _check(kind) in ("classification", "segmentation"):
        return F.cross_entropy
    if kind == "reconstruction" or output_ndim > 2:
        return F.l1_loss
    return F.mse_loss


def check_fisher(kind: str) -> None:
    """VKDNW needs a classifier's logits: one line for any other head."""
    if _check(kind) != "classification":
        raise SettingsError(
            f"VKDNW's Fisher matrix is defined on a classifier's softmax; this network's head "
            f"is {kind}: leave vkdnw out of the proxies"
        )
