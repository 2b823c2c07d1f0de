"""TransNAS-Bench-101's two encodings, tasks and their constants (no torch, no space class).

TransNAS-Bench-101 (Duan et al., "TransNAS-Bench-101: Improving Transferability and
Generalizability of Cross-Task Neural Architecture Search", CVPR 2021) trains every network of
two spaces on seven Taskonomy tasks. Its code names a network ``BASE-MACRO-MICRO``; NASLib
(``naslib/search_spaces/transbench101/conversions.py``) codes the same networks as tuples of
six integers, which are the keys of NAS-Bench-Suite-Zero's tables and the text form here:

* micro, ``64-41414-a_bc_def``: one cell of 4 nodes repeated in a fixed skeleton; the tuple
  ``(a, b, c, d, e, f)`` is the op on each edge in the order of :data:`MICRO_EDGES`
  (``1<-0``, ``2<-0``, ``2<-1``, ``3<-0``, ``3<-1``, ``3<-2``), op codes of
  :data:`MICRO_OPS` (0 none, 1 skip, 2 conv 1×1, 3 conv 3×3): 4^6 = 4,096 networks.
* macro, ``64-ABCD[E[F]]-basic``: 4 to 6 stages of two ResNet basic blocks; each stage is
  coded 1-4 by whether it halves the resolution (3, 4) and doubles the channels (2, 4). At
  least one stage and at most four halve, at least one and at most three double; NASLib pads
  the tuple with zeros to six entries: 3,256 networks.
"""

from __future__ import annotations

__all__ = [
    "MACRO_CODES",
    "MACRO_DOUBLINGS",
    "MACRO_DOWNSAMPLES",
    "MACRO_LENGTHS",
    "MICRO_EDGES",
    "MICRO_OPS",
    "MICRO_SKELETON",
    "TASK_OUTPUTS",
    "TNB101_BASE_CHANNELS",
    "TNB101_IMAGE_SIZE",
    "TNB101_TASKS",
    "TNB101_TILE_SIZE",
    "macro_doubles",
    "macro_halves",
    "macro_problem",
    "micro_problem",
]

#: the seven Taskonomy tasks, in the order of NAS-Bench-Suite-Zero's tables
TNB101_TASKS: tuple[str, ...] = (
    "class_scene",
    "class_object",
    "autoencoder",
    "normal",
    "jigsaw",
    "room_layout",
    "segmentsemantic",
)
#: what each task's head puts out (NASLib's ``model_builder.py``): logits per class (scene
#: 63, object 100, jigsaw 1000 permutations), 9 room-layout numbers, or an image of
#: (channels, height, width) for the pixel tasks (3-channel images, 17 segmentation classes)
TASK_OUTPUTS: dict[str, int | tuple[int, int, int]] = {
    "class_scene": 63,
    "class_object": 100,
    "autoencoder": (3, 256, 256),
    "normal": (3, 256, 256),
    "jigsaw": 1000,
    "room_layout": 9,
    "segmentsemantic": (17, 256, 256),
}
#: Taskonomy images as the benchmark trains on them (resized to 256×256)
TNB101_IMAGE_SIZE: tuple[int, int] = (256, 256)
#: jigsaw: each of the 9 tiles the encoder sees is this square (its ``tile_dim``)
TNB101_TILE_SIZE: int = 64
#: channels after the stem, the ``64-`` of every TransNAS-Bench-101 code
TNB101_BASE_CHANNELS: int = 64

#: micro op codes: position = code in NASLib's tuple and in the benchmark's string
MICRO_OPS: tuple[str, ...] = ("none", "skip_connect", "conv_1x1", "conv_3x3")
#: micro edges as ``(target node, source node)`` in the order of the tuple
MICRO_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
#: the micro space's fixed macro skeleton: ``41414`` (codes as :data:`MACRO_CODES`)
MICRO_SKELETON: tuple[int, ...] = (4, 1, 4, 1, 4)

#: macro stage codes: 1 keep, 2 double the channels, 3 halve the resolution, 4 both
MACRO_CODES: tuple[int, ...] = (1, 2, 3, 4)
#: how many stages a macro network has
MACRO_LENGTHS: tuple[int, ...] = (4, 5, 6)
#: allowed counts of resolution-halving stages and of channel-doubling stages
MACRO_DOWNSAMPLES: tuple[int, ...] = (1, 2, 3, 4)
MACRO_DOUBLINGS: tuple[int, ...] = (1, 2, 3)
#: NASLib's tuples have this many entries (zero-padded)
MACRO_WIDTH = 6


def macro_halves(code: int) -> bool:
    """Whether a stage coded ``code`` halves the resolution (stride 2): codes 3 and 4."""
    return code > 2


def macro_doubles(code: int) -> bool:
    """Whether a stage coded ``code`` doubles the channels: codes 2 and 4."""
    return code % 2 == 0


def micro_problem(codes: tuple[int, ...]) -> str | None:
    """Why ``codes`` is no micro cell (``None`` when it is one)."""
    if len(codes) != len(MICRO_EDGES):
        return f"a micro cell has {len(MICRO_EDGES)} edge ops, got {len(codes)}"
    for edge, code in enumerate(codes):
        if code not in range(len(MICRO_OPS)):
            return f"edge {edge} has op code {code}; codes are 0-3 ({', '.join(MICRO_OPS)})"
    return None


def macro_problem(stages: tuple[int, ...]) -> str | None:
    """Why ``stages`` (the non-zero codes) is no macro network (``None`` when it is one)."""
    if len(stages) not in MACRO_LENGTHS:
        return f"a macro network has 4 to 6 stages, got {len(stages)}"
    for stage, code in enumerate(stages):
        if code not in MACRO_CODES:
            return f"stage {stage} has code {code}; codes are 1-4"
    halving = sum(macro_halves(c) for c in stages)
    if halving not in MACRO_DOWNSAMPLES:
        return f"{halving} stages halve the resolution (codes 3, 4); 1 to 4 must"
    doubling = sum(macro_doubles(c) for c in stages)
    if doubling not in MACRO_DOUBLINGS:
        return f"{doubling} stages double the channels (codes 2, 4); 1 to 3 must"
    return None
