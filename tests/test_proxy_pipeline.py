"""Proxies through the one path: computed by the Evaluator beside SWAP, stored and read
back, aggregated among the candidates compared, and a search whose fitness is the aggregate
resumes exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch.nn as nn

from swapprobe.api import score_many
from swapprobe.capture import proxy_pass
from swapprobe.data import Batch, load_batch
from swapprobe.errors import SettingsError
from swapprobe.evaluate import Evaluator, torch_seed
from swapprobe.evolution import EvolutionConfig
from swapprobe.models import arch_ref, resolve_one
from swapprobe.proxies import aggregate
from swapprobe.results import ScoreSettings
from swapprobe.searching import run_search
from swapprobe.searchspaces import get_space

PROXIES = ("expressivity", "trainability", "flops")
# a small proxy batch keeps the test quick; the protocol is the same at AZ-NAS's 64
SETTINGS = ScoreSettings(batch_size=8, repeats=1, init="kaiming", proxies=PROXIES, proxy_batch=8)


@pytest.fixture(scope="module")
def data() -> Batch:
    return load_batch("synthetic", batch_size=8)


def _archs(n: int, seed: int = 0) -> list:
    space = get_space("nb201")
    rng = np.random.default_rng(seed)
    return [arch_ref(space, space.sample(rng)) for _ in range(n)]


def test_evaluator_proxies_are_the_pass_on_the_spaces_proxy_network(data: Batch) -> None:
    import torch

    (ref,) = _archs(1)
    result = Evaluator(data, SETTINGS).evaluate(ref)
    assert set(result.proxies) == set(PROXIES)
    # the same pass written out: the space's proxy network built under the run's seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(0, ref.key))
        network = ref.space.proxy_network(ref.arch)
    stats = proxy_pass.collect_block_stats(
        network,
        ref.space.proxy_blocks(network),
        proxy_pass.gaussian_inputs(SETTINGS.proxy_batch, (3, 32, 32), seed=0),
        seed=torch_seed(0, ref.key) % 2**31,
    )
    expected = proxy_pass.proxy_values(stats)
    assert {k: result.proxies[k] for k in PROXIES} == {k: expected[k] for k in PROXIES}


def test_score_takes_proxies_for_a_torch_module_with_a_linear_head(data: Batch) -> None:
    """``swapprobe.score(module, proxies=...)``: the same values as the Evaluator with those
    settings, on a module whose conv features are flattened into a Linear head."""
    import swapprobe

    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 32 * 32, 10),
    )
    result = swapprobe.score(model, data=data, repeats=1, init="kaiming", proxies=PROXIES)
    settings = ScoreSettings(batch_size=8, repeats=1, init="kaiming", proxies=PROXIES)
    expected = Evaluator(data, settings).evaluate(resolve_one(model))
    assert result.proxies == expected.proxies and set(result.proxies) >= set(PROXIES)
    # MACs by hand: the conv's 3·4·9 per output position of 32×32, then the Linear's
    assert result.proxies["flops"] == 3 * 4 * 9 * 32 * 32 + 4 * 32 * 32 * 10


def test_onnx_files_are_refused_with_a_reason(data: Batch, tmp_path: Path) -> None:
    import onnx

    from swapprobe.capture.export import export_module

    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    path = tmp_path / "m.onnx"
    onnx.save(export_module(module, data.inputs), str(path))
    with pytest.raises(SettingsError, match="need a backward pass"):
        Evaluator(data, SETTINGS).evaluate(str(path))


def test_aggregates_rank_the_models_given_and_survive_the_store(
    data: Batch, tmp_path: Path
) -> None:
    refs = _archs(4, seed=3)
    store = tmp_path / "run.h5"
    results = score_many(refs, data, SETTINGS, store=store)
    columns = {"swap": [r.swap for r in results]} | {
        name: [r.proxies[name] for r in results] for name in PROXIES
    }
    np.testing.assert_allclose([r.aggregate for r in results], aggregate(columns))
    again = score_many(refs, data, SETTINGS, store=store, resume=True)  # read back, not run
    assert [r.proxies for r in again] == [r.proxies for r in results]
    assert [r.aggregate for r in again] == [r.aggregate for r in results]


def test_aggregate_search_resumes_exactly(data: Batch, tmp_path: Path) -> None:
    space = get_space("nb201")
    config = EvolutionConfig(population=3, cycles=3, mutation_times=1, seed=1)
    whole = run_search(space, data, SETTINGS, config)
    store = tmp_path / "search.h5"
    first = EvolutionConfig(population=3, cycles=1, mutation_times=1, seed=1)
    run_search(space, data, SETTINGS, first, store=store)
    resumed = run_search(space, data, SETTINGS, config, store=store, resume=True)
    assert resumed.best_text == whole.best_text
    assert resumed.search.best.fitness == whole.search.best.fitness
    assert [h.best_fitness for h in resumed.search.history] == [
        h.best_fitness for h in whole.search.history
    ]
    # the fitness is the aggregate among everything scored: the found one has the best
    values = {k: r.aggregate for k, r in whole.results.items()}
    assert whole.best.aggregate == max(values.values())


def test_rescore_recomputes_the_aggregate_from_stored_values(data: Batch, tmp_path: Path) -> None:
    from swapprobe.api import rescore

    refs = _archs(3, seed=5)
    store = tmp_path / "run.h5"
    scored = score_many(refs, data, SETTINGS, store=store)
    again = rescore(store, mu=0.5, sigma=0.5, size_unit="M")
    # regularised SWAP replaces SWAP inside the aggregate (no model is run)
    columns = {"swap": [r.reg_swap for r in again]} | {
        name: [r.proxies[name] for r in again] for name in PROXIES
    }
    np.testing.assert_allclose([r.aggregate for r in again], aggregate(columns))
    assert [r.proxies for r in again] == [r.proxies for r in scored]


def test_profile_table_shows_the_proxy_pass_beside_the_capture_stages(data: Batch) -> None:
    from rich.console import Console

    from swapprobe.report import profile_table

    results = score_many(_archs(2, seed=3), data, SETTINGS)
    for result in results:  # the pass ran and was timed apart from SWAP's stages
        assert 0 < result.timings["proxies"] < result.seconds
    console = Console(width=200, record=True)
    console.print(profile_table(results))
    header = next(line for line in console.export_text().splitlines() if "total" in line)
    assert [cell.strip() for cell in header.split("┃")[-3:-1]] == ["proxies", "total"]
    plain = ScoreSettings(batch_size=8, repeats=1, init="kaiming")
    console = Console(width=200, record=True)
    console.print(profile_table(score_many(_archs(1), data, plain)))
    assert "proxies" not in console.export_text()


def test_one_draw_shows_no_spread_and_two_show_their_standard_deviation() -> None:
    from rich.console import Console

    from swapprobe.report import ranking_table
    from swapprobe.results import Result

    one = Result("one", "k1", np.array([1234.0]), param_count=1, units=5000, samples=16)
    two = Result("two", "k2", np.array([1000.0, 1010.0]), param_count=1, units=5000, samples=16)
    console = Console(width=200, record=True)
    console.print(ranking_table([one, two]))
    cells = [line.split("│") for line in console.export_text().splitlines() if "│" in line]
    swap_cells = {row[2].strip(): row[3].strip() for row in cells}
    # std over the two repeats (population, as numpy's default): |1010 − 1000| / 2 = 5
    assert swap_cells == {"one": "1,234", "two": "1,005.0 ± 5.0"}
