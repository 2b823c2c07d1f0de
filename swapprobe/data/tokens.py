"""Token inputs for Transformer models: ``tokens:...`` sources and :func:`token_batch`.

A token batch holds int64 ids (S, T) in ``inputs`` and, in ``extra``, an ``attention_mask``
(int64, 1 = a real token) and ``token_type_ids`` (int64, all 0: one segment), BERT's two further
inputs; a model is fed those it declares and not the others. Every source below yields full
sequences of exactly T tokens (no padding, so the mask is all ones): the reference scoring of
FlexiBERT truncates documents to 512 tokens and pads to the longest, and most documents fill
the window. Ids start at :data:`FIRST_ID` = 1: id 0 is kept for padding (BERT's ``[PAD]``).

Sources
    * ``tokens:zipf`` — the offline default: a seeded synthetic stream. Token of rank k
      (k = 1 … V − 1) is id k, drawn i.i.d. with probability ∝ k^-s, s = :data:`ZIPF_EXPONENT`
      = 1.1 (the rank-frequency slope of ``tokens:english`` measures 0.99 over its 100 most
      frequent tokens and 1.15 over its 1,000 most frequent). Draws are row-major from
      ``numpy.random.default_rng(seed)``, so the first k sequences of a larger batch equal a
      batch of k (at the same T).
    * ``tokens:uniform`` — ids uniform over 1 … V − 1, seeded likewise.
    * ``tokens:english`` — real English that ships with Python: the ``pydoc_data.topics``
      documentation (79 topics, ~465,000 characters in Python 3.11; it changes between Python
      versions, which the source description names), topics in name order, tokenised by the
      offline scheme below and cut into consecutive documents of T tokens (~100,000 tokens:
      ~780 documents of 128).
    * ``tokens:PATH.txt`` — a UTF-8 text file, tokenised and cut the same way; with
      ``tokenizer`` (a Hugging Face tokenizer's name or folder, e.g. ``bert-base-uncased``)
      by ``transformers.AutoTokenizer`` instead, from local files only (no special tokens
      added). ``tokenizer`` applies to ``tokens:english`` too.
    * ``tokens:PATH.npy`` — an integer array (N, T') of token ids, used as given (T = T';
      ``seq_len`` must match when given), checked: integers, in 0 … V − 1, N ≥ S.

    Text sources take the first S documents (``pick="first"``) or S distinct ones drawn with
    the seed (``pick="random"``); ``.npy`` files likewise take rows.

The offline scheme (no vocabulary files needed): the text is lower-cased; each maximal run of
letters and digits is a word, each run of one repeated other visible character (``"--"``,
``"("``, ``"_"``) a token of its own; whitespace separates. A token ``w`` gets id
``1 + zlib.crc32(w.encode("utf-8")) % (V - 1)``: stable across runs, machines and Python
versions, and equal words always share an id (distinct words may collide, as subwords of a
real vocabulary share rows).

T and V: ``seq_len`` and ``vocab_size`` as given, else (the scoring entry points read them from
the model, see :func:`swapprobe.models.token_shape_of`) :data:`DEFAULT_SEQ_LEN` = 128 tokens
and :data:`DEFAULT_VOCAB_SIZE` = 30,522 ids (BERT's and ELECTRA's uncased WordPiece vocabulary,
the one FlexiBERT is scored with); a tokenizer's own vocabulary when one is named.
"""

from __future__ import annotations

import re
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from swapprobe.data.common import Batch, LoadRequest, draw_indices, fingerprint, is_int, reason_of
from swapprobe.errors import DataError, SettingsError

__all__ = [
    "DEFAULT_SEQ_LEN",
    "DEFAULT_VOCAB_SIZE",
    "FIRST_ID",
    "PREFIX",
    "ZIPF_EXPONENT",
    "english_text",
    "is_token_source",
    "load_tokens",
    "text_ids",
    "token_batch",
]

PREFIX = "tokens:"
DEFAULT_SEQ_LEN = 128
DEFAULT_VOCAB_SIZE = 30522
FIRST_ID = 1
ZIPF_EXPONENT = 1.1
#: further inputs every token source supplies (fed to the models that declare them)
FURTHER_INPUTS = ("attention_mask", "token_type_ids")
_NAMED = ("zipf", "uniform", "english")
_TOKEN = re.compile(r"[^\W_]+|([^\s\w]|_)\1*")


def is_token_source(data: object) -> bool:
    """Whether ``data`` names a token source (a string starting with ``tokens:``)."""
    return isinstance(data, str) and data.lower().startswith(PREFIX)


