"""Score a fixed set of models with the public API and write every number as JSON (floats in
hex), so that two versions of swapprobe can be compared bit for bit after a refactor.

The set: a small conv net as an ONNX file and as a torch module, an NB201 cell and DARTS_V2,
each under the gaussian, kaiming and keep schemes; a FlexiBERT model; the first 25 rows of the
DARTS and NB201 ground-truth tables on CIFAR-10 (the NB201 rows and five DARTS rows with the
AZ-NAS proxies). About 15 s on 2 cores. Run it from each checkout and compare:

    PYTHONPATH=$PWD python tests/benchmarks/fingerprint.py before.json   # on the old commit
    PYTHONPATH=$PWD python tests/benchmarks/fingerprint.py after.json    # on the new one
    cmp before.json after.json

The shared data is found as the tests find it: ``$SWAPPROBE_SHARED/data`` or ``../shared/data``.
"""
import csv
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import swapprobe

SHARED = Path(
    os.environ.get("SWAPPROBE_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
) / "data"


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.GELU(),
        )
        self.head = nn.Linear(6 * 16 * 16, 10)

    def forward(self, x):
        return torch.relu(self.head(self.body(x).flatten(1)))


def record(result):
    def arr(a):
        return None if a is None else [float(x).hex() for x in np.asarray(a, dtype=float)]
    return {
        "name": result.name,
        "key": result.key,
        "swap": arr(result.swap_per_repeat),
        "nwot": arr(result.nwot_per_repeat),
        "sap": arr(result.standard_ap_per_repeat),
        "params": int(result.param_count),
        "units": int(result.units),
        "proxies": {k: float(v).hex() for k, v in sorted(result.proxies.items())},
    }


def main(out: str) -> None:
    rows = {}
    torch.manual_seed(7)
    module = Net()
    tmp = Path(tempfile.mkdtemp())
    onnx_path = tmp / "net.onnx"
    torch.onnx.export(
        module.eval(),
        (torch.randn(2, 3, 32, 32),),
        str(onnx_path),
        dynamo=False,
        do_constant_folding=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "b"}},
    )
    nb201 = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    proxies = ("expressivity", "progressivity", "trainability", "flops")
    for init in ("gaussian", "kaiming", "keep"):
        for label, model in (("onnx", str(onnx_path)), ("module", module),
                             ("nb201", f"nb201:{nb201}"), ("darts", "darts:DARTS_V2")):
            r = swapprobe.score(model, "synthetic", repeats=3, init=init, batch_size=16)
            rows[f"{label}/{init}"] = record(r)
    r = swapprobe.score("flexibert:random:1", "tokens:zipf", repeats=1)
    rows["flexibert/default"] = record(r)
    with open(SHARED / "darts_cifar10_1000.csv") as f:
        darts = [row[0] for row in csv.reader(f)][:25]
    with open(SHARED / "nb201_cifar10_dev1000.csv") as f:
        nb = [row[0] for row in csv.reader(f)][1:26]
    for i, g in enumerate(darts):
        r = swapprobe.score(
            f"darts:{g}", "cifar10", repeats=4, data_dir=str(SHARED), proxies=proxies[: 4 * (i < 5)]
        )
        rows[f"darts_table/{i}"] = record(r)
    for i, a in enumerate(nb):
        r = swapprobe.score(f"nb201:{a}", "cifar10", data_dir=str(SHARED), proxies=proxies)
        rows[f"nb201_table/{i}"] = record(r)
    Path(out).write_text(json.dumps(rows, indent=1, sort_keys=True))
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
