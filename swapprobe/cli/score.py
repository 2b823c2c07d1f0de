"""``swapprobe score MODEL...``: score and rank models (one call:
:meth:`swapprobe.plan.ScorePlan.run`)."""

from __future__ import annotations

import argparse
from typing import Any

from swapprobe.cli import console, options
from swapprobe.results import DEFAULT_ACTIVATIONS

EPILOG = """\
models:
  PATH.onnx            an ONNX model (its batch axis may be fixed or symbolic)
  SPACE:ARCH           an architecture of a built-in space, e.g. 'darts:DARTS_V2' or
                       'nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'
  SPACE:random:N       N seeded random architectures of a space; SPACE:all every one (nb201)
  nb201#INDEX          a NAS-Bench-201 architecture by the index the reports print
  FILE.py:FUNCTION     a Python function (no arguments) returning a torch.nn.Module
  torchvision:NAME     a torchvision classification model, random weights, its own input
  timm:NAME            size (optional: pip install --no-deps torchvision==0.28.0 for torch 2.13;
                       timm: pip install --no-deps timm huggingface_hub safetensors pyyaml)

activations (--activations): "gates" (default) counts every gate of SWAP_Universal (TPAMI 2026):
the ReLU family (Relu, LeakyRelu, PRelu, ReLU6), Gelu (also its Erf and Tanh forms), Silu/Swish,
HardSwish, Mish, Elu, Selu, Celu, found by graph pattern; "relu" counts the ReLU family alone
(the ICLR paper); or name kinds, e.g. "Relu,Gelu". A unit's bit is 1[input > 0]; activations
without a batch axis (a ReLU on a parameter table) are left out and reported. BatchNorm runs
on batch statistics (as the reference), dropout is off.

defaults: S=16, 32 repeats, N(0,1) weights (--init gaussian), the paper's setting; when every
model is an architecture of one space, that space's measured defaults instead:
{spaces}

examples:
  swapprobe score darts:random:5 nb201:random:5 --repeats 8
  swapprobe score resnet.onnx vgg.onnx --data cifar10 --repeats 8 --store run.h5 --json run.json
  swapprobe score model.onnx --data ./images --input-size 224 224 --mu 1.5 --sigma 1.5 --size-unit M
  swapprobe score darts:random:200 --executor pool --workers 4 --store run.h5
  swapprobe score bert.onnx --data tokens:zipf --seq-len 128 --proxies none

token models (int64 ids): --data tokens:... gives S sequences of T tokens (--seq-len) with ids
below V (--vocab-size); both default to the model's own (a fixed input length, the embedding
table's rows), else T=128, V=30522. Each batch also carries attention_mask (all 1) and
token_type_ids (all 0), fed to the models that take inputs of those names.
"""


def add_parser(commands: Any) -> None:
    spaces = options.space_lines(engine=False)
    parser = commands.add_parser(
        "score",
        help="score and rank models",
        epilog=EPILOG.format(spaces=spaces),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score models (ONNX files, torch modules, search-space architectures) and "
        "print a ranking.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="models to score (see below)")
    options.add_data_options(
        parser,
        batch_default="the space's, see below; else 16, raised until no model's SWAP can "
        "reach its 2^S bound",
    )
    options.add_scoring_options(parser, per_space=False)
    parser.add_argument(
        "--activations",
        default=DEFAULT_ACTIVATIONS,
        metavar="relu|gates|KINDS",
        help="which activation units count (default: %(default)s; see below)",
    )
    options.add_proxy_option(parser, default_word="the space's for its architectures, else none")
    parser.add_argument(
        "--input-name",
        help="the data input (images, token ids), for models with several inputs that the "
        "data's further inputs (attention_mask, token_type_ids) do not tell apart",
    )
    parser.add_argument(
        "--max-pattern-memory",
        type=options.positive_int,
        metavar="MB",
        help="most pattern memory one forward pass may return (default 1024); larger models "
        "are read in layer groups, one forward pass each, with identical results",
    )
    out = parser.add_argument_group("output")
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import re

    from swapprobe import report
    from swapprobe.plan import ScorePlan

    out, err = console.consoles()
    console.check_outputs([args.json, args.csv])
    plan = ScorePlan(
        tuple(args.models),
        options.inputs(args),
        options.scoring(args),
        options.execution(args),
        store=args.store,
        resume=args.resume,
        keep_patterns=args.keep_patterns,
        per_layer=args.per_layer,
        baselines=not args.no_baselines,
        activations=args.activations,
        input_name=args.input_name,
        max_pattern_bytes=args.max_pattern_memory * 2**20 if args.max_pattern_memory else None,
    )
    with console.ProgressBar(err) as bar:
        scored = plan.run(bar)
    results = scored.results
    spaces = {ref.space for ref in scored.models if ref.space is not None}
    space = spaces.pop() if len(spaces) == 1 else None
    note = report.interval_note(
        scored.settings,
        None if space is None else space.name,
        default_proxies=() if space is None else space.defaults.proxies,
    )
    if note:
        err.print(f"[dim]{note}[/]")
    if not results:  # every model failed: nothing to rank
        return console.report_failed(err, results.failed, len(scored.models))
    if not (args.json == "-" or args.csv == "-"):
        out.print(report.run_header_for(scored.data, scored.settings, results[0], scored.notes))
        out.print(report.ranking_table(results))
        if args.per_layer:
            for result in results:
                out.print(
                    report.layer_table(result.name, result.per_layer_swap or {}, result.layers)
                )
        if args.profile:
            out.print(report.profile_table(results))
        for note in report.saturation_notes(results):
            err.print(f"[yellow]{note}[/]", highlight=False)
        for result in results:
            summary = result.metadata.get("activations")
            if summary and not re.fullmatch(r"counted Relu [\d,]+", summary):
                # kinds beyond ReLU counted, or units left out: say which, per model
                err.print(f"[dim]{result.name}: {summary}[/]", highlight=False)
            passes = result.metadata.get("passes", 1)
            if passes > 1:
                err.print(
                    f"[yellow]{result.name}: patterns read in {passes} forward passes per repeat "
                    "(layer groups within --max-pattern-memory)[/]"
                )
        if args.store:
            err.print(f"[dim]store:[/] {args.store}")
    console.write_rows(results, args.json, args.csv)
    return console.report_failed(err, results.failed, len(scored.models))
