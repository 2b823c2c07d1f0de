"""The 2-fold proxy-set selection on synthetic tables whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from swapprobe.proxies.selection import select_proxy_set, split_halves, top_k_mean


def _table(n: int = 2000, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Accuracy z; three independent noisy views of z and one pure-noise proxy."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    table = {
        "swap": z + rng.normal(size=n),
        "good1": z + rng.normal(size=n),
        "good2": z + rng.normal(size=n),
        "junk": rng.normal(size=n),
    }
    return table, z


def test_split_halves_partition() -> None:
    a, b = split_halves(11, seed=5)
    assert len(a) == 6 and len(b) == 5
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(11))
    np.testing.assert_array_equal(split_halves(11, seed=5)[0], a)  # seeded


def test_selection_finds_the_informative_views() -> None:
    table, accuracy = _table()
    selection = select_proxy_set(table, accuracy, base="swap", seed=1)
    # averaging independent views of z beats any one of them; noise only hurts
    assert selection.chosen == ("swap", "good1", "good2")
    assert len(selection.sets) == 8  # swap with every subset of three others
    for proxies, inside, outside in selection.folds:
        assert proxies == ("swap", "good1", "good2")
        assert outside == pytest.approx(inside, abs=0.05)  # a real effect holds out of fold
    alone = selection.figures(("swap",))
    best = selection.figures(selection.chosen)
    assert best.rho_all > alone.rho_all + 0.05
    assert selection.figures(("swap", "junk")).rho_mean < alone.rho_mean


def test_parsimony_drops_a_duplicate() -> None:
    table, accuracy = _table()
    duplicate = {"swap": table["swap"], "copy": table["swap"].copy()}
    selection = select_proxy_set(duplicate, accuracy, base="swap", seed=1)
    assert selection.figures(("swap", "copy")).rho_mean == pytest.approx(
        selection.figures(("swap",)).rho_mean
    )
    assert selection.chosen == ("swap",)


def test_base_must_be_present() -> None:
    with pytest.raises(ValueError, match="base proxy"):
        select_proxy_set({"a": [1.0, 2.0]}, [1.0, 2.0], base="swap", seed=0)


def test_top_k_mean_by_hand() -> None:
    assert top_k_mean([3.0, 1.0, np.nan, 2.0], [90.0, 10.0, 99.0, 80.0], 2) == 85.0


def test_set_figures_carry_top10() -> None:
    table, accuracy = _table(n=200)
    selection = select_proxy_set(table, accuracy, base="swap", seed=1)
    alone = selection.figures(("swap",))
    assert alone.top10_all == pytest.approx(top_k_mean(table["swap"], accuracy, 10))
