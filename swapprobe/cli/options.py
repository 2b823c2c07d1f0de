"""What the commands share: option groups, number checks made where they are parsed, output
path checks made before any work, consoles, progress, and the executor a command asks for.

Every number a user types is checked by its argparse ``type`` and refused in one line
(:class:`OneLineParser`), never silently replaced by a default.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from swapprobe.errors import SettingsError

__all__ = [
    "OneLineParser",
    "add_data_options",
    "add_executor_options",
    "add_scoring_options",
    "check_outputs",
    "consoles",
    "load_data",
    "open_executor",
    "positive_float",
    "positive_int",
    "progress_bar",
    "report_failed",
    "start_executor_early",
    "write_rows",
]

#: the inputs when neither ``--data`` nor the space names any: embedded images, offline
DEFAULT_DATA = "synthetic"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``swapprobe score: error: ...``) instead
    of the usage block followed by the message; ``--help`` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# --- numbers, checked where they are parsed --------------------------------------------
def _number(text: str, kind: Callable[[str], Any], what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None


def positive_float(text: str) -> float:
    value = _number(text, float, "number")
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return float(value)


def positive_int(text: str) -> int:
    value = _number(text, int, "whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return int(value)


def at_least(minimum: int, why: str = "") -> Callable[[str], int]:
    """An argparse type for whole numbers ≥ ``minimum`` (``why`` explains the bound)."""

    def parse(text: str) -> int:
        value = _number(text, int, "whole number")
        if value < minimum:
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{reason}, got {value}")
        return int(value)

    parse.__name__ = f"at_least_{minimum}"
    return parse


def probability(text: str) -> float:
    value = _number(text, float, "number")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return float(value)


batch_size = at_least(2, "distinct patterns need 2 samples")


def proxy_list(text: str) -> tuple[str, ...]:
    """``--proxies``: ``none`` or a comma list of proxy names (checked here)."""
    from swapprobe.results import PROXIES

    if text.strip().lower() == "none":
        return ()
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in PROXIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown proxy {unknown[0] if unknown else text!r}: use none or any of "
            f"{', '.join(PROXIES)}"
        )
    return names


def add_proxy_option(parser: argparse.ArgumentParser, *, default_word: str) -> None:
    parser.add_argument(
        "--proxies",
        type=proxy_list,
        default=None,
        metavar="LIST|none",
        help="proxies aggregated with SWAP by ranks, Σ log(rank/N) over the candidates compared "
        "(AZ-NAS's sum): expressivity, progressivity, trainability, flops (a torch pass on "
        f"Gaussian noise), nwot, params; none = SWAP alone (default: {default_word})",
    )


# --- option groups -----------------------------------------------------------------------
def add_data_options(parser: argparse.ArgumentParser, *, batch_default: str) -> None:
    """``--data``, ``--data-dir``, ``-S``, ``--pick``, ``--input-size``; ``batch_default`` is
    the help text's word for S's default (a number, or "the space's")."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        default=None,
        metavar="NAME|PATH",
        help="cifar10, cifar100, synthetic (embedded dead-leaves images, works offline), a "
        "folder of images, or a .npy/.npz array (default: the space's source where it names "
        f"one, else {DEFAULT_DATA}); token models: tokens:zipf (seeded Zipf s=1.1 stream, "
        "offline), tokens:uniform, tokens:english (English shipped with Python), "
        "tokens:FILE.txt, tokens:FILE.npy (ids (N, T))",
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
        type=batch_size,
        default=None,
        metavar="S",
        help=f"samples per pattern, S ≥ 2 (default: {batch_default})",
    )
    group.add_argument(
        "--pick",
        choices=("first", "random"),
        default="first",
        help="which samples (images, token documents or rows): the first S, or S drawn with "
        "--seed (default: %(default)s)",
    )
    group.add_argument(
        "--input-size",
        type=positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="resize inputs to H×W (when the model expects another size)",
    )
    group.add_argument(
        "--seq-len",
        type=positive_int,
        metavar="T",
        help="tokens per sequence of a tokens: source (default: the model's fixed input "
        "length, else 128)",
    )
    group.add_argument(
        "--vocab-size",
        type=at_least(2, "id 0 is padding"),
        metavar="V",
        help="token ids are below V (default: the model's embedding rows, else 30522, BERT's)",
    )
    group.add_argument(
        "--tokenizer",
        metavar="NAME|DIR",
        help="tokenise tokens:FILE.txt / tokens:english with this Hugging Face tokenizer, "
        "from local files only (needs transformers; default: a built-in offline scheme, "
        "words hashed into ids)",
    )


