"""``swapprobe calibrate SPACE``: L-SWAG's layer interval of a space from N random
architectures' gradient statistics, cached for later runs (one call:
:func:`swapprobe.calibrate.calibrate_interval`)."""

from __future__ import annotations

import argparse
from typing import Any

from swapprobe.cli import console, options

EPILOG = """\
The rule (docs/lswag.md, swapprobe.proxies.interval): per network and weight layer, σ = the
mean over its weights of the std of |gradient| across 2 labelled mini-batches at
initialisation; each network's profile is divided by its own mean; layers are binned by depth
percentile (10 bins); the spike is the run of bins around the highest whose values exceed
median + 2·MAD. No spike: the whole depth. The result is cached in
$SWAPPROBE_CACHE/intervals/SPACE.json (default ~/.cache/swapprobe/intervals/) and used by
--proxies lswag, lswag-lambda, lswag-psi on that space; without it they use the whole depth.

examples:
  swapprobe calibrate nb201 --networks 50 --data cifar10 --plot nb201_interval.png
"""


def add_parser(commands: Any) -> None:
    from swapprobe.searchspaces import list_spaces

    parser = commands.add_parser(
        "calibrate",
        help="find and cache L-SWAG's layer interval of a space",
        description="Measure the gradient σ of random architectures against depth, choose "
        "L-SWAG's layer interval and cache it for the space.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("space", choices=list_spaces())
    parser.add_argument(
        "--networks",
        type=options.positive_int,
        default=50,
        metavar="N",
        help="random architectures to draw (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the draw's seed (default: 0)")
    parser.add_argument(
        "--data",
        default=None,
        metavar="NAME|PATH",
        help="the images (default: the space's source); CIFAR brings its labels, other images "
        "get seeded random ones (a task loss at initialisation is all the rule needs)",
    )
    parser.add_argument("--data-dir", metavar="DIR", help="where CIFAR lives")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the depth profile (Fig. 2b)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from swapprobe.calibrate import calibrate_interval

    out, err = console.consoles()
    with console.ProgressBar(err) as bar:
        bar.begin("networks", args.networks)
        found = calibrate_interval(
            args.space,
            networks=args.networks,
            seed=args.seed,
            data=args.data,
            data_dir=args.data_dir,
            plot=args.plot,
            on_network=lambda done, total: bar.advance("networks", done, total),
        )
    means = ", ".join("—" if v != v else f"{v:.2f}" for v in found.profile.means)
    out.print(f"{found.space}: {found.networks} random networks on {found.data_source}")
    out.print(f"normalised σ per depth bin: {means}")
    out.print(
        f"interval: depth bins {found.interval.first_bin}-{found.interval.last_bin} "
        f"(cached in {found.path})"
    )
    if found.plot is not None:
        out.print(f"plot: {found.plot}")
    return 0
