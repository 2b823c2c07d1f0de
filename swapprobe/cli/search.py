"""``swapprobe search SPACE``: SWAP-NAS evolutionary search (one call:
:meth:`swapprobe.plan.SearchPlan.run`, over :func:`swapprobe.searching.run_search`)."""

from __future__ import annotations

import argparse
from typing import Any

from swapprobe.cli import console, options

EPILOG = """\
The fitness is each space's measured best (listed above): nb201 ranks by the aggregate of SWAP
with AZ-NAS's proxies, Σ log(rank/N) over every architecture scored so far (Spearman 0.92 on
1000 NAS-Bench-201 architectures against SWAP's 0.82); darts and flexibert by SWAP. reg-swap is
the paper's regularised SWAP Ψ·exp(−(Θ−μ)²/σ) (Θ in the space's unit: thousands of parameters
of the DARTS scoring cell, millions for NAS-Bench-201); --mu/--sigma or --reg auto choose μ and
σ, and μ steers the size of what is found (the paper's Fig. 5).

examples:
  swapprobe search darts                                  # defaults, synthetic data, offline
  swapprobe search nb201                                  # the aggregate, about 5 minutes
  swapprobe search nb201 --fitness reg-swap --plot search.png   # the paper's (μ, σ: --reg auto)
  swapprobe search darts --data cifar10 --mu 1.2 --sigma 1.2 --export best.onnx --json best.json
  swapprobe search darts --store run.h5                   # checkpoint every cycle
  swapprobe search darts --store run.h5 --resume          # continue a killed search
  swapprobe search my_space.py:space --json best.json     # your own define-by-run space
  swapprobe search nb201 --max-params 0.5M                # never score a larger network
  swapprobe search nb201 --data cifar100                  # CIFAR-100's images and labels,
                            # its network counted and exported (imagenet16-120: its folder)
  swapprobe search darts --data IMAGE_FOLDER --max-flops 600M --export best.onnx
                            # ImageNet-sized pictures: DARTS' ImageNet (mobile) setting

Your own space: a function in a file that takes the choice recorder, asks it for each choice
(width = c.choice("width", [16, 32, 64])) and returns a torch.nn.Module. Its members are its
choices as JSON, scored back with swapprobe score 'my_space.py:space:{"width": 32}'; it is
scored on the paper's defaults (S=16, N(0, 1) weights, 32 repeats; token ids from tokens:zipf
when the module holds an nn.Embedding).
"""


def add_parser(commands: Any) -> None:
    from swapprobe.searching import FITNESSES
    from swapprobe.searchspaces import list_spaces

    parser = commands.add_parser(
        "search",
        help="SWAP-NAS evolutionary search over a built-in space or your own",
        description="Evolutionary search (SWAP-NAS, Algorithm 1) over a built-in space or a "
        "define-by-run one (FILE.py:FUNCTION); the fitness is the space's best measured ranking "
        "(see below).",
        epilog=options.space_epilog(engine=True) + "\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "space",
        type=_space_argument(list_spaces()),
        metavar="SPACE",
        help=f"{{{','.join(list_spaces())}}}, or FILE.py:FUNCTION (a define-by-run space)",
    )
    options.add_data_options(parser, batch_default="the space's, listed below")
    options.add_scoring_options(parser, per_space=True, executor="auto")
    options.add_reg_option(parser)
    options.add_proxy_option(parser, default_word="the space's, listed below")
    engine = parser.add_argument_group("evolution")
    engine.add_argument(
        "--fitness",
        choices=FITNESSES,
        help="aggregate: SWAP and --proxies by ranks among all scored so far; reg-swap: "
        "regularised SWAP (the paper's, μ and σ by --reg auto unless given); swap: plain SWAP "
        "(default: the space's measured best, listed below)",
    )
    engine.add_argument(
        "--population",
        type=options.at_least(2, "crossover needs two parents"),
        metavar="P",
        help="population size (default: per space, see below)",
    )
    engine.add_argument(
        "--cycles", type=options.at_least(0), metavar="C", help="search cycles (default: per space)"
    )
    engine.add_argument(
        "--mutation-times",
        type=options.positive_int,
        metavar="M",
        help="mutants made per cycle (default: per space)",
    )
    engine.add_argument(
        "--crossover-prob",
        type=options.probability,
        default=0.5,
        help="chance the parent is the better crossover child (default: 0.5)",
    )
    budget = parser.add_argument_group(
        "size budget",
        "hard limits: an architecture over either is never scored (re-drawn instead), beside "
        "--reg's soft size control. Counted on the network you will train from the found "
        "architecture (its evaluation network, the one --export writes), not on the small "
        "network SWAP scores: darts' 20-cell C=36 CIFAR network, or its 14-cell C=48 ImageNet "
        "network when the images are 128 px or more on their shorter side (--input-size 224 224, "
        "or a folder of such pictures); nb201's benchmark network (CIFAR-10 head). Suffixes K, "
        "M, G (powers of ten).",
    )
    budget.add_argument(
        "--max-params",
        type=options.count,
        metavar="N",
        help="at most N parameters in the evaluation network (e.g. 6M, 0.5M, 800K)",
    )
    budget.add_argument(
        "--max-flops",
        type=options.count,
        metavar="N",
        help="at most N multiply-adds per image of the evaluation network at the batch's input "
        "size, every Conv2d and Linear counted (e.g. 600M: DARTS' mobile setting at 224×224)",
    )
    truth = parser.add_argument_group("ground truth")
    truth.add_argument(
        "--table",
        metavar="FILE.csv",
        help="look the found architecture up in a table of trained accuracies (e.g. the "
        "public NATS-Bench tables exported to CSV) and print them beside the table's optimum",
    )
    truth.add_argument("--arch-col", help="architecture column of --table (default: the first)")
    truth.add_argument("--acc-col", action="append", metavar="NAME", help="accuracy column(s)")
    out = parser.add_argument_group("output")
    out.add_argument("--store", metavar="RUN.h5", help="scores and a checkpoint per cycle")
    out.add_argument("--resume", action="store_true", help="continue the search in --store")
    out.add_argument(
        "--export",
        metavar="BEST.onnx",
        help="write the found architecture's evaluation network as ONNX, for the batch's input "
        "size (darts: the ImageNet network for images of 128 px and more)",
    )
    out.add_argument(
        "--json", metavar="PATH", help="the found architecture and the search as JSON ('-': stdout)"
    )
    out.add_argument(
        "--plot",
        metavar="PNG",
        help="best fitness against architectures scored, and fitness against size Θ",
    )
    parser.set_defaults(handler=run)


