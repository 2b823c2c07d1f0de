"""The runner protocol: :func:`open_runner` chooses the runner from the settings and the model,
gives it the model's origin, and carries the runtime options down; the drawn-weight cache and
the shared arena are objects with an owner, not module state.

Expectations are independent of the code under test: parameter counts by hand, draws from
:func:`~swapprobe.capture.weights.draw` itself, thread counts from onnxruntime's own session
options, scores from a runner built directly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn as nn

from swapprobe.capture import open_runner
from swapprobe.capture.export import export_module
from swapprobe.capture.graph import ParameterInfo, load_model, model_digest
from swapprobe.capture.grouped import DrawCache, GroupedPatternSession
from swapprobe.capture.runner import RunnerTimings
from swapprobe.capture.session import PatternSession
from swapprobe.capture.torch_backend import TorchPatternRunner
from swapprobe.capture.weights import draw
from swapprobe.data import load_batch
from swapprobe.errors import SettingsError
from swapprobe.evaluate import Evaluator
from swapprobe.results import RuntimeOptions, ScoreSettings
from swapprobe.searchspaces.darts import DARTS_V2, DartsSpace

S = 8


class _WithUnusedHead(nn.Module):
    """conv 3→4 (3·3·3·4 + 4 = 112 parameters), ReLU, and a Linear 5→2 (12 parameters) the
    forward never calls: Θ of the module is 124, of its exported graph 112."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.unused = nn.Linear(5, 2)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.relu(self.conv(x))


@pytest.fixture(scope="module")
def batch():  # type: ignore[no-untyped-def]
    return load_batch("synthetic", batch_size=S, seed=3)


def _settings(**kwargs: object) -> ScoreSettings:
    return ScoreSettings(batch_size=S, **kwargs)  # type: ignore[arg-type]


def test_the_runner_is_chosen_from_the_settings_and_the_model(batch) -> None:  # type: ignore[no-untyped-def]
    darts = DartsSpace().build_scoring_network(DARTS_V2)
    module = _WithUnusedHead()
    proto = export_module(module, batch.inputs)
    chosen = {
        "torch backend": open_runner(module, batch, _settings(backend="torch"), name="m"),
        "emitted, repeats": open_runner(darts, batch, _settings(repeats=4), name="d"),
        "emitted, one repeat": open_runner(darts, batch, _settings(repeats=1), name="d"),
        "grouping off": open_runner(
            darts, batch, _settings(repeats=4, runtime=RuntimeOptions(grouped=False)), name="d"
        ),
        "traced module": open_runner(module, batch, _settings(repeats=4), name="m"),
        "onnx proto": open_runner(proto, batch, _settings(repeats=4), name="p"),
    }
    assert {label: type(runner) for label, runner in chosen.items()} == {
        "torch backend": TorchPatternRunner,
        "emitted, repeats": GroupedPatternSession,
        "emitted, one repeat": PatternSession,
        "grouping off": PatternSession,
        "traced module": PatternSession,
        "onnx proto": PatternSession,
    }
    for runner in chosen.values():  # one timings type for every runner
        assert isinstance(runner.timings, RunnerTimings)
    with pytest.raises(SettingsError, match=r"backend torch needs a torch\.nn\.Module"):
        open_runner(proto, batch, _settings(backend="torch"), name="p")


def test_the_origin_counts_the_module_not_its_graph(batch) -> None:  # type: ignore[no-untyped-def]
    module = _WithUnusedHead()
    for backend in ("onnx", "torch"):
        runner = open_runner(module, batch, _settings(backend=backend), name="m")
        assert runner.origin.param_count == 124
    proto = export_module(module, batch.inputs)
    runner = open_runner(proto, batch, _settings(), name="p")
    assert runner.origin.param_count == 112  # a graph counts what it holds
    assert runner.origin.digest == model_digest(load_model(proto))
    assert runner.origin.export_seconds == 0.0


