"""The FlexiBERT encoder as torch modules, each able to write its own ONNX graph.

Written from the definitions in ``SPEC.md`` ("FlexiBERT space"), which were read from the
encoder of SWAP_Universal (github.com/pym1024/SWAP_Universal, ``src/utils/modeling_electra.py``,
Academic Free License 3.0; itself modified from the transformers library's ELECTRA and
ConvBERT models). No code of it is reused; kept apart from :mod:`.space` so that parsing,
sampling and counting need no torch.

Two choices make the graph plain ONNX that onnxruntime runs:

* the 2-D transforms are fixed matrix products. Re(2-D DFT) of X (T × D) is
  ``C_T X C_D − S_T X S_D`` with ``C[j, k] = cos(2πjk/N)``, ``S[j, k] = sin(2πjk/N)``; the
  unnormalised 2-D DCT-II is ``D_T X D_Dᵀ`` with ``D[k, n] = 2 cos(πk(2n + 1)/(2N))``. The
  per-head transform over a head's features is one block-diagonal matrix over all of them.
  The matrices depend on T, so they are made for the T of the data (the emitter's sample
  shape) and written as ``Constant`` nodes, never initializers: no init scheme re-draws them;
* the dynamic convolution's unfold over tokens is a padded tensor sliced k times.

The forward takes int64 token ids (S, T) alone: token types all zero, no attention mask
(the reference computes a mask and never applies it). Dropout is off unless the network is
built with ``dropout=True`` (the reference scores in training mode, p = 0.1).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from swapprobe.searchspaces.flexibert.encoding import (
    EMBEDDING_SIZE,
    MAX_POSITIONS,
    TYPE_VOCAB,
    VOCAB_SIZE,
    FlexiBertArch,
    FlexiLayer,
    dsc_sizes,
)

if TYPE_CHECKING:
    from swapprobe.capture.emit import GraphEmitter

__all__ = [
    "DFT_DCT_EPS",
    "DynamicConvMixer",
    "FeedForward",
    "FlexiBertNetwork",
    "FlexiEmbeddings",
    "LinearTransformMixer",
    "SelfAttentionMixer",
    "dct_matrix",
    "dft_matrices",
    "proxy_blocks",
]

LAYER_NORM_EPS = 1e-12
DROPOUT_P = 0.1
INIT_STD = 0.02
#: tolerance of the transform matrices' tests (float32 products of float64-made matrices)
DFT_DCT_EPS = 1e-4


# --- fixed transform matrices ---------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def dft_matrices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, S) of the length-``n`` DFT, ``F = C − iS`` (float32, made in float64)."""
    index = np.arange(n, dtype=np.float64)
    angle = 2.0 * np.pi * np.outer(index, index) / n
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


@functools.lru_cache(maxsize=32)
def dct_matrix(n: int) -> np.ndarray:
    """D of the unnormalised length-``n`` DCT-II: ``y[k] = Σ_n D[k, n] x[n]``,
    ``D[k, n] = 2 cos(πk(2n + 1)/(2n))`` (scipy's ``dct(type=2, norm=None)``)."""
    k = np.arange(n, dtype=np.float64)[:, None]
    m = np.arange(n, dtype=np.float64)[None, :]
    return (2.0 * np.cos(np.pi * k * (2.0 * m + 1.0) / (2.0 * n))).astype(np.float32)


def _block_diagonal(block: np.ndarray, count: int) -> np.ndarray:
    size = block.shape[0]
    out = np.zeros((size * count, size * count), np.float32)
    for i in range(count):
        out[i * size : (i + 1) * size, i * size : (i + 1) * size] = block
    return out


# --- emission helpers (ONNX nodes for the layer types used here) -------------------------------
def _emit_linear(g: GraphEmitter, linear: nn.Linear, x: str) -> str:
    """``x @ Wᵀ + b`` on (S, T, F): MatMul of the transposed weight, as torch's exporter
    writes it (the weight keeps its name and (out, in) shape, so init schemes draw it)."""
    with g.scope(linear):
        weight = g.node("Transpose", [g.parameter(linear, "weight")], perm=[1, 0])
        y = g.node("MatMul", [x, weight])
        if linear.bias is not None:
            y = g.node("Add", [y, g.parameter(linear, "bias")])
        return y


def _emit_layer_norm(g: GraphEmitter, norm: nn.LayerNorm, x: str) -> str:
    with g.scope(norm):
        return g.node(
            "LayerNormalization",
            [x, g.parameter(norm, "weight"), g.parameter(norm, "bias")],
            axis=-1,
            epsilon=float(norm.eps),
        )


