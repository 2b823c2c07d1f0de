"""The one pipeline: model × data × repeats → :class:`Result`.

``score``, ``search``, ``correlate`` and every executor call :class:`Evaluator`; there is no
second way of computing a score. A model is an ONNX file/proto, a ``torch.nn.Module`` (exported
to ONNX, or run directly with ``backend="torch"``), or an architecture of a search space.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from swapprobe import metrics
from swapprobe.capture.weights import check_scheme
from swapprobe.data import Batch
from swapprobe.errors import SettingsError
from swapprobe.patterns import LayerInfo, PatternMatrix

if TYPE_CHECKING:
    from swapprobe.searchspaces.base import SearchSpace

__all__ = ["BACKENDS", "KEEP_PATTERNS", "Evaluator", "Result", "ScoreSettings", "model_name"]

BACKENDS = ("onnx", "torch")
KEEP_PATTERNS = ("none", "first", "all")


@dataclass(frozen=True)
class ScoreSettings:
    """Everything that decides the numbers (plus where they are computed).

    Defaults are the paper's: S = 16 samples, 32 re-initialisations, N(0, 1) weights.
    """

    batch_size: int = 16
    repeats: int = 32
    seed: int = 0
    init: str = "gaussian"
    backend: Literal["onnx", "torch"] = "onnx"
    device: str = "auto"
    mu: float | None = None
    sigma: float | None = None
    size_unit: Literal["K", "M"] = "M"
    baselines: bool = True  # standard AP and NWOT beside SWAP
    per_layer: bool = False
    keep_patterns: Literal["none", "first", "all"] = "first"
    input_name: str | None = None
    #: bound on the pattern bytes one forward pass returns; above it layers are read in groups
    max_pattern_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise SettingsError(f"batch size S must be at least 2, got {self.batch_size}")
        if self.repeats < 1:
            raise SettingsError(f"repeats must be at least 1, got {self.repeats}")
        check_scheme(self.init)
        if self.backend not in BACKENDS:
            raise SettingsError(f"unknown backend {self.backend!r}: use onnx or torch")
        if self.keep_patterns not in KEEP_PATTERNS:
            raise SettingsError(f"keep_patterns must be one of {', '.join(KEEP_PATTERNS)}")
        if (self.mu is None) != (self.sigma is None):
            raise SettingsError("give both mu and sigma for regularised SWAP, or neither")
        if self.mu is not None:
            metrics.regularisation_factor(1.0, self.mu, self.sigma)  # validates both
        metrics.parameters_in_unit(1, self.size_unit)

    def store_settings(self, data: Batch) -> dict[str, Any]:
        """The settings a store must share to be resumed: those that change the patterns."""
        return {
            "batch_size": self.batch_size,
            "repeats": self.repeats,
            "seed": self.seed,
            "init": self.init,
            "backend": self.backend,
            "data_fingerprint": data.fingerprint,
            "keep_patterns": self.keep_patterns,
        }


@dataclass
class Result:
    """The scores of one model; per-repeat arrays, means as properties."""

    name: str
    key: str
    swap_per_repeat: np.ndarray
    param_count: int
    units: int
    samples: int
    size_unit: str = "M"
    mu: float | None = None
    sigma: float | None = None
    standard_ap_per_repeat: np.ndarray | None = None
    nwot_per_repeat: np.ndarray | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    layers: tuple[LayerInfo, ...] = ()
    patterns: dict[int, PatternMatrix] = field(default_factory=dict)
    per_layer_swap: dict[str, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def repeats(self) -> int:
        return len(self.swap_per_repeat)

    @property
    def swap(self) -> float:
        """Mean SWAP-Score over repeats."""
        return float(np.mean(self.swap_per_repeat))

    @property
    def swap_std(self) -> float:
        return float(np.std(self.swap_per_repeat))

    @property
    def theta(self) -> float:
        """Θ, the parameter count in ``size_unit``."""
        return metrics.parameters_in_unit(self.param_count, self.size_unit)  # type: ignore[arg-type]

    @property
    def reg_factor(self) -> float | None:
        if self.mu is None or self.sigma is None:
            return None
        return metrics.regularisation_factor(self.theta, self.mu, self.sigma)

    @property
    def reg_swap(self) -> float | None:
        """Regularised SWAP Ψ' = mean Ψ · f(Θ), or None without μ/σ."""
        factor = self.reg_factor
        return None if factor is None else self.swap * factor

    @property
    def saturation(self) -> float:
        return metrics.saturation(self.swap, self.units, self.samples)

    @property
    def standard_ap(self) -> float | None:
        arr = self.standard_ap_per_repeat
        return None if arr is None else float(np.mean(arr))

    @property
    def nwot(self) -> float | None:
        arr = self.nwot_per_repeat
        return None if arr is None else float(np.mean(arr))

    def with_regularisation(
        self, mu: float | None, sigma: float | None, unit: str | None = None
    ) -> Result:
        """A copy with other μ, σ (and unit): rescoring needs no model run."""
        from dataclasses import replace

        if mu is not None:
            metrics.regularisation_factor(1.0, mu, sigma if sigma is not None else -1.0)
        return replace(self, mu=mu, sigma=sigma, size_unit=unit or self.size_unit)

    def to_row(self) -> dict[str, Any]:
        """A flat, JSON-able row (what ``--json``/``--csv`` write)."""
        row: dict[str, Any] = {
            "name": self.name,
            "key": self.key,
            "swap": self.swap,
            "swap_std": self.swap_std,
            "reg_swap": self.reg_swap,
            "mu": self.mu,
            "sigma": self.sigma,
            "size_unit": self.size_unit,
            "params": self.param_count,
            "theta": self.theta,
            "units": self.units,
            "samples": self.samples,
            "repeats": self.repeats,
            "saturation": self.saturation,
            "standard_ap": self.standard_ap,
            "nwot": self.nwot,
            "seconds": self.seconds,
        }
        if self.per_layer_swap is not None:
            row["per_layer_swap"] = self.per_layer_swap
        return row


