"""What the commands' parsers share: option groups, number checks made where they are
parsed, and the run plan's option groups (:mod:`swapprobe.plan`) made from the parsed flags.

Every number a user types is checked by its argparse ``type`` and refused in one line
(:class:`OneLineParser`), never silently replaced by a default. Defaults stay ``None`` here:
the plan resolves them (a space's, else the paper's).
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any, NoReturn

from swapprobe.plan import DEFAULT_DATA, Execution, Inputs, Scoring

__all__ = [
    "OneLineParser",
    "add_data_options",
    "add_executor_options",
    "add_scoring_options",
    "execution",
    "inputs",
    "positive_float",
    "positive_int",
    "scoring",
]


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


def count(text: str) -> int:
    """An argparse type for a positive count with an optional K, M or G (``6M``, ``0.5M``)."""
    from swapprobe.budget import parse_count
    from swapprobe.errors import SettingsError

    try:
        return parse_count(text)
    except SettingsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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


def depth_interval(text: str) -> tuple[int, int]:
    """``--interval FIRST:LAST``: L-SWAG's depth bins, 0-9, inclusive at both ends."""
    parts = text.split(":")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"must be FIRST:LAST depth bins (0-9), got {text!r}")
    first, last = (_number(part, int, "whole number") for part in parts)
    if not 0 <= first <= last <= 9:
        raise argparse.ArgumentTypeError(f"must be bins 0 ≤ FIRST ≤ LAST ≤ 9, got {text!r}")
    return int(first), int(last)


def add_proxy_option(parser: argparse.ArgumentParser, *, default_word: str) -> None:
    parser.add_argument(
        "--proxies",
        type=proxy_list,
        default=None,
        metavar="LIST|none",
        help="proxies aggregated with SWAP by ranks, Σ log(rank/N) over the candidates compared "
        "(AZ-NAS's sum): expressivity, progressivity, trainability, flops (a torch pass on "
        "Gaussian noise; token models: on the run's first sequences, per-token hidden states); "
        "zico, lswag, lswag-lambda, lswag-psi, vkdnw (a backward pass at initialisation on 2 "
        "mini-batches of the run's inputs with the head's task loss: classifiers get "
        "cross-entropy on their labels, seeded random labels where the data has none; dense "
        "heads per-pixel cross-entropy, L1 to the input or regression; token models a "
        "masked-token loss, 15%% of each sequence masked, predicted by a head tied to the input "
        "embedding, vkdnw not for them; L-SWAG over the interval `swapprobe calibrate SPACE` "
        "cached, else the whole depth; VKDNW's Fisher matrix over all S images, at least "
        f"128/(classes − 1) of them); nwot, params; none = SWAP alone (default: {default_word})",
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
        help="cifar10, cifar100, imagenet16-120 (NAS-Bench-201's ImageNet16 folder: no "
        "download, put it in --data-dir), synthetic (embedded dead-leaves images, works "
        "offline), a "
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


def space_epilog(*, engine: bool) -> str:
    """One line per registered space with its declared defaults (the help's table), and for
    a search, how each space's ranking was chosen."""
    text = "per-space defaults:\n" + space_lines(engine=engine)
    return text + "\n\n" + chosen_lines() if engine else text


def chosen_lines() -> str:
    """Why each space ranks as it does: the default rule's verdict per space (the AZ-style
    set, L-SWAG, LIBRA's three or SWAP alone), from :attr:`SpaceDefaults.chosen_by`."""
    from swapprobe.searchspaces import get_space, list_spaces

    names = [name for name in list_spaces() if get_space(name).defaults.chosen_by]
    if not names:
        return ""
    width = max(len(name) for name in names) + 2
    head = (
        "how each default ranking was chosen (the rule in swapprobe/proxies/default_rule.py: "
        "SWAP plus every subset of the scored views, judged by ½(ρ + weighted τ) over the "
        "table's targets on two seeded halves, LIBRA's three and L-SWAG alone reported beside):"
    )
    lines = [
        textwrap.fill(
            get_space(name).defaults.chosen_by,
            width=95,
            initial_indent=f"  {name:<{width}}",
            subsequent_indent=" " * (width + 2),
        )
        for name in names
    ]
    return "\n".join([textwrap.fill(head, width=95), *lines])


def space_lines(*, engine: bool) -> str:
    """``  NAME  S=… init=…`` per registered space, names padded to one column."""
    from swapprobe.searchspaces import get_space, list_spaces

    names = list_spaces()
    width = max(len(name) for name in names) + 2
    return "\n".join(
        f"  {name:<{width}}{get_space(name).defaults.describe(engine=engine)}" for name in names
    )


# --- the plan's option groups, from the parsed flags ------------------------------------
def inputs(args: argparse.Namespace) -> Inputs:
    """The data options as the plan's :class:`~swapprobe.plan.Inputs`."""
    return Inputs(
        data=args.data,
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        pick=args.pick,
        input_size=tuple(args.input_size) if args.input_size else None,  # type: ignore[arg-type]
        seq_len=args.seq_len,
        vocab_size=args.vocab_size,
        tokenizer=args.tokenizer,
    )


def scoring(args: argparse.Namespace) -> Scoring:
    """The scoring options as the plan's :class:`~swapprobe.plan.Scoring`."""
    return Scoring(
        repeats=args.repeats,
        seed=args.seed,
        init=args.init,
        backend=args.backend,
        device=args.device,
        mu=args.mu,
        sigma=args.sigma,
        size_unit=args.size_unit,
        proxies=args.proxies,
    )


def execution(args: argparse.Namespace) -> Execution:
    """The execution options as the plan's :class:`~swapprobe.plan.Execution`."""
    return Execution(args.executor, workers=args.workers, address=args.address)
