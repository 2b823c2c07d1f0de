"""The labelled backward pass behind ZiCo, L-SWAG's Λ and VKDNW: per-layer gradient moments
across mini-batches, and a small Fisher matrix's eigenvalues.

The pure formulas live in :mod:`swapprobe.proxies.gradients` (ZiCo, Λ) and
:mod:`swapprobe.proxies.vkdnw`; this module only runs the network and reduces what it sees to
a few floats per layer, so a store can keep them and every score can be recomputed.

- **Layers**: the weights of every ``nn.Conv2d``, ``nn.Conv1d`` and ``nn.Linear`` in
  ``module.modules()`` order (registration order, which is forward order for the built-in
  spaces), biases, norm parameters and embeddings excluded: ZiCo's choice (SLDGroup/ZiCo
  ``getgrad`` takes conv and linear weights; its image networks have no 1-D convolutions, a
  token model's are its convolutions), kept for Λ, which the L-SWAG paper derives from ZiCo.
  A caller may pass its own list.
- **Loss**: the task loss at initialisation; cross-entropy on the given labels unless the
  caller passes another ``loss_fn(output, target) -> scalar``: token models get the
  masked-token loss of :mod:`.masked_tokens`.
- **Mode**: train mode (BN normalises with each batch's statistics), as ZiCo's ``getzico``;
  one backward pass per mini-batch, gradients of the mean loss over the batch.
- **VKDNW**: eval mode, as the authors' ``get_fisher`` (BN on its running statistics), the
  Jacobian of the logits of each sample with respect to one entry (the first) of each of the
  first ``max_tensors`` = 128 parameter tensors in registration order (``torch.func``:
  ``vmap`` over samples of ``jacrev``), then F and its eigenvalues
  (:func:`swapprobe.proxies.vkdnw.fisher_matrix`).

Every pass leaves the module as it found it: parameters and buffers (BN running statistics,
which a train-mode forward moves), each submodule's train/eval flag and every parameter's
``.grad`` are restored. The passes are deterministic for a given module and batches; a seed
fixes anything random inside the forward (dropout) without touching torch's global generator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from swapprobe.errors import SettingsError
from swapprobe.proxies.gradients import LayerGradientStats, layer_gradient_stats
from swapprobe.proxies.vkdnw import fisher_matrix

__all__ = [
    "VKDNW_TENSORS",
    "GradientPass",
    "fisher_eigenvalues",
    "gradient_pass",
    "gradient_statistics",
    "weight_layers",
]

#: parameter tensors whose first entry enters VKDNW's Fisher matrix (the authors' 128)
VKDNW_TENSORS = 128

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


def weight_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(path, layer)`` of every ``nn.Conv2d``, ``nn.Conv1d`` and ``nn.Linear``, in
    ``named_modules`` order."""
    return [
        (name, m)
        for name, m in module.named_modules()
        if isinstance(m, nn.Conv2d | nn.Conv1d | nn.Linear)
    ]


@contextmanager
def _preserved(module: nn.Module) -> Iterator[None]:
    """Restore parameters, buffers, train/eval flags and ``.grad`` of ``module`` on exit."""
    state = copy.deepcopy(module.state_dict())
    modes = [(m, m.training) for m in module.modules()]
    grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in module.parameters()]
    try:
        yield
    finally:
        module.load_state_dict(state)
        for m, training in modes:
            m.training = training
        for p, g in grads:
            p.grad = g


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's generator inside the block and give its previous state back after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def gradient_statistics(
    module: nn.Module,
    batches: Batches,
    *,
    loss_fn: LossFn = F.cross_entropy,
    layers: Sequence[tuple[str, nn.Module]] | None = None,
    seed: int = 0,
) -> list[LayerGradientStats]:
    """Per-layer gradient moments over ≥ 2 labelled mini-batches (module docstring).

    Args:
        module: the network, its weights as drawn by the caller (nothing is re-initialised).
        batches: ``(inputs, targets)`` pairs, at least two.
        loss_fn: the task loss of ``(module(inputs), targets)``; cross-entropy by default.
        layers: ``(name, layer)`` pairs whose ``.weight`` gradients count; default
            :func:`weight_layers`.
        seed: seeds anything random in the forward (dropout), for the pass only.
    """
    if len(batches) < 2:
        raise SettingsError(
            f"gradient statistics need at least 2 labelled mini-batches, got {len(batches)}"
        )
    chosen = list(weight_layers(module) if layers is None else layers)
    if not chosen:
        raise SettingsError("the module has no Conv2d, Conv1d or Linear layer to take gradients of")
    per_layer: list[list[np.ndarray]] = [[] for _ in chosen]
    with _preserved(module), _seeded(seed), torch.enable_grad():
        module.train()
        for inputs, targets in batches:
            module.zero_grad(set_to_none=True)
            loss = loss_fn(module(inputs), targets)
            loss.backward()
            for store, (_, layer) in zip(per_layer, chosen, strict=True):
                weight = layer.weight  # type: ignore[union-attr]
                grad = weight.grad if weight.grad is not None else torch.zeros_like(weight)
                store.append(grad.detach().to(torch.float64).cpu().numpy().ravel().copy())
    return [
        layer_gradient_stats(name, np.stack(store))
        for store, (name, _) in zip(per_layer, chosen, strict=True)
    ]


