"""Build three small torch models, export them to ONNX and rank them by SWAP-Score.

Shows both entry points: the ``swapprobe`` command on ONNX files, and ``swapprobe.score`` on
the torch modules directly. Runs offline on the embedded synthetic images:

    python examples/rank_small_models.py            # add --data cifar10 when you have it
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn

import swapprobe
from swapprobe.capture.export import export_module


class BasicBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


def resnet_like(width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        BasicBlock(width),
        BasicBlock(width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 10),
    )


def vgg_like(width: int = 16) -> nn.Module:
    layers: list[nn.Module] = []
    channels = 3
    for out in (width, width, 2 * width, 2 * width):
        layers += [
            nn.Conv2d(channels, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(),
        ]
        channels = out
    layers += [nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)]
    return nn.Sequential(*layers)


def mlp(hidden: int = 256) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(3 * 32 * 32, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()

    models = {"resnet_like": resnet_like(), "vgg_like": vgg_like(), "mlp": mlp()}
    with tempfile.TemporaryDirectory() as tmp:
        sample = np.zeros((2, 3, 32, 32), np.float32)
        paths = []
        for name, model in models.items():
            path = Path(tmp) / f"{name}.onnx"
            onnx.save(export_module(model, sample), path)
            paths.append(str(path))
        print("— through the command line —", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "swapprobe.cli",
                "score",
                *paths,
                "--data",
                args.data,
                "--repeats",
                str(args.repeats),
            ],
            check=True,
        )

    print("\n— through the Python API —")
    for name, model in models.items():
        result = swapprobe.score(model, data=args.data, repeats=args.repeats)
        print(
            f"{name:12s} SWAP {result.swap:10.1f} ± {result.swap_std:6.1f}   "
            f"V={result.units:7d}  params={result.param_count:,}"
        )


if __name__ == "__main__":
    main()
