"""The task loss at initialisation of a token model: a masked-token loss on the run's own ids.

ZiCo, L-SWAG's Λ and the interval rule need a labelled loss (:mod:`.gradients`); an image
classifier has cross-entropy on labels, a token encoder (FlexiBERT, any torch module that
reads ids through an ``nn.Embedding``) has none, so it gets BERT's pre-training loss:

- **Masking**: in every sequence, exactly k = max(1, round(0.15·T)) positions, drawn
  uniformly without replacement by a ``torch.Generator`` seeded by the caller (the run's seed
  and the model's key), are replaced by :data:`MASK_ID` = 0. Plain replacement, not BERT's
  80/10/10 rule: the offline token sources have no ``[MASK]`` id (id 0 is the padding id that
  no source emits, see :mod:`swapprobe.data.tokens`, and FlexiBERT's embedding keeps its row at
  zero, so a masked position carries only its position), and at initialisation the rule's
  random and unchanged 20 % would only add noise to a loss nobody trains on.
- **Head**: logits over the vocabulary at the masked positions, from the network's output
  (S, T, W): the network's own ``token_logits(hidden)`` where it has one (FlexiBERT: tied to
  its input embedding, see its ``networks`` module); else the output itself when W is the
  vocabulary size V (the model's own LM head); else ``hidden · Eᵀ`` with E the first
  ``nn.Embedding`` (V × D) when W = D, tied as BERT ties it. Otherwise refused in one line.
- **Outputs** that are not a tensor (a transformers model's output object) are read as its
  ``logits`` where it has them (an LM head's: the model's own head), else its
  ``last_hidden_state``, else its first item.
- **Loss**: cross-entropy of those logits against the original ids, averaged over the masked
  positions (BERT's), as ``loss_fn(output, targets)`` for :func:`.gradients.gradient_pass`,
  whose targets hold the original id at a masked position and :data:`IGNORE` elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from swapprobe.errors import SettingsError

__all__ = [
    "IGNORE",
    "MASK_ID",
    "MASK_RATE",
    "mask_tokens",
    "masked_count",
    "masked_token_loss",
    "token_head",
]

#: the share of each sequence's positions that is masked (BERT's 15 %)
MASK_RATE = 0.15
#: the id a masked position gets: the padding id, which no token source emits
MASK_ID = 0
#: the target of a position that is not masked (``F.cross_entropy``'s ``ignore_index``)
IGNORE = -100

Head = Callable[[torch.Tensor], torch.Tensor]


def masked_count(tokens: int) -> int:
    """Positions masked in a sequence of ``tokens``: max(1, round(0.15 · T))."""
    return max(1, round(MASK_RATE * tokens))


def mask_tokens(ids: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(masked ids, targets)`` of int64 ids (S, T): :func:`masked_count` positions of each row,
    drawn from ``seed``, set to :data:`MASK_ID`; targets are the original ids there and
    :data:`IGNORE` elsewhere. The same ids and seed give the same masks."""
    if ids.dim() != 2:
        raise SettingsError(f"token ids must be (sequences, tokens), got shape {tuple(ids.shape)}")
    rows, tokens = ids.shape
    gen = torch.Generator().manual_seed(int(seed))
    chosen = torch.rand((rows, tokens), generator=gen).argsort(dim=1)[:, : masked_count(tokens)]
    masked = torch.zeros((rows, tokens), dtype=torch.bool)
    masked.scatter_(1, chosen, True)
    targets = torch.where(masked, ids, torch.full_like(ids, IGNORE))
    return torch.where(masked, torch.full_like(ids, MASK_ID), ids), targets


def _first_embedding(module: nn.Module) -> nn.Embedding | None:
    return next((m for m in module.modules() if isinstance(m, nn.Embedding)), None)


def token_head(module: nn.Module, width: int) -> Head:
    """The map from hidden vectors (M, ``width``) to vocabulary logits (M, V) (module docstring:
    the network's own ``token_logits``, its LM head's output, or a head tied to E)."""
    own = getattr(module, "token_logits", None)
    if callable(own):
        return own
    embedding = _first_embedding(module)
    if embedding is None:
        raise SettingsError(
            "the masked-token loss needs the model's vocabulary: a token model with no "
            "nn.Embedding (and no token_logits method) has none"
        )
    vocab, dim = embedding.weight.shape
    if width == vocab:
        return lambda hidden: hidden
    if width == dim:
        return lambda hidden: hidden @ embedding.weight.T
    raise SettingsError(
        f"the token model's outputs are {width} wide, neither its vocabulary ({vocab}: an LM "
        f"head's logits) nor its embedding width ({dim}: a head tied to the embedding); give "
        "the module a token_logits(hidden) method"
    )


def _output_tensor(output: Any) -> torch.Tensor:
    """The tensor of a model's output (module docstring, "Outputs")."""
    if isinstance(output, torch.Tensor):
        return output
    for name in ("logits", "last_hidden_state"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise SettingsError(
        f"the masked-token loss needs the model's per-token outputs; it returned a "
        f"{type(output).__name__}"
    )


def masked_token_loss(module: nn.Module) -> Callable[[Any, torch.Tensor], torch.Tensor]:
    """``loss_fn(output, targets)``: cross-entropy of the vocabulary logits at the masked
    positions (targets ≠ :data:`IGNORE`) of ``module``'s output (S, T, W), averaged over them."""

    def loss(found: Any, targets: torch.Tensor) -> torch.Tensor:
        output = _output_tensor(found)
        if output.dim() != 3 or tuple(output.shape[:2]) != tuple(targets.shape):
            raise SettingsError(
                f"the masked-token loss needs one output vector per token, (S, T, W) for ids "
                f"{tuple(targets.shape)}; the model gives {tuple(output.shape)}"
            )
        chosen = targets != IGNORE
        hidden = output[chosen]
        logits = token_head(module, int(output.shape[-1]))(hidden)
        return F.cross_entropy(logits, targets[chosen])

    return loss
