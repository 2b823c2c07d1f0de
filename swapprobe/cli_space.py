"""``swapprobe search SPACE`` and ``swapprobe correlate SPACE``: thin commands over
:mod:`swapprobe.search` and :mod:`swapprobe.correlate`."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]

SPACES = ("darts", "nb201")

SEARCH_EPILOG = """\
The fitness is regularised SWAP Ψ·exp(−(Θ−μ)²/σ) when --mu/--sigma are given (Θ in the
space's unit: thousands of parameters of the DARTS scoring cell, millions for NAS-Bench-201),
plain SWAP otherwise. μ steers the size of what is found (the paper's Fig. 5).

examples:
  swapprobe search darts                                  # defaults, synthetic data, offline
  swapprobe search darts --data cifar10 --mu 1.2 --sigma 1.2 --export best.onnx --out best.json
  swapprobe search darts --store run.h5                   # checkpoint every cycle
  swapprobe search darts --store run.h5 --resume          # continue a killed search
"""


def _space_defaults(*, engine: bool) -> str:
    """One line per space from :data:`SEARCH_DEFAULTS` (the engine's P, C, mutants if asked)."""
    lines = []
    for space, (population, cycles, mutants, repeats) in SEARCH_DEFAULTS.items():
        evolution = f" P={population} C={cycles} mutants={mutants}" if engine else ""
        lines.append(
            f"  {space:<6}{evolution} repeats={repeats} S={SPACE_BATCH_SIZES[space]} "
            f"init={SPACE_INITS[space]}"
        )
    return "\n".join(lines)


def _search_epilog() -> str:
    return (
        "per-space defaults (chosen to fit 2 CPU cores, see the README):\n"
        + _space_defaults(engine=True)
        + "\n\n"
        + SEARCH_EPILOG
    )


def _correlate_epilog() -> str:
    return "per-space defaults:\n" + _space_defaults(engine=False) + "\n\n" + CORRELATE_EPILOG


CORRELATE_EPILOG = """\
The table is a CSV: an architecture column and one or more accuracy columns. Without a header,
column 1 is the architecture and column 2 the accuracy (the authors' DARTS table).

examples:
  swapprobe correlate darts --table darts_cifar10_1000.csv --data cifar10 --limit 200
  swapprobe correlate nb201 --table nb201.csv --acc-col cifar10_test_acc_200ep -S 32 --repeats 2
"""


def add_commands(
    commands: Any, add_data: Callable[..., None], add_scoring: Callable[..., None]
) -> None:
    search = commands.add_parser(
        "search",
        help="SWAP-NAS evolutionary search over a built-in space",
        description="Evolutionary search (SWAP-NAS, Algorithm 1) with SWAP as fitness.",
        epilog=_search_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument("space", choices=SPACES)
    add_data(search, batch_size=None)
    add_scoring(search, repeats=None, init=None, executor="auto")
    _add_reg_option(search)
    engine = search.add_argument_group("evolution")
    engine.add_argument(
        "--population",
        type=int,
        default=None,
        metavar="P",
        help="population size (default: per space, see below)",
    )
    engine.add_argument("--cycles", type=int, default=None, metavar="C", help="search cycles")
    engine.add_argument(
        "--mutation-times", type=int, default=None, metavar="M", help="mutants made per cycle"
    )
    engine.add_argument(
        "--crossover-prob",
        type=float,
        default=0.5,
        help="chance the parent is the better crossover child (default: 0.5)",
    )
    truth = search.add_argument_group("ground truth")
    truth.add_argument(
        "--table",
        metavar="FILE.csv",
        help="look the found architecture up in a table of trained accuracies (e.g. the "
        "public NATS-Bench tables exported to CSV) and print them beside the table's optimum",
    )
    truth.add_argument("--arch-col", help="architecture column of --table (default: the first)")
    truth.add_argument("--acc-col", action="append", metavar="NAME", help="accuracy column(s)")
    out = search.add_argument_group("output")
    out.add_argument("--store", metavar="RUN.h5", help="scores and a checkpoint per cycle")
    out.add_argument("--resume", action="store_true", help="continue the search in --store")
    out.add_argument(
        "--export",
        metavar="BEST.onnx",
        help="write the found architecture's evaluation-size network as ONNX",
    )
    out.add_argument("--out", metavar="GENOTYPE.json", help="write the found architecture as JSON")
    out.add_argument(
        "--plot",
        metavar="PNG",
        help="best fitness against architectures scored, and fitness against size Θ",
    )
    search.set_defaults(handler=_cmd_search)

    correlate = commands.add_parser(
        "correlate",
        help="rank correlation of scores with a ground-truth table",
        description="Score every architecture of a table and report Spearman/Kendall "
        "correlations with bootstrap 95 % intervals.",
        epilog=_correlate_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    correlate.add_argument("space", choices=SPACES)
    correlate.add_argument("--table", required=True, metavar="FILE.csv")
    correlate.add_argument("--arch-col", help="architecture column (default: the first)")
    correlate.add_argument(
        "--acc-col",
        action="append",
        metavar="NAME",
        help="accuracy column, may repeat (default: every other column)",
    )
    correlate.add_argument("--limit", type=int, metavar="N", help="score a seeded subset of N rows")
    add_data(correlate, batch_size=None)
    add_scoring(correlate, repeats=None, init=None, executor="auto")
    _add_reg_option(correlate)
    correlate.add_argument(
        "--sweep", action="store_true", help="sweep μ=σ over the size range and report the best"
    )
    correlate.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples for the intervals (default: 1000)",
    )
    out = correlate.add_argument_group("output")
    out.add_argument("--store", metavar="RUN.h5", help="scores of every architecture (HDF5)")
    out.add_argument(
        "--keep-patterns",
        choices=("none", "first", "all"),
        default="none",
        help="pattern blocks kept in the store per architecture (default: none; 'first' costs "
        "about 31 KB per DARTS cell and 0.6 MB per NAS-Bench-201 network at S=32)",
    )
    out.add_argument("--resume", action="store_true")
    out.add_argument("--plot", metavar="PNG", help="scatter plots of score vs accuracy")
    out.add_argument("--csv", metavar="PATH", help="per-architecture scores and accuracies")
    out.add_argument("--json", metavar="PATH", help="the correlation table as JSON")
    correlate.set_defaults(handler=_cmd_correlate)


# --- per-space defaults --------------------------------------------------------------
#: (population, cycles, mutation_times, repeats) chosen so a default search (executor auto:
#: one pool worker per core) stays within the time budget on 2 CPU cores (DARTS < 10 min,
#: NAS-Bench-201 < 5 min with --reg auto's calibration); see the README.
SEARCH_DEFAULTS = {"darts": (50, 100, 5, 32), "nb201": (40, 200, 4, 2)}
#: the spaces' default S and init (``default_batch_size``, ``default_init``), for the help
#: text without importing the spaces (a test keeps them equal)
SPACE_BATCH_SIZES = {"darts": 16, "nb201": 32}
SPACE_INITS = {"darts": "gaussian", "nb201": "kaiming"}


def _settings(
    args: argparse.Namespace,
    space: Any,
    data: Any,
    repeats: int,
    executor: Any = None,
    **extra: Any,
) -> Any:
    from dataclasses import replace

    from swapprobe.evaluate import ScoreSettings

    if getattr(args, "reg", None) == "auto" and args.mu is not None:
        raise _usage("--reg auto chooses μ and σ itself; drop --mu/--sigma")
    settings = ScoreSettings(
        batch_size=len(data.inputs),
        repeats=repeats,
        seed=args.seed,
        init=args.init or space.default_init,
        device=args.device,
        mu=args.mu,
        sigma=args.sigma,
        size_unit=args.size_unit or space.size_unit,
        **extra,
    )
    if getattr(args, "reg", None) != "auto":
        return settings
    from rich.console import Console

    from swapprobe.evaluate import Evaluator
    from swapprobe.regularisation import DEFAULT_SAMPLES, auto_regularisation

    Console(stderr=True).print(
        f"[dim]--reg auto: scoring {DEFAULT_SAMPLES} random {space.name} architectures to "
        "calibrate μ and σ …[/]"
    )
    start = time.perf_counter()
    plain = replace(settings, baselines=False, keep_patterns="none")
    evaluator = Evaluator(data, plain)

    def score(archs: list[Any]) -> list[Any]:
        """The calibration's scorings, on the command's executor when it has one."""
        if executor is None:
            return [evaluator.evaluate_architecture(space, arch) for arch in archs]
        from swapprobe.errors import SwapprobeError
        from swapprobe.executors import arch_task

        tasks = [arch_task(i, space, arch) for i, arch in enumerate(archs)]
        results = []
        for outcome in executor.map(evaluator, tasks):
            if outcome.result is None:
                raise SwapprobeError(f"--reg auto: {outcome.name}: {outcome.error}")
            results.append(outcome.result)
        return results

    chosen = auto_regularisation(space, score, seed=args.seed, unit=settings.size_unit)
    args.reg_seconds = time.perf_counter() - start
    args.reg_description = f"{chosen.describe()} ({args.reg_seconds:.0f} s)"
    args.reg_scored = chosen.scored
    return replace(settings, mu=chosen.mu, sigma=chosen.sigma)


def _add_reg_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reg",
        choices=("auto",),
        help="auto: choose μ and σ from the space's size distribution alone (no accuracies "
        "needed; rule in swapprobe/regularisation.py) and print them",
    )


def _cmd_search(args: argparse.Namespace) -> int:
    from rich.progress import TextColumn

    from swapprobe.cli import (
        _load_data,
        consoles,
        open_executor,
        progress_bar,
        report_failed,
        start_executor_early,
    )
    from swapprobe.evolution import EvolutionConfig
    from swapprobe.search import run_search
    from swapprobe.searchspaces import get_space

    out, err = consoles()
    if args.resume and not args.store:
        raise _usage("--resume needs --store")
    start_executor_early(args)
    space = get_space(args.space)
    population, cycles, mutation_times, repeats = SEARCH_DEFAULTS[args.space]
    config = EvolutionConfig(
        population=args.population or population,
        cycles=args.cycles if args.cycles is not None else cycles,
        mutation_times=args.mutation_times or mutation_times,
        crossover_prob=args.crossover_prob,
        seed=args.seed,
    )
    table = None
    if args.table:  # read (and check) the table before any scoring
        from swapprobe.correlate import read_table

        table = read_table(args.table, arch_col=args.arch_col, acc_cols=args.acc_col)
    if args.store:  # an unusable store fails before any scoring too
        from swapprobe.store import check_writable

        check_writable(args.store)
    args.batch_size = args.batch_size or space.default_batch_size
    data = _load_data(args)
    with open_executor(args) as executor:
        settings = _settings(
            args,
            space,
            data,
            args.repeats or repeats,
            executor,
            baselines=False,
            keep_patterns="none",
        )
        unit = settings.size_unit
        reg = getattr(args, "reg_description", None) or (
            f"μ={settings.mu:g} σ={settings.sigma:g} (Θ in {unit})"
            if settings.mu
            else "none (plain SWAP)"
        )
        err.print(
            f"[dim]search[/] {args.space}  P={config.population} C={config.cycles} "
            f"mutants={config.mutation_times}  S={settings.batch_size} repeats="
            f"{settings.repeats}  regularisation {reg}  data {data.source}"
        )
        with progress_bar(err, extra_columns=[TextColumn("best {task.fields[best]}")]) as bar:
            task = bar.add_task("cycles", total=config.cycles, best="—")

            def on_cycle(report: Any) -> None:
                bar.update(task, completed=report.cycle, best=f"{report.best.fitness:,.1f}")

            outcome = run_search(
                space,
                data,
                settings,
                config,
                store=args.store,
                resume=args.resume,
                on_cycle=on_cycle,
                executor=executor,
                prescored=getattr(args, "reg_scored", ()),
            )
    _print_search(out, space, outcome, settings, getattr(args, "reg_seconds", 0.0))
    if args.table:
        from swapprobe.correlate import lookup

        found = lookup(table, space, outcome.best_text)
        for name, value in found.found.items():
            best_value, best_arch = found.optimum[name]
            shown = "not in the table" if value is None else f"{value:.2f}"
            out.print(
                f"{name}: found architecture {shown}; table optimum {best_value:.2f} ({best_arch})"
            )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    **_outcome_json(space, outcome, settings),
                    "calibration_seconds": getattr(args, "reg_seconds", 0.0),
                },
                indent=2,
            )
            + "\n"
        )
    if args.plot:
        from swapprobe.search import search_plot

        err.print(f"[dim]plot:[/] {search_plot(outcome, args.plot)}")
    if args.export:
        _export(space, outcome.best_arch, args.export)
        err.print(f"[dim]exported evaluation network to[/] {args.export}")
    return report_failed(err, outcome.failed, len(outcome.results) + len(outcome.failed))