def test_runtime_threads_reach_every_onnx_session(batch) -> None:  # type: ignore[no-untyped-def]
    darts = DartsSpace().build_scoring_network(DARTS_V2)
    for repeats, kind in ((1, PatternSession), (4, GroupedPatternSession)):
        settings = _settings(repeats=repeats, runtime=RuntimeOptions(threads=2, bake=False))
        runner = open_runner(darts, batch, settings, name="d")
        assert isinstance(runner, kind)
        runner.run_all(batch.inputs, seed=0, repeats=repeats)
        sessions = (
            [runner.session]
            if isinstance(runner, PatternSession)
            else [s for s, _ in runner._sessions.values()]
        )
        assert sessions
        for session in sessions:
            assert session.get_session_options().intra_op_num_threads == 2


def test_threads_must_be_positive() -> None:
    with pytest.raises(SettingsError, match="threads must be at least 1"):
        RuntimeOptions(threads=0)


def test_every_runner_gives_what_it_gives_repeat_by_repeat(batch) -> None:  # type: ignore[no-untyped-def]
    """run_all over the runner's own batches equals run, repeat by repeat (the Evaluator
    counts whatever batches the runner asks for)."""
    darts = DartsSpace().build_scoring_network(DARTS_V2)
    for settings in (
        _settings(repeats=3, runtime=RuntimeOptions(bake=False)),
        _settings(repeats=3, runtime=RuntimeOptions(grouped=False)),
        _settings(repeats=3, backend="torch"),
    ):
        runner = open_runner(darts, batch, settings, name="d")
        batches = runner.repeat_batches(3)
        assert sorted(r for b in batches for r in b) == [0, 1, 2]
        together = [m for b in batches for m in runner.run_all(batch.inputs, seed=5, repeats=b)]
        for repeat, matrix in enumerate(together):
            alone = runner.run(batch.inputs, seed=5, repeat=repeat)
            np.testing.assert_array_equal(matrix.words, alone.words)


def test_the_draw_cache_gives_the_draws_and_stays_within_its_bound() -> None:
    param = ParameterInfo("w", "weight", (4, 3, 3, 3), 27)
    cache = DrawCache(max_bytes=2 * 3 * 4 * 27 * 4)  # two chunks of 3 repeats of float32
    first = cache.chunk("gaussian", param, 7, [0, 1, 2])
    expected = np.concatenate([draw("gaussian", [param], 7, r)["w"] for r in (0, 1, 2)])
    np.testing.assert_array_equal(first, expected)
    assert not first.flags.writeable  # shared between sessions: nobody may change it
    assert cache.chunk("gaussian", param, 7, [0, 1, 2]) is first  # drawn once
    cache.chunk("gaussian", param, 8, [0, 1, 2])
    assert cache.chunk("gaussian", param, 7, [0, 1, 2]) is first  # both fit
    cache.chunk("gaussian", param, 9, [0, 1, 2])  # a third does not: the cache starts over
    again = cache.chunk("gaussian", param, 7, [0, 1, 2])
    assert again is not first
    np.testing.assert_array_equal(again, expected)


def test_the_evaluator_shares_its_draw_cache_across_models(batch) -> None:  # type: ignore[no-untyped-def]
    """Two architectures share the stem's draws: the second scores from the first's cache,
    and both score as evaluators with caches of their own do."""
    space = DartsSpace()
    rng = np.random.default_rng(2)
    refs = [space.sample(rng) for _ in range(2)]
    settings = _settings(repeats=4)
    shared = Evaluator(batch, settings)
    results = [shared.evaluate((space, arch)) for arch in refs]
    assert len(shared.draw_cache._chunks) > 0
    for arch, result in zip(refs, results, strict=True):
        alone = Evaluator(batch, settings).evaluate((space, arch))
        np.testing.assert_array_equal(result.swap_per_repeat, alone.swap_per_repeat)
