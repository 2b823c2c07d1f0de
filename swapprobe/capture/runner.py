"""The runner protocol: one interface for every way swapprobe turns a model into patterns,
and the one function that chooses among them.

Three runners implement :class:`PatternRunner`:

* :class:`~swapprobe.capture.session.PatternSession` — one onnxruntime session, one forward
  pass per repeat (any ONNX graph);
* :class:`~swapprobe.capture.grouped.GroupedPatternSession` — every repeat of a score in one
  pass, repeats as channel groups (the emitted search-space graphs);
* :class:`~swapprobe.capture.torch_backend.TorchPatternRunner` — the torch module itself.

:func:`open_runner` picks one from the settings and the model, and gives it the model's
origin (its parameter count and digest), so the Evaluator only asks for a runner and counts.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from swapprobe.errors import DataError, SettingsError
from swapprobe.patterns import LayerInfo, PatternMatrix

if TYPE_CHECKING:
    from swapprobe.capture.grouped import DrawCache
    from swapprobe.data import Batch
    from swapprobe.results import ScoreSettings

__all__ = ["ModelOrigin", "OriginMixin", "PatternRunner", "RunnerTimings", "open_runner"]


@dataclass
class RunnerTimings:
    """Seconds a runner spent, from the model it was given to the repeats run so far.

    ``export``: module → ONNX (see :attr:`ModelOrigin.export_seconds`). ``session``: building
    the runner (rewrites, sessions) and the sessions it opens while running (the grouped pass
    bakes each chunk's weights into one of its own). ``draw``, ``forward``, ``pack``: the
    three stages of every repeat. ``steps``: runner-specific parts of ``session``
    (``group_rewrite``, ``group_session``), named so a result's timings show which runner ran.
    """

    export: float = 0.0
    session: float = 0.0
    draw: float = 0.0
    forward: float = 0.0
    pack: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)

    def add_step(self, name: str, seconds: float) -> None:
        self.steps[name] = self.steps.get(name, 0.0) + seconds

    def stages(self) -> dict[str, float]:
        """The stages as a result's timings show them (export only where there was one)."""
        exported = {"export": self.export} if self.export else {}
        return {
            **exported,
            "session": self.session,
            **self.steps,
            "draw": self.draw,
            "forward": self.forward,
            "pack": self.pack,
        }


@dataclass(frozen=True)
class ModelOrigin:
    """What a runner reports of the model it was given, beside the patterns.

    ``param_count``: Θ. A torch module counts every parameter, also those its forward never
    uses (the DARTS scoring network's classifier, as the reference counts it), so a graph
    exported from a module reports the module's count, not the graph's. ``digest``: sha256
    of the ONNX graph the runner was given (exported or loaded), or of a module's structure
    and weights for the torch runner. ``export_seconds``: the time the module took to export
    to that graph (0 for a graph given as such). A runner given None for either finds it
    from its own model.
    """

    param_count: int | None = None
    digest: str | None = None
    export_seconds: float = 0.0

    def completed(self, param_count: int, digest: Callable[[], str]) -> ModelOrigin:
        """This origin with what it leaves open taken from the runner's model."""
        return ModelOrigin(
            self.param_count if self.param_count is not None else param_count,
            self.digest if self.digest is not None else digest(),
            self.export_seconds,
        )


class OriginMixin:
    """What every runner reports of its model: :attr:`origin`, and Θ read from it (one
    definition for the three runners)."""

    origin: ModelOrigin

    @property
    def param_count(self) -> int:
        """Θ of the model this runner stands for (:attr:`origin`)."""
        assert self.origin.param_count is not None
        return self.origin.param_count


class PatternRunner(Protocol):
    """Turns a batch into one :class:`PatternMatrix` per repeat.

    ``layers`` (after the first run), ``provider`` and ``device`` describe the patterns and
    where they were computed; ``timings`` accumulates over runs; ``origin`` is the model's
    parameter count and digest; ``passes`` the forward passes one repeat needs.
    """

    layers: tuple[LayerInfo, ...]
    provider: str
    device: str
    timings: RunnerTimings

    @property
    def origin(self) -> ModelOrigin: ...

    @property
    def passes(self) -> int: ...

    def repeat_batches(self, repeats: int) -> list[list[int]]:
        """The repeats ``range(repeats)`` in the batches :meth:`run_all` runs best at once
        (one each per-repeat; all of them for the grouped pass)."""
        ...

    def run_all(
        self, inputs: np.ndarray, *, seed: int, repeats: int | Sequence[int]
    ) -> list[PatternMatrix]:
        """The patterns of each repeat (``range(repeats)``, or the repeats listed)."""
        ...

    def run(self, inputs: np.ndarray, *, seed: int, repeat: int) -> PatternMatrix:
        """The patterns of one repeat."""
        ...

    def activation_summary(self) -> str:
        """One line: the kinds counted with their units and what was left out."""
        ...


def open_runner(
    model: Any,
    data: Batch,
    settings: ScoreSettings,
    *,
    name: str,
    draw_cache: DrawCache | None = None,
) -> PatternRunner:
    """The runner for ``model`` (a ``torch.nn.Module``, an ONNX proto or path) on ``data``
    under ``settings``.

    The choice: ``backend="torch"`` runs the module itself; on ONNX, an emitted search-space
    graph on plain images with several repeats runs them all in one pass where the rewrite
    applies and pays (``settings.runtime.grouped``; see :mod:`swapprobe.capture.grouped`),
    everything else the per-repeat session. A module goes to ONNX through
    :func:`~swapprobe.capture.export.export_module`. ``draw_cache`` keeps the grouped pass's
    drawn weights across models (the caller owns it; None: each runner keeps its own).
    ``name`` names the model in errors and warnings.

    Raises:
        SettingsError: backend torch for an ONNX model.
        DataError: token ids outside the model's vocabulary.
    """
    is_module = _is_torch_module(model)
    if is_module:  # before an export, which would run the ids through the module
        _check_ids(model, data, settings.input_name, name)
    if settings.backend == "torch":
        if not is_module:
            raise SettingsError(
                "backend torch needs a torch.nn.Module; ONNX files use backend onnx"
            )
        from swapprobe.capture.torch_backend import TorchPatternRunner

        return TorchPatternRunner(
            model,
            batch_size=settings.batch_size,
            init=settings.init,
            activations=settings.activations,
            extra_inputs=data.extra,
        )

    from swapprobe.capture import graph
    from swapprobe.capture.emit import can_emit
    from swapprobe.capture.grouped import grouped_session
    from swapprobe.capture.session import PatternSession

    exported = 0.0
    if is_module:
        from swapprobe.capture.export import export_module

        t0 = time.perf_counter()
        proto = export_module(model, data.inputs, extra=data.extra)
        exported = time.perf_counter() - t0
    else:
        proto = model
    loaded = graph.load_model(proto)
    if not is_module:
        _check_ids(loaded, data, settings.input_name, name)
    origin = ModelOrigin(
        sum(p.numel() for p in model.parameters()) if is_module else None,
        graph.model_digest(loaded),
        exported,
    )
    runtime = settings.runtime
    session_args: dict[str, Any] = {
        "batch_size": settings.batch_size,
        "sample_shape": data.inputs.shape[1:],
        "init": settings.init,
        "input_name": settings.input_name,
        "device": settings.device,
        "max_pattern_bytes": settings.max_pattern_bytes,
        "threads": runtime.threads,
        "origin": origin,
    }
    plain = not data.extra and not data.is_tokens
    if runtime.grouped and plain and is_module and can_emit(model) and settings.repeats > 1:
        # Emitted search-space graphs (ReLU networks on images): all repeats in one pass
        # (the same patterns up to float rounding at zero, see capture/grouped.py); None
        # where the rewrite does not apply or pay
        grouped = grouped_session(
            loaded,
            repeats=settings.repeats,
            bake=runtime.bake,
            draw_cache=draw_cache,
            **session_args,
        )
        if grouped is not None:
            return grouped
    return PatternSession(
        loaded,
        name=name,
        activations=settings.activations,
        extra_inputs=data.extra,
        **session_args,
    )


def _is_torch_module(model: object) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (without importing torch when it is not
    loaded: then nothing can be one)."""
    if "torch" not in sys.modules:
        return False
    import torch.nn as nn

    return isinstance(model, nn.Module)


def _check_ids(model: Any, data: Batch, input_name: str | None, name: str) -> None:
    """Token ids beyond the model's embedding table would index outside it: refuse them in
    one line before any work (the runtimes' own errors are a traceback or an index
    message)."""
    if not data.is_tokens:
        return
    from swapprobe.capture.feeds import token_shape

    vocab, _ = token_shape(model, input_name)
    largest = int(data.inputs.max())
    if vocab is not None and largest >= vocab:
        raise DataError(
            f"{name}: token id {largest:,} is outside the model's vocabulary of {vocab:,} "
            f"(its embedding table's rows); load the tokens with vocab_size {vocab:,}"
        )
