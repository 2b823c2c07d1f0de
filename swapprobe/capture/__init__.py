"""Model → activation patterns.

Three layers, each importing only the one below it (the optimum habit):

* :mod:`~swapprobe.capture.graph`   — pure ONNX → ONNX rewrites (BN on batch statistics,
  weights as inputs, pattern outputs);
* :mod:`~swapprobe.capture.weights` — the initialisation schemes, drawn per repeat;
* :mod:`~swapprobe.capture.session` — one onnxruntime session that owns the provider choice
  and turns a forward pass into a :class:`~swapprobe.patterns.PatternMatrix`;

beside them :mod:`~swapprobe.capture.activations` (which units count: every gate, found by graph
pattern, and the selector), :mod:`~swapprobe.capture.shapes` (static shapes and each tensor's
batch axis) and :mod:`~swapprobe.capture.folding` (was BN folded at export?); plus the torch
side: :mod:`~swapprobe.capture.export` (module → ONNX) and
:mod:`~swapprobe.capture.torch_backend` (the second backend, torch forward with gate
interception; hand-written gates by :mod:`~swapprobe.capture.torch_gates`).
"""
