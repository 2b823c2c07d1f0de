"""A define-by-run space (``swapprobe.searchspaces.custom``): a function of the choice recorder
is a search space, searched, scored, resumed and refused as the built-in spaces are."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from swapprobe.api import plan_search, score
from swapprobe.cli import main
from swapprobe.errors import ModelLoadError, SettingsError, UnknownArchitectureError
from swapprobe.searchspaces.custom import ChoiceRecorder, CustomSpace, space_from_file
from swapprobe.searchspaces.nb201 import NB201_EDGES, NB201_OPS, Nb201Arch, Nb201Space

REPO = Path(__file__).resolve().parent.parent
#: a small, quick search: what every search test runs
SMALL = {
    "batch_size": 8,
    "repeats": 2,
    "population": 4,
    "cycles": 3,
    "mutation_times": 2,
    "executor": "local",
}


def stack(c: ChoiceRecorder) -> nn.Module:
    """A stack whose kernels depend on the sampled depth (one choice per layer)."""
    width = c.choice("width", [2, 4])
    depth = c.choice("depth", [1, 2, 3])
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1)]
    for i in range(depth):
        kernel = c.choice(f"kernel{i}", [1, 3])
        layers += [nn.ReLU(), nn.Conv2d(width, width, kernel, padding=kernel // 2)]
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def structure(module: nn.Module) -> dict[str, object]:
    """The choices read back from a built module (independent of the recorder)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    found: dict[str, object] = {"width": convs[0].out_channels, "depth": len(convs) - 1}
    found.update({f"kernel{i}": conv.kernel_size[0] for i, conv in enumerate(convs[1:])})
    return found


SPACE = CustomSpace(stack)


def test_choices_are_recorded_and_replayed_exactly() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        arch = SPACE.sample(rng)
        text = SPACE.format(arch)
        assert SPACE.parse(text) == arch
        assert list(json.loads(text)) == [name for name, _ in arch]  # the order asked
        assert structure(SPACE.build_scoring_network(arch)) == dict(arch)
    given = {"width": 4, "depth": 2, "kernel0": 3, "kernel1": 1}
    recorder = ChoiceRecorder(given, strict=True)
    assert structure(stack(recorder)) == given
    assert recorder.choices == given
    assert SPACE.format(SPACE.parse(json.dumps(given))) == json.dumps(given)


def test_a_text_names_exactly_one_member() -> None:
    with pytest.raises(UnknownArchitectureError, match="no value for choice 'kernel1'"):
        SPACE.parse('{"width": 4, "depth": 2, "kernel0": 3}')
    with pytest.raises(UnknownArchitectureError, match="no choice 'kernel1' is made"):
        SPACE.parse('{"width": 4, "depth": 1, "kernel0": 3, "kernel1": 1}')
    with pytest.raises(UnknownArchitectureError, match=r"width=5 is not one of \[2, 4\]"):
        SPACE.parse('{"width": 5, "depth": 1, "kernel0": 3}')
    with pytest.raises(UnknownArchitectureError, match="JSON object"):
        SPACE.parse("width=4")


def test_sampling_is_uniform_over_each_choice() -> None:
    rng = np.random.default_rng(1)
    archs = [dict(SPACE.sample(rng)) for _ in range(600)]
    widths = Counter(a["width"] for a in archs)
    depths = Counter(a["depth"] for a in archs)
    # binomial sd: sqrt(600 * 1/2 * 1/2) ≈ 12, sqrt(600 * 1/3 * 2/3) ≈ 11.5; 4 sd either side
    assert all(abs(widths[w] - 300) < 50 for w in (2, 4))
    assert all(abs(depths[d] - 200) < 46 for d in (1, 2, 3))