def _logit_jacobians(
    module: nn.Module, inputs: torch.Tensor, max_tensors: int
) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, P) Jacobians of each sample's logits w.r.t. the first entry of each of the first
    ``max_tensors`` parameter tensors, and the (N, C) logits; module in eval mode."""
    from torch.func import functional_call, jacrev, vmap

    base = {name: p.detach() for name, p in module.named_parameters()}
    buffers = {name: b.detach() for name, b in module.named_buffers()}
    names = [name for name, p in base.items() if p.numel() > 0][:max_tensors]
    if not names:
        raise SettingsError("the module has no parameters for VKDNW's Fisher matrix")

    def logits_of(entries: dict[str, torch.Tensor], sample: torch.Tensor) -> torch.Tensor:
        params = dict(base)
        for name, entry in entries.items():
            flat = base[name].reshape(-1)
            params[name] = torch.cat([entry.reshape(1), flat[1:]]).reshape(base[name].shape)
        return functional_call(module, (params, buffers), (sample.unsqueeze(0),)).squeeze(0)

    entries = {name: base[name].reshape(-1)[0] for name in names}
    jac = vmap(jacrev(logits_of), in_dims=(None, 0))(entries, inputs)
    stacked = torch.stack([jac[name] for name in names], dim=-1)  # (N, C, P)
    with torch.no_grad():
        logits = module(inputs)
    return (
        stacked.detach().to(torch.float64).cpu().numpy(),
        logits.detach().to(torch.float64).cpu().numpy(),
    )


def fisher_eigenvalues(
    module: nn.Module, inputs: torch.Tensor, *, max_tensors: int = VKDNW_TENSORS
) -> np.ndarray:
    """Eigenvalues (ascending) of VKDNW's Fisher matrix on one batch of ``inputs``."""
    with _preserved(module):
        module.eval()
        jacobians, logits = _logit_jacobians(module, inputs, max_tensors)
    return np.linalg.eigvalsh(fisher_matrix(jacobians, logits))


@dataclass(frozen=True)
class GradientPass:
    """What one gradient pass hands to the pure proxies and to a store (all small)."""

    layers: tuple[LayerGradientStats, ...]
    #: VKDNW's Fisher eigenvalues (at most 128), None when not asked for
    fisher_eigenvalues: np.ndarray | None


def gradient_pass(
    module: nn.Module,
    batches: Batches,
    *,
    loss_fn: LossFn = F.cross_entropy,
    layers: Sequence[tuple[str, nn.Module]] | None = None,
    seed: int = 0,
    fisher: bool = True,
    max_tensors: int = VKDNW_TENSORS,
) -> GradientPass:
    """:func:`gradient_statistics` on ``batches`` and, with ``fisher``,
    :func:`fisher_eigenvalues` on the first batch's inputs."""
    stats = gradient_statistics(module, batches, loss_fn=loss_fn, layers=layers, seed=seed)
    eig = fisher_eigenvalues(module, batches[0][0], max_tensors=max_tensors) if fisher else None
    return GradientPass(tuple(stats), eig)
