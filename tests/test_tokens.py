"""Token models: int64 ids and further named inputs through both backends, against the
torch-hook oracle of ``test_capture_gates`` (sign of each GELU module's input, flattened per
sample, distinct patterns by ``torch.unique``)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from swapprobe.capture.export import INPUT_NAME, export_module
from swapprobe.data import Batch, fingerprint, load_batch, token_batch
from swapprobe.errors import DataError, SettingsError, ShapeMismatchError
from swapprobe.evaluate import Evaluator
from swapprobe.results import ScoreSettings
from tests.test_capture import SEED, evaluate, make_inputs, reference_init
from tests.test_capture_gates import oracle_patterns, oracle_swap

VOCAB, LENGTH, WIDTH, HIDDEN, BLOCKS = 40, 6, 8, 16, 2


class Block(nn.Module):
    """Hand-written single-head attention (an additive mask where given), LayerNorm, GELU
    feed-forward: every weight a Linear, so the oracle's re-initialisation covers it."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(WIDTH, WIDTH) for _ in range(4))
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.ff1, self.ff2 = nn.Linear(WIDTH, HIDDEN), nn.Linear(HIDDEN, WIDTH)
        self.act = nn.GELU()

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self.q(h), self.k(h), self.v(h)
        scores = q @ k.transpose(1, 2) / math.sqrt(WIDTH)
        if mask is not None:  # BERT's rule: padding keys get -10⁴ before the softmax
            scores = scores + (1.0 - mask[:, None, :].to(scores.dtype)) * -1e4
        h = self.norm1(h + self.o(torch.softmax(scores, dim=-1) @ v))
        return self.norm2(h + self.ff2(self.act(self.ff1(h))))