def valid(arch: tuple[tuple[str, object], ...]) -> bool:
    values = dict(arch)
    expected = {"width", "depth", *(f"kernel{i}" for i in range(int(values["depth"])))}  # type: ignore[call-overload]
    return set(values) == expected and SPACE.parse(SPACE.format(arch)) == arch


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_mutation_and_crossover_keep_dependent_choices_valid(seed: int, other: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = SPACE.sample(rng), SPACE.sample(np.random.default_rng(other))
    mutant = SPACE.mutate(a, rng)
    assert valid(mutant)
    changed = [n for n, v in dict(a).items() if dict(mutant).get(n, v) != v]
    if dict(mutant)["depth"] == dict(a)["depth"]:  # one choice re-drawn, the rest kept
        assert len(changed) == 1 and set(dict(mutant)) == set(dict(a))
    else:  # depth re-drawn: the kernels both have are kept
        assert changed == ["depth"]
    first, second = SPACE.crossover(a, b, rng)
    for child in (first, second):
        assert valid(child)
        for name, value in child:  # a choice both parents made comes from one of them
            if name in dict(a) and name in dict(b):
                assert value in (dict(a)[name], dict(b)[name])
    # complementary: where both children and both parents have a choice, both values stay
    for name in set(dict(first)) & set(dict(second)) & set(dict(a)) & set(dict(b)):
        assert sorted([dict(first)[name], dict(second)[name]]) == sorted(
            [dict(a)[name], dict(b)[name]]
        )


def test_the_same_seed_gives_the_same_search() -> None:
    runs = [plan_search(stack, seed=3, **SMALL).run().outcome for _ in range(2)]
    assert runs[0].search.history == runs[1].search.history
    assert runs[0].search.population == runs[1].search.population
    assert runs[0].best_text == runs[1].best_text
    assert runs[0].choices == json.loads(runs[0].best_text)
    other = plan_search(stack, seed=4, **SMALL).run().outcome
    assert other.search.population != runs[0].search.population


SPACE_FILE = """
import torch.nn as nn


def stack(c):
    width = c.choice("width", [2, 4])
    depth = c.choice("depth", [1, 2, 3])
    layers = [nn.Conv2d(3, width, 3, padding=1)]
    for i in range(depth):
        kernel = c.choice(f"kernel{i}", [1, 3])
        layers += [nn.ReLU(), nn.Conv2d(width, width, kernel, padding=kernel // 2)]
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def raises(c):
    c.choice("width", [2, 4])
    raise RuntimeError("no such layer")


def not_a_module(c):
    return c.choice("width", [2, 4])


def no_choice(c):
    return nn.ReLU()


def model():
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
"""


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_space.py"
    path.write_text(SPACE_FILE)
    return path


def test_resume_after_sigkill_gives_the_same_search(space_file: Path, tmp_path: Path) -> None:
    keywords = {**SMALL, "cycles": 6, "seed": 5}
    store = tmp_path / "run.h5"
    reference = f"{space_file}:stack"
    child = textwrap.dedent(
        f"""
        import sys
        from swapprobe.api import plan_search

        class Tell:
            def announce(self, setup): pass
            def begin(self, task, total, **fields): pass
            def advance(self, task, done, total=None, **fields):
                print(task, done, flush=True)

        plan_search({reference!r}, store={str(store)!r}, **{keywords!r}).run(Tell())
        """
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", child],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert driver.stdout is not None
        for line in driver.stdout:
            if line.split() == ["cycles", "2"]:  # cycle 2 is checkpointed before it is told
                break
        else:
            pytest.fail("the search ended before cycle 2")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    resumed = plan_search(f"{space_file}:stack", store=store, resume=True, **keywords).run()
    full = plan_search(f"{space_file}:stack", store=tmp_path / "full.h5", **keywords).run()
    assert resumed.outcome.search.history == full.outcome.search.history
    assert resumed.outcome.search.population == full.outcome.search.population
    assert resumed.outcome.best_text == full.outcome.best_text
    np.testing.assert_array_equal(
        resumed.outcome.best.swap_per_repeat, full.outcome.best.swap_per_repeat
    )


def test_a_pool_rebuilds_the_space_from_its_file(space_file: Path) -> None:
    """Workers import FILE.py:FUNCTION by path: the search is the local one."""
    local = plan_search(f"{space_file}:stack", **SMALL).run().outcome
    pooled = plan_search(f"{space_file}:stack", **{**SMALL, "executor": "pool", "workers": 2})
    outcome = pooled.run().outcome
    assert not outcome.failed
    assert outcome.search.history == local.search.history
    assert outcome.best_text == local.best_text


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("raises", "space function my_space.py:raises raised RuntimeError: no such layer"),
        ("not_a_module", "space function my_space.py:not_a_module returned a int, not a torch"),
        ("no_choice", "space function my_space.py:no_choice made no choice"),
        ("model", "my_space.py:model is not a space"),
    ],
)
def test_a_broken_space_function_fails_in_one_line(
    space_file: Path, function: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        space_from_file(space_file, function)
    capsys.readouterr()
    assert main(["search", f"{space_file}:{function}", "--executor", "local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_workers_must_be_able_to_import_the_function() -> None:
    def closure(c: ChoiceRecorder) -> nn.Module:
        return nn.Conv2d(3, c.choice("width", [2, 4]), 3)

    for function, why in ((closure, "inside another function"), (lambda c: stack(c), "lambda")):
        plan = plan_search(function, **{**SMALL, "executor": "pool"})
        with pytest.raises(SettingsError, match=f"{why}.*FILE.py:.*executor='local'"):
            plan.run()
    # an importable function travels: the space pickles by where the function lives
    import pickle

    assert pickle.loads(pickle.dumps(SPACE)).format(SPACE.sample(np.random.default_rng(0)))


def test_members_are_scored_by_their_choices(space_file: Path) -> None:
    member = '{"width": 4, "depth": 1, "kernel0": 3}'
    result = score(f"{space_file}:stack:{member}", batch_size=8, repeats=2)
    assert result.key == f"my_space.py:stack:{member}"
    assert result.metadata["architecture"] == member
    with pytest.raises(ModelLoadError, match=r"needs arguments \(c\): .* the choice recorder"):
        score(f"{space_file}:stack")
    with pytest.raises(ModelLoadError, match="takes no choices"):
        score(f"{space_file}:model:{member}")


def nb201_source(traced: bool) -> str:
    """An NB201 space with 6 edge choices of 5 ops, built by swapprobe's own network (traced:
    a subclass that opts out of the emitted graph)."""
    network = (
        "class Traced(Nb201Network):\n    emit_onnx = None\n\n"
        "def build(arch):\n    return Traced(arch, 10, 16, 5)\n"
        if traced
        else "def build(arch):\n    return Nb201Space().build_scoring_network(arch)\n"
    )
    return (
        "from swapprobe.searchspaces.nb201 import NB201_EDGES, NB201_OPS, Nb201Arch, Nb201Space\n"
        "from swapprobe.searchspaces.nb201.networks import Nb201Network\n\n"
        f"{network}\n"
        "def cell(c):\n"
        "    ops = tuple(c.choice(f'{t}<-{s}', list(NB201_OPS)) for t, s in NB201_EDGES)\n"
        "    return build(Nb201Arch(ops))\n"
    )


@pytest.mark.parametrize("traced", [False, True], ids=["emitted", "traced"])
def test_nb201_expressed_with_choices_scores_as_nb201(traced: bool, tmp_path: Path) -> None:
    path = tmp_path / "cells.py"
    path.write_text(nb201_source(traced))
    arch = Nb201Space().sample(np.random.default_rng(7))
    edges = zip(NB201_EDGES, arch.ops, strict=True)
    member = json.dumps({f"{t}<-{s}": op for (t, s), op in edges})
    options = {"batch_size": 16, "repeats": 2, "init": "kaiming", "seed": 3}
    builtin = score(f"nb201:{arch.format()}", **options)
    custom = score(f"{path}:cell:{member}", **options)
    assert custom.key != builtin.key  # other keys, so other construction seeds: kaiming
    np.testing.assert_array_equal(custom.swap_per_repeat, builtin.swap_per_repeat)
    assert custom.param_count == builtin.param_count
    assert set(NB201_OPS) >= set(arch.ops) and isinstance(arch, Nb201Arch)
