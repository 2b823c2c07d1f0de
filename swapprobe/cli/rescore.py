"""``swapprobe rescore RUN.h5 --mu M --sigma S``: regularised SWAP and baselines again, from a
store, without running a model (one call: :func:`swapprobe.rescore`)."""

from __future__ import annotations

import argparse
from typing import Any

from swapprobe.cli import console, options


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "rescore",
        help="recompute regularised SWAP, baselines and L-SWAG from a store",
        description="Recompute regularised SWAP (new μ, σ) and the baselines from stored "
        "patterns, without running any model.",
        epilog="examples:\n"
        "  swapprobe score darts:random:20 --store run.h5\n"
        "  swapprobe rescore run.h5 --mu 0.08 --sigma 0.05\n"
        "  swapprobe rescore run.h5 --mu 0.08 --sigma 0.05 --size-unit K --csv rescored.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("store", metavar="RUN.h5")
    parser.add_argument(
        "--mu",
        type=options.positive_float,
        default=None,
        help="μ of regularised SWAP: the size Θ (in --size-unit) it favours, "
        "SWAP × exp(−(Θ − μ)² / σ); give it with --sigma",
    )
    parser.add_argument(
        "--sigma",
        type=options.positive_float,
        default=None,
        help="σ of regularised SWAP: the width of its size factor exp(−(Θ − μ)² / σ)",
    )
    parser.add_argument(
        "--interval",
        type=options.depth_interval,
        default=None,
        metavar="FIRST:LAST",
        help="recompute ZiCo, L-SWAG (over depth bins FIRST..LAST of 0-9, inclusive) and VKDNW "
        "from the per-layer gradient statistics the store keeps",
    )
    parser.add_argument(
        "--size-unit",
        choices=("K", "M"),
        default=None,
        help="unit of Θ (default: the unit stored per model)",
    )
    parser.add_argument("--json", metavar="PATH", help="the rows as JSON ('-' for stdout)")
    parser.add_argument("--csv", metavar="PATH", help="the rows as CSV ('-' for stdout)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from swapprobe import report
    from swapprobe.api import rescore

    out, _ = console.consoles()
    console.check_outputs([args.json, args.csv])
    results = rescore(
        args.store,
        mu=args.mu,
        sigma=args.sigma,
        size_unit=args.size_unit,
        interval=args.interval,
    )
    if not (args.json == "-" or args.csv == "-"):
        reg = "" if args.mu is None else f"  μ={args.mu:g} σ={args.sigma:g}"
        bins = args.interval
        where = "" if bins is None else f"  interval bins {bins[0]}-{bins[1]}"
        out.print(f"[dim]rescored from[/] {args.store}{reg}{where}")
        out.print(report.ranking_table(results, title="rescored"))
    console.write_rows(results, args.json, args.csv)
    return 0
