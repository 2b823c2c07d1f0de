"""The ``swapprobe`` command: parse, make one library call, render with Rich.

Results go to stdout, progress and errors to stderr. A :class:`SwapprobeError` is printed as
one line (exit 2) unless ``--debug``; importing this module and ``--help`` load neither torch
nor onnxruntime.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from swapprobe import __version__
from swapprobe.errors import SwapprobeError

__all__ = ["build_parser", "main"]

EPILOG_SCORE = """\
models:
  PATH.onnx            an ONNX model (its batch axis may be fixed or symbolic)
  SPACE:ARCH           an architecture of a built-in space, e.g. 'darts:DARTS_V2' or
                       'nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'
  SPACE:random:N       N seeded random architectures of darts or nb201
  FILE.py:FUNCTION     a Python function returning a torch.nn.Module

activations: every Relu, LeakyRelu, PRelu and Clip with min 0 (ReLU6) counts; a unit's bit is
1[pre-activation > 0]. BatchNorm runs on batch statistics (as the reference), dropout is off.

examples:
  swapprobe score darts:random:5 nb201:random:5 --repeats 8
  swapprobe score resnet.onnx vgg.onnx --data cifar10 --repeats 8 --store run.h5 --json run.json
  swapprobe score model.onnx --data ./images --input-size 224 224 --mu 1.5 --sigma 1.5 --size-unit M
  swapprobe score darts:random:200 --executor pool --workers 4 --store run.h5
  swapprobe score darts:random:2000 --executor ray --address auto --store run.h5
"""


# --- argument helpers ----------------------------------------------------------------
def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"S must be at least 2 (distinct patterns need 2 samples), got {value}"
        )
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_data_options(
    parser: argparse.ArgumentParser, *, default_data: str = "synthetic", batch_size: int | None = 16
) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        default=default_data,
        metavar="NAME|PATH",
        help="cifar10, cifar100, synthetic (embedded dead-leaves images, works offline), a "
        "folder of images, or a .npy/.npz array (default: %(default)s)",
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where CIFAR lives or is downloaded to (else $SWAPPROBE_DATA, else "
        "~/.cache/swapprobe)",
    )
    group.add_argument(
        "-S",
        "--batch-size",
        type=_batch_size,
        default=batch_size,
        metavar="S",
        help="samples per pattern, S ≥ 2 (default: %(default)s as the paper; for search spaces "
        "the space's: darts 16, nb201 32)",
    )
    group.add_argument(
        "--pick",
        choices=("first", "random"),
        default="first",
        help="which images: the first S, or S drawn with --seed (default: %(default)s)",
    )
    group.add_argument(
        "--input-size",
        type=_positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="resize inputs to H×W (when the model expects another size)",
    )


def _add_scoring_options(
    parser: argparse.ArgumentParser,
    *,
    repeats: int | None = 32,
    init: str | None = "gaussian",
    executor: str = "local",
) -> None:
    group = parser.add_argument_group("scoring")
    group.add_argument(
        "--repeats",
        type=_positive_int,
        default=repeats,
        help="re-initialisations averaged over (default: %(default)s, as the paper)"
        if repeats is not None
        else "re-initialisations averaged over (default: the space's, listed below)",
    )
    group.add_argument(
        "--seed", type=int, default=0, help="seeds data picks and weights (default: 0)"
    )
    group.add_argument(
        "--init",
        choices=("gaussian", "kaiming", "keep"),
        default=init,
        help="gaussian: N(0,1) weights as the reference; kaiming: PyTorch's default "
        "scheme; keep: score the weights as given "
        + (
            "(default: %(default)s; for search spaces the space's measured best)"
            if init is not None
            else "(default: the space's measured best, listed below)"
        ),
    )
    group.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto takes CUDA when onnxruntime-gpu can use it (default: auto)",
    )
    group.add_argument("--mu", type=_positive_float, help="μ of regularised SWAP (with --sigma)")
    group.add_argument("--sigma", type=_positive_float, help="σ of regularised SWAP (with --mu)")
    group.add_argument(
        "--size-unit",
        choices=("K", "M"),
        default=None,
        help="unit of Θ, μ, σ: K = thousands, M = millions of parameters "
        "(default: M; search spaces use their own: darts K, nb201 M)",
    )
    _add_executor_options(parser, executor)


def _add_executor_options(parser: argparse.ArgumentParser, default: str) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument(
        "--executor",
        choices=("auto", "local", "pool", "ray"),
        default=default,
        help="local: in this process; pool: --workers processes on this machine; ray: a Ray "
        "cluster (pip install 'swapprobe[ray]'); auto: pool when this machine has several "
        f"cores, else local (default: {default}). Same seed, same scores on each",
    )
    group.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="processes of --executor pool (default: the number of CPU cores)",
    )
    group.add_argument(
        "--address",
        metavar="ADDR",
        help="Ray cluster of --executor ray: auto (the cluster this node joined with `ray "
        "start`), or a Ray Client address ray://HEAD:10001 (not verified by this project's "
        "tests); default: $RAY_ADDRESS, else a local Ray instance",
    )


def executor_name(args: argparse.Namespace) -> str:
    """``--executor`` with ``auto`` made concrete (pool on a machine with several cores)."""
    if args.executor == "auto":
        return "pool" if (os.cpu_count() or 1) > 1 else "local"
    return str(args.executor)


def start_executor_early(args: argparse.Namespace) -> None:
    """Pool workers start importing torch now, beside this process's own start-up."""
    if executor_name(args) == "pool":
        from swapprobe.executors import start_pool_workers_early

        start_pool_workers_early()


