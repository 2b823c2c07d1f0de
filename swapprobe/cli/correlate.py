"""``swapprobe correlate SPACE --table FILE``: scores against a table of trained accuracies
(one call: :meth:`swapprobe.plan.CorrelatePlan.run`, over
:func:`swapprobe.searching.correlate_table`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from swapprobe.cli import console, options

EPILOG = """\
The table is a CSV, a JSON list of records (an architecture and its accuracies), or a NASLib
zero-cost table (NAS-Bench-Suite-Zero's JSON, {task: {key: columns}}): each task a target
(--acc-col chooses tasks), its proxies ranked beside swapprobe's as naslib:NAME. A CSV without
a header: column 1 is the architecture and column 2 the accuracy (the authors' DARTS table).

examples:
  swapprobe correlate darts --table darts_cifar10_1000.csv --data cifar10 --limit 200
  swapprobe correlate nb201 --table nb201.csv --acc-col cifar10_test_acc_200ep --reg auto
  swapprobe correlate nb201 --table nb201_dev.json --limit 100
"""


def add_parser(commands: Any) -> None:
    from swapprobe.searchspaces import list_spaces

    parser = commands.add_parser(
        "correlate",
        help="rank correlation of scores with a ground-truth table",
        description="Score every architecture of a table and report Spearman/Kendall "
        "correlations with bootstrap 95 % intervals.",
        epilog=options.space_epilog(engine=False) + "\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("space", choices=list_spaces())
    parser.add_argument(
        "--table",
        required=True,
        metavar="FILE",
        help="trained accuracies per architecture: a CSV, a .json list of records, or a "
        "NASLib zero-cost .json table (see below)",
    )
    parser.add_argument("--arch-col", help="architecture column (default: the first)")
    parser.add_argument(
        "--acc-col",
        action="append",
        metavar="NAME",
        help="accuracy column, may repeat (default: every other column)",
    )
    parser.add_argument(
        "--limit", type=options.positive_int, metavar="N", help="score a seeded subset of N rows"
    )
    options.add_data_options(parser, batch_default="the space's, listed below")
    options.add_scoring_options(parser, per_space=True, executor="auto")
    options.add_reg_option(parser)
    options.add_proxy_option(parser, default_word="the space's, listed below")
    parser.add_argument(
        "--select",
        choices=("libra", "rule"),
        default=None,
        help="libra: choose three complementary proxies (L-SWAG paper's LIBRA) among the "
        "scored ones on one seeded half, report their combined ρ on the other; rule: the "
        "rule that chose each space's default set (SWAP plus every subset of the scored "
        "views, judged by ½(ρ + weighted τ) over every target on two seeded halves; "
        "swapprobe/proxies/default_rule.py): the default, each half's choice held out",
    )
    parser.add_argument(
        "--sweep", action="store_true", help="sweep μ=σ over the size range and report the best"
    )
    parser.add_argument(
        "--bootstrap",
        type=options.at_least(0),
        default=1000,
        help="bootstrap resamples for the intervals (default: 1000)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--store", metavar="RUN.h5", help="scores of every architecture (HDF5)")
    out.add_argument(
        "--keep-patterns",
        choices=("none", "first", "all"),
        default="none",
        help="pattern blocks kept in the store per architecture (default: none; 'first' costs "
        "about 31 KB per DARTS cell and 0.6 MB per NAS-Bench-201 network at S=32)",
    )
    out.add_argument(
        "--resume",
        action="store_true",
        help="keep the architectures already in --store and score only the rest",
    )
    out.add_argument("--plot", metavar="PNG", help="scatter plots of score vs accuracy")
    out.add_argument("--csv", metavar="PATH", help="per-architecture scores and accuracies")
    out.add_argument("--json", metavar="PATH", help="the correlation table as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from swapprobe import report
    from swapprobe.correlate import scatter_plot
    from swapprobe.plan import CorrelatePlan, TableSpec

    out, err = console.consoles()
    console.check_outputs([args.json, args.csv, args.plot])
    plan = CorrelatePlan(
        args.space,
        TableSpec(args.table, args.arch_col, args.acc_col),
        options.inputs(args),
        options.scoring(args),
        options.execution(args),
        limit=args.limit,
        reg=args.reg,
        sweep=args.sweep,
        bootstrap=args.bootstrap,
        store=args.store,
        resume=args.resume,
        keep_patterns=args.keep_patterns,
        select=args.select,
    )
    with console.ProgressBar(err) as bar:
        correlated = plan.run(bar)
    found, settings, space = correlated.report, correlated.settings, correlated.space
    note = report.interval_note(settings, space.name, default_proxies=space.defaults.proxies)
    if note:
        err.print(f"[dim]{note}[/]")
    if found.calibration is not None:
        err.print(f"[dim]--reg auto:[/] {found.calibration.describe()}")
    results = found.results
    if not results:  # every architecture failed: nothing to correlate
        return console.report_failed(err, found.failed, len(found.failed))
    if args.json != "-" and args.csv != "-":
        out.print(report.run_header_for(correlated.data, settings, results[0]))
        out.print(
            report.correlation_table(
                found.correlations,
                title=f"{space.name}: {len(results)} architectures of {correlated.truth.path}",
            )
        )
        if found.agreement:
            rows = [
                {"task": a.target, "quantity": a.quantity, "n": a.n, "spearman": a.spearman}
                for a in found.agreement
            ]
            out.print(report.agreement_table(rows))
        for line in report.libra_lines(found.libra):
            out.print(line)
        for line in report.rule_lines(found.rule):
            out.print(line)
        for target, (value, rho) in found.best_of_sweeps().items():
            out.print(
                f"best μ=σ for {target}: {value:g} ({settings.size_unit})  Spearman {rho:.3f}"
            )
        seconds = sum(r.seconds for r in results)
        out.print(
            f"[dim]scoring: {found.wall_seconds:.1f} s wall; {seconds:.1f} s of evaluation in "
            f"total, {seconds / len(results):.3f} s per architecture[/]"
        )
    if args.plot:
        first = next(iter(found.accuracies))
        scatter_plot(
            results,
            found.accuracies[first],
            args.plot,
            target=first,
            title=f"{space.name} — {Path(args.table).name}",
        )
        err.print(f"[dim]plot:[/] {args.plot}")
    if args.csv:
        report.write_csv_rows(
            found.table_rows(correlated.truth), sys.stdout if args.csv == "-" else args.csv
        )
    if args.json:
        report.dump_json(found.to_dict(), sys.stdout if args.json == "-" else args.json)
    return console.report_failed(err, found.failed, len(results) + len(found.failed))