def add_scoring_options(
    parser: argparse.ArgumentParser, *, per_space: bool, executor: str = "local"
) -> None:
    """``--repeats``, ``--seed``, ``--init``, ``--backend``, ``--device``, ``--mu``/``--sigma``,
    ``--size-unit`` and the executor options. ``per_space``: defaults come from the space."""
    group = parser.add_argument_group("scoring")
    group.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        help="re-initialisations averaged over (default: "
        + ("the space's, listed below)" if per_space else "32 as the paper, or the space's)"),
    )
    group.add_argument(
        "--seed", type=int, default=0, help="seeds data picks and weights (default: 0)"
    )
    group.add_argument(
        "--init",
        choices=("gaussian", "kaiming", "keep"),
        default=None,
        help="gaussian: N(0,1) weights as the reference; kaiming: PyTorch's default "
        "scheme; keep: score the weights as given (default: "
        + (
            "the space's measured best, listed below)" if per_space else "gaussian, or the space's)"
        ),
    )
    group.add_argument(
        "--backend",
        choices=("onnx", "torch"),
        default=None,
        help="onnx: onnxruntime; torch: run the torch module itself, gates intercepted (torch "
        "models and search-space architectures; bit-identical on the test networks). Default: "
        + ("the space's, listed below)" if per_space else "onnx, or the space's)"),
    )
    group.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto takes CUDA when onnxruntime-gpu can use it (default: auto)",
    )
    group.add_argument("--mu", type=positive_float, help="μ of regularised SWAP (with --sigma)")
    group.add_argument("--sigma", type=positive_float, help="σ of regularised SWAP (with --mu)")
    group.add_argument(
        "--size-unit",
        choices=("K", "M"),
        default=None,
        help="unit of Θ, μ, σ: K = thousands, M = millions of parameters "
        "(default: M; search spaces use their own: darts K, nb201 M)",
    )
    add_executor_options(parser, executor)


def add_executor_options(parser: argparse.ArgumentParser, default: str) -> None:
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
        type=positive_int,
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


def add_reg_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reg",
        choices=("auto",),
        help="auto: choose μ and σ from the space's size distribution alone (no accuracies "
        "needed; rule in swapprobe/regularisation.py) and print them",
    )


def before_work(args: argparse.Namespace, outputs: Iterable[str | None]) -> None:
    """What every scoring command checks before any work, then starts: μ/σ given together,
    ``--resume`` with ``--store``, output folders and the store writable; pool workers start
    importing beside the command's own start-up."""
    from swapprobe.store import check_writable

    check_mu_sigma(args)
    if args.resume and not args.store:
        raise SettingsError("--resume needs --store")
    check_outputs(outputs)
    if args.store:
        check_writable(args.store)
    start_executor_early(args)


def check_mu_sigma(args: argparse.Namespace) -> None:
    if (args.mu is None) != (args.sigma is None):
        raise SettingsError("give --mu and --sigma together")
    if getattr(args, "reg", None) == "auto" and args.mu is not None:
        raise SettingsError("--reg auto chooses μ and σ itself; drop --mu/--sigma")


def space_epilog(*, engine: bool) -> str:
    """One line per registered space with its declared defaults (the help's table)."""
    return "per-space defaults:\n" + space_lines(engine=engine)


def space_lines(*, engine: bool) -> str:
    """``  NAME  S=… init=…`` per registered space, names padded to one column."""
    from swapprobe.searchspaces import get_space, list_spaces

    names = list_spaces()
    width = max(len(name) for name in names) + 2
    return "\n".join(
        f"  {name:<{width}}{get_space(name).defaults.describe(engine=engine)}" for name in names
    )


