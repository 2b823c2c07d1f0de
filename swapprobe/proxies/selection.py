"""Choosing a proxy set by a rule fixed in advance, checked with a 2-fold split of the table.

One ground-truth table per search space is all there is, and a combination tuned to it will
look better than it is on architectures it has not seen. So: split the rows in two halves
(a seeded permutation), let each half choose the set with the best Spearman ρ of its
aggregate (:func:`swapprobe.proxies.aggregate.aggregate`, ranks taken within that half), and
report the chosen set's ρ on the *other* half — the out-of-fold figure estimates what the
choosing is worth. The default is the set with the best mean ρ over the two halves, the
fewest proxies among those within ``parsimony`` of it. Every set's figures are kept, so
nothing is hidden by the choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from swapprobe.proxies.aggregate import aggregate, ascending_ranks

__all__ = [
    "Selection",
    "SetFigures",
    "evaluate_set",
    "format_report",
    "select_proxy_set",
    "single_proxy_table",
    "split_halves",
    "top_k_mean",
]


@dataclass(frozen=True)
class SetFigures:
    """One candidate set's aggregate, judged on each half and on all rows."""

    proxies: tuple[str, ...]
    rho_halves: tuple[float, float]
    tau_halves: tuple[float, float]
    rho_all: float
    tau_all: float
    #: mean accuracy of the 10 rows the aggregate over all rows ranks highest
    top10_all: float = float("nan")

    @property
    def rho_mean(self) -> float:
        return float(np.mean(self.rho_halves))


@dataclass(frozen=True)
class Selection:
    """Every set's figures, each half's choice and its out-of-fold ρ, and the default."""

    sets: tuple[SetFigures, ...]
    #: per half h: (the set chosen on half h, its ρ on half h, its ρ on the other half)
    folds: tuple[tuple[tuple[str, ...], float, float], ...]
    chosen: tuple[str, ...]

    def figures(self, proxies: Sequence[str]) -> SetFigures:
        key = tuple(proxies)
        for item in self.sets:
            if item.proxies == key:
                return item
        raise KeyError(key)


def split_halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of two halves (sizes ⌈n/2⌉, ⌊n/2⌋) from ``default_rng(seed).permutation``."""
    order = np.random.default_rng(seed).permutation(n)
    first = (n + 1) // 2
    return np.sort(order[:first]), np.sort(order[first:])


def _corr(score: np.ndarray, accuracy: np.ndarray) -> tuple[float, float]:
    """Spearman ρ and Kendall τ(-b) on ranks, so ±inf is ordered and NaN ranks last."""
    ranks = ascending_ranks(score)
    rho = float(stats.spearmanr(ranks, accuracy).statistic)
    tau = float(stats.kendalltau(ranks, accuracy).statistic)
    return rho, tau


def _set_figures(
    table: Mapping[str, np.ndarray],
    accuracy: np.ndarray,
    proxies: tuple[str, ...],
    halves: tuple[np.ndarray, np.ndarray],
) -> SetFigures:
    rhos, taus = [], []
    for rows in halves:
        score = aggregate({name: table[name][rows] for name in proxies})
        rho, tau = _corr(score, accuracy[rows])
        rhos.append(rho)
        taus.append(tau)
    score = aggregate({name: table[name] for name in proxies})
    rho_all, tau_all = _corr(score, accuracy)
    top10 = top_k_mean(score, accuracy, 10)
    return SetFigures(proxies, (rhos[0], rhos[1]), (taus[0], taus[1]), rho_all, tau_all, top10)


def evaluate_set(
    table: Mapping[str, Sequence[float] | np.ndarray],
    accuracy: Sequence[float] | np.ndarray,
    proxies: Sequence[str],
    *,
    seed: int,
) -> SetFigures:
    """One set's figures on the halves of ``split_halves(len(accuracy), seed)`` and on all rows
    (for sets outside the rule's candidates, e.g. AZ-NAS's own set without SWAP)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    columns = {name: np.asarray(table[name], dtype=np.float64) for name in proxies}
    return _set_figures(columns, acc, tuple(proxies), split_halves(len(acc), seed))