def model_name(model: object) -> str:
    if isinstance(model, (str, Path)):
        return Path(model).name
    return type(model).__name__


class Evaluator:
    """Scores models on one batch of data with one set of settings.

    Args:
        data: the inputs (see :func:`swapprobe.data.load_batch`); S = ``len(data.inputs)``.
        settings: see :class:`ScoreSettings`; ``settings.batch_size`` must equal S.
        on_repeat: called as ``on_repeat(done, total)`` after each repeat (progress bars).
    """

    def __init__(
        self,
        data: Batch,
        settings: ScoreSettings | None = None,
        *,
        on_repeat: Callable[[int, int], None] | None = None,
    ) -> None:
        self.data = data
        self.settings = settings or ScoreSettings(batch_size=len(data.inputs))
        if len(data.inputs) != self.settings.batch_size:
            raise SettingsError(
                f"data has {len(data.inputs)} samples but the settings ask for S="
                f"{self.settings.batch_size}"
            )
        self.on_repeat = on_repeat

    # --- entry points -------------------------------------------------------------------
    def evaluate(
        self,
        model: Any,
        *,
        name: str | None = None,
        key: str | None = None,
        param_count: int | None = None,
        size_unit: str | None = None,
    ) -> Result:
        """Score an ONNX model (path, bytes, proto) or a ``torch.nn.Module``."""
        start = time.perf_counter()
        timings: dict[str, float] = {}
        runner, digest = self._prepare(model, timings)
        result = self._run(
            runner,
            name=name or model_name(model),
            key=key or digest,
            param_count=runner.param_count if param_count is None else param_count,
            size_unit=size_unit or self.settings.size_unit,
            timings=timings,
        )
        result.seconds = time.perf_counter() - start
        result.metadata["model_sha256"] = digest
        return result

    def evaluate_architecture(self, space: SearchSpace, arch: Hashable) -> Result:
        """Score one architecture of a search space with its scoring network and Θ unit."""
        from swapprobe.models import short_name

        text = space.format(arch)
        result = self.evaluate(
            space.build_scoring_network(arch),
            name=short_name(space, arch),
            key=f"{space.name}:{text}",
            param_count=space.scoring_param_count(arch),
            size_unit=space.size_unit,
        )
        result.metadata["architecture"] = text
        return result

    # --- internals ----------------------------------------------------------------------
    def _prepare(self, model: Any, timings: dict[str, float]) -> tuple[Any, str]:
        settings = self.settings
        inputs = self.data.inputs
        is_module = _is_torch_module(model)
        if settings.backend == "torch":
            if not is_module:
                raise SettingsError(
                    "backend torch needs a torch.nn.Module; ONNX files use backend onnx"
                )
            from swapprobe.capture.hooks import TorchPatternRunner

            t0 = time.perf_counter()
            runner = TorchPatternRunner(model, batch_size=settings.batch_size, init=settings.init)
            timings["session"] = time.perf_counter() - t0
            return runner, _module_digest(model)

        from swapprobe.capture.graph import load_model, model_digest
        from swapprobe.capture.session import PatternSession

        t0 = time.perf_counter()
        if is_module:
            from swapprobe.capture.export import export_module

            proto = export_module(model, inputs)
            timings["export"] = time.perf_counter() - t0
            t0 = time.perf_counter()
        else:
            proto = model
        loaded = load_model(proto)
        digest = model_digest(loaded)
        runner = PatternSession(
            loaded,
            batch_size=settings.batch_size,
            sample_shape=inputs.shape[1:],
            init=settings.init,
            input_name=settings.input_name,
            device=settings.device,
            max_pattern_bytes=settings.max_pattern_bytes,
            name=model_name(model),
        )
        if is_module:
            # Θ of a module counts every parameter, also those its forward never uses
            # (the DARTS scoring network's classifier, as the reference counts it).
            runner.param_count = sum(p.numel() for p in model.parameters())
        timings["session"] = time.perf_counter() - t0
        return runner, digest

    def _run(
        self,
        runner: Any,
        *,
        name: str,
        key: str,
        param_count: int,
        size_unit: str,
        timings: dict[str, float],
    ) -> Result:
        settings = self.settings
        swaps = np.empty(settings.repeats)
        standard = np.empty(settings.repeats) if settings.baselines else None
        nwots = np.empty(settings.repeats) if settings.baselines else None
        kept: dict[int, PatternMatrix] = {}
        per_layer: dict[str, list[int]] = {}
        count_time = 0.0
        matrix: PatternMatrix | None = None
        for repeat in range(settings.repeats):
            matrix = runner.run(self.data.inputs, seed=settings.seed, repeat=repeat)
            t0 = time.perf_counter()
            found = metrics.scores(matrix, baselines=settings.baselines)
            swaps[repeat] = found.swap
            if standard is not None and nwots is not None:
                standard[repeat] = found.standard_ap
                nwots[repeat] = found.nwot
            if settings.per_layer:
                for info in matrix.layers:
                    per_layer.setdefault(info.name, []).append(
                        metrics.swap(matrix.layer(info.name))
                    )
            count_time += time.perf_counter() - t0
            if settings.keep_patterns == "all" or (
                settings.keep_patterns == "first" and repeat == 0
            ):
                kept[repeat] = matrix
            if self.on_repeat is not None:
                self.on_repeat(repeat + 1, settings.repeats)
        assert matrix is not None
        stage = runner.timings
        stage_times = (
            stage
            if isinstance(stage, dict)
            else {"draw": stage.draw, "forward": stage.forward, "pack": stage.pack}
        )
        timings.update({k: float(v) for k, v in stage_times.items()})
        timings["count"] = count_time
        return Result(
            name=name,
            key=key,
            swap_per_repeat=swaps,
            param_count=int(param_count),
            units=matrix.units,
            samples=matrix.samples,
            size_unit=size_unit,
            mu=settings.mu,
            sigma=settings.sigma,
            standard_ap_per_repeat=standard,
            nwot_per_repeat=nwots,
            timings=timings,
            layers=matrix.layers,
            patterns=kept,
            per_layer_swap={k: float(np.mean(v)) for k, v in per_layer.items()}
            if per_layer
            else None,
            metadata={
                "backend": settings.backend,
                "provider": runner.provider,
                "device": runner.device,
                "init": settings.init,
                "seed": settings.seed,
                "data_fingerprint": self.data.fingerprint,
                "data_source": self.data.source,
                "passes": int(getattr(runner, "passes", 1)),
                "activations": runner.activation_summary(),
            },
        )


def _is_torch_module(model: object) -> bool:
    try:
        import torch.nn as nn
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(model, nn.Module)


def _module_digest(module: Any) -> str:
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()
