"""``swapprobe inspect RUN.h5``: summarise a store (one call:
:func:`swapprobe.api.inspect_store`)."""

from __future__ import annotations

import argparse
from typing import Any

from swapprobe.cli import console


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "inspect",
        help="summarise an HDF5 store",
        description="Summarise a store: settings, models, scores.",
        epilog="examples:\n"
        "  swapprobe score torchvision:resnet18 darts:random:4 --store run.h5\n"
        "  swapprobe inspect run.h5\n"
        "  swapprobe inspect run.h5 --layers    # SWAP per layer (needs kept patterns)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("store", metavar="RUN.h5")
    parser.add_argument(
        "--layers", action="store_true", help="SWAP per activation layer, from the stored patterns"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from swapprobe import report
    from swapprobe.api import inspect_store

    out, _ = console.consoles()
    view = inspect_store(args.store, layers=args.layers)
    out.print(report.store_panel(view.summary))
    if view.results:
        out.print(report.ranking_table(view.results, title="stored scores"))
    for result, per_layer in view.layers:
        if per_layer is None:
            out.print(f"[yellow]{result.name}: no patterns kept[/]")
        else:
            out.print(report.layer_table(result.name, per_layer, result.layers))
    return 0