def select_proxy_set(
    table: Mapping[str, Sequence[float] | np.ndarray],
    accuracy: Sequence[float] | np.ndarray,
    *,
    base: str,
    seed: int,
    parsimony: float = 0.002,
) -> Selection:
    """Apply the rule of the module docstring to ``base`` plus every subset of the others.

    Args:
        table: proxy name → one value per row, bigger is better (NaN ranks last).
        accuracy: the ground truth, one per row.
        base: the proxy every candidate set contains (SWAP).
        seed: seeds the split into halves.
        parsimony: sets within this much of the best mean ρ count as tied; fewest proxies wins.
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    columns = {name: np.asarray(v, dtype=np.float64) for name, v in table.items()}
    if base not in columns:
        raise ValueError(f"base proxy {base!r} not in the table")
    others = [name for name in columns if name != base]
    halves = split_halves(len(acc), seed)
    sets = tuple(
        _set_figures(columns, acc, (base, *subset), halves)
        for size in range(len(others) + 1)
        for subset in combinations(others, size)
    )
    folds = []
    for h in range(2):
        best = max(sets, key=lambda s, h=h: s.rho_halves[h])
        folds.append((best.proxies, best.rho_halves[h], best.rho_halves[1 - h]))
    top = max(s.rho_mean for s in sets)
    near = [s for s in sets if s.rho_mean >= top - parsimony]
    chosen = min(near, key=lambda s: (len(s.proxies), -s.rho_mean)).proxies
    return Selection(sets, tuple(folds), chosen)


def single_proxy_table(
    table: Mapping[str, Sequence[float] | np.ndarray],
    accuracy: Sequence[float] | np.ndarray,
    *,
    seed: int,
) -> str:
    """ρ and τ of each proxy alone, on all rows and on each half (plain text)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    halves = split_halves(len(acc), seed)
    lines = [f"  {'proxy':<16}{'rho':>8}{'tau':>8}{'rho A':>8}{'rho B':>8}"]
    for name, values in table.items():
        v = np.asarray(values, dtype=np.float64)
        rho, tau = _corr(v, acc)
        halves_rho = [_corr(v[rows], acc[rows])[0] for rows in halves]
        lines.append(f"  {name:<16}{rho:8.3f}{tau:8.3f}{halves_rho[0]:8.3f}{halves_rho[1]:8.3f}")
    return "\n".join(lines)


def top_k_mean(score: Sequence[float] | np.ndarray, accuracy: Sequence[float], k: int) -> float:
    """Mean accuracy of the k rows with the highest score (ties broken by row order)."""
    s = np.asarray(score, dtype=np.float64)
    s = np.where(np.isnan(s), -np.inf, s)
    order = np.argsort(-s, kind="stable")[:k]
    return float(np.mean(np.asarray(accuracy, dtype=np.float64)[order]))


def format_report(selection: Selection) -> str:
    """Every set sorted by mean ρ over the halves, each half's choice, and the default."""
    lines = [
        f"  {'set':<58}{'rho A':>7}{'rho B':>7}{'mean':>7}{'tau A':>7}{'tau B':>7}"
        f"{'rho all':>8}{'tau all':>8}{'top-10':>8}"
    ]
    for s in sorted(selection.sets, key=lambda s: -s.rho_mean):
        mark = " *" if s.proxies == selection.chosen else ""
        lines.append(
            f"  {'+'.join(s.proxies):<58}{s.rho_halves[0]:7.3f}{s.rho_halves[1]:7.3f}"
            f"{s.rho_mean:7.3f}{s.tau_halves[0]:7.3f}{s.tau_halves[1]:7.3f}"
            f"{s.rho_all:8.3f}{s.tau_all:8.3f}{s.top10_all:8.2f}{mark}"
        )
    for h, (proxies, inside, outside) in enumerate(selection.folds):
        name, other = "AB"[h], "BA"[h]
        lines.append(
            f"  chosen on half {name}: {'+'.join(proxies)}  rho on {name} {inside:.3f}, "
            f"out of fold on {other} {outside:.3f}"
        )
    lines.append(f"  default (rule): {'+'.join(selection.chosen)}")
    return "\n".join(lines)
