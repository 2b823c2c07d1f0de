"""LIBRA: three complementary proxies for a benchmark, chosen from a table (numpy/scipy only).

L-SWAG paper (Casarin, Escalera, Lanz, CVPR 2025, arXiv 2505.07300), Algorithm 1, "Low
Information gain and Bias Re-Alignment" (SPEC "L-SWAG and LIBRA"), on a table of proxy values
and accuracies y:

1. z1 = the proxy with the highest Spearman ρ with y;
2. the band = the proxies with ρ_best − 0.1 < ρ ≤ ρ_best (z1 included);
3. z2 = the band's proxy (other than z1) with the *lowest* information gain
   IG(z) = H(y | z1) − H(y | z1, z);
4. z3 = the band's proxy (other than z1, z2) whose bias is closest to the accuracy's, where a
   quantity's bias is the Pearson correlation between the ranking it induces and the ranking
   by parameter count (Pearson on ranks, i.e. Spearman's ρ with the parameter count);
5. the three are combined into one ranking: **the sum of their ranks** (ascending, ties
   averaged; the paper combines rankings, and an unweighted sum of ranks is the plain reading
   of that; :func:`swapprobe.proxies.aggregate.aggregate`'s log-ranks would be AZ-NAS's).

A band with fewer than two or three members gives a selection with fewer proxies (z2 or z3
``None``), never one from outside the band.

**Entropies** (NAS-Bench-Suite-Zero's information-theoretic analysis discretises y and the
proxies; its code was not found in the stored copies of NASLib, so the binning is ours and
stated here): every variable is cut into ``bins`` equal-frequency bins of its ranks (bin =
⌊(rank − 1) · bins / N⌋, ranks 1..N with ties averaged, NaN ranked lowest), and H is the
plug-in entropy in bits of the bins' joint frequencies, H(y | A) = H(y, A) − H(A). Equal-
frequency bins make every marginal uniform, so IG compares dependence, not scale; the default
``bins = 4`` keeps the 4³ = 64 joint cells of H(y, z1, z) populated (about 8 rows a cell on a
500-row half), since plug-in entropies are biased low when cells are nearly empty.

:func:`libra_halves` chooses on one seeded half of the rows
(:func:`swapprobe.proxies.selection.split_halves`) and reports the combined ranking's ρ on the
other half, both ways, as the proxy study does for its own rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from swapprobe.errors import SettingsError
from swapprobe.proxies.aggregate import ascending_ranks
from swapprobe.proxies.selection import split_halves

__all__ = [
    "LIBRA_BAND",
    "LIBRA_BINS",
    "LibraChoice",
    "LibraFold",
    "conditional_entropy",
    "entropy",
    "information_gain",
    "libra_halves",
    "libra_score",
    "libra_select",
    "quantile_bins",
    "size_bias",
]

#: proxies within this much of the best ρ form LIBRA's band
LIBRA_BAND = 0.1
#: equal-frequency bins per variable in the entropies
LIBRA_BINS = 4


def quantile_bins(values: Sequence[float] | np.ndarray, bins: int = LIBRA_BINS) -> np.ndarray:
    """Equal-frequency bin codes 0..bins−1 of ``values``: ⌊(rank − 1) · bins / N⌋."""
    if bins < 1:
        raise SettingsError(f"bins must be at least 1, got {bins}")
    ranks = ascending_ranks(values)
    n = len(ranks)
    return np.minimum(np.floor((ranks - 1) * bins / n), bins - 1).astype(np.int64)


def entropy(*codes: np.ndarray) -> float:
    """Plug-in joint entropy, in bits, of one or more equally long integer code arrays."""
    if not codes:
        return 0.0
    joint = np.stack([np.asarray(c, dtype=np.int64) for c in codes], axis=1)
    _, counts = np.unique(joint, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log2(p)))


def conditional_entropy(y: np.ndarray, *given: np.ndarray) -> float:
    """H(y | given) = H(y, given) − H(given), in bits."""
    return entropy(y, *given) - entropy(*given)


def information_gain(y: np.ndarray, z1: np.ndarray, z: np.ndarray) -> float:
    """IG(z) = H(y | z1) − H(y | z1, z) on bin codes: what z tells about y beyond z1."""
    return conditional_entropy(y, z1) - conditional_entropy(y, z1, z)


def size_bias(
    values: Sequence[float] | np.ndarray, params: Sequence[float] | np.ndarray
) -> float:
    """Pearson correlation of the ranking ``values`` induces with the ranking by parameter
    count (ranks ascending, ties averaged, NaN lowest)."""
    return float(stats.pearsonr(ascending_ranks(values), ascending_ranks(params)).statistic)


def _spearman(values: np.ndarray, accuracy: np.ndarray) -> float:
    return float(stats.pearsonr(ascending_ranks(values), ascending_ranks(accuracy)).statistic)


@dataclass(frozen=True)
class LibraChoice:
    """What LIBRA chose on one table and why (every candidate's figures kept)."""

    z1: str
    z2: str | None
    z3: str | None
    #: proxies in the band, best ρ first
    band: tuple[str, ...]
    rho: Mapping[str, float]
    #: IG of each band member other than z1
    information_gain: Mapping[str, float]
    bias: Mapping[str, float]
    accuracy_bias: float

    @property
    def proxies(self) -> tuple[str, ...]:
        """z1, z2, z3, those that exist."""
        return tuple(name for name in (self.z1, self.z2, self.z3) if name is not None)


def libra_select(
    table: Mapping[str, Sequence[float] | np.ndarray],
    accuracy: Sequence[float] | np.ndarray,
    params: Sequence[float] | np.ndarray,
    *,
    band: float = LIBRA_BAND,
    bins: int = LIBRA_BINS,
) -> LibraChoice:
    """Steps 1-4 of the module docstring on all rows of ``table`` (name → values, bigger is
    better), ``accuracy`` and ``params`` (parameter counts), one value per row each."""
    acc = np.asarray(accuracy, dtype=np.float64)
    size = np.asarray(params, dtype=np.float64)
    columns = {name: np.asarray(v, dtype=np.float64) for name, v in table.items()}
    if not columns:
        raise SettingsError("LIBRA needs at least one proxy")
    for name, column in columns.items():
        if column.shape != acc.shape:
            raise SettingsError(f"proxy {name!r} has {column.shape} values, accuracy {acc.shape}")
    if size.shape != acc.shape:
        raise SettingsError(f"params {size.shape} do not match accuracy {acc.shape}")
    rho = {name: _spearman(column, acc) for name, column in columns.items()}
    order = sorted(columns, key=lambda name: -np.nan_to_num(rho[name], nan=-np.inf))
    z1 = order[0]
    best = rho[z1]
    members = tuple(name for name in order if best - band < rho[name] <= best)
    y_codes = quantile_bins(acc, bins)
    z1_codes = quantile_bins(columns[z1], bins)
    gains = {
        name: information_gain(y_codes, z1_codes, quantile_bins(columns[name], bins))
        for name in members
        if name != z1
    }
    z2 = min(gains, key=lambda name: (gains[name], members.index(name))) if gains else None
    bias = {name: size_bias(column, size) for name, column in columns.items()}
    accuracy_bias = size_bias(acc, size)
    rest = [name for name in members if name not in (z1, z2)]
    z3 = (
        min(rest, key=lambda name: (abs(bias[name] - accuracy_bias), members.index(name)))
        if rest
        else None
    )
    return LibraChoice(z1, z2, z3, members, rho, gains, bias, accuracy_bias)


def libra_score(
    table: Mapping[str, Sequence[float] | np.ndarray], proxies: Sequence[str]
) -> np.ndarray:
    """Step 5: the sum of the chosen proxies' ascending ranks (ties averaged), bigger better."""
    if not proxies:
        raise SettingsError("LIBRA's combination needs at least one proxy")
    return np.sum([ascending_ranks(table[name]) for name in proxies], axis=0)


@dataclass(frozen=True)
class LibraFold:
    """LIBRA chosen on one half and judged on the other."""

    choice: LibraChoice
    #: ρ of the combined ranking on the half it was chosen on
    rho_inside: float
    #: ρ of the same three proxies' combination on the other half (ranks within that half)
    rho_outside: float


def libra_halves(
    table: Mapping[str, Sequence[float] | np.ndarray],
    accuracy: Sequence[float] | np.ndarray,
    params: Sequence[float] | np.ndarray,
    *,
    seed: int,
    band: float = LIBRA_BAND,
    bins: int = LIBRA_BINS,
) -> tuple[LibraFold, LibraFold]:
    """Choose on each half of ``split_halves(N, seed)``, report on the other."""
    acc = np.asarray(accuracy, dtype=np.float64)
    size = np.asarray(params, dtype=np.float64)
    columns = {name: np.asarray(v, dtype=np.float64) for name, v in table.items()}
    halves = split_halves(len(acc), seed)
    folds = []
    for h in range(2):
        inside, outside = halves[h], halves[1 - h]
        choice = libra_select(
            {name: c[inside] for name, c in columns.items()},
            acc[inside],
            size[inside],
            band=band,
            bins=bins,
        )
        rho_in = _spearman(
            libra_score({n: c[inside] for n, c in columns.items()}, choice.proxies), acc[inside]
        )
        rho_out = _spearman(
            libra_score({n: c[outside] for n, c in columns.items()}, choice.proxies),
            acc[outside],
        )
        folds.append(LibraFold(choice, rho_in, rho_out))
    return folds[0], folds[1]
