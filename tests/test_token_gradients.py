"""Token models get the gradient proxies (a masked-token loss) and AZ-NAS's views (hidden states
per block), each checked against an expectation computed here by hand in numpy: the loss of a
tiny embedding + linear model, the per-layer gradient statistics of a two-layer token model
back-propagated by hand, and expressivity, progressivity and trainability from the hidden
states' eigen-entropies and the blocks' vector-Jacobian products written out."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import swapprobe
from swapprobe.capture import proxy_pass
from swapprobe.capture.gradients import gradient_pass, gradient_statistics
from swapprobe.capture.masked_tokens import (
    IGNORE,
    MASK_ID,
    mask_tokens,
    masked_count,
    masked_token_loss,
)
from swapprobe.data import Batch
from swapprobe.errors import SettingsError
from swapprobe.evaluate import torch_seed
from swapprobe.proxies.gradients import layer_gradient_stats, lswag_lambda, zico
from swapprobe.searchspaces import get_space

VOCAB, DIM, HIDDEN = 11, 4, 6


class TinyTokens(nn.Module):
    """Embedding (V × D), Linear D → H, ReLU, Linear H → D: outputs D wide, so the masked-token
    head is tied to the embedding (logits = h · Eᵀ)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.up = nn.Linear(DIM, HIDDEN)
        self.act = nn.ReLU()
        self.down = nn.Linear(HIDDEN, DIM)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(self.embed(ids))))


def _tiny(seed: int = 4) -> TinyTokens:
    torch.manual_seed(seed)
    return TinyTokens()


def _ids(rows: int, tokens: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(1, VOCAB, (rows, tokens)))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# --- masking -----------------------------------------------------------------------------------
def test_masking_replaces_fifteen_percent_of_each_sequence_by_the_mask_id() -> None:
    ids = _ids(5, 40)
    masked, targets = mask_tokens(ids, seed=7)
    chosen = targets != IGNORE
    assert masked_count(40) == 6  # round(0.15 · 40)
    assert chosen.sum(dim=1).tolist() == [6] * 5
    assert torch.equal(targets[chosen], ids[chosen])
    assert bool((masked[chosen] == MASK_ID).all())
    assert torch.equal(masked[~chosen], ids[~chosen])
    again, _ = mask_tokens(ids, seed=7)
    other, _ = mask_tokens(ids, seed=8)
    assert torch.equal(again, masked)
    assert not torch.equal(other, masked)
    assert masked_count(3) == 1  # never no position


# --- the loss ---------------------------------------------------------------------------------
def test_masked_token_loss_of_embedding_and_linear_equals_the_hand_computation() -> None:
    torch.manual_seed(1)
    embed, linear = nn.Embedding(VOCAB, DIM), nn.Linear(DIM, DIM)
    model = nn.Sequential(embed, linear)
    ids = _ids(3, 20, seed=2)
    masked, targets = mask_tokens(ids, seed=0)
    loss = masked_token_loss(model)(model(masked), targets)

    e, w, b = _np(embed.weight), _np(linear.weight), _np(linear.bias)
    hidden = e[masked.numpy()] @ w.T + b  # (S, T, D)
    chosen = targets.numpy() != IGNORE
    logits = hidden[chosen] @ e.T  # tied head: h · Eᵀ
    expected = -_log_softmax(logits)[np.arange(chosen.sum()), targets.numpy()[chosen]].mean()
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_a_model_whose_outputs_are_vocabulary_logits_keeps_its_own_head() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Embedding(VOCAB, DIM), nn.Linear(DIM, VOCAB))
    ids = _ids(2, 20)
    masked, targets = mask_tokens(ids, seed=3)
    out = model(masked)
    chosen = targets.numpy() != IGNORE
    logits = _np(out)[chosen]
    expected = -_log_softmax(logits)[np.arange(chosen.sum()), targets.numpy()[chosen]].mean()
    assert masked_token_loss(model)(out, targets).item() == pytest.approx(expected, rel=1e-5)


def test_outputs_of_no_known_width_are_refused_in_one_line() -> None:
    model = nn.Sequential(nn.Embedding(VOCAB, DIM), nn.Linear(DIM, 5))
    masked, targets = mask_tokens(_ids(2, 10), seed=0)
    with pytest.raises(SettingsError, match="token_logits") as refused:
        masked_token_loss(model)(model(masked), targets)
    assert "\n" not in str(refused.value)


