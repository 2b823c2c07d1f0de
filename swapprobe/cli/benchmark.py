"""``swapprobe benchmark TABLE...``: the paper's Figure 4 study over benchmark tables (one
call: :meth:`swapprobe.benchmark.StudyPlan.run`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from swapprobe.cli import console, options

EPILOG = """\
Each TABLE is scored on the space its file name names (nb201_dev.json → nb201,
tnb101_micro_dev.json → tnb101-micro, nb301_dev.json → the space whose tables are nb301), or
on SPACE given as TABLE=SPACE. A table whose space is not registered is skipped with one line.
Stores (one per table, STEM.h5) let a killed study resume without rescoring.

examples:
  swapprobe benchmark ../shared/data/suitezero/*.json --plot fig4.png
  swapprobe benchmark nb201_dev.json nb301_dev.json --limit 50 --csv study.csv
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "benchmark",
        help="the correlation study (Figure 4) over several benchmark tables",
        description="Score every architecture of each table on its space and report Spearman "
        "ρ of SWAP, regularised SWAP, the space's aggregate and the table's own proxies "
        "(NASLib's) on every task, as a heatmap and a table.",
        epilog=options.space_epilog(engine=False) + "\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("tables", nargs="+", metavar="TABLE[=SPACE]")
    parser.add_argument(
        "--task", action="append", metavar="NAME", help="keep only this task, may repeat"
    )
    parser.add_argument(
        "--limit",
        type=options.positive_int,
        metavar="N",
        help="score a seeded subset of N architectures per table",
    )
    options.add_data_options(parser, batch_default="the space's, listed below")
    options.add_scoring_options(parser, per_space=True, executor="auto")
    options.add_reg_option(parser)
    options.add_proxy_option(parser, default_word="the space's, listed below")
    parser.add_argument(
        "--bootstrap",
        type=options.at_least(0),
        default=1000,
        help="bootstrap resamples for the intervals (default: 1000)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--store-dir",
        metavar="DIR",
        help="one store per table, resumed when present (default: swapprobe-study/ beside the "
        "first output file, else in the current folder)",
    )
    out.add_argument("--plot", metavar="PNG", help="the heatmap: metrics × tasks, by mean ρ")
    out.add_argument("--csv", metavar="PATH", help="one row per table, task and metric")
    out.add_argument("--json", metavar="PATH", help="the matrix and every correlation as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from swapprobe import report
    from swapprobe.benchmark import StudyPlan, study_heatmap

    out, err = console.consoles()
    outputs = [args.plot, args.csv, args.json]
    console.check_outputs(outputs)
    plan = StudyPlan(
        tuple(args.tables),
        options.inputs(args),
        options.scoring(args),
        options.execution(args),
        store_dir=args.store_dir or _default_store_dir(outputs),
        tasks=tuple(args.task) if args.task else None,
        limit=args.limit,
        reg=args.reg,
        bootstrap=args.bootstrap,
    )
    with console.ProgressBar(err) as bar:
        study = plan.run(bar)
    for table in study.tables:
        if table.problem is not None:
            err.print(f"swapprobe: {table.problem}", markup=False, highlight=False)
    if args.json != "-" and args.csv != "-":
        out.print(report.study_table(study))
        agreement = study.agreement()
        if agreement:
            out.print(report.agreement_table(agreement))
        scored = sum(len(t.run.report.results) for t in study.scored)  # type: ignore[union-attr]
        out.print(
            f"[dim]study: {len(study.scored)} of {len(study.tables)} tables, {scored} "
            f"architectures in {study.wall_seconds:.1f} s wall[/]"
        )
    if args.plot and study.scored:
        study_heatmap(study, args.plot)
        err.print(f"[dim]plot:[/] {args.plot}")
    if args.csv:
        report.write_csv_rows(study.rows(), sys.stdout if args.csv == "-" else args.csv)
    if args.json:
        report.dump_json(study.to_dict(), sys.stdout if args.json == "-" else args.json)
    return 0 if study.scored and len(study.scored) == len(study.tables) else 1


def _default_store_dir(outputs: list[str | None]) -> str:
    """``swapprobe-study/`` beside the first output file, else in the current folder."""
    first = next((o for o in outputs if o and o != "-"), None)
    parent = Path(first).parent if first else Path(".")
    return str(parent / "swapprobe-study")
