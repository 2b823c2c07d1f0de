"""All repeats in one pass: speed against the authors' method, and exactness on the tables.

``pytest -m benchmark tests/benchmarks/test_grouped_speed.py -s`` (one thread each):

No goal is asserted (the figures are what this machine gives; the report quotes them).

(a) seconds per DARTS architecture at the paper setting (S = 16, 32 repeats, the first 16
    CIFAR-10 training images, the first 8 architectures of ``darts_cifar10_1000.csv``): the
    authors' method written plainly (forward hooks on every ``nn.ReLU`` of swapprobe's own
    DARTS scoring network, ``torch.sign``, ``torch.unique(dim=0)`` over the transposed sign
    matrix, weights re-drawn N(0, 1) each repeat, BN in train mode) ÷ ``swapprobe.score``
    (goal ≥ 30×), the same for SWAP alone (no NWOT and standard-pattern baselines beside it:
    what the authors compute and what a search scores), the same with the grouped pass
    switched off, and where swapprobe's time goes (``Result.timings``, summed over the
    architectures);
(b) seconds per NAS-Bench-201 architecture at S = 32, 2 repeats (goal ≤ 0.1 s), beside two
    plain onnxruntime forwards of the same network (the floor of any pass on one thread);
(c) exactness on the tables: the grouped pass fed its weights and the per-repeat pass give
    the same scores for 30 DARTS table architectures at the paper setting, and bit-identical
    patterns for 50 random architectures of each space; baked (the CPU default), how many
    repeats and bits differ is recorded.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks.recording import record

pytestmark = pytest.mark.benchmark

torch = pytest.importorskip("torch")
nn = torch.nn


@pytest.fixture
def one_thread():  # type: ignore[no-untyped-def]
    """One intra-op thread for torch (onnxruntime's come with the settings: :func:`_score`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _score(space_name: str, text: str, batch, repeats: int, **runtime):  # type: ignore[no-untyped-def]
    """``swapprobe.score((space_name, text), data=batch.inputs, repeats=repeats)`` with one
    onnxruntime thread per session (and ``runtime``'s other options): the settings
    ``swapprobe.score`` would make, plus :class:`RuntimeOptions`."""
    from swapprobe.evaluate import Evaluator
    from swapprobe.models import arch_ref
    from swapprobe.results import RuntimeOptions, ScoreSettings
    from swapprobe.searchspaces import get_space

    space = get_space(space_name)
    settings = ScoreSettings(
        batch_size=len(batch.inputs),
        repeats=repeats,
        init=space.defaults.init,
        runtime=RuntimeOptions(threads=1, **runtime),
    )
    return Evaluator(batch, settings).evaluate(arch_ref(space, space.parse(text)))


def _table(path: Path, count: int) -> list[str]:
    rows = path.read_text().splitlines()
    if rows[0].startswith("arch"):
        rows = rows[1:]
    return [row.rsplit(",", 1)[0].strip('"') for row in rows[:count]]


def authors_swap(network: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """The SWAP-NAS reference, written plainly: mean over repeats of the distinct columns of
    the sign matrix of every ReLU output."""
    outputs: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
        for m in network.modules()
        if isinstance(m, nn.ReLU)
    ]
    network.train()
    scores = []
    with torch.no_grad():
        for _ in range(repeats):
            for module in network.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.normal_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
            outputs.clear()
            network(x)
            signs = torch.cat([torch.sign(o).reshape(len(x), -1) for o in outputs], dim=1)
            scores.append(torch.unique(signs.T, dim=0).shape[0])
    for hook in hooks:
        hook.remove()
    return float(np.mean(scores))


def test_darts_paper_setting_vs_the_authors_method(shared_data: Path, one_thread: None) -> None:
    from swapprobe.data import load_batch
    from swapprobe.searchspaces import get_space

    space = get_space("darts")
    texts = _table(shared_data / "darts_cifar10_1000.csv", 8)
    batch = load_batch("cifar10", batch_size=16, data_dir=shared_data)
    x = batch.inputs
    tx = torch.as_tensor(x)

    splits: dict[str, float] = defaultdict(float)
    seconds: dict[str, float] = defaultdict(float)

    # What the authors compute, and what a search scores: SWAP alone (no baselines beside it)
    from swapprobe.evaluate import Evaluator, ScoreSettings
    from swapprobe.models import arch_ref
    from swapprobe.results import RuntimeOptions

    swap_alone = Evaluator(
        batch,
        ScoreSettings(
            batch_size=16,
            repeats=32,
            baselines=False,
            keep_patterns="none",
            runtime=RuntimeOptions(threads=1),
        ),
    )

    def ours(text: str, path: str) -> None:
        start = time.perf_counter()
        if path == "swap_alone":
            result = swap_alone.evaluate(arch_ref(space, space.parse(text)))
        else:
            result = _score("darts", text, batch, 32, grouped=path == "grouped")
        seconds[path] += (time.perf_counter() - start) / len(texts)
        if path == "grouped":
            for stage, spent in result.timings.items():
                splits[stage] += spent / len(texts)

    authors_swap(space.build_scoring_network(space.parse(texts[0])), tx, 2)  # warm-up
    _score("darts", texts[0], batch, 32)  # warm-up
    # Interleaved per architecture, so a change in the machine's load hits all three alike.
    for text in texts:
        start = time.perf_counter()
        authors_swap(space.build_scoring_network(space.parse(text)), tx, 32)
        seconds["authors"] += (time.perf_counter() - start) / len(texts)
        ours(text, "grouped")
        ours(text, "swap_alone")
        ours(text, "per_repeat")
    record(
        "darts_grouped_vs_authors",
        {
            "authors_seconds": seconds["authors"],
            "swapprobe_seconds": seconds["grouped"],
            "ratio": seconds["authors"] / seconds["grouped"],
            "goal_30x_met": float(seconds["authors"] / seconds["grouped"] >= 30),
            "swap_alone_seconds": seconds["swap_alone"],
            "ratio_swap_alone": seconds["authors"] / seconds["swap_alone"],
            "per_repeat_path_seconds": seconds["per_repeat"],
            "ratio_per_repeat_path": seconds["authors"] / seconds["per_repeat"],
            **{f"split_{k}": v for k, v in splits.items()},
        },
    )


def test_nb201_seconds_per_architecture(shared_data: Path, one_thread: None) -> None:
    from swapprobe.data import load_batch

    texts = _table(shared_data / "nb201_cifar10_dev1000.csv", 8)
    batch = load_batch("cifar10", batch_size=32, data_dir=shared_data)
    x = batch.inputs
    _score("nb201", texts[0], batch, 2)  # warm-up
    splits: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    for text in texts:
        result = _score("nb201", text, batch, 2)
        for stage, seconds in result.timings.items():
            splits[stage] += seconds / len(texts)
    per_arch = (time.perf_counter() - start) / len(texts)
    record(
        "nb201_S32_2_repeats",
        {
            "seconds_per_architecture": per_arch,
            "goal_0.1s_met": float(per_arch <= 0.1),
            "plain_forwards_seconds": _nb201_plain_forwards(texts, x),
            **{f"split_{k}": v for k, v in splits.items()},
        },
    )


def _nb201_plain_forwards(texts: list[str], x: np.ndarray) -> float:
    """Seconds per architecture of two plain onnxruntime forwards of the exported network at
    S = 32 (weights constant, so its fastest kernels; BN on running statistics; no pattern
    read out; session start not counted): what no SWAP pass on one thread can go below."""
    import onnxruntime as ort

    from swapprobe.capture.export import export_module
    from swapprobe.searchspaces import get_space

    space = get_space("nb201")
    spent = 0.0
    for text in texts:
        proto = export_module(space.build_scoring_network(space.parse(text)), x)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(proto.SerializeToString(), options, ["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x}
        session.run(None, feed)  # warm-up
        start = time.perf_counter()
        for _ in range(2):
            session.run(None, feed)
        spent += (time.perf_counter() - start) / len(texts)
    return spent


def test_darts_table_scores_unchanged_by_grouping(shared_data: Path) -> None:
    """30 table architectures at the paper setting: fed its weights, every repeat's scores
    equal; baked (the CPU default), the repeats whose SWAP differs and by how much, recorded."""
    from dataclasses import replace

    from swapprobe.data import load_batch
    from swapprobe.evaluate import Evaluator, ScoreSettings
    from swapprobe.models import arch_ref
    from swapprobe.results import RuntimeOptions
    from swapprobe.searchspaces import get_space

    space = get_space("darts")
    data = load_batch("cifar10", batch_size=16, data_dir=shared_data)
    settings = ScoreSettings(batch_size=16, repeats=32, keep_patterns="none")
    evaluator = Evaluator(data, settings)
    fed = Evaluator(data, replace(settings, runtime=RuntimeOptions(bake=False)))
    per_repeat = Evaluator(data, replace(settings, runtime=RuntimeOptions(grouped=False)))
    differing, largest = 0, 0.0
    for text in _table(shared_data / "darts_cifar10_1000.csv", 30):
        ref = arch_ref(space, space.parse(text))
        baked = evaluator.evaluate(ref)
        grouped = fed.evaluate(ref)
        assert "group_rewrite" in grouped.timings
        plain = per_repeat.evaluate(ref)
        np.testing.assert_array_equal(grouped.swap_per_repeat, plain.swap_per_repeat)
        np.testing.assert_array_equal(grouped.nwot_per_repeat, plain.nwot_per_repeat)
        np.testing.assert_array_equal(grouped.standard_ap_per_repeat, plain.standard_ap_per_repeat)
        gap = np.abs(baked.swap_per_repeat - plain.swap_per_repeat)
        differing += int(np.count_nonzero(gap))
        largest = max(largest, float(gap.max()))
    record(
        "darts_table_grouped_equal",
        {"architectures": 30, "baked_repeats_differing": differing, "baked_largest_gap": largest},
    )


@pytest.mark.parametrize("space_name", ["darts", "nb201"])
def test_fifty_random_architectures_grouped_is_per_repeat(space_name: str) -> None:
    from swapprobe.capture.export import export_module
    from swapprobe.capture.graph import load_model
    from swapprobe.capture.grouped import GroupedPatternSession
    from swapprobe.capture.session import PatternSession
    from swapprobe.data import load_batch
    from swapprobe.searchspaces import get_space

    space = get_space(space_name)
    rng = np.random.default_rng(50)
    batch, repeats = 16, 3
    x = load_batch("synthetic", batch_size=batch, seed=1).inputs
    flips = bits = 0
    for _ in range(50):
        model = load_model(export_module(space.build_scoring_network(space.sample(rng)), x))
        per_repeat = PatternSession(model, batch_size=batch, sample_shape=x.shape[1:])
        fed, baked = (
            GroupedPatternSession(model, batch_size=batch, sample_shape=x.shape[1:], bake=bake)
            for bake in (False, True)
        )
        runs = zip(
            fed.run_all(x, seed=3, repeats=repeats),
            baked.run_all(x, seed=3, repeats=repeats),
            strict=True,
        )
        for repeat, (matrix, other) in enumerate(runs):
            expected = per_repeat.run(x, seed=3, repeat=repeat)
            assert matrix.layers == expected.layers
            np.testing.assert_array_equal(matrix.words, expected.words)
            flips += int(np.bitwise_count(other.words ^ expected.words).sum())
            bits += expected.units * batch
    assert flips <= 1e-5 * bits  # the bound tests/test_grouped.py states
    record(
        f"{space_name}_50_random_grouped_equal",
        {"architectures": 50, "baked_bits_differing": flips, "bits": bits},
    )
