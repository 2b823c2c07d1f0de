"""What a score is and what decides it: :class:`ScoreSettings` and :class:`Result`.

Light on purpose: numpy and the pure metrics only, so that reports, correlation and stores can
work with results without importing onnx, onnxruntime or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from swapprobe import metrics
from swapprobe.errors import SettingsError
from swapprobe.patterns import LayerInfo, PatternMatrix

if TYPE_CHECKING:
    from swapprobe.data import Batch
    from swapprobe.proxies.gradients import LayerGradientStats

__all__ = [
    "BACKENDS",
    "DEFAULT_ACTIVATIONS",
    "GRADIENT_PROXIES",
    "INIT_SCHEMES",
    "KEEP_PATTERNS",
    "PASS_PROXIES",
    "PROXIES",
    "Result",
    "RuntimeOptions",
    "ScoreSettings",
    "check_scheme",
]

INIT_SCHEMES: tuple[str, ...] = ("gaussian", "kaiming", "keep")
#: which activation units count (see :mod:`swapprobe.capture.activations`): every gate —
#: ReLU family, GELU, SiLU/Swish, Hardswish, Mish, ELU/SELU/CELU — with bit 1[input > 0], as
#: SWAP_Universal (TPAMI 2026) counts them; ``relu`` is the ICLR paper's ReLU family alone
DEFAULT_ACTIVATIONS = "gates"
#: proxies a run can compute beside SWAP (all bigger-is-better): AZ-NAS's expressivity,
#: progressivity and trainability and the FLOPs (multiply-accumulates) of a torch pass on
#: Gaussian-noise inputs (:mod:`swapprobe.capture.proxy_pass`); NWOT and Θ come with SWAP
PASS_PROXIES: tuple[str, ...] = ("expressivity", "progressivity", "trainability", "flops")
#: proxies of the labelled gradient pass (:mod:`swapprobe.capture.gradients`; all
#: bigger-is-better): ZiCo, L-SWAG = Λ × Ψ and its two factors over the space's layer interval,
#: and VKDNW (Fisher spectrum). They need only a task loss at initialisation, so images without
#: labels get seeded random ones; see :meth:`ScoreSettings.gradient_batches`
GRADIENT_PROXIES: tuple[str, ...] = ("zico", "lswag", "lswag-lambda", "lswag-psi", "vkdnw")
PROXIES: tuple[str, ...] = (*PASS_PROXIES, *GRADIENT_PROXIES, "nwot", "params")


def check_scheme(scheme: str) -> None:
    """Refuse an unknown initialisation scheme (see :mod:`swapprobe.capture.weights`)."""
    if scheme not in INIT_SCHEMES:
        raise SettingsError(f"unknown init scheme {scheme!r}: use {', '.join(INIT_SCHEMES)}")


BACKENDS = ("onnx", "torch")
KEEP_PATTERNS = ("none", "first", "all")


@dataclass(frozen=True)
class RuntimeOptions:
    """How the patterns are computed, never what they are: carried in
    :attr:`ScoreSettings.runtime` down to the runner (:func:`swapprobe.capture.open_runner`),
    and left out of a store's settings.

    ``threads``: intra-op threads of every onnxruntime session (None: onnxruntime's default,
    every core, for per-repeat sessions, and one for the grouped pass's chunk sessions, whose
    kernels are too short to share). Pool and Ray workers run with 1, so N workers use N cores.
    ``grouped``: let emitted search-space graphs run all repeats in one pass
    (:mod:`swapprobe.capture.grouped`); False keeps the per-repeat session. ``bake``: the
    grouped pass bakes each chunk's weights into its own session (None: on the CPU); the
    patterns may then differ from the per-repeat ones within float rounding of zero.
    """

    threads: int | None = None
    grouped: bool = True
    bake: bool | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise SettingsError(f"threads must be at least 1, got {self.threads}")


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
    #: which activations count: ``gates`` (default), ``relu``, or kinds such as ``Relu,Gelu``
    activations: str = DEFAULT_ACTIVATIONS
    #: proxies beside SWAP (names from :data:`PROXIES`); with any, results carry an aggregate
    proxies: tuple[str, ...] = ()
    #: Gaussian-noise inputs of the torch-pass proxies. AZ-NAS uses 64; chosen by the rule
    #: "the smallest batch whose 2-fold NAS-Bench-201 Spearman stays within 0.005 of the next
    #: larger one's": 16 ranked as 64 did (0.932 vs 0.931 on 354 dev rows), and 8 as 16 did
    #: (default aggregate, 1000 dev rows: 2-fold mean 0.928 vs 0.925) at 0.13 s a pass
    proxy_batch: int = 8
    #: labelled mini-batches of the gradient pass (ZiCo, L-SWAG, VKDNW): disjoint runs of
    #: ``proxy_batch`` of the run's own images (``S // gradient_batches`` where S is smaller);
    #: moments across batches need ≥ 2
    gradient_batches: int = 2
    #: L-SWAG's layer interval as depth bins ``(first, last)`` inclusive
    #: (:class:`~swapprobe.proxies.interval.LayerInterval`); None: the whole depth
    interval: tuple[int, int] | None = None
    #: threads, grouping and baking (see :class:`RuntimeOptions`): the same numbers either way,
    #: up to the baked grouped pass's rounding
    runtime: RuntimeOptions = RuntimeOptions()

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
        unknown = [name for name in self.proxies if name not in PROXIES]
        if unknown:
            raise SettingsError(
                f"unknown proxy {unknown[0]!r}: use any of {', '.join(PROXIES)} (or none)"
            )
        if self.proxy_batch < 2:
            raise SettingsError(f"proxy_batch must be at least 2, got {self.proxy_batch}")
        if self.gradient_batches < 2:
            raise SettingsError(
                f"gradient_batches must be at least 2 (a variance across mini-batches), got "
                f"{self.gradient_batches}"
            )
        if self.interval is not None:
            first, last = self.interval
            if not 0 <= first <= last:  # the bins' range: the Evaluator's check_interval
                raise SettingsError(f"interval {first}:{last} must have 0 ≤ first ≤ last")
        if "nwot" in self.proxies and not self.baselines:
            raise SettingsError("the nwot proxy needs the baselines (drop {baselines=False})")

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
            "activations": self.activations,
            "proxies": list(self.pass_proxies),
            "proxy_batch": self.proxy_batch if self.pass_proxies else None,
            **self._gradient_settings(),
        }

    def _gradient_settings(self) -> dict[str, Any]:
        """The gradient pass's settings, only where it runs (older stores stay resumable)."""
        if not self.gradient_proxies:
            return {}
        return {
            "gradient_proxies": list(self.gradient_proxies),
            "gradient_batches": self.gradient_batches,
            "gradient_proxy_batch": self.proxy_batch,
            "interval": None if self.interval is None else list(self.interval),
        }

    @property
    def pass_proxies(self) -> tuple[str, ...]:
        """The requested proxies that need the torch pass (not NWOT or Θ)."""
        return tuple(name for name in self.proxies if name in PASS_PROXIES)

    @property
    def gradient_proxies(self) -> tuple[str, ...]:
        """The requested proxies of the labelled gradient pass (:data:`GRADIENT_PROXIES`)."""
        return tuple(name for name in self.proxies if name in GRADIENT_PROXIES)


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
    #: values of the torch-pass proxies (:data:`PASS_PROXIES`) that were computed
    proxies: dict[str, float] = field(default_factory=dict)
    #: the rank aggregate among the candidates it was compared with (None: not aggregated)
    aggregate: float | None = None
    #: per weight layer, the gradient pass's statistics (empty: no gradient pass ran)
    gradient_layers: tuple[LayerGradientStats, ...] = ()  # (results sits below proxies)
    #: Ψ (SWAP of the first repeat over the activation layers up to depth bin b) for every
    #: last bin b, so that L-SWAG can be recomputed for any interval (None: not computed)
    psi_by_bin: np.ndarray | None = None
    #: VKDNW's Fisher eigenvalues (None: not computed)
    fisher_eigenvalues: np.ndarray | None = None

    def proxy(self, name: str) -> float | None:
        """One proxy's value: SWAP, NWOT, Θ (``params``) or a torch-pass proxy."""
        if name == "swap":
            return self.swap
        if name == "nwot":
            return self.nwot
        if name == "params":
            return float(self.param_count)
        return self.proxies.get(name)

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
        row.update(self.proxies)
        if self.aggregate is not None:
            row["aggregate"] = self.aggregate
        if self.per_layer_swap is not None:
            row["per_layer_swap"] = self.per_layer_swap
        return row
