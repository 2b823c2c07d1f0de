"""``swapprobe inspect RUN.h5``: summarise a store (one call: ``PatternStore.summary`` and
:func:`swapprobe.api.layer_swaps`)."""

from __future__ import annotations

import argparse
from typing import Any

from swapprobe.cli import options


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "inspect",
        help="summarise an HDF5 store",
        description="Summarise a store: settings, models, scores.",
    )
    parser.add_argument("store", metavar="RUN.h5")
    parser.add_argument(
        "--layers", action="store_true", help="SWAP per activation layer, from the stored patterns"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from swapprobe import report
    from swapprobe.api import layer_swaps, stored_results
    from swapprobe.store import PatternStore

    out, _ = options.consoles()
    with PatternStore.open(args.store) as store:
        summary = store.summary()
    results = stored_results(args.store)
    out.print(report.store_panel(summary))
    if results:
        out.print(report.ranking_table(results, title="stored scores"))
    if args.layers:
        for result, per_layer in layer_swaps(args.store):
            if per_layer is None:
                out.print(f"[yellow]{result.name}: no patterns kept[/]")
            else:
                out.print(report.layer_table(result.name, per_layer, result.layers))
    return 0