def _space_argument(known: list[str]) -> Any:
    """A registered space's name, or ``FILE.py:FUNCTION`` (read when the search starts)."""

    def parse(text: str) -> str:
        path, _, function = text.rpartition(":")
        if text in known or (path.endswith(".py") and function):
            return text
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(known)}, or FILE.py:FUNCTION)"
        )

    return parse


def run(args: argparse.Namespace) -> int:
    import sys

    from swapprobe import report
    from swapprobe.plan import SearchPlan, TableSpec
    from swapprobe.searching import search_plot

    out, err = console.consoles()
    console.check_outputs([args.json, args.export, args.plot])
    plan = SearchPlan(
        args.space,
        options.inputs(args),
        options.scoring(args),
        options.execution(args),
        fitness=args.fitness,
        reg=args.reg,
        population=args.population,
        cycles=args.cycles,
        mutation_times=args.mutation_times,
        crossover_prob=args.crossover_prob,
        store=args.store,
        resume=args.resume,
        table=TableSpec(args.table, args.arch_col, args.acc_col) if args.table else None,
        export=args.export,
        max_params=args.max_params,
        max_flops=args.max_flops,
    )
    with console.ProgressBar(
        err, show=("best",), announce=lambda setup: err.print(_setup_line(setup))
    ) as bar:
        found = plan.run(bar)
    outcome = found.outcome
    if outcome.calibration is not None:
        err.print(f"[dim]--reg auto:[/] {outcome.calibration.describe()}")
    if args.json != "-":
        out.print(report.search_panel(found.setup.space, outcome))
    if found.found is not None:
        for name, value in found.found.found.items():
            best_value, best_arch = found.found.optimum[name]
            shown = "not in the table" if value is None else f"{value:.2f}"
            out.print(
                f"{name}: found architecture {shown}; table optimum {best_value:.2f} ({best_arch})"
            )
    if args.json:
        report.dump_json(outcome.to_dict(), sys.stdout if args.json == "-" else args.json)
    if args.plot:
        err.print(f"[dim]plot:[/] {search_plot(outcome, args.plot)}")
    if found.exported is not None:
        err.print(f"[dim]exported evaluation network to[/] {found.exported}")
    return console.report_failed(err, outcome.failed, len(outcome.results) + len(outcome.failed))


def _setup_line(setup: Any) -> str:
    """The line a search prints before it starts: space, fitness, sizes, regularisation."""
    policy, config = setup.policy, setup.config
    settings, proxies = policy.settings, policy.proxies
    reg = (
        "auto (calibrated first)"
        if policy.calibrate
        else f"μ={settings.mu:g} σ={settings.sigma:g} (Θ in {settings.size_unit})"
        if settings.mu
        else "none"
    )
    budget = "" if setup.budget is None else f"  budget {setup.budget.describe()}"
    return (
        f"[dim]search[/] {setup.space.name}  fitness {policy.fitness}"
        + (f" of swap,{','.join(proxies)}" if proxies else "")
        + f"  P={config.population} C={config.cycles} "
        f"mutants={config.mutation_times}  S={settings.batch_size} repeats={settings.repeats}  "
        f"regularisation {reg}{budget}  data {setup.data.source}"
    )
