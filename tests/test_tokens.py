"""Token models: int64 ids and further named inputs through both backends, against the
torch-hook oracle of ``test_capture_gates`` (sign of each GELU module's input, flattened per
sample, distinct patterns by ``torch.unique``)."""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from swapprobe.capture.export import INPUT_NAME, export_module
from swapprobe.capture.feeds import token_shape
from swapprobe.data import Batch, fingerprint, load_batch, token_batch
from swapprobe.data.tokens import english_text, text_ids
from swapprobe.errors import DataError, ModelLoadError, SettingsError, ShapeMismatchError
from swapprobe.evaluate import Evaluator
from swapprobe.models.zoos import import_zoo
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
        "model has 2 inputs (input, attention_mask); choose the data input with input_name"
    )
    assert caught.value.option == "input_name"  # the CLI writes it as --input-name
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


def test_token_models_take_the_torch_pass_proxies_but_vkdnw_before_any_work() -> None:
    Evaluator(token_batch(token_ids(16)), ScoreSettings(batch_size=16, proxies=("expressivity",)))
    settings = ScoreSettings(batch_size=16, proxies=("zico", "vkdnw"))
    with pytest.raises(SettingsError, match="vkdnw's Fisher matrix") as caught:
        Evaluator(token_batch(token_ids(16)), settings)
    assert "\n" not in str(caught.value)


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


# =====================================================================================
# token sources
# =====================================================================================
@pytest.mark.parametrize("kind", ["zipf", "uniform"])
def test_synthetic_streams_are_seeded_in_range_and_full_length(kind: str) -> None:
    def load(seed: int, samples: int = 8) -> Batch:
        return load_batch(
            f"tokens:{kind}", batch_size=samples, seed=seed, seq_len=16, vocab_size=50
        )

    first, again, other = load(3), load(3), load(4)
    assert first.fingerprint == again.fingerprint
    np.testing.assert_array_equal(first.inputs, again.inputs)
    assert other.fingerprint != first.fingerprint
    assert first.inputs.shape == (8, 16) and first.inputs.dtype == np.int64
    assert first.inputs.min() >= 1 and first.inputs.max() <= 49  # 0 is padding
    np.testing.assert_array_equal(first.extra["attention_mask"], np.ones((8, 16), np.int64))
    np.testing.assert_array_equal(first.extra["token_type_ids"], np.zeros((8, 16), np.int64))
    np.testing.assert_array_equal(load(3, samples=4).inputs, first.inputs[:4])  # row-major draws
    assert f"tokens:{kind}" in first.source and "8x16, seed 3" in first.source


def test_zipf_frequencies_follow_the_law() -> None:
    vocab = 30522
    ids = load_batch("tokens:zipf", batch_size=64, seq_len=128, vocab_size=vocab).inputs
    counts = np.bincount(ids.ravel(), minlength=vocab)
    assert counts[0] == 0
    assert counts[1] > counts[2] > counts[10] > counts[100]
    # rank 1's share against 1 / Σ_k k^-1.1 (computed here), within 5 standard errors
    p1 = 1.0 / math.fsum(k**-1.1 for k in range(1, vocab))
    n = ids.size
    assert abs(counts[1] / n - p1) < 5 * math.sqrt(p1 * (1 - p1) / n)


def test_the_offline_text_scheme_gives_the_hand_computed_ids(tmp_path: Path) -> None:
    text = "Hello, hello -- World!\n(x_y)"
    # by hand: lower-cased; letter/digit runs are words, a run of one other character a token
    tokens = ["hello", ",", "hello", "--", "world", "!", "(", "x", "_", "y", ")"]
    vocab = 101
    expected = [1 + zlib.crc32(t.encode()) % (vocab - 1) for t in tokens]
    assert expected[0] == 1 + 0x3610A686 % 100 == 71  # CRC-32 of "hello" is 0x3610A686
    np.testing.assert_array_equal(text_ids(text, vocab), expected)
    path = tmp_path / "words.txt"
    path.write_text(text, encoding="utf-8")
    batch = load_batch(f"tokens:{path}", batch_size=3, seq_len=3, vocab_size=vocab)
    np.testing.assert_array_equal(batch.inputs, np.reshape(expected[:9], (3, 3)))
    assert batch.source == (
        f"tokens:{path}, hashed words into ids 1-100, documents 0-2 of 3 tokens"
    )
    picked = load_batch(f"tokens:{path}", batch_size=2, seq_len=3, vocab_size=vocab, pick="random")
    rows = {tuple(row) for row in np.reshape(expected[:9], (3, 3))}
    assert {tuple(row) for row in picked.inputs} <= rows and len(
        set(map(tuple, picked.inputs))
    ) == 2
    with pytest.raises(DataError) as caught:
        load_batch(f"tokens:{path}", batch_size=4, seq_len=3, vocab_size=vocab)
    assert str(caught.value) == (
        f"tokens:{path} gives 11 tokens: 3 documents of 3, fewer than the 4 asked for; lower "
        "the batch size or seq_len, or give more text"
    )