def open_executor(args: argparse.Namespace) -> Any:
    """The executor the command line asks for (a context manager that releases workers)."""
    from swapprobe.executors import get_executor

    return get_executor(executor_name(args), workers=args.workers, address=args.address)


def report_failed(err: Any, failed: Sequence[Any], total: int) -> int:
    """One error line per model that failed twice; exit status 1 when there is any."""
    if not failed:
        return 0
    done = total - len(failed)
    if done:
        err.print(
            f"{len(failed)} of {total} failed (each tried twice); the {done} others are kept",
            markup=False,
            highlight=False,
        )
    for outcome in failed:
        err.print(
            f"swapprobe: error: {outcome.name}: {outcome.error}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swapprobe",
        description="Judge neural architectures without training them: SWAP-Score (sample-wise "
        "activation patterns, SWAP-NAS ICLR 2024) on ONNX Runtime.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"swapprobe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    score = commands.add_parser(
        "score",
        help="score and rank models",
        epilog=EPILOG_SCORE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score models (ONNX files, torch modules, search-space architectures) and "
        "print a ranking.",
    )
    score.add_argument("models", nargs="+", metavar="MODEL", help="models to score (see below)")
    _add_data_options(score)
    _add_scoring_options(score)
    score.add_argument(
        "--backend",
        choices=("onnx", "torch"),
        default="onnx",
        help="onnx: onnxruntime (default); torch: run the torch module with "
        "ReLU interception (torch models only)",
    )
    score.add_argument("--input-name", help="the image input, for models with several inputs")
    score.add_argument(
        "--max-pattern-memory",
        type=_positive_int,
        metavar="MB",
        help="most pattern memory one forward pass may return (default 1024); larger models "
        "are read in layer groups, one forward pass each, with identical results",
    )
    out = score.add_argument_group("output")
    out.add_argument("--store", metavar="RUN.h5", help="write patterns and scores to an HDF5 store")
    out.add_argument(
        "--resume",
        action="store_true",
        help="continue a store made with identical settings, skipping scored models",
    )
    out.add_argument(
        "--keep-patterns",
        choices=("none", "first", "all"),
        default="first",
        help="pattern blocks kept in the store per model (default: first repeat)",
    )
    out.add_argument("--json", metavar="PATH", help="write the rows as JSON ('-' for stdout)")
    out.add_argument("--csv", metavar="PATH", help="write the rows as CSV ('-' for stdout)")
    out.add_argument("--per-layer", action="store_true", help="add SWAP per activation layer")
    out.add_argument("--profile", action="store_true", help="print where the time went")
    out.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip standard activation patterns and NWOT (a little faster)",
    )
    score.set_defaults(handler=_cmd_score)

    inspect = commands.add_parser(
        "inspect",
        help="summarise an HDF5 store",
        description="Summarise a store: settings, models, scores.",
    )
    inspect.add_argument("store", metavar="RUN.h5")
    inspect.add_argument(
        "--layers", action="store_true", help="SWAP per activation layer, from the stored patterns"
    )
    inspect.set_defaults(handler=_cmd_inspect)

    rescore = commands.add_parser(
        "rescore",
        help="recompute regularised SWAP and baselines from a store",
        description="Recompute regularised SWAP (new μ, σ) and the baselines from stored "
        "patterns, without running any model.",
    )
    rescore.add_argument("store", metavar="RUN.h5")
    rescore.add_argument("--mu", type=_positive_float, required=True)
    rescore.add_argument("--sigma", type=_positive_float, required=True)
    rescore.add_argument(
        "--size-unit",
        choices=("K", "M"),
        default=None,
        help="unit of Θ (default: the unit stored per model)",
    )
    rescore.add_argument("--json", metavar="PATH")
    rescore.add_argument("--csv", metavar="PATH")
    rescore.set_defaults(handler=_cmd_rescore)
    _add_space_commands(commands)
    return parser


