"""The ``swapprobe`` command: one module per command over :mod:`.options` (argparse) and
:mod:`.console` (output, progress, errors).

Each command module has ``add_parser(commands)`` and ``run(args)``: it parses, builds the
command's run plan (:mod:`swapprobe.plan`) from the flags, makes one library call
(``plan.run(progress)``), and renders with Rich. Results go to stdout, progress and errors to
stderr (:mod:`.console`). A :class:`~swapprobe.errors.SwapprobeError` is printed as one line
with the parameters it names written as flags (exit 2) unless ``--debug`` (before or after
the command); importing this package and ``--help`` load neither torch nor onnxruntime.

From argv to the table, ``swapprobe score model.onnx``: :func:`main` → :mod:`.score` ``run``
→ :meth:`swapprobe.plan.ScorePlan.run` (models, defaults, batch, settings, executor) →
:func:`swapprobe.api.score_many` → :func:`swapprobe.runs.run_refs` →
:meth:`swapprobe.evaluate.Evaluator.evaluate` → :mod:`swapprobe.capture` → back up to
:mod:`.score`, which renders the :class:`~swapprobe.plan.ScoreRun` with :mod:`swapprobe.report`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from swapprobe import __version__
from swapprobe.cli import (
    benchmark,
    calibrate,
    console,
    correlate,
    inspect,
    options,
    rescore,
    score,
    search,
)
from swapprobe.errors import SwapprobeError

__all__ = ["COMMANDS", "build_parser", "main"]

#: the command modules, in the order ``--help`` lists them
COMMANDS = (score, inspect, rescore, search, correlate, benchmark, calibrate)


def build_parser() -> argparse.ArgumentParser:
    parser = options.OneLineParser(
        prog="swapprobe",
        description="Judge neural architectures without training them: SWAP-Score (sample-wise "
        "activation patterns, SWAP-NAS ICLR 2024) on ONNX Runtime.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"swapprobe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=options.OneLineParser
    )
    for module in COMMANDS:
        module.add_parser(commands)
    for sub in commands.choices.values():  # --debug after the command works too
        sub.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _one_line_warning
            return int(args.handler(args) or 0)
    except SwapprobeError as error:
        if args.debug:
            raise
        sys.stderr.write(console.error_line(error) + "\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("swapprobe: interrupted; completed models are in the store\n")
        return 130


def _one_line_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    sys.stderr.write(f"swapprobe: warning: {message}\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