def _emit_gelu(g: GraphEmitter, gelu: nn.GELU, x: str) -> str:
    """Exact GELU as ``x · 0.5 · (1 + erf(x/√2))``, the form opset 17 exporters write (the
    capture recognises it as a gate on ``x``)."""
    with g.scope(gelu):
        scaled = g.node("Div", [x, g.constant(np.array(math.sqrt(2.0), np.float32))])
        erf = g.node("Erf", [scaled])
        shifted = g.node("Add", [erf, g.constant(np.array(1.0, np.float32))])
        gated = g.node("Mul", [x, shifted])
        return g.node("Mul", [gated, g.constant(np.array(0.5, np.float32))])


def _emit_dropout(g: GraphEmitter, active: bool, x: str, p: float = DROPOUT_P) -> str:
    if not active:
        return x
    return g.node(
        "Dropout",
        [x, g.constant(np.array(p, np.float32)), g.constant(np.array(True))],
        seed=len(g.nodes),
    )


def _reshape(g: GraphEmitter, x: str, shape: list[int]) -> str:
    """Reshape; 0 keeps an axis (the symbolic batch, the tokens)."""
    return g.node("Reshape", [x, g.constant(np.asarray(shape, np.int64))])


def _dropout(x: torch.Tensor, active: bool, p: float = DROPOUT_P) -> torch.Tensor:
    return F.dropout(x, p, training=True) if active else x


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(S, T, heads·d) → (S, heads, T, d)."""
    s, t, width = x.shape
    return x.reshape(s, t, heads, width // heads).permute(0, 2, 1, 3)


# --- embeddings ----------------------------------------------------------------------------
class FlexiEmbeddings(nn.Module):
    """Word + token type (all zero) + position embeddings (width 128), LayerNorm, dropout,
    then the 128 → H projection when H ≠ 128."""

    def __init__(self, hidden: int, *, dropout: bool = False) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB_SIZE, EMBEDDING_SIZE, padding_idx=0)
        self.position_embeddings = nn.Embedding(MAX_POSITIONS, EMBEDDING_SIZE)
        self.token_type_embeddings = nn.Embedding(TYPE_VOCAB, EMBEDDING_SIZE)
        self.LayerNorm = nn.LayerNorm(EMBEDDING_SIZE, eps=LAYER_NORM_EPS)
        self.project = nn.Linear(EMBEDDING_SIZE, hidden) if hidden != EMBEDDING_SIZE else None
        self.dropout = dropout

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        tokens = int(ids.shape[1])
        x = self.word_embeddings(ids) + self.token_type_embeddings.weight[:1]
        x = x + self.position_embeddings.weight[:tokens]
        x = _dropout(self.LayerNorm(x), self.dropout)
        return x if self.project is None else self.project(x)

    def emit_onnx(self, g: GraphEmitter, ids: str) -> str:
        tokens = int(g.sample_shape[0])
        with g.scope(self.word_embeddings):
            words = g.node("Gather", [g.parameter(self.word_embeddings, "weight"), ids], axis=0)
        x = g.add(words, _first_rows(g, self.token_type_embeddings, 1))
        x = g.add(x, _first_rows(g, self.position_embeddings, tokens))
        x = _emit_dropout(g, self.dropout, _emit_layer_norm(g, self.LayerNorm, x))
        return x if self.project is None else _emit_linear(g, self.project, x)


def _first_rows(g: GraphEmitter, embedding: nn.Embedding, rows: int) -> str:
    with g.scope(embedding):
        bounds = [np.asarray([v], np.int64) for v in (0, rows, 0)]
        weight = g.parameter(embedding, "weight")
        return g.node("Slice", [weight, *(g.constant(b) for b in bounds)])


# --- token mixers --------------------------------------------------------------------------
class MixerOutput(nn.Module):
    """Dense H → H, dropout, LayerNorm(mixed + layer input): after SA and DSC mixers."""

    def __init__(self, hidden: int, *, dropout: bool = False) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.dropout = dropout

    def forward(self, mixed: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(_dropout(self.dense(mixed), self.dropout) + residual)

    def emit_onnx(self, g: GraphEmitter, mixed: str, residual: str) -> str:
        y = _emit_dropout(g, self.dropout, _emit_linear(g, self.dense, mixed))
        return _emit_layer_norm(g, self.LayerNorm, g.add(y, residual))


def _attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, dropout: bool
) -> torch.Tensor:
    """softmax(QKᵀ/√d)V per head; (S, T, heads·d) in, (S, T, heads, d) out."""
    q, k, v = (_split_heads(t, heads) for t in (q, k, v))
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    probs = _dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(probs, v).permute(0, 2, 1, 3)


def _emit_attention(
    g: GraphEmitter, q: str, k: str, v: str, heads: int, head_size: int, dropout: bool
) -> str:
    q4 = g.node("Transpose", [_reshape(g, q, [0, 0, heads, head_size])], perm=[0, 2, 1, 3])
    k4 = g.node("Transpose", [_reshape(g, k, [0, 0, heads, head_size])], perm=[0, 2, 3, 1])
    v4 = g.node("Transpose", [_reshape(g, v, [0, 0, heads, head_size])], perm=[0, 2, 1, 3])
    scores = g.node("MatMul", [q4, k4])
    scores = g.node("Div", [scores, g.constant(np.array(math.sqrt(head_size), np.float32))])
    probs = _emit_dropout(g, dropout, g.node("Softmax", [scores], axis=-1))
    return g.node("Transpose", [g.node("MatMul", [probs, v4])], perm=[0, 2, 1, 3])


class SelfAttentionMixer(nn.Module):
    """SA-SDP (scaled dot-product) or SA-WMA (the query times one more bias-free H → H map
    first), ``heads`` heads of size H / heads, then :class:`MixerOutput`."""

    def __init__(self, hidden: int, heads: int, weighted: bool, *, dropout: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.weight = nn.Linear(hidden, hidden, bias=False) if weighted else None
        self.output = MixerOutput(hidden, dropout=dropout)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x)
        if self.weight is not None:
            q = self.weight(q)
        context = _attention(q, self.key(x), self.value(x), self.heads, self.dropout)
        return self.output(context.reshape(x.shape), x)

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        hidden = self.query.out_features
        q = _emit_linear(g, self.query, x)
        if self.weight is not None:
            q = _emit_linear(g, self.weight, q)
        k, v = _emit_linear(g, self.key, x), _emit_linear(g, self.value, x)
        context = _emit_attention(g, q, k, v, self.heads, hidden // self.heads, self.dropout)
        return g(self.output, _reshape(g, context, [0, 0, hidden]), x)


class SeparableConv1d(nn.Module):
    """Depthwise Conv1d (kernel k, same padding, no bias), pointwise Conv1d, one bias; on
    (S, T, C) tokens (transposed to channels-first and back)."""

    def __init__(self, channels: int, out_channels: int, kernel: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(
            channels, channels, kernel, groups=channels, padding=kernel // 2, bias=False
        )
        self.pointwise = nn.Conv1d(channels, out_channels, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(x.transpose(1, 2))) + self.bias
        return y.transpose(1, 2)

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        kernel, pad = self.depthwise.kernel_size[0], self.depthwise.padding[0]
        y = g.node("Transpose", [x], perm=[0, 2, 1])
        with g.scope(self.depthwise):
            y = g.node(
                "Conv",
                [y, g.parameter(self.depthwise, "weight")],
                dilations=[1],
                group=self.depthwise.groups,
                kernel_shape=[kernel],
                pads=[pad, pad],
                strides=[1],
            )
        with g.scope(self.pointwise):
            y = g.node(
                "Conv",
                [y, g.parameter(self.pointwise, "weight")],
                dilations=[1],
                group=1,
                kernel_shape=[1],
                pads=[0, 0],
                strides=[1],
            )
        y = g.add(y, g.parameter(self, "bias"))
        return g.node("Transpose", [y], perm=[0, 2, 1])


class DynamicConvMixer(nn.Module):
    """DSC-k, ConvBERT's span-based dynamic convolution beside self-attention.

    ``a = max(1, heads // 2)`` attention heads of size ``d = H / heads`` (all-head width
    ``A = a·d``) and an equal-sized convolution part: a separable Conv1d of the input gives a
    span-aware key; key ⊙ query → Linear → per token and head a softmax kernel of size k,
    applied to the k-token window (zero padded) of a Linear projection of the input. Both
    parts (S, T, a, d) are concatenated on the head axis to H, then :class:`MixerOutput`.
    """

    def __init__(self, hidden: int, heads: int, kernel: int, *, dropout: bool = False) -> None:
        super().__init__()
        self.attention_heads, self.head_size, width = dsc_sizes(hidden, heads)
        self.kernel = kernel
        self.query = nn.Linear(hidden, width)
        self.key = nn.Linear(hidden, width)
        self.value = nn.Linear(hidden, width)
        self.key_conv = SeparableConv1d(hidden, width, kernel)
        self.conv_kernel = nn.Linear(width, self.attention_heads * kernel)
        self.conv_out = nn.Linear(hidden, width)
        self.output = MixerOutput(hidden, dropout=dropout)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, t, _ = x.shape
        a, d, k = self.attention_heads, self.head_size, self.kernel
        q = self.query(x)
        span = self.key_conv(x) * q
        kernels = torch.softmax(self.conv_kernel(span).reshape(s, t, a, k), dim=-1)
        projected = F.pad(self.conv_out(x), (0, 0, k // 2, k // 2))
        windows = torch.stack([projected[:, j : j + t] for j in range(k)], dim=-1)
        conv = torch.matmul(windows.reshape(s, t, a, d, k), kernels.unsqueeze(-1))
        context = _attention(q, self.key(x), self.value(x), a, self.dropout)
        mixed = torch.cat([context, conv.reshape(s, t, a, d)], dim=2)
        return self.output(mixed.reshape(x.shape), x)

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        tokens = int(g.sample_shape[0])
        a, d, k = self.attention_heads, self.head_size, self.kernel
        q = _emit_linear(g, self.query, x)
        span = g.node("Mul", [g(self.key_conv, x), q])
        kernels = _reshape(g, _emit_linear(g, self.conv_kernel, span), [0, 0, a, k])
        kernels = _reshape(g, g.node("Softmax", [kernels], axis=-1), [0, 0, a, k, 1])
        projected = _emit_linear(g, self.conv_out, x)
        pads = np.asarray([0, k // 2, 0, 0, k // 2, 0], np.int64)
        projected = g.node(
            "Pad", [projected, g.constant(pads), g.constant(np.array(0.0, np.float32))]
        )
        windows = []
        for j in range(k):
            bounds = [np.asarray([v], np.int64) for v in (j, j + tokens, 1)]
            window = g.node("Slice", [projected, *(g.constant(b) for b in bounds)])
            windows.append(g.node("Unsqueeze", [window, g.constant(np.asarray([-1], np.int64))]))
        stacked = _reshape(g, g.concat(windows, axis=-1), [0, 0, a, d, k])
        conv = _reshape(g, g.node("MatMul", [stacked, kernels]), [0, 0, a, d])
        k_, v_ = _emit_linear(g, self.key, x), _emit_linear(g, self.value, x)
        context = _emit_attention(g, q, k_, v_, a, d, self.dropout)
        mixed = _reshape(g, g.concat([context, conv], axis=2), [0, 0, 2 * a * d])
        return g(self.output, mixed, x)


class LinearTransformMixer(nn.Module):
    """LT-DFT / LT-DCT: Linear H → H split into heads, then per head the real part of the
    2-D DFT or the unnormalised 2-D DCT-II over (tokens, head features); no output
    projection, no residual."""

    def __init__(self, hidden: int, heads: int, transform: str) -> None:
        super().__init__()
        self.heads = heads
        self.transform = transform
        self.input = nn.Linear(hidden, hidden)

    def matrices(self, tokens: int) -> list[np.ndarray]:
        """DFT: [C_T, blockdiag C_d, S_T, blockdiag S_d]; DCT: [D_T, blockdiag D_dᵀ]."""
        d = self.input.out_features // self.heads
        if self.transform == "DFT":
            (ct, st), (cd, sd) = dft_matrices(tokens), dft_matrices(d)
            return [ct, _block_diagonal(cd, self.heads), st, _block_diagonal(sd, self.heads)]
        return [dct_matrix(tokens), _block_diagonal(dct_matrix(d).T.copy(), self.heads)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.input(x)
        mats = [torch.from_numpy(m) for m in self.matrices(int(x.shape[1]))]
        if self.transform == "DFT":
            return torch.matmul(torch.matmul(mats[0], y), mats[1]) - torch.matmul(
                torch.matmul(mats[2], y), mats[3]
            )
        return torch.matmul(torch.matmul(mats[0], y), mats[1])

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        y = _emit_linear(g, self.input, x)
        mats = [g.constant(m) for m in self.matrices(int(g.sample_shape[0]))]
        first = g.node("MatMul", [g.node("MatMul", [mats[0], y]), mats[1]])
        if self.transform != "DFT":
            return first
        second = g.node("MatMul", [g.node("MatMul", [mats[2], y]), mats[3]])
        return g.node("Sub", [first, second])


# --- feed-forward, layers, network ---------------------------------------------------------
class FeedForward(nn.Module):
    """Linear H → I, GELU, (n − 1) × (Linear I → I, GELU), Linear I → H, dropout,
    LayerNorm(+ mixer output). Its GELUs are the units SWAP counts."""

    def __init__(self, hidden: int, inter: int, count: int, *, dropout: bool = False) -> None:
        super().__init__()
        self.dense = nn.ModuleList(
            [nn.Linear(hidden, inter), *(nn.Linear(inter, inter) for _ in range(count - 1))]
        )
        self.act = nn.ModuleList(nn.GELU() for _ in range(count))
        self.dense_out = nn.Linear(inter, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for dense, act in zip(self.dense, self.act, strict=True):
            y = act(dense(y))
        return self.LayerNorm(_dropout(self.dense_out(y), self.dropout) + x)

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        y = x
        for dense, act in zip(self.dense, self.act, strict=True):
            y = _emit_gelu(g, act, _emit_linear(g, dense, y))
        y = _emit_dropout(g, self.dropout, _emit_linear(g, self.dense_out, y))
        return _emit_layer_norm(g, self.LayerNorm, g.add(y, x))


def _make_mixer(layer: FlexiLayer, hidden: int, dropout: bool) -> nn.Module:
    if layer.op_type == "SA":
        return SelfAttentionMixer(hidden, layer.heads, layer.op_param == "WMA", dropout=dropout)
    if layer.op_type == "LT":
        return LinearTransformMixer(hidden, layer.heads, str(layer.op_param))
    return DynamicConvMixer(hidden, layer.heads, int(layer.op_param), dropout=dropout)


class EncoderLayer(nn.Module):
    """Token mixer, then feed-forward."""

    def __init__(self, layer: FlexiLayer, hidden: int, inter: int, *, dropout: bool) -> None:
        super().__init__()
        self.mixer = _make_mixer(layer, hidden, dropout)
        self.feed_forward = FeedForward(hidden, inter, layer.num_ff, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.mixer(x))

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        return g(self.feed_forward, g(self.mixer, x))


class FlexiBertNetwork(nn.Module):
    """Embeddings and encoder layers; ``forward(ids)`` returns the last hidden states
    (S, T, H), as the reference's model output.

    Initialised as the transformers library initialises ELECTRA: Linear, Embedding and the
    DSC convolutions N(0, 0.02) (padding row zeroed), biases 0, LayerNorm 1 and 0, drawn from
    torch's generator (the Evaluator seeds it per architecture).
    """

    def __init__(
        self,
        arch: FlexiBertArch,
        hidden: int,
        intermediates: tuple[int, ...],
        *,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.embeddings = FlexiEmbeddings(hidden, dropout=dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(layer, hidden, inter, dropout=dropout)
            for layer, inter in zip(arch.layers, intermediates, strict=True)
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv1d | nn.Embedding):
                module.weight.normal_(0.0, INIT_STD)
            if isinstance(module, nn.Linear | nn.Conv1d) and module.bias is not None:
                module.bias.zero_()
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
            if isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            if isinstance(module, SeparableConv1d):
                module.bias.zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(ids)
        for layer in self.layers:
            x = layer(x)
        return x

    def emit_onnx(self, g: GraphEmitter, ids: str) -> str:
        x = g(self.embeddings, ids)
        for layer in self.layers:
            x = g(layer, x)
        return x

    def token_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of hidden vectors (..., H), the head of the masked-token loss
        (:mod:`swapprobe.capture.masked_tokens`), tied to the input embedding E (V × 128) as
        BERT ties it: ``hidden · Eᵀ``, the embeddings' 128 → H projection first undone by its
        own weight transposed where H ≠ 128. No weight of its own: ELECTRA's generator puts a
        dense layer and a LayerNorm before the tied matrix, new weights whose draw would enter
        every gradient statistic, so they are left out."""
        project = self.embeddings.project
        x = hidden if project is None else hidden @ project.weight
        return x @ self.embeddings.word_embeddings.weight.T


def proxy_blocks(network: nn.Module) -> list[nn.Module]:
    """The blocks of the AZ-NAS proxies on an encoder: the embeddings, then each encoder
    layer."""
    return [network.embeddings, *network.layers]  # type: ignore[attr-defined]