def _add_space_commands(commands: Any) -> None:
    """``search`` and ``correlate`` live in their own module; attach them when present."""
    try:
        from swapprobe import cli_space
    except ImportError:  # pragma: no cover - always shipped
        return
    cli_space.add_commands(commands, _add_data_options, _add_scoring_options)


# --- console helpers -----------------------------------------------------------------
def consoles() -> tuple[Any, Any]:
    """stdout for results, stderr for progress and errors.

    Piped or redirected output gets 160 columns instead of Rich's 80, so that tables in logs
    and files keep whole numbers rather than wrapping them.
    """
    from rich.console import Console

    out = Console()
    if not out.is_terminal:
        out = Console(width=160)
    return out, Console(stderr=True)


def progress_bar(err: Any, *, extra_columns: Sequence[Any] = ()) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (
        Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            *extra_columns,
            console=err,
            transient=False,
            disable=not err.is_terminal,
        )
        if err.is_terminal
        else PlainProgress(err)
    )


class PlainProgress:
    """Progress for logs (stderr not a terminal): a plain line per task at most every 30 s.

    Long runs in CI or under ``nohup`` should still say how far they are; Rich's live bar
    would print nothing until the end there. Same calls as ``rich.progress.Progress``.
    """

    def __init__(self, err: Any, every: float = 30.0) -> None:
        import time

        self._err, self._every, self._clock = err, every, time.monotonic
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:  # a failed run says so in its one error line, nothing more
            for task_id, task in self._tasks.items():
                if task.get("printed"):  # long runs close their log lines; short ones stay quiet
                    self._print(task_id)

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = {
            "description": description,
            "total": total,
            "completed": 0,
            "start": self._clock(),
            "last": self._clock(),
            **fields,
        }
        return task_id

    def update(self, task_id: int, **changes: Any) -> None:
        task = self._tasks[task_id]
        task.update(changes)
        if self._clock() - task["last"] >= self._every:
            self._print(task_id)

    def reset(self, task_id: int) -> None:
        self._tasks[task_id]["completed"] = 0

    def _print(self, task_id: int) -> None:
        task = self._tasks[task_id]
        task["last"] = self._clock()
        task["printed"] = True
        done, total = task["completed"], task["total"]
        share = f" ({100 * done / total:.0f} %)" if total else ""
        best = f"  best {task['best']}" if "best" in task else ""
        elapsed = self._clock() - task["start"]
        self._err.print(
            f"{task['description']}: {done}/{total}{share}  {elapsed:.0f} s{best}",
            highlight=False,
        )


def _write_rows(
    results: Sequence[Any], json_path: str | None, csv_path: str | None, out: Any
) -> None:
    import tempfile
    from pathlib import Path

    from swapprobe import report

    for path, writer in ((json_path, report.write_json), (csv_path, report.write_csv)):
        if not path:
            continue
        if path == "-":
            with tempfile.TemporaryDirectory() as tmp:
                target = Path(tmp) / "rows"
                writer(results, target)
                sys.stdout.write(target.read_text())
        else:
            writer(results, path)


# --- commands ------------------------------------------------------------------------
def _load_data(args: argparse.Namespace, progress: Callable[[int, int], None] | None = None) -> Any:
    from swapprobe.data import load_batch

    return load_batch(
        args.data,
        batch_size=args.batch_size,
        seed=args.seed,
        data_dir=args.data_dir,
        input_size=tuple(args.input_size) if args.input_size else None,
        pick=args.pick,
        progress=progress,
    )


