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
- **VKDNW**: eval mode, as the authors' ``get_fisher``, with BN's running statistics first
  estimated from the Fisher batch (one forward with BN in train mode, cumulative average: the
  batch's mean and unbiased variance), then the Jacobian of the logits of each sample with
  respect to one entry (the first) of each of the first ``max_tensors`` = 128 parameter
  tensors in registration order (``torch.func``:
  ``vmap`` over samples of ``jacrev``), then F and its eigenvalues
  (:func:`swapprobe.proxies.vkdnw.fisher_matrix`). F is a mean over the samples of one batch
  (the authors' whole loader batch, 64 images on NAS-Bench-201; the Evaluator passes the run's
  S images): each sample adds at most C − 1 to its rank, so N samples give at most N(C − 1)
  non-zero eigenvalues out of P. Fewer samples than P/(C − 1) would put zeros into the
  spectrum that belong to the estimate, not to the network, and VKDNW reads the spectrum's
  lower deciles: such a batch is refused. Zeros that belong to the network stay: a sampled
  weight that cannot move the logits (an op whose input is identically zero, or whose output
  reaches no later node) has a zero row in F, as in the authors' code, which samples every
  parameter tensor of the module as built.

  Where this differs from the authors' NAS-Bench-201 code, and why: their ``get_fisher`` runs
  eval mode on BN's *initial* running statistics (mean 0, variance 1), so BN normalises nothing;
  through NB201's 17 blocks and their sums the logits of a Kaiming-initialised network reach up
  to 10⁷, median 10⁴ (measured on 40 dev architectures), the smoothed softmax sits at its floor
  α/C for every class but one, and the spectrum describes that saturation more than the network.
  The Fisher information of p_θ(c | x) needs a per-sample model, hence fixed statistics;
  estimating them from the batch makes it the network the SWAP capture and ZiCo see (BN on this
  batch's statistics) up to the unbiased variance, with logits of order 1-10. Their ImageNet
  (MobileNetV2) code also moves the statistics toward the batch before the Fisher pass (its
  AZ-NAS forward in train mode, momentum 0.1). On 40 NB201 dev rows this takes VKDNW's Spearman ρ
  from 0.38 to 0.75 (``docs/lswag.md``).

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
def _batch_statistics(module: nn.Module, inputs: torch.Tensor) -> Iterator[None]:
    """Estimate every BN layer's running statistics from ``inputs`` (reset, one forward with
    only the BN layers in train mode and ``momentum=None``: a cumulative average over one
    batch, i.e. its mean and unbiased variance; dropout stays off), then eval mode. Momenta
    are given back on exit; the statistics themselves are the caller's to restore
    (:func:`_preserved`)."""
    norms = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    momenta = [m.momentum for m in norms]
    try:
        module.eval()
        for m in norms:
            m.momentum = None
            m.reset_running_stats()
            m.train()
        with torch.no_grad():
            module(inputs)
        module.eval()
        yield
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum


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
    # one sample at a time: the memory of one backward per logit, not of S·C at once (an NB101
    # network took 8 GB batched); the same per-sample computation, so the same values
    jac = vmap(jacrev(logits_of), in_dims=(None, 0), chunk_size=1)(entries, inputs)
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
    """Eigenvalues (ascending) of VKDNW's Fisher matrix on one batch of ``inputs``, BN on
    running statistics estimated from that batch (module docstring).

    Refused when the batch is too small for the matrix: N samples of C logits give F a rank of
    at most N(C − 1), and P sampled weights need N(C − 1) ≥ P for every zero eigenvalue to be
    the network's (module docstring)."""
    with _preserved(module), _batch_statistics(module, inputs):
        jacobians, logits = _logit_jacobians(module, inputs, max_tensors)
    samples, classes, weights = jacobians.shape
    if samples * (classes - 1) < weights:
        need = -(-weights // max(classes - 1, 1))
        raise SettingsError(
            f"VKDNW's Fisher matrix over {weights} weights needs at least {need} images of "
            f"{classes} classes (each adds at most {classes - 1} to its rank), got {samples}: "
            "raise the batch size"
        )
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
    fisher_inputs: torch.Tensor | None = None,
    max_tensors: int = VKDNW_TENSORS,
) -> GradientPass:
    """:func:`gradient_statistics` on ``batches`` and, with ``fisher``,
    :func:`fisher_eigenvalues` on ``fisher_inputs`` (default: every mini-batch's inputs
    together; one mini-batch alone would cap the Fisher matrix's rank, module docstring)."""
    stats = gradient_statistics(module, batches, loss_fn=loss_fn, layers=layers, seed=seed)
    eig = None
    if fisher:
        images = torch.cat([x for x, _ in batches]) if fisher_inputs is None else fisher_inputs
        eig = fisher_eigenvalues(module, images, max_tensors=max_tensors)
    return GradientPass(tuple(stats), eig)
