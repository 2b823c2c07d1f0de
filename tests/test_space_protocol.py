"""Every registered search space through the whole :class:`SearchSpace` protocol: a new space
is tested by adding its package (``swapprobe/searchspaces/NAME/``), nothing else.

Each check states a property the protocol promises (``base.py``), so the expectations are the
protocol's, not any one space's values: text is canonical (parse ∘ format is the identity on
values and on text), sampling is a function of the generator, mutation changes an architecture
and keeps it valid, crossover of valid parents gives valid children (and of equal parents the
parents), Θ counted without building equals the built network's parameters, and one scoring
run gives a SWAP within its bounds (1 ≤ SWAP ≤ min(V, 2^S): S samples have at most 2^S and at
most V distinct activation patterns). Small settings keep all spaces together to seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable

import numpy as np
import pytest
import torch

import swapprobe
from swapprobe.searchspaces import SearchSpace, get_space, list_spaces

SAMPLES = 6  # architectures drawn per space for the value checks
S = 8  # samples of the scoring run: 2^S = 256 bounds SWAP
TOKENS = 16  # sequence length of a token space's scoring run


@pytest.fixture(params=list_spaces())
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return get_space(request.param)


def _sampled(space: SearchSpace, seed: int = 0) -> list[Hashable]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(SAMPLES)]


def _assert_canonical(space: SearchSpace, arch: Hashable) -> None:
    """A valid value: hashable, its text parses back to it, and that text is a fixed point."""
    hash(arch)
    text = space.format(arch)
    assert isinstance(text, str) and text
    again = space.parse(text)
    assert again == arch and hash(again) == hash(arch)
    assert space.format(again) == text


def test_sampled_architectures_round_trip_through_their_text(space: SearchSpace) -> None:
    for arch in _sampled(space):
        _assert_canonical(space, arch)


def test_sampling_is_a_function_of_the_generator(space: SearchSpace) -> None:
    assert _sampled(space, seed=3) == _sampled(space, seed=3)
    texts = {space.format(arch) for arch in _sampled(space, seed=3) + _sampled(space, seed=4)}
    assert len(texts) > 1  # a space of one architecture is no search space


def test_mutation_gives_a_different_valid_architecture(space: SearchSpace) -> None:
    rng = np.random.default_rng(1)
    for parent in _sampled(space):
        child = space.mutate(parent, rng)
        _assert_canonical(space, child)
        assert child != parent and space.format(child) != space.format(parent)


def test_crossover_gives_valid_children_and_keeps_equal_parents(space: SearchSpace) -> None:
    rng = np.random.default_rng(2)
    archs = _sampled(space)
    for first, second in itertools.pairwise(archs):
        children = space.crossover(first, second, rng)
        assert len(children) == 2
        for child in children:
            _assert_canonical(space, child)
    for arch in archs:  # nothing to mix: the children are the parent
        assert space.crossover(arch, arch, rng) == (arch, arch)


def test_named_architectures_are_valid_and_resolve_by_name(space: SearchSpace) -> None:
    from swapprobe.models import resolve_one

    for name, arch in space.named_architectures().items():
        _assert_canonical(space, arch)
        ref = resolve_one(f"{space.name}:{name}")
        assert ref.arch == arch and ref.name == f"{space.name}:{name}"


def _inputs(space: SearchSpace, samples: int) -> torch.Tensor:
    if space.input_kind == "tokens":
        assert space.vocab_size is not None
        return torch.randint(0, space.vocab_size, (samples, TOKENS))
    return torch.randn((samples, *space.input_shape))


def test_the_scoring_network_builds_runs_and_has_the_counted_size(space: SearchSpace) -> None:
    arch = _sampled(space)[0]
    network = space.build_scoring_network(arch)
    assert isinstance(network, torch.nn.Module)
    assert space.scoring_param_count(arch) == sum(p.numel() for p in network.parameters())
    with torch.no_grad():
        out = network.eval()(_inputs(space, 2))
    assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_the_proxy_blocks_run_in_the_proxy_networks_forward(space: SearchSpace) -> None:
    arch = _sampled(space)[0]
    network = space.proxy_network(arch)
    blocks = space.proxy_blocks(network)
    assert blocks and all(isinstance(b, torch.nn.Module) for b in blocks)
    ran: list[int] = []
    handles = [
        b.register_forward_hook(lambda _m, _a, _o, i=i: ran.append(i)) for i, b in enumerate(blocks)
    ]
    try:
        with torch.no_grad():
            network.eval()(_inputs(space, 2))
    finally:
        for handle in handles:
            handle.remove()
    assert sorted(set(ran)) == list(range(len(blocks)))  # every block produced a feature


def test_one_architecture_scores_end_to_end_within_the_bounds(space: SearchSpace) -> None:
    arch = _sampled(space)[0]
    if space.input_kind == "tokens":
        data, options = "tokens:zipf", {"seq_len": TOKENS}
    else:
        data, options = "synthetic", {"input_size": space.input_shape[1:]}
    result = swapprobe.score((space.name, arch), data, batch_size=S, repeats=1, **options)
    assert result.key == f"{space.name}:{space.format(arch)}"
    assert result.samples == S and result.repeats == 1 and result.units > 0
    assert np.isfinite(result.swap)
    assert 1 <= result.swap <= min(result.units, 2**S)
    assert result.param_count == space.scoring_param_count(arch)


def test_the_evaluation_size_a_budget_counts(space: SearchSpace) -> None:
    """What ``--max-params``/``--max-flops`` count: the evaluation network for the space's own
    input size, its parameters as built and its multiply-adds as torch's dispatch-level
    counter sees them (2 FLOPs per multiply-add of every conv and matmul; attention's
    functional matmuls are beyond the module hooks, so a token space counts at most that)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    arch = _sampled(space, seed=2)[0]
    size = space.input_shape if space.input_kind == "tokens" else space.input_shape[1:]
    dataset = space.evaluation_dataset(size)
    network = space.build_evaluation_network(arch, dataset).eval()
    assert space.evaluation_param_count(arch, dataset) == sum(
        p.numel() for p in network.parameters()
    )
    if space.input_kind == "tokens":
        assert space.vocab_size is not None
        inputs = torch.randint(0, space.vocab_size, (1, *size))
    else:
        inputs = torch.randn((1, *space.input_shape))
    # attention on its math kernel: the counter has no rule for CPU's fused one
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        network(inputs)
    counted = counter.get_total_flops() // 2
    flops = space.evaluation_flops(arch)
    assert flops == space.evaluation_flops(arch, size, dataset) > 0
    if space.input_kind == "images":
        assert flops == counted
    else:
        assert 0.5 * counted <= flops <= counted
