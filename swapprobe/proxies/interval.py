"""L-SWAG's layer interval [l̂, L̂]: gradient σ against depth percentile, and where the spike is.

The L-SWAG paper (Casarin et al., CVPR 2025, Sec. 3 and Fig. 2b; SPEC "L-SWAG and LIBRA")
chooses, once per benchmark and before any accuracy is seen, the layers its Λ and Ψ use: it
plots a σ statistic of the gradients of random networks at initialisation against depth
percentile, ``perc = int(l / L · 100 // (100 / 10))`` (10 bins, so that networks of different
depth L average together), and takes the start and end of the spike. The paper draws the
interval by eye; the rule here is ours, written down before looking at any accuracy:

1. **Statistic.** Per network and weight layer l (0-based, L layers in forward order), σ_l =
   the layer's mean over its weights of sqrt(Var_i |∂L/∂w|), the quantity whose inverse Λ
   sums (:attr:`~swapprobe.proxies.gradients.LayerGradientStats.std_mean`).
2. **Every network weighs the same.** Each network's profile σ_0..σ_{L−1} is divided by its
   own mean over layers before averaging: the gradient scale differs by orders of magnitude
   between architectures (depth, skip connections), and unnormalised, a handful of networks
   would set the profile. The spike is a *shape* along depth, which the division keeps.
3. **Bins.** bin(l) = int(l / L · 100 // (100 / bins)), bins = 10; a bin's value m_b is the
   mean of the normalised σ over all networks' layers that fall in it.
4. **The spike** is the maximal run of consecutive bins around the highest bin whose values
   all exceed median(m) + k · MAD(m), MAD scaled by 1.4826 (the standard deviation of a normal
   sample), k = 2. Median and MAD rather than mean and standard deviation because the spike
   itself would inflate both; k = 2 rather than the usual outlier cut of 3 because with ten
   bins a spike two or three bins wide moves the median, and a cut at 3 would keep only its
   single highest bin. With MAD 0 (most bins equal) the cut is the median itself, so bins
   above the flat baseline form the spike. When no bin clears the cut (a flat profile), there
   is no spike and the interval is the whole depth, bins 0..bins−1.

A network with L layers then uses the layers whose bin lies in [first_bin, last_bin]
(:meth:`LayerInterval.layer_slice`); Ψ, which runs from the first layer to L̂, uses the
activation layers up to the last one in ``last_bin`` (:meth:`LayerInterval.psi_stop`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swapprobe.errors import SettingsError

__all__ = [
    "DEPTH_BINS",
    "SPIKE_K",
    "DepthProfile",
    "LayerInterval",
    "depth_bin",
    "depth_profile",
    "plot_depth_profile",
    "spike_interval",
]

#: the paper's number of depth-percentile bins
DEPTH_BINS = 10
#: the spike's cut: median + SPIKE_K · MAD (scaled) of the bin values
SPIKE_K = 2.0
_MAD_TO_STD = 1.4826


def depth_bin(layer: int, layers: int, bins: int = DEPTH_BINS) -> int:
    """The paper's percentile bin of 0-based layer ``layer`` of ``layers``:
    ``int(layer / layers · 100 // (100 / bins))``, in 0..bins−1."""
    if not 0 <= layer < layers:
        raise SettingsError(f"layer {layer} is outside 0..{layers - 1}")
    return int(layer / layers * 100 // (100 / bins))


@dataclass(frozen=True)
class DepthProfile:
    """The binned σ statistic of many networks: one mean per depth bin (NaN where empty)."""

    means: np.ndarray
    #: (network, layer) values that fell into each bin
    counts: np.ndarray
    #: networks averaged (those with a positive mean σ)
    networks: int


def depth_profile(
    profiles: Sequence[Sequence[float]], bins: int = DEPTH_BINS
) -> DepthProfile:
    """Average per-layer σ profiles (one sequence per network, forward order) by depth bin,
    each network divided by its own mean first (rule 2 of the module docstring)."""
    sums = np.zeros(bins)
    counts = np.zeros(bins, dtype=np.int64)
    used = 0
    for profile in profiles:
        sigma = np.asarray(profile, dtype=np.float64)
        scale = sigma.mean() if sigma.size else 0.0
        if not np.isfinite(scale) or scale <= 0:
            continue
        used += 1
        for layer, value in enumerate(sigma / scale):
            b = depth_bin(layer, len(sigma), bins)
            sums[b] += value
            counts[b] += 1
    with np.errstate(invalid="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return DepthProfile(means, counts, used)


@dataclass(frozen=True)
class LayerInterval:
    """A range of depth bins, inclusive at both ends, and its use on a network of L layers."""

    first_bin: int
    last_bin: int
    bins: int = DEPTH_BINS
    #: the cut the spike's bins exceeded (NaN when there was no spike)
    threshold: float = float("nan")

    def layer_slice(self, layers: int) -> tuple[int, int]:
        """``(start, stop)`` (slice rule) of the layers whose bin lies in the interval: Λ's
        [l̂, L̂]. Empty ``(k, k)`` when no layer falls in it (a network shallower than the
        bins)."""
        inside = [
            layer
            for layer in range(layers)
            if self.first_bin <= depth_bin(layer, layers, self.bins) <= self.last_bin
        ]
        if not inside:
            return 0, 0
        return inside[0], inside[-1] + 1

    def psi_stop(self, layers: int) -> int:
        """The ``stop`` of Ψ's layers 1..L̂: every layer whose bin is at most ``last_bin``."""
        return sum(
            1 for layer in range(layers) if depth_bin(layer, layers, self.bins) <= self.last_bin
        )


def spike_interval(profile: DepthProfile, k: float = SPIKE_K) -> LayerInterval:
    """The spike of a binned profile by rule 4 of the module docstring."""
    means = np.asarray(profile.means, dtype=np.float64)
    bins = len(means)
    filled = np.isfinite(means)
    if not filled.any():
        raise SettingsError("the depth profile has no values: no network had gradients")
    values = means[filled]
    median = float(np.median(values))
    mad = _MAD_TO_STD * float(np.median(np.abs(values - median)))
    threshold = median + k * mad
    peak = int(np.nanargmax(means))
    if not means[peak] > threshold:
        return LayerInterval(0, bins - 1, bins)
    above = filled & (np.nan_to_num(means, nan=-np.inf) > threshold)
    first = peak
    while first > 0 and above[first - 1]:
        first -= 1
    last = peak
    while last < bins - 1 and above[last + 1]:
        last += 1
    return LayerInterval(first, last, bins, threshold)


def plot_depth_profile(
    profile: DepthProfile, interval: LayerInterval, path: str | Path, *, title: str = ""
) -> Path:
    """The paper's Figure 2b: mean normalised σ per depth-percentile bin, the cut, and the
    chosen interval shaded; written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = len(profile.means)
    centres = (np.arange(bins) + 0.5) * (100 / bins)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(centres, profile.means, marker="o", color="C0", label="mean σ / network mean")
    if np.isfinite(interval.threshold):
        ax.axhline(interval.threshold, color="C3", ls="--", lw=1, label="median + k·MAD")
    lo = interval.first_bin * (100 / bins)
    hi = (interval.last_bin + 1) * (100 / bins)
    ax.axvspan(lo, hi, color="C1", alpha=0.2, label=f"interval: bins {interval.first_bin}-"
               f"{interval.last_bin}")
    ax.set_xlabel("depth percentile of the weight layer")
    ax.set_ylabel("σ of |gradient| (normalised)")
    ax.set_title(title or f"{profile.networks} random networks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