def test_flexibert_head_is_tied_to_its_embedding_through_the_projection() -> None:
    space = get_space("flexibert")  # reference build: H = 256, embeddings 128 wide
    torch.manual_seed(0)
    network = space.build_scoring_network(space.parse("H256:SA-SDP.h4.512x1,LT-DFT.h2.512x1"))
    hidden = torch.randn(5, 256)
    logits = network.token_logits(hidden)
    e = _np(network.embeddings.word_embeddings.weight)
    w = _np(network.embeddings.project.weight)  # (H, 128): the 128 → H map's weight
    np.testing.assert_allclose(_np(logits), _np(hidden) @ w @ e.T, rtol=1e-4, atol=1e-5)


# --- gradient statistics against back-propagation by hand -------------------------------------
def _hand_gradients(model: TinyTokens, masked: torch.Tensor, targets: torch.Tensor):
    """dL/dW of ``up`` and ``down`` for the masked-token loss, back-propagated in numpy."""
    e = _np(model.embed.weight)
    w1, b1 = _np(model.up.weight), _np(model.up.bias)
    w2, b2 = _np(model.down.weight), _np(model.down.bias)
    x = e[masked.numpy()].reshape(-1, DIM)
    a = x @ w1.T + b1
    r = np.maximum(a, 0.0)
    h = r @ w2.T + b2
    t = targets.numpy().reshape(-1)
    rows = np.flatnonzero(t != IGNORE)
    p = np.exp(_log_softmax(h[rows] @ e.T))
    p[np.arange(len(rows)), t[rows]] -= 1.0
    dh = np.zeros_like(h)
    dh[rows] = p / len(rows) @ e  # d(h · Eᵀ) / dh, E held fixed for W's gradients
    dw2 = dh.T @ r
    da = (dh @ w2) * (a > 0)
    dw1 = da.T @ x
    return dw1, dw2


def test_gradient_statistics_of_a_two_layer_token_model_match_backprop_by_hand() -> None:
    model = _tiny()
    ids = _ids(8, 12, seed=5)
    masked, targets = mask_tokens(ids, seed=1)
    batches = [(masked[:4], targets[:4]), (masked[4:], targets[4:])]
    found = gradient_statistics(model, batches, loss_fn=masked_token_loss(model))
    per_batch = [_hand_gradients(model, m, t) for m, t in batches]
    expected = [
        layer_gradient_stats(name, np.stack([g[i] for g in per_batch]))
        for i, name in enumerate(("up", "down"))
    ]
    assert [layer.name for layer in found] == ["up", "down"]
    for got, want in zip(found, expected, strict=True):
        assert (got.weights, got.batches) == (want.weights, want.batches)
        for field in ("zico_sum", "inv_std_sum", "std_mean", "abs_mean"):
            assert getattr(got, field) == pytest.approx(getattr(want, field), rel=1e-4)


# --- through swapprobe.score ------------------------------------------------------------------
S, T = 8, 12


@pytest.fixture(scope="module")
def tokens() -> Batch:
    ids = np.random.default_rng(9).integers(1, VOCAB, (S, T)).astype(np.int64)
    return Batch(ids, "test tokens", "0" * 16)


def test_score_runs_the_masked_token_pass_as_documented(tokens: Batch, tmp_path: Path) -> None:
    from swapprobe.api import rescore, score_many
    from swapprobe.results import ScoreSettings

    model = _tiny()
    settings = ScoreSettings(
        batch_size=S,
        repeats=1,
        init="kaiming",
        backend="torch",
        proxies=("zico", "lswag", "lswag-lambda"),
        keep_patterns="first",
    )
    (result,) = score_many([model], tokens, settings, store=tmp_path / "run.h5")
    # by hand: the Kaiming draw under the model's torch seed, the ids masked from seed + 3,
    # two consecutive mini-batches of S // 2 sequences (proxy_batch 8 > S // 2)
    seed = torch_seed(0, result.key) % 2**31
    direct = copy.deepcopy(model)
    torch.manual_seed(seed)
    proxy_pass.init_kaiming_normal(direct)
    masked, targets = mask_tokens(torch.from_numpy(tokens.inputs), seed + 3)
    half = S // 2
    batches = [(masked[:half], targets[:half]), (masked[half:], targets[half:])]
    loss = masked_token_loss(direct)
    expected = gradient_pass(direct, batches, loss_fn=loss, seed=seed, fisher=False)
    assert result.gradient_layers == expected.layers
    assert result.proxies["zico"] == pytest.approx(zico(expected.layers), rel=1e-12)
    assert result.proxies["lswag-lambda"] == pytest.approx(lswag_lambda(expected.layers))
    assert result.metadata["gradient_labels"].startswith("masked tokens")
    # the store keeps the statistics: another interval is recomputed without a pass
    (again,) = rescore(tmp_path / "run.h5", interval=(0, 4))
    assert again.proxies["lswag-lambda"] == pytest.approx(lswag_lambda(expected.layers, 0, 1))