def load_tokens(name: str, request: LoadRequest) -> Batch:
    """The registered loader of every ``tokens:...`` name (see the module docstring)."""
    what = name[len(PREFIX) :]
    if request.input_size is not None:
        raise SettingsError("input_size is for images; token sources take seq_len instead")
    seq_len = _positive(request.seq_len, "seq_len")
    vocab = _positive(request.vocab_size, "vocab_size")
    if vocab is not None and vocab <= FIRST_ID:
        raise SettingsError(f"vocab_size must be at least {FIRST_ID + 1}, got {vocab}")
    kind = what.lower()
    if request.tokenizer is not None and (kind in ("zipf", "uniform") or kind.endswith(".npy")):
        raise SettingsError(
            f"a tokenizer applies to text (tokens:english, tokens:FILE.txt), not {name}"
        )
    if kind in ("zipf", "uniform"):
        return _synthetic(kind, request, seq_len or DEFAULT_SEQ_LEN, vocab or DEFAULT_VOCAB_SIZE)
    if kind == "english":
        text, origin = english_text(), f"Python {_python()} pydoc topics"
        return _from_text(text, f"{PREFIX}english ({origin})", request, seq_len, vocab)
    path = Path(what).expanduser()
    if path.suffix.lower() == ".npy":
        return _from_npy(path, request, seq_len, vocab)
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise DataError(f"token text file {path} does not exist; check the path")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {path} as UTF-8 text ({reason_of(exc)})") from exc
        return _from_text(text, f"{PREFIX}{path}", request, seq_len, vocab)
    raise DataError(
        f"unknown token source {name!r}: use tokens:zipf, tokens:uniform, tokens:english, "
        "tokens:FILE.txt or tokens:FILE.npy"
    )


def english_text() -> str:
    """The English of ``tokens:english``: Python's pydoc topics, in topic-name order."""
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def text_ids(text: str, vocab_size: int) -> np.ndarray:
    """The offline scheme: int64 ids of ``text``'s tokens (see the module docstring)."""
    span = vocab_size - FIRST_ID
    ids = [
        FIRST_ID + zlib.crc32(m.group(0).encode("utf-8")) % span
        for m in _TOKEN.finditer(text.lower())
    ]
    return np.asarray(ids, dtype=np.int64)


def token_batch(
    ids: np.ndarray,
    *,
    extra: Mapping[str, np.ndarray] | None = None,
    source: str | None = None,
    vocab_size: int | None = None,
) -> Batch:
    """A batch of token ids (S, T), copied as int64, with further named inputs.

    Args:
        ids: integer token ids, shape (S, T), S ≥ 2, every id ≥ 0 (and < ``vocab_size``).
        extra: further named inputs with S rows each (e.g. ``attention_mask``); integers and
            booleans are kept as int64, reals as float32.
        source: the batch's description (default: its shape).
        vocab_size: when given, every id must be below it.

    Raises:
        DataError: ids that are not integers, not 2-D, fewer than 2 rows, out of range; a
            further input without S rows or not numeric.
    """
    array = np.asarray(ids)
    if array.dtype.kind not in "iu":
        raise DataError(f"token ids must be integers, got dtype {array.dtype}")
    if array.ndim != 2 or len(array) < 2 or array.shape[1] < 1:
        raise DataError(
            f"token ids have shape {array.shape}; they need (S, T): S ≥ 2 sequences of T tokens"
        )
    low, high = int(array.min()), int(array.max())
    if low < 0:
        raise DataError(f"token ids must be non-negative, the smallest is {low}")
    if vocab_size is not None:
        if not is_int(vocab_size) or vocab_size < 1:
            raise DataError(f"vocab_size must be a positive integer, got {vocab_size!r}")
        if high >= vocab_size:
            raise DataError(
                f"token id {high} is outside the vocabulary of {vocab_size} (ids 0-"
                f"{vocab_size - 1}); give the model's vocab size or other ids"
            )
    inputs = np.array(array, dtype=np.int64, order="C", copy=True)
    further = {name: _further(name, value, len(inputs)) for name, value in (extra or {}).items()}
    text = source or f"token ids {inputs.shape[0]}x{inputs.shape[1]}"
    return Batch(
        inputs=inputs, source=text, fingerprint=fingerprint(inputs, further), extra=further
    )


def _further(name: str, value: np.ndarray, samples: int) -> np.ndarray:
    array = np.asarray(value)
    if not isinstance(name, str) or not name:
        raise DataError(f"a further input needs a name, got {name!r}")
    if array.ndim < 1 or len(array) != samples:
        raise DataError(f"input {name!r} has shape {array.shape}; it needs {samples} rows")
    kind = array.dtype.kind
    if kind not in "biuf":
        raise DataError(f"input {name!r} has dtype {array.dtype}; give numbers")
    dtype = np.float32 if kind == "f" else np.int64
    return np.array(array, dtype=dtype, order="C", copy=True)


