"""Model → activation patterns.

One entry point: :func:`open_runner` (in :mod:`~swapprobe.capture.runner`) takes a model, a
batch and the settings and returns a :class:`PatternRunner`, which turns the batch into one
pattern matrix per repeat. Behind it, each layer imports only the ones below it:

* :mod:`~swapprobe.capture.graph`    — pure ONNX → ONNX rewrites (BN on batch statistics,
  weights as inputs, pattern outputs);
* :mod:`~swapprobe.capture.weights`  — the initialisation schemes, drawn per repeat;
* :mod:`~swapprobe.capture.prepare`  — a model → the rewritten graph a session runs (pure);
* :mod:`~swapprobe.capture.runtime`  — onnxruntime: providers, session options
  (:func:`~swapprobe.capture.runtime.open_session`), the shared CPU arena;
* the runners: :mod:`~swapprobe.capture.session` (per repeat, any graph),
  :mod:`~swapprobe.capture.grouped` (all repeats in one pass, emitted search-space graphs),
  :mod:`~swapprobe.capture.torch_backend` (the torch module itself).

Beside them :mod:`~swapprobe.capture.gate_rules` (which units count and how a unit's bit is
defined, for both backends), :mod:`~swapprobe.capture.activations` (those rules applied to an
ONNX graph), :mod:`~swapprobe.capture.torch_gates` (applied to a torch forward),
:mod:`~swapprobe.capture.shapes` (static shapes and each tensor's batch axis),
:mod:`~swapprobe.capture.folding` (was BN folded at export?) and
:mod:`~swapprobe.capture.export` (module → ONNX).
"""

from swapprobe.capture.runner import ModelOrigin, PatternRunner, RunnerTimings, open_runner

__all__ = ["ModelOrigin", "PatternRunner", "RunnerTimings", "open_runner"]