def test_english_loads_offline_from_python_itself() -> None:
    batch = load_batch("tokens:english", batch_size=16)
    assert batch.inputs.shape == (16, 128) and batch.inputs.dtype == np.int64
    assert batch.inputs.min() >= 1 and batch.inputs.max() < 30522
    assert batch.source.startswith(f"tokens:english (Python {sys.version_info.major}.")
    assert load_batch("tokens:english", batch_size=16).fingerprint == batch.fingerprint
    # consecutive documents of the one text stream
    stream = text_ids(english_text(), 30522)
    np.testing.assert_array_equal(batch.inputs.ravel(), stream[: 16 * 128])
    assert len(stream) > 50_000  # room for S=128 sequences of 256 tokens


def npy(tmp_path: Path, array: np.ndarray) -> str:
    path = tmp_path / "ids.npy"
    np.save(path, array)
    return f"tokens:{path}"


def test_npy_ids_are_used_as_given(tmp_path: Path) -> None:
    ids = np.arange(5 * 7).reshape(5, 7) % VOCAB
    batch = load_batch(npy(tmp_path, ids.astype(np.int32)), batch_size=4, vocab_size=VOCAB)
    np.testing.assert_array_equal(batch.inputs, ids[:4])
    assert batch.inputs.dtype == np.int64 and "rows 0-3, 4x7, vocab 40" in batch.source
    picked = load_batch(npy(tmp_path, ids), batch_size=3, vocab_size=VOCAB, pick="random", seed=2)
    index = np.random.default_rng(2).choice(5, size=3, replace=False)
    np.testing.assert_array_equal(picked.inputs, ids[index])


@pytest.mark.parametrize(
    ("array", "options", "message"),
    [
        (np.zeros((4, 3), np.float32), {}, "holds float32 values; token ids must be integers"),
        (np.zeros(8, np.int64), {}, "holds an array of shape \\(8,\\); token ids need \\(N, T\\)"),
        (np.zeros((3, 3), np.int64), {}, "asked for 4 sequences but .* holds 3"),
        (np.full((4, 3), 40), {}, "token id 40 is outside the vocabulary of 40"),
        (np.zeros((4, 3), np.int64), {"seq_len": 5}, "sequences of 3 tokens, seq_len asks for 5"),
    ],
)
def test_npy_checks_are_one_line(
    tmp_path: Path, array: np.ndarray, options: dict, message: str
) -> None:
    with pytest.raises(DataError, match=message) as caught:
        load_batch(npy(tmp_path, array), batch_size=4, vocab_size=VOCAB, **options)
    assert "\n" not in str(caught.value)


def test_token_source_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown token source 'tokens:klingon'"):
        load_batch("tokens:klingon")
    with pytest.raises(DataError, match="does not exist"):
        load_batch(f"tokens:{tmp_path / 'missing.npy'}")
    with pytest.raises(SettingsError, match="seq_len applies to token sources"):
        load_batch("synthetic", seq_len=8)
    with pytest.raises(SettingsError, match="a tokenizer applies to text"):
        load_batch("tokens:zipf", tokenizer="bert-base-uncased")
    with pytest.raises(SettingsError, match="input_size is for images"):
        load_batch("tokens:zipf", input_size=(8, 8))
    with pytest.raises(SettingsError, match="vocab_size must be at least 2"):
        load_batch("tokens:uniform", vocab_size=1)
    # the prefix is any letter case; a path after it keeps its own
    assert (
        load_batch("TOKENS:Zipf", seq_len=4).fingerprint
        == load_batch("tokens:zipf", seq_len=4).fingerprint
    )


def test_a_tokenizer_that_is_not_here_is_one_line() -> None:
    with pytest.raises(DataError) as caught:
        load_batch("tokens:english", tokenizer="no-such-org/no-such-tokenizer")
    text = str(caught.value)
    assert "\n" not in text
    assert "not available offline" in text or "needs the transformers package" in text