def _outcome_json(space: Any, outcome: Any, settings: Any) -> dict[str, Any]:
    best = outcome.best
    return {
        "space": space.name,
        "architecture": outcome.best_text,
        "fitness": outcome.search.best.fitness,
        "swap": best.swap,
        "reg_swap": best.reg_swap,
        "mu": settings.mu,
        "sigma": settings.sigma,
        "size_unit": settings.size_unit,
        "scoring_params": best.param_count,
        "evaluation_params": outcome.evaluation_params,
        "evaluations": outcome.search.evaluations,
        "cache_hits": outcome.search.cache_hits,
        "wall_seconds": outcome.wall_seconds,
        "history": [
            {"cycle": h.cycle, "best_fitness": h.best_fitness, "evaluations": h.evaluations}
            for h in outcome.search.history
        ],
    }


def _print_search(
    out: Any, space: Any, outcome: Any, settings: Any, calibration: float = 0.0
) -> None:
    from rich.panel import Panel
    from rich.table import Table

    best = outcome.best
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column(overflow="fold")
    grid.add_row("architecture", outcome.best_text)
    grid.add_row("fitness", f"{outcome.search.best.fitness:,.2f}")
    grid.add_row("SWAP", f"{best.swap:,.1f} ± {best.swap_std:,.1f}")
    if best.reg_swap is not None:
        grid.add_row(
            "reg. SWAP",
            f"{best.reg_swap:,.1f}  (μ={settings.mu:g}, σ={settings.sigma:g},"
            f" Θ in {settings.size_unit})",
        )
    grid.add_row("scoring params", f"{best.param_count:,}")
    grid.add_row("evaluation params", f"{outcome.evaluation_params / 1e6:.3f} M")
    grid.add_row(
        "evaluations",
        f"{outcome.search.evaluations:,} scored, {outcome.search.cache_hits:,} cache hits",
    )
    total = outcome.wall_seconds + calibration
    grid.add_row(
        "wall time",
        f"{total:.1f} s (every export and session included"
        + (f"; {calibration:.1f} s of it --reg auto calibration)" if calibration else ")"),
    )
    drawing = getattr(space, "draw_cell", None)
    if callable(drawing):
        grid.add_row("cell", drawing(outcome.best_arch))
    out.print(Panel(grid, title=f"best architecture — {space.name}", title_align="left"))


