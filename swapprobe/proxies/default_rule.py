"""The rule that chooses a space's default proxy set, weighing the top of the ranking.

Stated 2026-12-07 (issues 24 and 25), *before* any of the figures it was applied to were
looked at; :mod:`swapprobe.proxies.selection` holds the first rule (ρ alone, one target),
which chose NAS-Bench-201's set in December and is kept as it was measured.

Why a second rule: a search keeps only the top of a ranking, and Spearman's ρ weighs a swap
among the worst architectures as much as one among the best; and the suite's tables have
several targets per space (NB201's three datasets, TransNAS-Bench-101's seven tasks,
AutoFormer's five accuracies), and a space ships one default.

THE RULE

1. **Criterion.** For a ranking s and accuracies a on a set of rows,
   J = ½ (ρ + τ_w): Spearman's ρ plus the weighted Kendall τ of Vigna (WWW 2015) as
   ``scipy.stats.weightedtau(s, a)`` computes it (hyperbolic weights 1/(r + 1) on the ranks,
   the top of each of the two orders weighing most, the two averaged). τ_w is unit-free, so
   a task measured in SSIM, in a loss, or in percent counts alike, which nDCG's exponential
   gain in the accuracy does not. Rows whose accuracy is missing (NaN: a subnet not trained
   on that target) are left out of that target.
2. **Candidates.** SWAP together with every subset of the views scored on the table among
   :data:`RULE_VIEWS` (AZ-NAS's expressivity, progressivity, trainability and FLOPs; NWOT;
   ZiCo, L-SWAG and VKDNW from the gradient pass) — SWAP alone included. Each set's ranking
   is the AZ-NAS aggregate Σ log(rank/N) (:func:`swapprobe.proxies.aggregate.aggregate`),
   ranks taken among the rows judged.
3. **Halves.** The table's rows are split in two by
   :func:`swapprobe.proxies.selection.split_halves` with :data:`SPLIT_SEED`. A set's figure on
   a half is the mean of J over the table's targets on that half.
4. **Default.** The set with the highest mean of the two halves' figures; among the sets
   within :data:`PARSIMONY` of it, the one with the fewest proxies (then the higher mean).
5. **Honest estimate.** Each half also chooses alone (its best set) and that choice's figure
   on the *other* half is reported: what choosing on a table of this size is worth on rows it
   did not see.

Reported beside, not candidates: each proxy alone, and LIBRA's three
(:mod:`swapprobe.proxies.libra`), which combine by a plain sum of ranks and may leave SWAP
out. The aggregate of the product always contains SWAP, the paper's metric; a selection
without it that beats the rule's default on both held-out halves is a finding to report, not
a default to ship silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from swapprobe.errors import SettingsError
from swapprobe.proxies.aggregate import aggregate, ascending_ranks
from swapprobe.proxies.selection import split_halves

__all__ = [
    "PARSIMONY",
    "RULE_VIEWS",
    "SPLIT_SEED",
    "RuleChoice",
    "RuleFigures",
    "choose_default",
    "top_weighted",
]

#: the seed of the two halves (the proxy study's, so NB201's halves are the same rows)
SPLIT_SEED = 20261202
#: sets whose mean criterion is within this much of the best count as tied
PARSIMONY = 0.002
#: the views the rule may add to SWAP, where the table's results carry them
RULE_VIEWS = (
    "expressivity",
    "progressivity",
    "trainability",
    "flops",
    "nwot",
    "zico",
    "lswag",
    "vkdnw",
)
#: fewest rows of a target on one half for its figure to count
MIN_ROWS = 4


def top_weighted(
    score: Sequence[float] | np.ndarray, accuracy: Sequence[float] | np.ndarray
) -> float:
    """J = ½ (Spearman ρ + weighted Kendall τ) of ``score`` against ``accuracy`` (rule, 1)."""
    s = np.asarray(score, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    keep = np.isfinite(a)
    s, a = ascending_ranks(s[keep]), a[keep]
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(s) == 0:
        return float("nan")
    rho = float(stats.spearmanr(s, a).statistic)
    tau = float(stats.weightedtau(s, a).statistic)
    return 0.5 * (rho + tau)


@dataclass(frozen=True)
class RuleFigures:
    """One candidate set: its criterion per half (mean over targets) and per target."""

    proxies: tuple[str, ...]
    halves: tuple[float, float]
    #: target → (J on half A, J on half B)
    per_target: Mapping[str, tuple[float, float]]

    @property
    def mean(self) -> float:
        return float(np.mean(self.halves))


@dataclass(frozen=True)
class RuleChoice:
    """Every set's figures, each half's own choice with its held-out figure, the default."""

    sets: tuple[RuleFigures, ...]
    #: per half h: (set chosen on h, its figure on h, its figure on the other half)
    folds: tuple[tuple[tuple[str, ...], float, float], ...]
    chosen: tuple[str, ...]
    #: each candidate proxy alone (SWAP included): name → (J on A, J on B)
    alone: Mapping[str, tuple[float, float]]

    def figures(self, proxies: Sequence[str]) -> RuleFigures:
        key = tuple(proxies)
        for item in self.sets:
            if item.proxies == key:
                return item
        raise KeyError(key)

    def ranked(self) -> list[RuleFigures]:
        """Every set, best mean first."""
        return sorted(self.sets, key=lambda s: -np.nan_to_num(s.mean, nan=-np.inf))


def choose_default(
    table: Mapping[str, Sequence[float] | np.ndarray],
    targets: Mapping[str, Sequence[float] | np.ndarray],
    *,
    base: str = "swap",
    seed: int = SPLIT_SEED,
    parsimony: float = PARSIMONY,
) -> RuleChoice:
    """Apply the module's rule.

    Args:
        table: proxy name → one value per row, bigger is better (NaN ranks last); ``base``
            and any of :data:`RULE_VIEWS` are used, other columns are ignored.
        targets: target name → accuracy per row (NaN: not measured for that row).
        base: the proxy every candidate contains.
        seed: seeds the halves.
        parsimony: the tie margin of step 4.
    """
    columns = {name: np.asarray(v, dtype=np.float64) for name, v in table.items()}
    accs = {name: np.asarray(v, dtype=np.float64) for name, v in targets.items()}
    if base not in columns:
        raise SettingsError(f"the rule needs {base!r} among the scored values")
    if not accs:
        raise SettingsError("the rule needs at least one target")
    n = len(columns[base])
    for name, values in (*columns.items(), *accs.items()):
        if values.shape != (n,):
            raise SettingsError(f"{name!r} has {values.shape} values, {base!r} has {n}")
    views = [name for name in RULE_VIEWS if name in columns and np.isfinite(columns[name]).any()]
    halves = split_halves(n, seed)
    # per (target, half): the rows judged, the accuracy there, each proxy's log-ranks there
    cells = []
    for target, acc in accs.items():
        for h, rows in enumerate(halves):
            judged = rows[np.isfinite(acc[rows])]
            if len(judged) < MIN_ROWS:
                continue
            # each proxy's own aggregate term, summed per set below (one ranking per cell)
            logs = {name: aggregate({name: columns[name][judged]}) for name in (base, *views)}
            cells.append((target, h, acc[judged], logs))
    if not cells:
        raise SettingsError(f"no target has {MIN_ROWS} measured rows on both halves")

    def figures(proxies: tuple[str, ...]) -> RuleFigures:
        per: dict[str, list[float]] = {t: [np.nan, np.nan] for t in accs}
        for target, h, acc, logs in cells:
            per[target][h] = top_weighted(sum(logs[p] for p in proxies), acc)
        halves_j = tuple(
            float(np.nanmean([per[t][h] for t in accs])) for h in range(2)
        )
        return RuleFigures(proxies, halves_j, {t: (v[0], v[1]) for t, v in per.items()})

    sets = tuple(
        figures((base, *subset))
        for size in range(len(views) + 1)
        for subset in combinations(views, size)
    )
    folds = []
    for h in range(2):
        best = max(sets, key=lambda s, h=h: np.nan_to_num(s.halves[h], nan=-np.inf))
        folds.append((best.proxies, best.halves[h], best.halves[1 - h]))
    top = max(np.nan_to_num(s.mean, nan=-np.inf) for s in sets)
    near = [s for s in sets if s.mean >= top - parsimony]
    chosen = min(near, key=lambda s: (len(s.proxies), -s.mean)).proxies
    alone = {name: figures((name,)).halves for name in (base, *views)}
    return RuleChoice(sets, tuple(folds), chosen, alone)
