"""``--reg auto``: choose μ and σ of regularised SWAP from a search space's size distribution.

Regularised SWAP multiplies Ψ by f(Θ) = exp(−(Θ − μ)² / σ). The best μ, σ differ by space
and unit, and users rarely have accuracies to tune them on; but every space can sample
architectures and count their parameters for free. The rule, calibrated on the two
ground-truth tables this project has (DARTS: the authors' 1000 architectures; NAS-Bench-201:
1000 development architectures) and stated in the unit of the space:

    μ = Q(MU_QUANTILE) of Θ over random architectures of the space,
    σ = SIGMA_SCALE · (Q(0.9) − Q(0.1))²

so the peak sits among the large models (SWAP rewards size less than accuracy does at the
top end) and the width scales with the squared spread of sizes, which makes the rule
independent of the unit Θ is counted in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from swapprobe.metrics import parameters_in_unit

__all__ = ["MU_QUANTILE", "SIGMA_SCALE", "AutoRegularisation", "auto_regularisation"]

#: quantile of the random-architecture size distribution where the factor peaks
MU_QUANTILE = 0.9
#: σ as a multiple of the squared 10–90 % size spread
SIGMA_SCALE = 4.0


@dataclass(frozen=True)
class AutoRegularisation:
    """The chosen μ and σ, the unit they are in, and what they were derived from."""

    mu: float
    sigma: float
    unit: str
    samples: int
    quantiles: dict[str, float]

    def describe(self) -> str:
        return (
            f"μ={self.mu:.4g} σ={self.sigma:.4g} (Θ in {self.unit}; from {self.samples} random "
            f"architectures: μ = Q{MU_QUANTILE:.0%} of Θ, σ = {SIGMA_SCALE:g}·(Q90 − Q10)²)"
        )


def auto_regularisation(
    space: Any, *, samples: int = 2000, seed: int = 0, unit: str | None = None
) -> AutoRegularisation:
    """μ and σ for ``space`` by the module's rule, from ``samples`` seeded random architectures."""
    unit = unit or space.size_unit
    rng = np.random.default_rng(seed)
    theta = np.array(
        [
            parameters_in_unit(space.scoring_param_count(space.sample(rng)), unit)
            for _ in range(samples)
        ]  # type: ignore[arg-type]
    )
    q10, q50, q90 = np.quantile(theta, [0.1, 0.5, 0.9])
    mu = float(np.quantile(theta, MU_QUANTILE))
    sigma = float(SIGMA_SCALE * (q90 - q10) ** 2)
    return AutoRegularisation(
        mu=mu,
        sigma=sigma,
        unit=unit,
        samples=samples,
        quantiles={"q10": float(q10), "q50": float(q50), "q90": float(q90)},
    )