def _export(space: Any, arch: Any, path: str) -> None:
    import numpy as np
    import onnx

    from swapprobe.capture.export import export_module

    network = space.build_evaluation_network(arch)
    sample = np.zeros((2, *space.input_shape), np.float32)
    onnx.save(export_module(network, sample), path)


def _cmd_correlate(args: argparse.Namespace) -> int:
    import numpy as np

    from swapprobe import report
    from swapprobe.cli import (
        _load_data,
        consoles,
        open_executor,
        progress_bar,
        report_failed,
        start_executor_early,
    )
    from swapprobe.correlate import (
        METRICS,
        correlate,
        metric_values,
        read_table,
        scatter_plot,
        sweep_regularisation,
    )
    from swapprobe.search import score_table
    from swapprobe.searchspaces import get_space

    out, err = consoles()
    if args.resume and not args.store:
        raise _usage("--resume needs --store")
    start_executor_early(args)
    space = get_space(args.space)
    truth = read_table(args.table, arch_col=args.arch_col, acc_cols=args.acc_col)
    args.batch_size = args.batch_size or space.default_batch_size
    data = _load_data(args)
    with open_executor(args) as executor:
        repeats = args.repeats or SEARCH_DEFAULTS[args.space][3]
        settings = _settings(args, space, data, repeats, executor, keep_patterns=args.keep_patterns)
        if getattr(args, "reg_description", None):
            err.print(f"[dim]--reg auto:[/] {args.reg_description}")
        with progress_bar(err) as bar:
            task = bar.add_task("architectures", total=len(truth.archs))

            def on_arch(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            started = time.perf_counter()
            results, accuracies, rows = score_table(
                space,
                truth,
                data,
                settings,
                limit=args.limit,
                seed=args.seed,
                store=args.store,
                resume=args.resume,
                on_arch=on_arch,
                executor=executor,
            )
            wall = time.perf_counter() - started
    failed = results.failed
    if not results:  # every architecture failed: nothing to correlate
        return report_failed(err, failed, len(failed))
    sweeps = {}
    if args.sweep:
        theta = np.array([r.theta for r in results])
        grid = np.unique(np.round(np.quantile(theta, np.linspace(0.05, 1.0, 40)), 4))
        grid = np.concatenate([grid, grid * 1.5, grid * 2])
        for target, acc in accuracies.items():
            sweeps[target] = sweep_regularisation(results, acc, sorted(set(grid[grid > 0])))
        if settings.mu is None:  # no μ/σ given: the table's regularised row uses the sweep's best
            target0 = next(iter(sweeps))
            best_value, _ = max(sweeps[target0], key=lambda pair: pair[1])
            results = [r.with_regularisation(best_value, best_value) for r in results]
    rows_out = []
    for target, acc in accuracies.items():
        for metric in METRICS:
            values = metric_values(results, metric)
            if not np.isfinite(values).any():
                continue
            rows_out.append(
                correlate(
                    values,
                    acc,
                    metric=metric,
                    target=target,
                    bootstrap=args.bootstrap,
                    seed=args.seed,
                )
            )
    header = report.run_header(
        data_source=data.source,
        fingerprint=data.fingerprint,
        backend="onnx",
        device=results[0].metadata.get("provider", "?") if results else "?",
        seed=args.seed,
        repeats=settings.repeats,
        init=settings.init,
        samples=settings.batch_size,
        size_unit=settings.size_unit,
        mu=results[0].mu if results else None,
        sigma=results[0].sigma if results else None,
    )
    out.print(header)
    out.print(
        report.correlation_table(
            rows_out, title=f"{space.name}: {len(results)} architectures of {truth.path}"
        )
    )
    for target, sweep in sweeps.items():
        value, rho = max(sweep, key=lambda pair: pair[1])
        out.print(f"best μ=σ for {target}: {value:g} ({settings.size_unit})  Spearman {rho:.3f}")
    seconds = sum(r.seconds for r in results)
    out.print(
        f"[dim]scoring: {wall:.1f} s wall; {seconds:.1f} s of evaluation in total, "
        f"{seconds / max(len(results), 1):.3f} s per architecture[/]"
    )
    if args.plot:
        first = next(iter(accuracies))
        scatter_plot(
            results,
            accuracies[first],
            args.plot,
            target=first,
            title=f"{space.name} — {Path(args.table).name}",
        )
        err.print(f"[dim]plot:[/] {args.plot}")
    if args.csv:
        _write_table_csv(args.csv, space, truth, results, accuracies, rows)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "correlations": [vars(c) for c in rows_out],
                    "sweeps": sweeps,
                },
                indent=2,
                default=float,
            )
            + "\n"
        )
    return report_failed(err, failed, len(results) + len(failed))


def _write_table_csv(
    path: str, space: Any, truth: Any, results: Any, accuracies: Any, rows: Any
) -> None:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "arch",
                *accuracies,
                "swap",
                "swap_std",
                "reg_swap",
                "standard_ap",
                "nwot",
                "params",
                "units",
                "seconds",
            ]
        )
        for index, (row, result) in enumerate(zip(rows, results, strict=True)):
            writer.writerow(
                [
                    truth.archs[row],
                    *(acc[index] for acc in accuracies.values()),
                    result.swap,
                    result.swap_std,
                    result.reg_swap,
                    result.standard_ap,
                    result.nwot,
                    result.param_count,
                    result.units,
                    round(result.seconds, 4),
                ]
            )


def _usage(message: str) -> Exception:
    from swapprobe.errors import SettingsError

    return SettingsError(message)