def _entropy(features: np.ndarray) -> float:
    rows = features.reshape(-1, features.shape[-1]).astype(np.float64)
    centred = rows - rows.mean(axis=0)
    eig = np.clip(np.linalg.eigvalsh(centred.T @ centred / len(rows)), 0, None)
    p = eig[eig > 0] / eig.sum()
    return float(-(p * np.log(p)).sum())


def _sigma_term(g_in: np.ndarray, g_out: np.ndarray) -> float:
    rows_in, rows_out = g_in.reshape(-1, g_in.shape[-1]), g_out.reshape(-1, g_out.shape[-1])
    m = rows_in.T @ rows_out / len(rows_out)
    sigma = np.linalg.svd(m, compute_uv=False)[0]
    return float(-sigma - 1.0 / (sigma + 1e-6) + 2.0)


def test_az_views_of_a_token_model_are_the_hidden_states_eigen_entropies(tokens: Batch) -> None:
    model = _tiny()
    result = swapprobe.score(
        model,
        tokens,
        proxies=("expressivity", "progressivity", "trainability"),
        backend="torch",
        repeats=1,
    )
    # by hand: the same seeded Kaiming draw, the run's first proxy_batch (8) sequences, the
    # blocks = the top-level children, features (B, T, C) as B·T rows
    seed = torch_seed(0, result.key) % 2**31
    direct = copy.deepcopy(model)
    torch.manual_seed(seed)
    proxy_pass.init_kaiming_normal(direct)
    ids = torch.from_numpy(tokens.inputs[:8])
    with torch.no_grad():
        f0 = direct.embed(ids)
        f1 = direct.up(f0)
        f2 = torch.relu(f1)
        f3 = direct.down(f2)
    features = [_np(f) for f in (f0, f1, f2, f3)]
    h = np.array([_entropy(f) for f in features])
    assert result.proxies["expressivity"] == pytest.approx(h.sum(), rel=1e-9)
    assert result.proxies["progressivity"] == pytest.approx(np.diff(h).min(), rel=1e-9)
    # trainability: ±1 cotangents drawn for blocks 3, 2, 1 in turn from seed + 1, pulled back
    # through down (·W₂), the ReLU (· 1[f1 > 0]) and up (·W₁)
    gen = torch.Generator().manual_seed(seed + 1)
    terms = []
    pull = [
        lambda g: g @ _np(direct.down.weight),
        lambda g: g * (features[1] > 0),
        lambda g: g @ _np(direct.up.weight),
    ]
    for index, back in zip((3, 2, 1), pull, strict=True):
        shape = features[index].shape
        g_out = _np(torch.randint(0, 2, shape, generator=gen, dtype=torch.float32) * 2 - 1)
        terms.append(_sigma_term(back(g_out), g_out))
    assert result.proxies["trainability"] == pytest.approx(np.mean(terms), rel=1e-6)


def test_a_flexibert_architecture_gets_every_token_view(tmp_path: Path) -> None:
    result = swapprobe.score(
        "flexibert-faithful:H128:SA-SDP.h2.512x1,DSC-5.h2.512x2",
        "tokens:zipf",
        batch_size=8,
        seq_len=32,
        proxies=("zico", "lswag", "expressivity", "progressivity", "trainability"),
    )
    assert all(np.isfinite(v) for v in result.proxies.values())
    names = [layer.name for layer in result.gradient_layers]
    assert "layers.1.mixer.key_conv.depthwise" in names  # 1-D convolutions count
    assert names[-1] == "layers.1.feed_forward.dense_out"