def test_a_local_tokenizer_tokenises_text(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", ",", "!", "##s"]
    wordpiece = tokenizers.Tokenizer(
        tokenizers.models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]")
    )
    wordpiece.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    folder = tmp_path / "tok"
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=wordpiece, unk_token="[UNK]"
    ).save_pretrained(folder)
    text = tmp_path / "text.txt"
    text.write_text("Hello, worlds! Hello world, hello")
    batch = load_batch(f"tokens:{text}", batch_size=2, seq_len=4, tokenizer=str(folder))
    # by hand from the vocabulary: hello , world ##s | ! hello world ,  (no special tokens)
    np.testing.assert_array_equal(batch.inputs, [[5, 7, 6, 9], [8, 5, 6, 7]])
    assert f"tokenizer {folder}" in batch.source


# =====================================================================================
# sequence length and vocabulary read from the model; the command line
# =====================================================================================
def test_token_shape_is_read_from_the_graph_and_the_module() -> None:
    ids = token_ids(4)
    assert token_shape(export_module(encoder(IdsOnly), ids)) == (VOCAB, LENGTH)
    masked = export_module(encoder(), ids, extra={"attention_mask": padding_mask(4)})
    assert token_shape(masked) == (VOCAB, LENGTH)  # the ids, not the mask, index the table
    assert token_shape(encoder()) == (VOCAB, None)
    floats = export_module(nn.Sequential(nn.Linear(6, 8), nn.GELU()), make_inputs((6,), 4))
    assert token_shape(floats) == (None, None)


def test_score_reads_the_length_and_vocabulary_of_the_model() -> None:
    from swapprobe import score

    result = score(encoder(IdsOnly), data="tokens:zipf", repeats=2, seq_len=LENGTH)
    assert f"over ids 1-{VOCAB - 1}" in result.metadata["data_source"]
    assert result.units == UNITS


@pytest.fixture(scope="module")
def token_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tiny_tokens.onnx"
    onnx.save(export_module(encoder(IdsOnly), token_ids(4)), path)
    return path


