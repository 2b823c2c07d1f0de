"""An AutoFormer subnet as a plain Vision Transformer of torch modules.

Written from the definition in ``SPEC.md`` ("AutoFormer ViT space"; Chen et al., "AutoFormer:
Searching Transformers for Visual Recognition", ICCV 2021): patch embedding (a conv with
kernel = stride = patch size), class token, absolute position embedding, pre-norm blocks
(LayerNorm → multi-head attention → residual, LayerNorm → MLP with GELU → residual), a final
LayerNorm and a linear head on the class token. Attention's q/k/v are heads × 64 wide, so
its width is independent of the embedding dimension (AutoFormer's supernet does the same).

The class token and the position embedding start as truncated N(0, 0.02) (as ViT and
AutoFormer initialise them); every other layer keeps PyTorch's default initialisation, which
``init="keep"`` scores (built under the Evaluator's seed). Only the MLP GELUs are gates.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from swapprobe.errors import ShapeMismatchError
from swapprobe.searchspaces.autoformer.encoding import (
    HEAD_DIM,
    AutoFormerArch,
    mlp_width,
    token_count,
)

__all__ = [
    "AutoFormerAttention",
    "AutoFormerBlock",
    "AutoFormerMlp",
    "AutoFormerNetwork",
    "TokenEmbedding",
]

POSITION_INIT_STD = 0.02


class TokenEmbedding(nn.Module):
    """Image (S, 3, H, W) → tokens (S, 1 + (H/p)·(W/p), E): patches, class token, positions."""

    def __init__(self, embed_dim: int, patch_size: int, image_size: int) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        tokens = token_count(image_size, patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, embed_dim))
        nn.init.trunc_normal_(self.cls_token, std=POSITION_INIT_STD)
        nn.init.trunc_normal_(self.pos_embed, std=POSITION_INIT_STD)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.patch(images).flatten(2).transpose(1, 2)
        if patches.shape[1] + 1 != self.pos_embed.shape[1]:
            pixels = "x".join(str(int(v)) for v in images.shape[2:])
            raise ShapeMismatchError(
                f"this AutoFormer network takes {self.pos_embed.shape[1] - 1} patches per "
                f"image, got {patches.shape[1]} from {pixels} pixels; score "
                "it on inputs of the size its space states (224×224)"
            )
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.pos_embed


class AutoFormerAttention(nn.Module):
    """Multi-head self-attention: E → q, k, v (heads × 64 each) → softmax(q·kᵀ/8)·v → E."""

    def __init__(self, embed_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(embed_dim, 3 * heads * HEAD_DIM)
        self.proj = nn.Linear(heads * HEAD_DIM, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(s, t, 3, self.heads, HEAD_DIM).permute(2, 0, 3, 1, 4)
        mixed = F.scaled_dot_product_attention(q, k, v)
        return self.proj(mixed.transpose(1, 2).reshape(s, t, self.heads * HEAD_DIM))


class AutoFormerMlp(nn.Sequential):
    """E → int(E · ratio) → GELU (the gate) → E."""

    def __init__(self, embed_dim: int, ratio: float) -> None:
        hidden = mlp_width(embed_dim, ratio)
        super().__init__(nn.Linear(embed_dim, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))


class AutoFormerBlock(nn.Module):
    """Pre-norm Transformer layer: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, embed_dim: int, heads: int, ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dim)
        self.attn = AutoFormerAttention(embed_dim, heads)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.mlp = AutoFormerMlp(embed_dim, ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class AutoFormerNetwork(nn.Module):
    """The subnet's ViT; ``num_classes=0`` leaves the head out (the class token's features)."""

    def __init__(
        self,
        arch: AutoFormerArch,
        *,
        patch_size: int = 16,
        image_size: int = 224,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.embed = TokenEmbedding(arch.embed_dim, patch_size, image_size)
        self.blocks = nn.ModuleList(
            AutoFormerBlock(arch.embed_dim, heads, ratio)
            for ratio, heads in zip(arch.mlp_ratios, arch.num_heads, strict=True)
        )
        self.norm = nn.LayerNorm(arch.embed_dim)
        self.head = nn.Linear(arch.embed_dim, num_classes) if num_classes else nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])
