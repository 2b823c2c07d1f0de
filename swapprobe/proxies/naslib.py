"""The cheap NASLib proxies from per-layer weights and gradients (numpy only).

Definitions as in NASLib's NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 Datasets
& Benchmarks; github.com/automl/NASLib, ``naslib/predictors/pruners/measures/``), which takes
them from Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021. The torch
side (:func:`swapprobe.capture.proxy_pass.naslib_pass`) runs the backward passes and hands over
one (weight, gradient) pair per conv/linear layer, or the input Jacobians. Bigger is better
for all four, as NASLib ranks them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["grad_norm", "jacob_cov", "snip", "synflow"]

#: NASLib's regulariser in jacob_cov's eigenvalue terms
JACOB_K = 1e-5


def grad_norm(grads: Sequence[np.ndarray]) -> float:
    """Σ over layers of ‖∂L/∂W‖₂ (cross-entropy loss); NASLib ``grad_norm``."""
    return float(sum(np.linalg.norm(np.ravel(g)) for g in grads))


def snip(weights: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> float:
    """Σ over layers and weights of |W ⊙ ∂L/∂W| (Lee et al., ICLR 2019); NASLib ``snip``."""
    return float(sum(np.abs(w * g).sum() for w, g in zip(weights, grads, strict=True)))


def synflow(weights: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> float:
    """Σ W ⊙ ∂R/∂W with W = |weights| and R = Σ f(1) of the linearised network (Tanaka et
    al., NeurIPS 2020); NASLib ``synflow``. Every term is ≥ 0 because W ≥ 0 and R is a
    positive-coefficient polynomial in W; the pass computes it in float64."""
    return float(sum((w * g).sum() for w, g in zip(weights, grads, strict=True)))


def jacob_cov(jacobians: np.ndarray) -> float:
    """−Σ_i [log(λ_i + k) + 1/(λ_i + k)] over the eigenvalues of the correlation matrix of the
    per-sample input Jacobians (Mellor et al., 2021 v1, "jacob_cov"); NASLib, k = 1e-5.

    ``jacobians``: (B, D), one flattened ∂(Σ outputs)/∂input per sample. The score is
    highest when the Jacobians of different samples are uncorrelated (λ all 1); −inf when a
    Jacobian is constant, so its correlations are undefined.
    """
    j = np.asarray(jacobians, dtype=np.float64).reshape(len(jacobians), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(j)
    if not np.all(np.isfinite(corr)):
        return float("-inf")  # a sample with a constant Jacobian (e.g. an all-zero network)
    eig = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(eig + JACOB_K) + 1.0 / (eig + JACOB_K)))
