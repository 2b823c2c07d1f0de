"""Model zoos by name (``torchvision:NAME``, ``timm:NAME``): architectures built with random
weights (weights are never needed), with the input size of their own configuration.

A zoo is a function ``NAME → (model, (H, W) or None)``; :func:`zoo_scheme` makes it a model
scheme (see :func:`swapprobe.models.register_scheme`), which is how both zoos are registered.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from swapprobe.errors import ModelLoadError
from swapprobe.models.refs import ModelRef, object_ref

__all__ = [
    "ZooLoader",
    "import_zoo",
    "install_advice",
    "repair_torchvision",
    "timm_model",
    "torchvision_mismatch",
    "torchvision_model",
    "zoo_scheme",
]

#: a zoo: architecture name → the model (random weights) and the (H, W) it is made for
ZooLoader = Callable[[str], tuple[Any, tuple[int, int] | None]]


def torchvision_model(name: str) -> tuple[Any, tuple[int, int] | None]:
    """``torchvision:NAME``: a model (classification, or any other built without downloading
    weights) and the crop size of its own weights."""
    models = import_zoo("torchvision", "torchvision.models")
    try:
        model = models.get_model(name, weights=None, **_no_backbone_weights(models, name))
    except ValueError:
        known = ", ".join(sorted(models.list_models(module=models))[:12])
        raise ModelLoadError(
            f"torchvision has no classification model {name!r} (e.g. {known}, ...)"
        ) from None
    size = None
    try:  # the crop size of the model's own weights' transforms (metadata, no download)
        crop = models.get_model_weights(name).DEFAULT.transforms().crop_size
        size = (int(crop[0]), int(crop[-1]))
    except Exception:
        size = None
    return model, size


def _no_backbone_weights(models: Any, name: str) -> dict[str, Any]:
    """``weights_backbone=None`` for the builders that take it (detection, segmentation,
    video): their default downloads ImageNet backbone weights, which scoring re-draws anyway."""
    import inspect

    try:
        builder = models.get_model_builder(name)
        taken = inspect.signature(builder).parameters
    except (ValueError, TypeError):
        return {}
    return {"weights_backbone": None} if "weights_backbone" in taken else {}


def timm_model(name: str) -> tuple[Any, tuple[int, int] | None]:
    """``timm:NAME``: the model and the input size of its pretrained configuration."""
    timm = import_zoo("timm", "timm")
    try:
        model = timm.create_model(name, pretrained=False)
    except RuntimeError as error:  # timm's "Unknown model"
        raise ModelLoadError(f"timm: {str(error).splitlines()[0]}") from None
    config = getattr(model, "pretrained_cfg", None) or {}
    size = config.get("input_size")
    return model, (int(size[-2]), int(size[-1])) if size else None


def import_zoo(package: str, module: str) -> Any:
    """Import a zoo's ``module``, or say in one line why it cannot be (absent, or a build made
    for another torch that even the repair of :func:`repair_torchvision` cannot load)."""
    try:
        return importlib.import_module(module)
    except RuntimeError as error:
        if not torchvision_mismatch(error):
            raise ModelLoadError(f"{package} cannot be imported: {error}") from None
        repair_torchvision()
        try:
            return importlib.import_module(module)
        except (ImportError, RuntimeError) as again:
            raise ModelLoadError(
                f"{package} is installed but cannot be imported beside this torch "
                f"({str(again).splitlines()[0]}); install the build made for your torch: "
                f"{install_advice(package)}"
            ) from None
    except ImportError:
        raise ModelLoadError(
            f"{package} models need {package}: {install_advice(package)}"
        ) from None


def install_advice(package: str) -> str:
    """The install of ``package`` that keeps this torch: ``--no-deps`` (a plain install of
    torchvision or timm replaces a CPU torch with PyPI's CUDA build), torchvision pinned to the
    release made for this torch (0.28 for torch 2.13, as ``.ci/run`` installs it)."""
    if package == "torchvision":
        import torch

        major, minor = (int(part) for part in torch.__version__.split(".")[:2])
        pin = f"==0.{minor + 15}.0" if major == 2 else ""
        return f"pip install --no-deps torchvision{pin}"
    if package == "timm":
        return "pip install --no-deps timm huggingface_hub safetensors pyyaml"
    return f"pip install {package}"


def torchvision_mismatch(error: BaseException | None) -> bool:
    """Whether ``error`` (or an error it was raised from or during) is a torchvision build made
    for another torch failing to load its operators (transformers hides it behind its own
    "Could not import module")."""
    seen = 0
    while error is not None and seen < 32:
        if "torchvision::nms does not exist" in str(error):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def repair_torchvision() -> None:
    """Make a torchvision built for another torch importable: a PyPI wheel beside a CPU torch
    cannot load its C++ operators, and its import stops at the first fake registration.
    Classification models and transformers never call those operators: declare the two the
    import needs, without kernels, and forget the half-imported modules (torchvision's and
    transformers', which imported it) so the next import starts afresh. Detection models
    would still fail."""
    _declare_torchvision_ops()
    for name in list(sys.modules):
        if name.split(".")[0] in ("torchvision", "transformers"):
            del sys.modules[name]


_TORCHVISION_OPS: list[Any] = []  # keeps the declaring library alive


def _declare_torchvision_ops() -> None:
    import torch

    if _TORCHVISION_OPS:
        return
    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_OPS.append(library)


def zoo_scheme(loader: ZooLoader) -> Callable[[str, str, int], list[ModelRef]]:
    """The scheme resolver of a zoo: ``ZOO:NAME`` is built once, with random weights drawn
    under ``seed`` (only ``init="keep"`` scores them; other schemes re-draw every weight)."""

    def resolve(scheme: str, name: str, seed: int) -> list[ModelRef]:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, size = loader(name)
        ref = object_ref(model)
        return [ModelRef(f"{scheme}:{name}", ref.key, ref.load, input_size=size)]

    return resolve