# --- paths, checked before any work ------------------------------------------------------
def check_outputs(paths: Iterable[str | None]) -> None:
    """Refuse, before any work, an output file whose folder is missing or not writable (``-``
    is stdout), so that no result is lost at the end of a long run."""
    for text in paths:
        if not text or text == "-":
            continue
        target = Path(text)
        if target.is_dir():
            raise SettingsError(f"output {target} is a directory; give a file path")
        if target.exists() and not os.access(target, os.W_OK):
            raise SettingsError(f"output {target} is not writable")
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise SettingsError(f"cannot write {target}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SettingsError(f"cannot write {target}: folder {parent} is not writable")


def write_rows(
    results: Sequence[Any], json_path: str | None, csv_path: str | None, **json_extra: Any
) -> None:
    """``--json``/``--csv`` of result rows (``-`` is stdout)."""
    from swapprobe import report

    if json_path:
        report.write_json(
            results, sys.stdout if json_path == "-" else json_path, extra=json_extra or None
        )
    if csv_path:
        report.write_csv(results, sys.stdout if csv_path == "-" else csv_path)


def score_settings(
    args: argparse.Namespace, data: Any, defaults: Any, *, size_unit: str, **extra: Any
) -> Any:
    """The :class:`~swapprobe.results.ScoreSettings` of the scoring options every command
    shares (``--repeats``, ``--seed``, ``--init``, ``--backend``, ``--device``,
    ``--mu``/``--sigma``, ``--size-unit``), with ``defaults`` (a space's, or the paper's)
    where none was given; ``extra`` are the command's own settings."""
    from swapprobe.results import ScoreSettings

    return ScoreSettings(
        batch_size=len(data.inputs),
        repeats=args.repeats or defaults.repeats,
        seed=args.seed,
        init=args.init or defaults.init,
        backend=args.backend or defaults.backend,
        device=args.device,
        mu=args.mu,
        sigma=args.sigma,
        size_unit=args.size_unit or size_unit,
        **extra,
    )


# --- data and executors ------------------------------------------------------------------
def load_data(
    args: argparse.Namespace,
    batch_size: int,
    *,
    input_size: tuple[int, ...] | None = None,
    models: Sequence[Any] = (),
    default: str | None = None,
) -> Any:
    """The batch the data options ask for (``input_size``: instead of ``--input-size``); a
    token source's length and vocabulary default to what ``models`` (references) state;
    ``default``: the source when ``--data`` is not given (a space's ``defaults.data``)."""
    from swapprobe.data import load_batch
    from swapprobe.models import token_options

    size = input_size or (tuple(args.input_size) if args.input_size else None)
    data = args.data or default or DEFAULT_DATA
    tokens = token_options(
        models,
        data,
        seq_len=args.seq_len,
        vocab_size=args.vocab_size,
        input_name=getattr(args, "input_name", None),
    )
    return load_batch(
        data,
        batch_size=batch_size,
        seed=args.seed,
        data_dir=args.data_dir,
        input_size=size,  # type: ignore[arg-type]
        pick=args.pick,
        tokenizer=args.tokenizer,
        **tokens,  # type: ignore[arg-type]
    )


def space_models(space: Any, seed: int) -> list[Any]:
    """One seeded architecture of ``space``, standing for it where the data's shape is read
    from the models (a token source's T and V)."""
    import numpy as np

    from swapprobe.models import arch_ref

    return [arch_ref(space, space.sample(np.random.default_rng(seed)))]


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
    """One error line per model that failed; exit status 1 when there is any."""
    if not failed:
        return 0
    done = total - len(failed)
    if done:
        err.print(
            f"{len(failed)} of {total} failed; the {done} others are kept",
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


# --- consoles and progress ---------------------------------------------------------------
def consoles() -> tuple[Any, Any]:
    """stdout for results, stderr for progress and errors.

    Piped or redirected output gets 160 columns instead of Rich's 80, so that tables in logs
    and files keep whole numbers rather than wrapping them; messages to a redirected stderr are
    not wrapped at all.
    """
    from rich.console import Console

    out = Console()
    if not out.is_terminal:
        out = Console(width=160)
    err = Console(stderr=True)
    if not err.is_terminal:  # logs: one message, one line
        err = Console(stderr=True, width=160, soft_wrap=True)
    return out, err


def progress_bar(err: Any, *, extra_columns: Sequence[Any] = ()) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if not err.is_terminal:
        return PlainProgress(err)
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *extra_columns,
        console=err,
        transient=False,
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