def _positive(value: object, label: str) -> int | None:
    if value is None:
        return None
    if not is_int(value) or int(value) < 1:  # type: ignore[call-overload]
        raise SettingsError(f"{label} must be a positive integer, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def _python() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def _further_inputs(samples: int, length: int) -> dict[str, np.ndarray]:
    """Full sequences: every position a token (mask 1), one segment (type 0)."""
    return {
        "attention_mask": np.ones((samples, length), dtype=np.int64),
        "token_type_ids": np.zeros((samples, length), dtype=np.int64),
    }


def _synthetic(kind: str, request: LoadRequest, length: int, vocab: int) -> Batch:
    rng = np.random.default_rng(request.seed)
    shape = (request.batch_size, length)
    last = vocab - 1
    if kind == "uniform":
        ids = rng.integers(FIRST_ID, vocab, shape, dtype=np.int64)
        law = f"uniform over ids {FIRST_ID}-{last}"
    else:
        ranks = np.arange(1, vocab - FIRST_ID + 1, dtype=np.float64)
        cdf = np.cumsum(ranks**-ZIPF_EXPONENT)
        cdf /= cdf[-1]
        drawn = np.searchsorted(cdf, rng.random(shape), side="right")
        ids = FIRST_ID + np.minimum(drawn, len(ranks) - 1).astype(np.int64)
        law = f"Zipf s={ZIPF_EXPONENT} over ids {FIRST_ID}-{last} (id = rank)"
    source = f"{PREFIX}{kind} {law}, {shape[0]}x{length}, seed {request.seed}"
    return token_batch(ids, extra=_further_inputs(*shape), source=source, vocab_size=vocab)


def _from_text(
    text: str, origin: str, request: LoadRequest, seq_len: int | None, vocab: int | None
) -> Batch:
    length = seq_len or DEFAULT_SEQ_LEN
    if request.tokenizer is not None:
        stream, vocab, scheme = _tokenizer_ids(text, request.tokenizer, vocab)
    else:
        vocab = vocab or DEFAULT_VOCAB_SIZE
        stream, scheme = text_ids(text, vocab), f"hashed words into ids {FIRST_ID}-{vocab - 1}"
    documents = len(stream) // length
    samples = request.batch_size
    if documents < samples:
        raise DataError(
            f"{origin} gives {len(stream):,} tokens: {documents} documents of {length}, fewer "
            f"than the {samples} asked for; lower the batch size or seq_len, or give more text"
        )
    chunks = stream[: documents * length].reshape(documents, length)
    if request.pick == "first":
        ids, which = chunks[:samples], f"documents 0-{samples - 1}"
    else:
        index = draw_indices(documents, samples, request.seed, origin)
        ids, which = chunks[index], f"{samples} random documents (seed {request.seed})"
    source = f"{origin}, {scheme}, {which} of {length} tokens"
    return token_batch(ids, extra=_further_inputs(samples, length), source=source, vocab_size=vocab)


def _from_npy(path: Path, request: LoadRequest, seq_len: int | None, vocab: int | None) -> Batch:
    if not path.is_file():
        raise DataError(f"token file {path} does not exist; check the path")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # header, pickle-refusal errors all mean an unusable file
        from swapprobe.data.files import not_an_array_file

        raise not_an_array_file(path, exc, "give token text as tokens:FILE.txt") from exc
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "iu":
        raise DataError(
            f"{path} holds {getattr(array, 'dtype', type(array).__name__)} values; token ids "
            "must be integers"
        )
    if array.ndim != 2:
        raise DataError(f"{path} holds an array of shape {array.shape}; token ids need (N, T)")
    if seq_len is not None and array.shape[1] != seq_len:
        raise DataError(
            f"{path} holds sequences of {array.shape[1]} tokens, seq_len asks for {seq_len}; "
            "drop seq_len or give other ids"
        )
    samples = request.batch_size
    if len(array) < samples:
        raise DataError(
            f"asked for {samples} sequences but {path} holds {len(array)}; lower the batch size"
        )
    if request.pick == "first":
        ids, which = np.asarray(array[:samples]), f"rows 0-{samples - 1}"
    else:
        index = draw_indices(len(array), samples, request.seed, str(path))
        ids, which = (
            np.asarray(array[np.sort(index)])[np.argsort(np.argsort(index))],
            (f"{samples} random rows (seed {request.seed})"),
        )
    vocab = vocab or DEFAULT_VOCAB_SIZE
    source = f"{PREFIX}{path} {which}, {samples}x{array.shape[1]}, vocab {vocab}"
    try:
        return token_batch(ids, extra=_further_inputs(*ids.shape), source=source, vocab_size=vocab)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None


def _tokenizer_ids(text: str, name: str, vocab: int | None) -> tuple[np.ndarray, int, str]:
    """``text``'s ids by the tokenizer ``name`` (local files only), its vocabulary size (the
    model's when known, else the tokenizer's), and a description."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise DataError(
            f"tokenizer {name!r} needs the transformers package (pip install transformers "
            "tokenizers); without a tokenizer the built-in offline scheme is used"
        ) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception as exc:  # OSError, ValueError, HF's own: all mean "not here"
        why = reason_of(exc).split(". ")[0][:160]  # HF's first sentence; the rest is advice
        raise DataError(
            f"tokenizer {name!r} is not available offline: its vocabulary files are not on this "
            f"machine and cannot be fetched here ({why}); give a local tokenizer folder, or no "
            "tokenizer for the built-in offline scheme"
        ) from None
    ids = np.asarray(
        tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"], dtype=np.int64
    )
    size = vocab or len(tokenizer)
    return ids, size, f"tokenizer {name}"
