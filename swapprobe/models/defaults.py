"""What the models themselves say about how to score them: their space's defaults, the input
size a zoo model is made for, the vocabulary and length a token model states."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from swapprobe.models.refs import ModelRef

__all__ = [
    "TOKEN_DATA",
    "default_data",
    "input_size_of",
    "scoring_defaults",
    "token_options",
    "token_shape_of",
]

#: the offline token source models that read ids are scored on when no data is named
TOKEN_DATA = "tokens:zipf"


def scoring_defaults(refs: Iterable[ModelRef]) -> Any:
    """The S, init and repeats to score ``refs`` with when the user gives none: their space's
    declared defaults when they all come from one space (NAS-Bench-201: S=32, kaiming, 2
    repeats), else the paper's (S=16, N(0, 1) weights, 32 repeats)."""
    from swapprobe.searchspaces.base import SpaceDefaults

    spaces = {type(ref.space) for ref in refs}
    if len(spaces) == 1 and None not in {ref.space for ref in refs}:
        return next(iter(refs)).space.defaults
    return SpaceDefaults()


def default_data(
    refs: Iterable[ModelRef], defaults: Any, fallback: str, input_name: str | None = None
) -> tuple[str, str | None]:
    """The data source when none is given, and why when it is not the usual one: the space's
    declared source, else :data:`TOKEN_DATA` when every model reads token ids (see
    :func:`~swapprobe.capture.feeds.takes_token_ids`; images would not fit them), else
    ``fallback`` (embedded images)."""
    if defaults.data:
        return defaults.data, None
    from swapprobe.capture.feeds import takes_token_ids

    refs = list(refs)
    if refs and all(
        ref.space is None and takes_token_ids(ref.load(), input_name) for ref in refs
    ):
        return TOKEN_DATA, f"data {TOKEN_DATA}: the models read token ids, not images"
    return fallback, None


def input_size_of(refs: Iterable[ModelRef]) -> tuple[int, int] | None:
    """The (H, W) every model of ``refs`` that states one is made for, or None when none does.

    Raises:
        SettingsError: the models state different sizes (then one must be given).
    """
    from swapprobe.errors import SettingsError

    sizes = {ref.input_size for ref in refs if ref.input_size is not None}
    if len(sizes) > 1:
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        raise SettingsError(f"the models are made for different input sizes ({shown}); give one")
    return next(iter(sizes), None)


def token_shape_of(
    refs: Iterable[ModelRef], input_name: str | None = None
) -> tuple[set[int], set[int]]:
    """The vocabulary sizes and the sequence lengths the token models of ``refs`` state (see
    :func:`swapprobe.capture.feeds.token_shape`; empty sets when none does). Each model is
    loaded once more for it; a search space's first architecture stands for its space."""
    from swapprobe.capture.feeds import token_shape

    vocabularies: set[int] = set()
    lengths: set[int] = set()
    spaces: set[str] = set()
    for ref in refs:
        if ref.space is not None:
            if ref.space.name in spaces:
                continue
            spaces.add(ref.space.name)
            model = ref.space.build_scoring_network(ref.arch)
        else:
            model = ref.load()
        vocab, length = token_shape(model, input_name)
        vocabularies |= {vocab} if vocab is not None else set()
        lengths |= {length} if length is not None else set()
    return vocabularies, lengths


def token_options(
    refs: Iterable[ModelRef],
    data: Any,
    *,
    seq_len: int | None = None,
    vocab_size: int | None = None,
    input_name: str | None = None,
) -> dict[str, int | None]:
    """``seq_len`` and ``vocab_size`` to load ``data`` with: as given, else as the models state
    (:func:`token_shape_of`); ``{}`` for data that is no token source. None left: the
    source's own default.

    Raises:
        SettingsError: the models state different vocabularies or lengths and none is given,
            or a given vocabulary is larger than a model's embedding table.
    """
    from swapprobe.data import is_token_source
    from swapprobe.errors import SettingsError

    if not is_token_source(data):
        return {}
    vocabularies, lengths = token_shape_of(refs, input_name)
    if vocab_size is not None and vocabularies and vocab_size > min(vocabularies):
        raise SettingsError(
            f"vocab_size {vocab_size:,} is larger than the model's embedding table of "
            f"{min(vocabularies):,} rows: ids would fall outside it; give at most that"
        )
    positions = _max_positions(refs)
    if positions is not None:
        if seq_len is not None and seq_len > positions:
            raise SettingsError(
                f"{{seq_len}} {seq_len:,} is longer than the model's {positions:,} positions "
                f"(max_position_embeddings); give at most {positions:,}"
            )
        from swapprobe.data.tokens import DEFAULT_SEQ_LEN

        if seq_len is None and not lengths and positions < DEFAULT_SEQ_LEN:
            seq_len = positions  # the default length would overrun the position table
    for given, stated, what, name in (
        (vocab_size, vocabularies, "vocabularies", "vocab_size"),
        (seq_len, lengths, "sequence lengths", "seq_len"),
    ):
        if given is None and len(stated) > 1:
            shown = ", ".join(f"{v:,}" for v in sorted(stated))
            raise SettingsError(f"the models have different {what} ({shown}); give {name}")
    return {
        "seq_len": seq_len if seq_len is not None else next(iter(lengths), None),
        "vocab_size": vocab_size if vocab_size is not None else next(iter(vocabularies), None),
    }


def _max_positions(refs: Iterable[ModelRef]) -> int | None:
    """The fewest positions a torch model of ``refs`` embeds (a transformers model's
    ``config.max_position_embeddings``); None when none states it."""
    found = []
    for ref in refs:
        if ref.space is not None:
            continue
        model = ref.load()
        config = getattr(model, "config", None)
        positions = getattr(config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            found.append(positions)
    return min(found, default=None)