class TokenEncoder(nn.Module):
    """Token and position embeddings, LayerNorm, two encoder blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, WIDTH, padding_idx=0)
        self.positions = nn.Embedding(LENGTH, WIDTH)
        self.norm = nn.LayerNorm(WIDTH)
        self.blocks = nn.ModuleList(Block() for _ in range(BLOCKS))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1])
        h = self.norm(self.tokens(input_ids) + self.positions(positions))
        for block in self.blocks:
            h = block(h, attention_mask)
        return h


class IdsOnly(TokenEncoder):
    """The same network whose forward takes the ids alone."""

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(input_ids)


UNITS = BLOCKS * LENGTH * HIDDEN


def encoder(kind: type[TokenEncoder] = TokenEncoder) -> TokenEncoder:
    torch.manual_seed(0)
    return kind()


def token_ids(samples: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, VOCAB, (samples, LENGTH), dtype=np.int64)


def padding_mask(samples: int, seed: int = 1) -> np.ndarray:
    """1 for the first L_s tokens, 0 after (L_s uniform in 2..T), as a tokenizer pads."""
    lengths = np.random.default_rng(seed).integers(2, LENGTH + 1, samples)
    return (np.arange(LENGTH)[None, :] < lengths[:, None]).astype(np.int64)


def expected_patterns(module: nn.Module, ids: np.ndarray, **keywords: np.ndarray) -> list:
    return [oracle_patterns(reference_init(module, SEED, r), ids, **keywords) for r in range(2)]


def assert_both_match(module: nn.Module, batch: Batch, expected: list[np.ndarray]) -> None:
    assert expected[0].shape == (len(batch.inputs), UNITS)
    for backend in ("onnx", "torch"):
        result = evaluate(module, batch, backend=backend)
        assert result.units == UNITS, backend
        for repeat, bits in enumerate(expected):
            got = result.patterns[repeat].to_bool()
            np.testing.assert_array_equal(got, bits, err_msg=backend)
            assert result.swap_per_repeat[repeat] == oracle_swap(bits), (backend, repeat)


# =====================================================================================
# token ids and named inputs through both backends
# =====================================================================================
def test_token_encoder_matches_the_oracle_on_both_backends() -> None:
    module, ids = encoder(), token_ids(24)
    assert_both_match(module, token_batch(ids), expected_patterns(module, ids))


def test_two_named_inputs_match_the_oracle_on_both_backends() -> None:
    module, ids, mask = encoder(), token_ids(24), padding_mask(24)
    assert 0 < mask.sum() < mask.size  # some padding, or the mask would change nothing
    expected = expected_patterns(module, ids, attention_mask=mask)
    unmasked = expected_patterns(module, ids)
    assert not np.array_equal(expected[0], unmasked[0])  # the mask reaches the patterns
    assert_both_match(module, token_batch(ids, extra={"attention_mask": mask}), expected)


def test_further_inputs_a_model_does_not_take_are_not_fed() -> None:
    """A model without a mask argument scores a batch with a mask and token types as the
    ids alone (on ONNX: the exported graph declares neither, so neither is fed)."""
    module, ids = encoder(IdsOnly), token_ids(16)
    extra = {"attention_mask": padding_mask(16), "token_type_ids": np.zeros_like(ids)}
    assert_both_match(module, token_batch(ids, extra=extra), expected_patterns(module, ids))


def test_export_names_further_inputs_and_keeps_integer_dtypes() -> None:
    ids, mask = token_ids(4), padding_mask(4)
    model = export_module(encoder(), ids, extra={"attention_mask": mask, "unused": mask})
    inputs = [(v.name, v.type.tensor_type.elem_type) for v in model.graph.input]
    assert inputs == [(INPUT_NAME, onnx.TensorProto.INT64), ("attention_mask", 7)]
    for value in model.graph.input:  # both batch axes free
        assert value.type.tensor_type.shape.dim[0].dim_param


def test_a_graph_input_without_data_is_one_line() -> None:
    ids, mask = token_ids(16), padding_mask(16)
    model = export_module(encoder(), ids, extra={"attention_mask": mask})
    with pytest.raises(ShapeMismatchError) as caught:
        evaluate(model, token_batch(ids))
    assert str(caught.value) == (
        "model has 2 inputs (input, attention_mask); choose the data input with --input-name"
    )
    with pytest.raises(ShapeMismatchError) as caught:
        evaluate(model, token_batch(ids), input_name=INPUT_NAME)
    assert str(caught.value) == (
        "model input 'attention_mask' gets no data (the data feeds input); give it as a "
        "further named input of the batch (Batch.extra)"
    )


def test_ids_and_pixels_are_never_mixed_up() -> None:
    ids = token_ids(16)
    graph = export_module(encoder(IdsOnly), ids)
    with pytest.raises(ShapeMismatchError, match=r"takes int64 values \(token ids\), the data are"):
        evaluate(graph, load_batch(ids.astype(np.float32)))
    torch.manual_seed(0)
    floats = export_module(nn.Sequential(nn.Linear(LENGTH, 8), nn.GELU()), make_inputs((6,), 16))
    with pytest.raises(ShapeMismatchError, match="takes float32 values, the data are int64"):
        evaluate(floats, token_batch(ids))


def test_pass_proxies_on_tokens_are_refused_before_any_work() -> None:
    settings = ScoreSettings(batch_size=16, proxies=("expressivity",))
    with pytest.raises(SettingsError, match="Gaussian-noise images") as caught:
        Evaluator(token_batch(token_ids(16)), settings)
    assert "\n" not in str(caught.value)
    Evaluator(token_batch(token_ids(16)), ScoreSettings(batch_size=16, proxies=("nwot",)))


# =====================================================================================
# the token batch
# =====================================================================================
def test_token_batch_fingerprint_covers_every_input() -> None:
    ids, mask = token_ids(8), padding_mask(8)
    plain = token_batch(ids)
    masked = token_batch(ids, extra={"attention_mask": mask})
    assert plain.inputs.dtype == np.int64 and plain.is_tokens and not plain.extra
    assert masked.fingerprint != plain.fingerprint
    other = token_batch(ids, extra={"attention_mask": np.ones_like(mask)})
    assert other.fingerprint != masked.fingerprint
    narrow = token_batch(ids.astype(np.int32), extra={"attention_mask": mask.astype(bool)})
    assert narrow.fingerprint == masked.fingerprint  # both kept as int64: the same bytes
    # a batch without further inputs prints as before the field existed
    x = make_inputs((3, 4, 4), 4)
    assert load_batch(x).fingerprint == fingerprint(x) == fingerprint(x, {})
    assert not load_batch(x).is_tokens


@pytest.mark.parametrize(
    ("ids", "extra", "message"),
    [
        (np.zeros((4, 3), np.float32), None, "must be integers, got dtype float32"),
        (np.zeros(5, np.int64), None, "need \\(S, T\\)"),
        (np.zeros((1, 3), np.int64), None, "need \\(S, T\\)"),
        (np.full((4, 3), -1), None, "non-negative, the smallest is -1"),
        (np.full((4, 3), VOCAB), None, f"token id {VOCAB} is outside the vocabulary of {VOCAB}"),
        (np.zeros((4, 3), np.int64), {"attention_mask": np.ones((3, 3))}, "needs 4 rows"),
    ],
)
def test_token_batch_checks_are_one_line(ids: np.ndarray, extra: object, message: str) -> None:
    with pytest.raises(DataError, match=message) as caught:
        token_batch(ids, extra=extra, vocab_size=VOCAB)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
