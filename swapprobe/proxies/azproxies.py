"""AZ-NAS's proxies from per-block statistics (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies
for Network Architecture Search", CVPR 2024; public code cvlab-yonsei/AZ-NAS,
``NB201/ZeroShotProxy/compute_az_nas_score.py``, read and re-derived here, not copied).

The pass (see :mod:`swapprobe.capture.proxy_pass`) hands over, per block l of the network:

- the channel covariance Σ_l (C×C) of the block's output F_l, rows = the B·H·W positions,
  centred per channel, divided by B·H·W;
- for blocks whose input is the previous block's output, the cross matrix
  M_l = G_inᵀ G_out / (B·H·W) of a random ±1 output cotangent G_out and the vector-Jacobian
  product G_in it pulls back to the block input (pixel-unshuffled to the output's size).

From those alone: expressivity E = Σ_l H_l, progressivity P = min_l (H_l − H_{l−1}),
trainability T = mean_l (−σ_l − 1/σ_l + 2) with σ_l the largest singular value of M_l.
Every function returns a value where **bigger is better**; a degenerate network (a block whose
output is constant, so its eigenvalue distribution is undefined) gets −inf, as AZ-NAS maps
NaN to −inf, so it ranks last.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "block_entropies",
    "conv_macs",
    "covariance_entropy",
    "expressivity",
    "largest_singular_value",
    "progressivity",
    "trainability",
    "trainability_term",
]

#: AZ-NAS's guard in 1/(σ + ε): a block that passes no gradient (σ = 0) scores about −10⁶
SIGMA_EPS = 1e-6


def covariance_entropy(covariance: np.ndarray) -> float:
    """H = −Σ p_i log p_i of p = eigenvalues / their sum (AZ-NAS expressivity of one block).

    Source: AZ-NAS (CVPR 2024), ``compute_az_nas_score.py`` (eigvalsh of the centred channel
    covariance). Bigger is better: features spread over more directions. Eigenvalues that
    round to below zero are clipped to 0 (a PSD matrix's true spectrum) and 0·log 0 = 0,
    where AZ-NAS adds 1e-8 inside the log; the two agree to ~1e-7 per eigenvalue. A
    covariance with zero (or non-finite) trace has no distribution: the entropy is NaN.
    """
    cov = np.asarray(covariance, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"a covariance must be square, got shape {cov.shape}")
    eig = np.clip(np.linalg.eigvalsh(cov), 0.0, None)
    total = float(eig.sum())
    if not np.isfinite(total) or total <= 0.0:
        return float("nan")
    p = eig[eig > 0] / total
    return float(-(p * np.log(p)).sum())


def block_entropies(covariances: Sequence[np.ndarray]) -> np.ndarray:
    """H_l for every block, in network order (the shared input of E and P)."""
    return np.array([covariance_entropy(c) for c in covariances], dtype=np.float64)


def _finite_or_neg_inf(value: float) -> float:
    return float(value) if np.isfinite(value) else float("-inf")


def expressivity(entropies: Sequence[float]) -> float:
    """E = Σ_l H_l over all blocks (AZ-NAS, CVPR 2024); bigger is better; −inf if any H_l is NaN."""
    h = np.asarray(entropies, dtype=np.float64)
    if h.size == 0:
        raise ValueError("expressivity needs at least one block")
    return _finite_or_neg_inf(float(h.sum()))


def progressivity(entropies: Sequence[float]) -> float:
    """P = min_l (H_l − H_{l−1}) over consecutive blocks (AZ-NAS, CVPR 2024); bigger is better.

    Rewards networks whose feature entropy grows block after block; −inf if any H_l is NaN.
    """
    h = np.asarray(entropies, dtype=np.float64)
    if h.size < 2:
        raise ValueError("progressivity needs at least two blocks")
    return _finite_or_neg_inf(float(np.min(np.diff(h))))


def largest_singular_value(cross: np.ndarray) -> float:
    """σ_l = the largest singular value of the block's VJP cross matrix M_l (AZ-NAS ``svdvals``)."""
    m = np.asarray(cross, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"a cross matrix must be a non-empty 2-D array, got shape {m.shape}")
    return float(np.linalg.svd(m, compute_uv=False)[0])


def trainability_term(sigma: float) -> float:
    """−σ − 1/(σ + ε) + 2: 0 at σ = 1 (gradients neither shrink nor grow), negative elsewhere."""
    return float(-sigma - 1.0 / (sigma + SIGMA_EPS) + 2.0)


def trainability(sigmas: Sequence[float | None]) -> float:
    """T = mean over blocks of −σ_l − 1/σ_l + 2 (AZ-NAS, CVPR 2024); bigger is better.

    ``None`` marks a block left out: one whose VJP returned its cotangent unchanged (an
    identity block; AZ-NAS scores it −inf, which sinks the whole network — SPEC.md leaves it
    out instead) or one that is not fed by the previous block. With no block left, NaN → −inf.
    """
    terms = [trainability_term(s) for s in sigmas if s is not None]
    if not terms:
        return float("-inf")
    return _finite_or_neg_inf(float(np.mean(terms)))


def conv_macs(
    out_channels: int,
    out_height: int,
    out_width: int,
    in_channels: int,
    kernel: tuple[int, int],
    groups: int = 1,
) -> int:
    """Multiply-accumulates of one convolution on one sample: H·W·C_out · (C_in/g)·k_h·k_w.

    The complexity proxy (AZ-NAS uses the network's FLOPs; bigger is better in its aggregate).
    A linear layer is the 1×1 case with H = W = 1. Summed over a network's conv and linear
    layers this is what FLOP counters such as ptflops/thop report as "MACs"/"FLOPs".
    """
    if in_channels % groups:
        raise ValueError(f"in_channels {in_channels} not divisible by groups {groups}")
    per_output = (in_channels // groups) * kernel[0] * kernel[1]
    return int(out_channels * out_height * out_width * per_output)
