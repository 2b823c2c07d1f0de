"""Search your own model family: a small ResNet-like space written as one function.

    python examples/custom_space.py            # synthetic images, under a minute on 2 cores
    swapprobe search examples/custom_space.py:space --population 8 --cycles 10 --repeats 8
    swapprobe score 'examples/custom_space.py:space:random:5'       # five members, ranked

``space`` takes the choice recorder ``c`` and asks it for each choice as it builds the model:
the choices it made are the architecture (``{"width": 16, "kernel": 3, ...}``), so the depth of
each stage can be sampled and the search re-draws or crosses choices by name. No training, no
supernet: every member is scored by SWAP at initialisation, as the built-in spaces are.
"""

from __future__ import annotations

import json
import time

import torch
import torch.nn as nn

import swapprobe
from swapprobe.searchspaces.custom import ChoiceRecorder

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class Block(nn.Module):
    """A residual basic block: two k×k convolutions with BN, the activation after each."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, act: str) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = ACTIVATIONS[act]()
        self.conv2 = nn.Conv2d(c_out, c_out, kernel, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = ACTIVATIONS[act]()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(y + self.shortcut(x))


def space(c: ChoiceRecorder) -> nn.Module:
    """Width, kernel and activation for the whole network, a depth per stage (3 stages, each
    halving the resolution and doubling the width): 3·2·3·2³ = 144 members."""
    width = c.choice("width", [4, 8, 16])
    kernel = c.choice("kernel", [3, 5])
    act = c.choice("act", ["relu", "gelu", "silu"])
    layers: list[nn.Module] = [
        nn.Conv2d(3, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        ACTIVATIONS[act](),
    ]
    channels = width
    for stage in range(3):
        depth = c.choice(f"depth{stage + 1}", [1, 2])
        out = width * 2**stage
        for i in range(depth):
            layers.append(Block(channels, out, kernel, 2 if stage and not i else 1, act))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)]
    return nn.Sequential(*layers)


def main() -> None:
    start = time.perf_counter()
    # executor "local": a function defined in the script being run (__main__) cannot be
    # imported by pool workers; give "examples/custom_space.py:space" to use them
    run = swapprobe.search(
        space, population=8, cycles=10, mutation_times=3, repeats=8, executor="local"
    )
    outcome = run.outcome
    print(f"searched {outcome.search.evaluations} members in {time.perf_counter() - start:.1f} s")
    print(f"found: {json.dumps(outcome.choices)}")
    print(f"SWAP {outcome.best.swap:.1f}, {outcome.best.param_count:,} parameters")


if __name__ == "__main__":
    main()
