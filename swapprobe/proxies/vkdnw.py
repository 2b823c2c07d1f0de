"""VKDNW: the entropy of the Fisher-information spectrum at initialisation (numpy only).

Týbl and Neumann, "Training-free Neural Architecture Search through Variance of Knowledge of
Deep Network Weights", CVPR 2025 (arXiv 2502.04975; repository ondratybl/VKDNW,
``NB201/ZeroShotProxy/compute_vkdnw_score.py``, read, not copied; equation numbers are not
cited because the paper's text was not reachable from here, the formulas are the code's).
The network's weights θ are seen as the parameters of the model
p_θ(c | x) = softmax(f_θ(x))_c; their Fisher information

    F(θ) = E_x [ J(x)ᵀ (diag(p) − p pᵀ) J(x) ]

with J(x) = ∂f_θ(x)/∂θ the Jacobian of the C logits (:func:`fisher_matrix`). Its eigenvalues
λ measure how well each weight direction can be estimated (Cramér-Rao); VKDNW is the entropy
of the spectrum's shape,

    VKDNW = − Σ_{k=1}^{9} λ̃_k log λ̃_k,   λ̃_k = q_k / Σ_j q_j,

q_k the k-th decile (10 %, …, 90 %) of the eigenvalues (:func:`vkdnw`). Bigger is better: a
flat spectrum, every direction about equally well determined.

Choices of the authors' code that this module keeps (the capture pass follows them):
the expectation is the mean over the B samples of one batch (the authors' loader batch, 64
images on NAS-Bench-201; a run's S images here: B(C − 1) ≥ P is required, the capture pass
refuses less, since a rank-capped estimate puts zeros into the lower deciles that are not
the network's); p is smoothed,
p̃ = (1 − α)·softmax + α / C with α = 0.05, so Σ = diag(p̃) − p̃p̃ᵀ is never singular (the code
builds a Cholesky factor of this Σ, the same matrix); θ is a subsample of the weights, one
entry (the first) of each of the first 128 parameter tensors in registration order, so F is
at most 128 × 128; deciles by linear interpolation (``torch.quantile``'s and numpy's default).
The nine deciles are the NB201 code's (``arange(0.1, 1., 0.1)``); the authors' MobileNetV2
code takes eleven quantiles, minimum and maximum included — a different score, not used here.

One choice of the capture pass differs from the authors' NB201 code: BN's running
statistics are estimated from the Fisher batch instead of left at their initial 0 and 1
(:mod:`swapprobe.capture.gradients` says why).

Zero eigenvalues that belong to the network are kept, as in the authors' code: a sampled
weight that cannot move the logits (NAS-Bench-201 builds every op of a cell, also one whose
input is an all-zero node or whose node reaches no later node; a conv behind ReLU(0)) has a
zero row in F. Entries λ̃_k = 0 add 0 (0 log 0 = 0, the limit). When every decile is 0 (at
least ~90 % of the sampled weights dead) λ̃ is 0/0 and the score is 0, as the authors' code
gives by its + 1e-10: the lowest score, that of a network whose logits ignore its input.
"""

from __future__ import annotations

import numpy as np

from swapprobe.errors import SettingsError

__all__ = ["VKDNW_ALPHA", "fisher_matrix", "smoothed_probabilities", "vkdnw"]

#: the label smoothing of the authors' code in Σ = diag(p̃) − p̃p̃ᵀ
VKDNW_ALPHA = 0.05


def smoothed_probabilities(logits: np.ndarray, alpha: float = VKDNW_ALPHA) -> np.ndarray:
    """p̃ = (1 − α)·softmax(logits) + α / C, row-wise; logits (N, C)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return (1.0 - alpha) * p + alpha / z.shape[1]


def fisher_matrix(
    jacobians: np.ndarray, logits: np.ndarray, alpha: float = VKDNW_ALPHA
) -> np.ndarray:
    """F = (1/N) Σ_n J_nᵀ (diag(p̃_n) − p̃_n p̃_nᵀ) J_n.

    Args:
        jacobians: (N, C, P), per sample the Jacobian of the C logits w.r.t. P weights.
        logits: (N, C), the logits of the same samples.
        alpha: the smoothing of p (module docstring).
    """
    j = np.asarray(jacobians, dtype=np.float64)
    if j.ndim != 3:
        raise SettingsError(f"jacobians must be (samples, classes, weights), got {j.shape}")
    p = smoothed_probabilities(logits, alpha)
    if p.shape != j.shape[:2]:
        raise SettingsError(f"logits {p.shape} do not match jacobians {j.shape[:2]}")
    # J_nᵀ diag(p) J_n − (J_nᵀ p)(J_nᵀ p)ᵀ, summed over n
    weighted = np.einsum("ncp,nc,ncq->pq", j, p, j)
    projected = np.einsum("ncp,nc->np", j, p)
    return (weighted - projected.T @ projected) / j.shape[0]


def vkdnw(eigenvalues: np.ndarray) -> float:
    """VKDNW = −Σ_k λ̃_k log λ̃_k over the normalised deciles λ̃ of the eigenvalues (0 log 0 = 0).

    ``eigenvalues`` of the Fisher matrix (any order; tiny negative rounding is clipped to 0).
    Nine zero deciles (≥ ~90 % of the spectrum zero: the sampled weights cannot move the
    logits) give 0, the authors' value (module docstring).
    """
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64).ravel(), 0.0, None)
    if lam.size == 0:
        raise SettingsError("VKDNW needs at least one Fisher eigenvalue")
    q = np.quantile(lam, np.arange(1, 10) / 10.0)
    total = q.sum()
    if total <= 0:
        return 0.0
    t = q[q > 0] / total
    return float(-np.sum(t * np.log(t)))
