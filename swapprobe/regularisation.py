"""``reg="auto"`` (``--reg auto``): choose μ and σ of regularised SWAP for a search space
without accuracies.

Regularised SWAP multiplies Ψ by f(Θ) = exp(−(Θ − μ)² / σ). How much regularisation helps
depends on how strongly SWAP already follows model size in the space, and that can be
measured on random architectures alone. On both ground-truth tables this project has, the
best hand-picked μ, σ made the regularised score's rank correlation with size, ρ(Ψ', Θ),
come out at 0.87–0.88 — whether plain SWAP started at 0.83 (DARTS, where regularisation
can only help a little) or at 0.69 (NAS-Bench-201, where it helps a lot). The rule:

1. score ``samples`` seeded random architectures of the space (plain SWAP, the run's own
   data and settings);
2. μ = the 99th percentile of their Θ (the factor then rises with size over the bulk of the
   space and peaks among its largest members);
3. σ, the widest that lifts ρ(Ψ·f(Θ), Θ) over the sample to ``TARGET_SIZE_RHO`` (a log grid
   from wide to narrow, then bisection); if plain SWAP already follows size that closely, σ
   is made so wide that f ≈ 1.

Measured (``swapprobe correlate ... --reg auto``): see the README.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swapprobe.errors import SettingsError

__all__ = [
    "TARGET_SIZE_RHO",
    "AutoRegularisation",
    "auto_regularisation",
    "calibrate",
    "check_reg",
]

#: rank correlation with size that the regularised score is tuned to on random architectures
TARGET_SIZE_RHO = 0.87
#: random architectures scored to calibrate
DEFAULT_SAMPLES = 100


def check_reg(reg: str | None, mu: float | None) -> None:
    """Refuse a regularisation mode other than ``"auto"``, and ``reg="auto"`` beside a given
    μ (it chooses μ and σ itself)."""
    if reg not in (None, "auto"):
        raise SettingsError(f"reg must be 'auto' or None, got {reg!r}")
    if reg == "auto" and mu is not None:
        raise SettingsError("{reg='auto'} chooses μ and σ itself; drop {mu}/{sigma}")


@dataclass(frozen=True)
class AutoRegularisation:
    """The chosen μ and σ, their unit, and the figures they were derived from."""

    mu: float
    sigma: float
    unit: str
    samples: int
    plain_size_rho: float
    target: float
    #: the calibration's (architecture, Result) pairs: a search starts from them
    scored: tuple[tuple[Any, Any], ...] = field(default=(), repr=False, compare=False)
    #: wall time of the calibration's scorings
    seconds: float = field(default=0.0, compare=False)

    def describe(self) -> str:
        return (
            f"μ={self.mu:.4g} σ={self.sigma:.4g} (Θ in {self.unit}), calibrated on {self.samples} "
            f"random architectures: ρ(SWAP, Θ) = {self.plain_size_rho:.3f} → "
            f"{self.target:.2f} after regularisation"
            + (f" ({self.seconds:.0f} s)" if self.seconds else "")
        )


def _size_rho(swap: np.ndarray, theta: np.ndarray, mu: float, sigma: float) -> float:
    from scipy import stats

    from swapprobe.metrics import regularisation_factor

    reg = swap * regularisation_factor(theta, mu, sigma)
    return float(stats.spearmanr(reg, theta).statistic)


def calibrate(
    swap: Sequence[float], theta: Sequence[float], *, target: float = TARGET_SIZE_RHO
) -> tuple[float, float, float]:
    """μ, σ (in Θ's unit) and plain ρ(SWAP, Θ) by the module's rule.

    Raises:
        SettingsError: fewer than 10 architectures, or all of one size.
    """
    from scipy import stats

    swap_arr = np.asarray(swap, dtype=float)
    theta_arr = np.asarray(theta, dtype=float)
    if len(theta_arr) < 10:
        raise SettingsError("{reg='auto'} needs at least 10 scored architectures to calibrate")
    spread = float(np.quantile(theta_arr, 0.9) - np.quantile(theta_arr, 0.1))
    if spread <= 0:
        raise SettingsError("{reg='auto'}: the sampled architectures all have the same size")
    mu = float(np.quantile(theta_arr, 0.99))
    plain = float(stats.spearmanr(swap_arr, theta_arr).statistic)
    wide = 1e4 * spread**2
    if plain >= target:  # already follows size: leave SWAP as good as unchanged
        return mu, wide, plain
    # ρ(Ψ', Θ) rises as σ narrows, until the factor is so peaked that the largest models are
    # penalised too: walk down a log grid to the first σ that reaches the target, then bisect.
    grid = wide * np.logspace(0, -10, 81)
    reached = [s for s in grid if _size_rho(swap_arr, theta_arr, mu, float(s)) >= target]
    if not reached:
        return mu, wide, plain
    narrow = float(reached[0])
    wide = float(grid[list(grid).index(reached[0]) - 1])
    for _ in range(40):
        middle = float(np.sqrt(wide * narrow))
        if _size_rho(swap_arr, theta_arr, mu, middle) >= target:
            narrow = middle
        else:
            wide = middle
    return mu, narrow, plain


def auto_regularisation(
    space: Any,
    score: Callable[[list[Any]], list[Any]],
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    unit: str | None = None,
    target: float = TARGET_SIZE_RHO,
    sample: Callable[[np.random.Generator], Any] | None = None,
) -> AutoRegularisation:
    """Calibrate μ, σ for ``space``; ``score`` maps architectures to Results (plain SWAP).

    ``sample`` draws one random architecture (default: ``space.sample``); a search under a
    size budget passes one that draws only architectures it may score.
    """
    from swapprobe.metrics import parameters_in_unit

    unit = unit or space.size_unit
    rng = np.random.default_rng([seed, 0x5EED])
    draw = space.sample if sample is None else sample
    archs = [draw(rng) for _ in range(samples)]
    results = score(archs)
    swap = [result.swap for result in results]
    theta = [parameters_in_unit(result.param_count, unit) for result in results]  # type: ignore[arg-type]
    mu, sigma, plain = calibrate(swap, theta, target=target)
    scored = tuple(zip(archs, results, strict=True))
    return AutoRegularisation(mu, sigma, unit, samples, plain, target, scored)
