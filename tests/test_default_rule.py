"""The default-choosing rule (swapprobe/proxies/default_rule.py) on hand-made tables."""

from __future__ import annotations

import numpy as np
import pytest

from swapprobe.errors import SettingsError
from swapprobe.proxies.default_rule import choose_default, top_weighted


def test_criterion_is_one_for_the_true_order_and_minus_one_reversed() -> None:
    acc = np.array([90.0, 91.0, 92.5, 93.0, 94.0])
    assert top_weighted(acc, acc) == pytest.approx(1.0)
    assert top_weighted(-acc, acc) == pytest.approx(-1.0)


def test_criterion_weighs_a_swap_at_the_top_more_than_one_at_the_bottom() -> None:
    acc = np.arange(10.0)
    top_swapped = acc.copy()
    top_swapped[[8, 9]] = top_swapped[[9, 8]]
    bottom_swapped = acc.copy()
    bottom_swapped[[0, 1]] = bottom_swapped[[1, 0]]
    # ρ is the same for both (one adjacent transposition), τ_w is not
    assert top_weighted(top_swapped, acc) < top_weighted(bottom_swapped, acc)


def test_missing_accuracies_are_left_out_of_their_target() -> None:
    acc = np.array([1.0, 2.0, np.nan, 3.0, 4.0])
    score = np.array([1.0, 2.0, -100.0, 3.0, 4.0])
    assert top_weighted(score, acc) == pytest.approx(1.0)


def test_the_rule_adds_the_view_that_knows_the_order_and_only_that() -> None:
    rng = np.random.default_rng(0)
    n = 80
    acc = rng.normal(size=n)
    table = {
        "swap": acc + rng.normal(scale=2.0, size=n),  # weak
        "expressivity": acc + rng.normal(scale=0.05, size=n),  # nearly the truth
        "trainability": rng.normal(size=n),  # noise
        "not_a_view": acc,  # ignored: not among the rule's views
    }
    choice = choose_default(table, {"a": acc, "b": acc + rng.normal(scale=0.01, size=n)})
    assert choice.chosen == ("swap", "expressivity")
    assert {s.proxies for s in choice.sets} == {
        ("swap",),
        ("swap", "expressivity"),
        ("swap", "trainability"),
        ("swap", "expressivity", "trainability"),
    }
    assert choice.alone["expressivity"][0] > choice.alone["swap"][0]
    for chosen, inside, outside in choice.folds:
        assert "expressivity" in chosen and inside > 0.5 and outside > 0.5


def test_parsimony_prefers_fewer_proxies_among_ties() -> None:
    acc = np.arange(20.0)
    # both views equal SWAP: every set ranks exactly as SWAP alone, so SWAP alone is chosen
    table = {"swap": acc, "flops": acc.copy(), "nwot": acc.copy()}
    assert choose_default(table, {"t": acc}).chosen == ("swap",)


def test_the_rule_refuses_a_table_without_its_base() -> None:
    with pytest.raises(SettingsError, match="swap"):
        choose_default({"flops": np.arange(10.0)}, {"t": np.arange(10.0)})