def _cmd_score(args: argparse.Namespace) -> int:
    from swapprobe import report
    from swapprobe.api import score_many
    from swapprobe.evaluate import ScoreSettings
    from swapprobe.models import resolve_models
    from swapprobe.store import check_writable

    out, err = consoles()
    if args.store:
        check_writable(args.store)  # fail before any work
    start_executor_early(args)
    refs = resolve_models(args.models, seed=args.seed)
    data = _load_data(args)
    settings = ScoreSettings(
        batch_size=len(data.inputs),
        repeats=args.repeats,
        seed=args.seed,
        init=args.init,
        backend=args.backend,
        device=args.device,
        mu=args.mu,
        sigma=args.sigma,
        size_unit=args.size_unit or "M",
        baselines=not args.no_baselines,
        per_layer=args.per_layer,
        keep_patterns=args.keep_patterns if args.store else "none",  # unread without a store
        input_name=args.input_name,
        max_pattern_bytes=args.max_pattern_memory * 2**20 if args.max_pattern_memory else None,
    )
    with open_executor(args) as executor, progress_bar(err) as bar:
        models_task = bar.add_task("models", total=len(refs))
        # repeats are only seen for models scored in this process
        local = executor_name(args) == "local"
        repeat_task = bar.add_task("repeats", total=args.repeats) if local else None

        def on_repeat(done: int, total: int) -> None:
            if repeat_task is not None:
                bar.update(repeat_task, completed=done, total=total)

        def on_model(done: int, total: int, ref: Any, result: Any) -> None:
            bar.update(models_task, completed=done)
            if repeat_task is not None:
                bar.reset(repeat_task)

        results = score_many(
            refs,
            data,
            settings,
            store=args.store,
            resume=args.resume,
            on_model=on_model,
            on_repeat=on_repeat,
            executor=executor,
        )
    if not results:  # every model failed: nothing to rank
        return report_failed(err, results.failed, len(refs))
    first = results[0]
    header = report.run_header(
        data_source=data.source,
        fingerprint=data.fingerprint,
        backend=args.backend,
        device=first.metadata.get("provider", "?"),
        seed=args.seed,
        repeats=args.repeats,
        init=args.init,
        samples=len(data.inputs),
        size_unit=settings.size_unit,
        mu=args.mu,
        sigma=args.sigma,
    )
    json_to_stdout = args.json == "-" or args.csv == "-"
    if not json_to_stdout:
        out.print(header)
        out.print(report.ranking_table(results))
        if args.per_layer:
            for result in results:
                out.print(
                    report.layer_table(result.name, result.per_layer_swap or {}, result.layers)
                )
        if args.profile:
            out.print(report.profile_table(results))
        for result in results:
            passes = result.metadata.get("passes", 1)
            if passes > 1:
                err.print(
                    f"[yellow]{result.name}: patterns read in {passes} forward passes per repeat "
                    "(layer groups within --max-pattern-memory)[/]"
                )
        if args.store:
            err.print(f"[dim]store:[/] {args.store}")
    _write_rows(results, args.json, args.csv, out)
    return report_failed(err, results.failed, len(refs))


def _cmd_inspect(args: argparse.Namespace) -> int:
    from swapprobe import metrics, report
    from swapprobe.api import record_to_result
    from swapprobe.store import PatternStore

    out, _ = consoles()
    with PatternStore.open(args.store) as store:
        out.print(report.store_panel(store.summary()))
        results = [record_to_result(record) for record in store.records(patterns=False)]
        if results:
            out.print(report.ranking_table(results, title="stored scores"))
        if args.layers:
            for key in store.keys():  # noqa: SIM118 - a store, not a dict
                result = record_to_result(store.read(key, patterns=True))
                if not result.patterns:
                    out.print(f"[yellow]{result.name}: no patterns kept[/]")
                    continue
                matrices = [result.patterns[r] for r in sorted(result.patterns)]
                per_layer = {
                    info.name: sum(metrics.swap(m.layer(info.name)) for m in matrices)
                    / len(matrices)
                    for info in result.layers
                }
                out.print(report.layer_table(result.name, per_layer, result.layers))
    return 0


def _cmd_rescore(args: argparse.Namespace) -> int:
    from swapprobe import report
    from swapprobe.api import rescore

    out, _ = consoles()
    results = rescore(args.store, mu=args.mu, sigma=args.sigma, size_unit=args.size_unit)
    if not (args.json == "-" or args.csv == "-"):
        out.print(f"[dim]rescored from[/] {args.store}  μ={args.mu:g} σ={args.sigma:g}")
        out.print(report.ranking_table(results, title="rescored"))
    _write_rows(results, args.json, args.csv, out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    if getattr(args, "resume", False) and not getattr(args, "store", None):
        sys.stderr.write("swapprobe: error: --resume needs --store\n")
        return 2
    if (getattr(args, "mu", None) is None) != (getattr(args, "sigma", None) is None):
        sys.stderr.write("swapprobe: error: give --mu and --sigma together\n")
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _one_line_warning
            return int(args.handler(args) or 0)
    except SwapprobeError as error:
        if args.debug:
            raise
        sys.stderr.write(f"swapprobe: error: {error}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("swapprobe: interrupted; completed models are in the store\n")
        return 130


def _one_line_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    sys.stderr.write(f"swapprobe: warning: {message}\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
