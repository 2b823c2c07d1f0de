"""onnxruntime in one place: the providers a device asks for, the options every session is
opened with, and the CPU arena the grouped pass's chunk sessions share.

Both ONNX runners (:mod:`swapprobe.capture.session`, :mod:`swapprobe.capture.grouped`) open
their sessions through :func:`open_session`, so a session option is set once for both.
"""

from __future__ import annotations

from typing import Any

from swapprobe.errors import SettingsError, ShapeMismatchError

__all__ = [
    "DEVICES",
    "PROCESS_CPU_ARENA",
    "SharedCpuArena",
    "available_providers",
    "first_line",
    "open_session",
    "providers_for",
]

DEVICES = ("auto", "cpu", "cuda")


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def providers_for(device: str) -> list[str]:
    """Execution providers to ask for, most preferred first.

    Raises:
        SettingsError: unknown device, or ``cuda`` without a CUDA-enabled onnxruntime.
    """
    if device not in DEVICES:
        raise SettingsError(f"unknown device {device!r}: use {', '.join(DEVICES)}")
    available = available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise SettingsError(
            "device cuda asked for, but onnxruntime has no CUDA provider (available: "
            f"{', '.join(available)}); install the GPU extra: pip install 'swapprobe[gpu]'"
        )
    if device == "cpu" or not has_cuda:
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class SharedCpuArena:
    """A CPU arena registered in onnxruntime's environment, which sessions may opt into.

    Why: the grouped pass's baked chunk sessions run once each; with memory of their own every
    run would map and fault in its tensors afresh, while a shared arena keeps the pages across
    chunks and architectures (measured on DARTS: forward 0.035 → 0.023 s per architecture).

    Lifetime: onnxruntime's environment is one per process, so a registration lasts until the
    process ends and cannot be undone; this object only remembers whether it registered. The
    arena grows to the largest tensors of the sessions that use it, as requested (no
    power-of-two rounding), and is bounded by the grouped pass's chunk budget. Use the one
    :data:`PROCESS_CPU_ARENA`; a second object would find the allocator registered already
    and answer False (what a test of the refusal wants).
    """

    def __init__(self) -> None:
        self._registered: bool | None = None  # None: not tried yet

    def available(self) -> bool:
        """Register the arena on the first call; True when sessions can use it, False where
        this onnxruntime refuses it (an older one, or the caller registered one already):
        sessions then allocate their own memory."""
        if self._registered is None:
            import onnxruntime as ort

            try:
                info = ort.OrtMemoryInfo(
                    "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
                )
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
                self._registered = True
            except Exception:  # onnxruntime raises its own types
                self._registered = False
        return self._registered


#: the process's one shared arena (see :class:`SharedCpuArena` for its lifetime)
PROCESS_CPU_ARENA = SharedCpuArena()


def open_session(
    model: bytes | str,
    *,
    providers: list[str],
    optimize: bool = True,
    threads: int | None = None,
    arena: SharedCpuArena | None = None,
    failure: str,
    advice: str | None = None,
) -> Any:
    """An ``onnxruntime.InferenceSession`` for a serialised model (or a path), with the
    options every swapprobe session has.

    ``optimize``: onnxruntime's graph optimisations (patterns are bit-identical without;
    a test checks this). ``threads``: intra-op threads (None: onnxruntime's default).
    ``arena``: use this shared CPU arena where it is available, else the session's own memory.

    Raises:
        ShapeMismatchError: onnxruntime cannot load or plan the model; the message is
            ``advice`` when given, else ``failure`` and onnxruntime's first line.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # no multi-line coloured log on a failing model
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    options.log_severity_level = 4  # failures become one-line errors
    # Run each pattern node right after its activation (expose_patterns orders them so): the
    # default order keeps every activation's floats alive to the end of the graph (ResNet-50,
    # S = 64: peak 2.6 GB against 1.1 GB). Without the arena, memory freed by one layer goes
    # back at once; it measured no slower on small cells.
    options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    options.enable_cpu_mem_arena = False
    if arena is not None and arena.available():
        options.add_session_config_entry("session.use_env_allocators", "1")
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(model, options, providers=providers)
    except Exception as error:  # ORT raises its own Fail/InvalidGraph types
        raise ShapeMismatchError(advice or f"{failure}: {first_line(error)}") from None


def first_line(error: BaseException) -> str:
    """An error's first line, at most 300 characters (onnxruntime's messages run long)."""
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