def test_cli_scores_a_token_model_on_zipf_tokens(
    token_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_cli import run

    code, out, err = run(capsys, "score", token_onnx, "--data", "tokens:zipf", "--repeats", 2)
    assert code == 0, err
    # T and V from the graph: its fixed length 6 and its 40-row embedding table
    assert f"tokens:zipf Zipf s=1.1 over ids 1-{VOCAB - 1} (id = rank), 16x{LENGTH}" in out
    assert "counted Gelu 192" in err
    code, out, err = run(
        capsys, "score", token_onnx, "--data", "tokens:uniform", "--vocab-size", 20, "-S", 8
    )
    assert code == 0, err
    assert f"tokens:uniform uniform over ids 1-19, 8x{LENGTH}" in out
    for argv, message in (
        (["--seq-len", 8], "expects samples of shape (6), data has (8,)"),
        (["--vocab-size", 100], "vocab_size 100 is larger than the model's embedding table"),
        (["--proxies", "expressivity"], "need a backward pass"),
    ):
        code, out, err = run(capsys, "score", token_onnx, "--data", "tokens:zipf", *argv)
        assert code != 0 and message in err and err.count("\n") == 1, (argv, err)


def test_cli_help_states_the_token_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_cli import run

    _, out, _ = run(capsys, "score", "--help")
    flat = " ".join(out.split())
    assert "--seq-len T" in flat and "the model's fixed input length, else 128" in flat
    assert "--vocab-size V" in flat and "else 30522" in flat
    assert "--tokenizer NAME|DIR" in flat and "default: a built-in offline scheme" in flat


# =====================================================================================
# a transformers BERT, built from a config (random weights, nothing downloaded)
# =====================================================================================
@pytest.fixture(scope="module")
def bert() -> nn.Module:
    pytest.importorskip("transformers", reason="transformers is not installed")
    try:
        import torchvision  # noqa: F401  (transformers' model code imports it when installed)
    except Exception:  # a wheel for another torch: the zoo's own repair, or none
        with contextlib.suppress(ModelLoadError):
            import_zoo("torchvision", "torchvision")
    try:
        from transformers import BertConfig, BertModel
    except Exception as error:
        pytest.skip(f"transformers unusable here: {str(error)[:120]}")
    config = BertConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,  # the oracle runs in training mode (for BatchNorm)
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    return BertModel(config).eval()


BERT_UNITS = 2 * 8 * 32  # layers × tokens × intermediate size


def test_bert_matches_the_oracle_on_both_backends(bert: nn.Module) -> None:
    from transformers.activations import GELUActivation

    batch = load_batch("tokens:zipf", batch_size=16, seq_len=8, vocab_size=100)
    assert token_shape(bert) == (100, None)
    keywords = dict(batch.extra)  # BERT takes attention_mask and token_type_ids
    expected = [
        oracle_patterns(
            reference_init(bert, SEED, r), batch.inputs, gates=(GELUActivation,), **keywords
        )
        for r in range(2)
    ]
    assert expected[0].shape == (16, BERT_UNITS)
    for backend in ("onnx", "torch"):
        result = evaluate(bert, batch, backend=backend)
        assert result.units == BERT_UNITS, backend
        for repeat, bits in enumerate(expected):
            np.testing.assert_array_equal(result.patterns[repeat].to_bool(), bits, err_msg=backend)
            assert result.swap_per_repeat[repeat] == oracle_swap(bits)


def test_bert_gets_the_masked_token_loss_through_its_output_object(bert: nn.Module) -> None:
    """BertModel returns an output object whose last hidden state is as wide as its word
    embedding: the head is tied to it. Its pooler is not on the masked tokens' path, so its
    gradient is zero on both batches and no weight of it enters ZiCo or Λ."""
    batch = load_batch("tokens:zipf", batch_size=16, seq_len=8, vocab_size=100)
    result = evaluate(bert, batch, backend="torch", repeats=1, proxies=("zico", "lswag-lambda"))
    names = [layer.name for layer in result.gradient_layers]
    linears = [name for name, m in bert.named_modules() if isinstance(m, nn.Linear)]
    assert names == linears and names[-1] == "pooler.dense"
    pooler = result.gradient_layers[-1]
    assert (pooler.zico_weights, pooler.inv_std_weights, pooler.abs_mean) == (0, 0, 0.0)
    assert all(layer.inv_std_weights > 0 for layer in result.gradient_layers[:-1])
    assert math.isfinite(result.proxies["zico"]) and math.isfinite(result.proxies["lswag-lambda"])


def test_bert_exported_by_torch_scores_as_the_module(bert: nn.Module, tmp_path: Path) -> None:
    """A user's export with torch's default (dynamo) exporter: three named int64 inputs,
    batch and sequence axes free, weights renamed and pre-transposed by the exporter. Scored
    with the weights as they are, the same bits as the module itself on the torch backend.

    (torch's TorchScript exporter cannot export transformers 5's BertModel from outside: it
    fills every parameter up to ``use_cache`` positionally, which the model's own input
    wrapper then passes again; swapprobe's :func:`export_module` passes only the inputs.)"""
    pytest.importorskip("onnxscript", reason="torch's dynamo exporter needs onnxscript")
    batch = load_batch("tokens:english", batch_size=16, seq_len=8, vocab_size=100)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = [torch.from_numpy(a[:2]) for a in (batch.inputs, *batch.extra.values())]
    path = tmp_path / "bert.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            bert,
            tuple(example),  # BertModel's first three parameters, in this order
            str(path),
            input_names=names,
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in names},
            dynamo=True,
        )
    graph_inputs = [v.name for v in onnx.load(path).graph.input]
    assert graph_inputs[:3] == names
    assert token_shape(onnx.load(path)) == (100, None)
    from_file = evaluate(path, batch, init="keep", repeats=1)
    from_module = evaluate(bert, batch, init="keep", repeats=1, backend="torch")
    assert from_file.units == from_module.units == BERT_UNITS
    np.testing.assert_array_equal(from_file.patterns[0].words, from_module.patterns[0].words)


def test_ids_beyond_the_models_vocabulary_are_one_line_on_both_backends() -> None:
    batch = load_batch("tokens:uniform", batch_size=8, seq_len=LENGTH, vocab_size=VOCAB + 10)
    assert batch.inputs.max() >= VOCAB
    module = encoder(IdsOnly)
    for model, backend in (
        (module, "torch"),
        (module, "onnx"),
        (export_module(module, token_ids(4)), "onnx"),
    ):
        with pytest.raises(
            DataError, match=f"outside the model's vocabulary of {VOCAB} "
        ) as caught:
            evaluate(model, batch, backend=backend)
        assert "\n" not in str(caught.value)
