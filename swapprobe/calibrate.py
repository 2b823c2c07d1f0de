"""L-SWAG's layer interval of a search space: measured once on random architectures, cached.

``swapprobe calibrate SPACE`` (:func:`calibrate_interval`) draws N seeded random architectures,
runs the labelled gradient pass of each (the one the ``zico``/``lswag`` proxies run, on the
same data: :meth:`swapprobe.evaluate.Evaluator.gradient_stats`), bins every network's per-layer
σ of |gradient| by depth percentile and finds the spike by the documented rule
(:mod:`swapprobe.proxies.interval`, fixed before any accuracy was read). The interval is
written as JSON to the user cache, ``$SWAPPROBE_CACHE/intervals/SPACE.json`` (default
``~/.cache/swapprobe/intervals/``), and optionally drawn as the paper's Figure 2b.

A run that asks for ``lswag`` on a space reads the cached interval (:func:`cached_interval`);
without one it uses the whole depth and says so. It does not calibrate on first use: the
calibration runs N gradient passes (minutes on a CPU), which a ``score`` of a few models
should not silently pay, and a run's numbers should not depend on whether a cache existed
before it — calibrating is an explicit, once-per-space step.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swapprobe.errors import SettingsError, StoreError
from swapprobe.proxies.interval import (
    DEPTH_BINS,
    DepthProfile,
    LayerInterval,
    depth_profile,
    plot_depth_profile,
    spike_interval,
)

__all__ = [
    "Calibration",
    "cached_interval",
    "calibrate_interval",
    "interval_cache_path",
]

#: random architectures a calibration draws unless told otherwise (the first measurement on
#: NAS-Bench-201 used 50; see docs/lswag.md)
DEFAULT_NETWORKS = 50


def interval_cache_path(space: str) -> Path:
    """Where the interval of ``space`` is cached: ``$SWAPPROBE_CACHE/intervals/SPACE.json``,
    else ``~/.cache/swapprobe/intervals/SPACE.json``."""
    root = os.environ.get("SWAPPROBE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "swapprobe"
    return base / "intervals" / f"{space}.json"


def cached_interval(space: str) -> LayerInterval | None:
    """The cached interval of ``space``, or None when it was never calibrated."""
    path = interval_cache_path(space)
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text())
        threshold = found.get("threshold")
        return LayerInterval(
            int(found["first_bin"]),
            int(found["last_bin"]),
            int(found.get("bins", DEPTH_BINS)),
            float("nan") if threshold is None else float(threshold),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StoreError(
            f"the cached interval {path} is unreadable ({error}); delete it or run "
            f"`swapprobe calibrate {space}` again"
        ) from error


@dataclass(frozen=True)
class Calibration:
    """What a calibration found and where it wrote it."""

    space: str
    interval: LayerInterval
    profile: DepthProfile
    networks: int
    seed: int
    data_source: str
    path: Path
    plot: Path | None


def calibrate_interval(
    space: Any,
    *,
    networks: int = DEFAULT_NETWORKS,
    seed: int = 0,
    data: Any = None,
    data_dir: str | os.PathLike[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
    on_network: Any = None,
) -> Calibration:
    """Measure, cache and (with ``plot``) draw the L-SWAG interval of ``space``.

    Args:
        space: a search space or its name.
        networks: N random architectures, drawn with ``np.random.default_rng(seed)``.
        seed: the draw and the run's seed (weights, random labels).
        data: the batch's source (None: the space's default data).
        data_dir: where CIFAR is.
        plot: a PNG path for the depth profile (None: no plot).
        on_network: called as ``on_network(done, total)`` after each network.
    """
    from swapprobe.evaluate import Evaluator
    from swapprobe.models import arch_ref
    from swapprobe.plan import Inputs, _space, _space_models
    from swapprobe.results import ScoreSettings

    if networks < 1:
        raise SettingsError(f"networks must be at least 1, got {networks}")
    chosen = _space(space)
    batch = Inputs(data, data_dir=data_dir).load(
        seed, chosen.defaults, _space_models(chosen, seed)
    )
    settings = ScoreSettings(
        batch_size=len(batch.inputs), repeats=1, seed=seed, proxies=("lswag-lambda",)
    )
    evaluator = Evaluator(batch, settings)
    rng = np.random.default_rng(seed)
    profiles: list[list[float]] = []
    for done in range(1, networks + 1):
        ref = arch_ref(chosen, chosen.sample(rng))
        found = evaluator.gradient_stats(ref)
        profiles.append([layer.std_mean for layer in found.layers])
        if on_network is not None:
            on_network(done, networks)
    profile = depth_profile(profiles)
    interval = spike_interval(profile)
    path = interval_cache_path(chosen.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "space": chosen.name,
        "first_bin": interval.first_bin,
        "last_bin": interval.last_bin,
        "bins": interval.bins,
        "threshold": None if not np.isfinite(interval.threshold) else interval.threshold,
        "profile": [None if not np.isfinite(v) else float(v) for v in profile.means],
        "networks": profile.networks,
        "seed": seed,
        "data_source": batch.source,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    drawn = None
    if plot is not None:
        drawn = plot_depth_profile(
            profile,
            interval,
            plot,
            title=f"{chosen.name}: {profile.networks} random networks, seed {seed}",
        )
    return Calibration(
        chosen.name, interval, profile, profile.networks, seed, batch.source, path, drawn
    )
