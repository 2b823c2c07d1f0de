"""What a user may hand over as "a model", resolved to a :class:`ModelRef` the Evaluator scores.

* ``SPACE:ARCH`` — an architecture of a registered search space in its text form
  (``nb201:|nor_conv_3x3~0|+|...|``, ``darts:Genotype(...)``), ``SPACE:random:N`` for N seeded
  random samples, ``SPACE:all`` for every architecture of an enumerable space (NAS-Bench-201's
  15,625), a named architecture (``darts:DARTS_V2``), or a name the tool printed: ``nb201#8617``
  (a space's index);
* an ONNX file path (``resnet.onnx``);
* ``FILE.py:FUNCTION`` — a Python file and a function in it that returns a ``torch.nn.Module``;
* ``torchvision:NAME``, ``timm:NAME`` — a model zoo's architecture, built with random weights
  (weights are never needed), with the input size of its own configuration;
* from Python also ``(space, arch)`` (a space object or its registered name; an architecture
  value or its text), a ``torch.nn.Module`` or an ``onnx.ModelProto``.

``SPACE:`` prefixes of registered spaces are tried before a spec is treated as a path: a DARTS
genotype's text is longer than a file name may be.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swapprobe.errors import ModelLoadError, UnknownArchitectureError

__all__ = [
    "ZOOS",
    "ModelRef",
    "arch_key",
    "arch_ref",
    "input_size_of",
    "is_torch_module",
    "module_digest",
    "resolve_models",
    "resolve_one",
    "scoring_defaults",
    "short_name",
    "text_key",
    "token_options",
    "token_shape_of",
]

_SPEC_FORMS = "an .onnx file, SPACE:ARCH, SPACE:random:N or FILE.py:FUNCTION"


@dataclass(frozen=True)
class ModelRef:
    """A model not yet loaded: a name for reports, a key for stores, and how to get it."""

    name: str
    key: str
    load: Callable[[], Any]
    space: Any = None  # SearchSpace when this is an architecture
    arch: Hashable | None = None
    #: (H, W) the model is made for, when it says (a zoo model's own configuration)
    input_size: tuple[int, int] | None = None


def arch_key(space: Any, arch: Hashable) -> str:
    """The store key of an architecture: ``SPACE:canonical text`` (the one place it is made)."""
    return text_key(space, space.format(arch))


def text_key(space: Any, text: str) -> str:
    """The store key of an architecture given its canonical text (see :func:`arch_key`)."""
    return f"{space.name}:{text}"


def arch_ref(space: Any, arch: Hashable, name: str | None = None) -> ModelRef:
    """The reference of one architecture of ``space`` (``name`` labels it in reports)."""
    return ModelRef(
        name=name or short_name(space, arch),
        key=arch_key(space, arch),
        load=lambda: arch,
        space=space,
        arch=arch,
    )


def short_name(space: Any, arch: Hashable) -> str:
    """A name that fits a table cell: the space's index when it has one (``nb201#8617``, which
    is accepted back as input), else a hash of the text (``darts:8c6485ba``)."""
    index = getattr(space, "index", None)
    if callable(index):
        return f"{space.name}#{index(arch)}"
    digest = hashlib.sha1(space.format(arch).encode()).hexdigest()[:8]
    return f"{space.name}:{digest}"


def scoring_defaults(refs: Iterable[ModelRef]) -> Any:
    """The S, init and repeats to score ``refs`` with when the user gives none: their space's
    declared defaults when they all come from one space (NAS-Bench-201: S=32, kaiming, 2
    repeats), else the paper's (S=16, N(0, 1) weights, 32 repeats)."""
    from swapprobe.searchspaces.base import SpaceDefaults

    spaces = {type(ref.space) for ref in refs}
    if len(spaces) == 1 and None not in {ref.space for ref in refs}:
        return next(iter(refs)).space.defaults
    return SpaceDefaults()


def input_size_of(refs: Iterable[ModelRef]) -> tuple[int, int] | None:
    """The (H, W) every model of ``refs`` that states one is made for, or None when none does.

    Raises:
        SettingsError: the models state different sizes (then one must be given).
    """
    from swapprobe.errors import SettingsError

    sizes = {ref.input_size for ref in refs if ref.input_size is not None}
    if len(sizes) > 1:
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        raise SettingsError(f"the models are made for different input sizes ({shown}); give one")
    return next(iter(sizes), None)


def token_shape_of(
    refs: Iterable[ModelRef], input_name: str | None = None
) -> tuple[set[int], set[int]]:
    """The vocabulary sizes and the sequence lengths the token models of ``refs`` state (see
    :func:`swapprobe.capture.feeds.token_shape`; empty sets when none does). Each model is
    loaded once more for it; a search space's first architecture stands for its space."""
    from swapprobe.capture.feeds import token_shape

    vocabularies: set[int] = set()
    lengths: set[int] = set()
    spaces: set[str] = set()
    for ref in refs:
        if ref.space is not None:
            if ref.space.name in spaces:
                continue
            spaces.add(ref.space.name)
            model = ref.space.build_scoring_network(ref.arch)
        else:
            model = ref.load()
        vocab, length = token_shape(model, input_name)
        vocabularies |= {vocab} if vocab is not None else set()
        lengths |= {length} if length is not None else set()
    return vocabularies, lengths


def token_options(
    refs: Iterable[ModelRef],
    data: Any,
    *,
    seq_len: int | None = None,
    vocab_size: int | None = None,
    input_name: str | None = None,
) -> dict[str, int | None]:
    """``seq_len`` and ``vocab_size`` to load ``data`` with: as given, else as the models state
    (:func:`token_shape_of`); ``{}`` for data that is no token source. None left: the
    source's own default.

    Raises:
        SettingsError: the models state different vocabularies or lengths and none is given,
            or a given vocabulary is larger than a model's embedding table.
    """
    from swapprobe.data import is_token_source
    from swapprobe.errors import SettingsError

    if not is_token_source(data):
        return {}
    vocabularies, lengths = token_shape_of(refs, input_name)
    if vocab_size is not None and vocabularies and vocab_size > min(vocabularies):
        raise SettingsError(
            f"vocab_size {vocab_size:,} is larger than the model's embedding table of "
            f"{min(vocabularies):,} rows: ids would fall outside it; give at most that"
        )
    for given, stated, what, name in (
        (vocab_size, vocabularies, "vocabularies", "vocab_size"),
        (seq_len, lengths, "sequence lengths", "seq_len"),
    ):
        if given is None and len(stated) > 1:
            shown = ", ".join(f"{v:,}" for v in sorted(stated))
            raise SettingsError(f"the models have different {what} ({shown}); give {name}")
    return {
        "seq_len": seq_len if seq_len is not None else next(iter(lengths), None),
        "vocab_size": vocab_size if vocab_size is not None else next(iter(vocabularies), None),
    }


def resolve_models(specs: Iterable[Any], *, seed: int = 0) -> list[ModelRef]:
    """Turn model specs into :class:`ModelRef` s, failing early on any that cannot work.

    Raises:
        ModelLoadError: a missing file, or a ``.py`` spec whose function is missing or fails.
        UnknownArchitectureError: an unknown space or unparsable architecture.
    """
    refs: list[ModelRef] = []
    for spec in specs:
        refs.extend(_resolve(spec, seed))
    return refs


def resolve_one(spec: Any, *, seed: int = 0) -> ModelRef:
    """The one model ``spec`` names (``SPACE:random:N`` and ``SPACE:all`` are refused)."""
    if isinstance(spec, ModelRef):
        return spec
    refs = _resolve(spec, seed)
    if len(refs) != 1:
        raise UnknownArchitectureError(
            f"{spec!s:.60} names {len(refs)} models; score them with score_many"
        )
    return refs[0]


def _resolve(spec: Any, seed: int) -> list[ModelRef]:
    if isinstance(spec, ModelRef):
        return [spec]
    if isinstance(spec, tuple) and len(spec) == 2:
        return [_pair_ref(*spec)]
    if not isinstance(spec, (str, Path)):
        return [_object_ref(spec)]
    text = str(spec)
    indexed = re.fullmatch(r"([A-Za-z_][\w-]*)#(\d+)", text)
    if indexed and _is_space(indexed.group(1)):
        return [_indexed_ref(indexed.group(1), int(indexed.group(2)))]
    head, _, rest = text.partition(":")
    if rest and head in ZOOS:
        return [_zoo_ref(head, rest, seed)]
    if rest and _is_space(head):
        return _space_refs(head, rest, seed)
    if rest and head.endswith(".py"):
        return [_python_ref(Path(head), rest, seed)]
    path = Path(text)
    if path.suffix.lower() == ".onnx" or _is_file(path):
        return [_file_ref(path)]
    if rest and head and not _is_file(Path(head)) and "/" not in head and "\\" not in head:
        from swapprobe.searchspaces import list_spaces

        raise UnknownArchitectureError(
            f"unknown search space {head!r} in {text:.60}; known spaces: {', '.join(list_spaces())}"
        )
    raise ModelLoadError(f"model file not found: {text:.200} (a model is {_SPEC_FORMS})")


def _is_space(name: str) -> bool:
    from swapprobe.searchspaces import list_spaces

    return name in list_spaces()


def _is_file(path: Path) -> bool:
    """Whether ``path`` is an existing file or folder; any OS error (a name too long for the
    file system, a path through a file) means it is not."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _space_refs(space_name: str, rest: str, seed: int) -> list[ModelRef]:
    from swapprobe.searchspaces import get_space

    space = get_space(space_name)
    if rest == "all":
        enumerate_all = getattr(space, "enumerate", None)
        if not callable(enumerate_all):
            raise UnknownArchitectureError(
                f"{space.name} cannot be enumerated; use {space.name}:random:N"
            )
        return [arch_ref(space, arch) for arch in enumerate_all()]
    if rest.startswith("random") and rest.partition(":")[0] == "random":
        count = _random_count(rest)
        rng = np.random.default_rng(seed)
        return [arch_ref(space, space.sample(rng)) for _ in range(count)]
    if re.fullmatch(r"[0-9a-f]{8}", rest) and not callable(getattr(space, "index", None)):
        raise UnknownArchitectureError(
            f"{space.name}:{rest} is the short name swapprobe prints for a {space.name} "
            "architecture (a hash of its text, which cannot be turned back); give the full text "
            "(the 'key' of the --json rows or of a store)"
        )
    arch, named = _named_or_parsed(space, rest)
    return [arch_ref(space, arch, name=f"{space.name}:{rest}" if named else None)]


def _indexed_ref(space_name: str, index: int) -> ModelRef:
    from swapprobe.searchspaces import get_space

    space = get_space(space_name)
    from_index = getattr(space, "from_index", None)
    if not callable(from_index):
        raise UnknownArchitectureError(f"{space.name} architectures have no index")
    return arch_ref(space, from_index(index))


def _pair_ref(space: Any, arch: Any) -> ModelRef:
    """``(space, arch)`` from Python: a space object or name; an architecture value or text."""
    if isinstance(space, str):
        from swapprobe.searchspaces import get_space

        space = get_space(space)
    if isinstance(arch, str):
        value, named = _named_or_parsed(space, arch)
        return arch_ref(space, value, name=f"{space.name}:{arch}" if named else None)
    try:  # a value of the space's own type (or one its format accepts): canonicalise it
        arch = space.parse(space.format(arch))
    except UnknownArchitectureError:
        raise
    except Exception as error:
        raise UnknownArchitectureError(
            f"not a {space.name} architecture: {type(arch).__name__} ({error})"
        ) from None
    return arch_ref(space, arch)


def _named_or_parsed(space: Any, text: str) -> tuple[Hashable, bool]:
    """``DARTS_V2``-style names are module constants of the space's file; else parse the text.

    Returns the architecture and whether ``text`` was such a name (it then names the model in
    reports, rather than a hash of the architecture). An identifier that names nothing lists
    the names the space has.
    """
    if text.isidentifier():
        module = sys.modules.get(type(space).__module__)
        named = getattr(module, text, None)
        if named is not None:
            return space.parse(space.format(named)), True
        known = _named_architectures(space)
        if known:
            raise UnknownArchitectureError(
                f"unknown {space.name} architecture {text!r}; named ones: {', '.join(known)}"
            )
    return space.parse(text), False


def _named_architectures(space: Any) -> list[str]:
    """Upper-case module constants of the space's file that format as architectures."""
    module = sys.modules.get(type(space).__module__)
    names = []
    for name in sorted(vars(module) if module else ()):
        if not name.isupper() or name.startswith("_"):
            continue
        try:
            space.format(getattr(module, name))
        except Exception:
            continue
        names.append(name)
    return names


def _random_count(rest: str) -> int:
    _, _, count = rest.partition(":")
    try:
        value = int(count or 1)
    except ValueError:
        raise UnknownArchitectureError(f"'random:{count}' needs a whole number") from None
    if value < 1:
        raise UnknownArchitectureError("random:N needs N ≥ 1")
    return value


def _file_ref(path: Path) -> ModelRef:
    if not _is_file(path):
        raise ModelLoadError(f"model file not found: {path!s:.200}")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory, not an ONNX model file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ModelRef(name=path.name, key=f"sha256:{digest}", load=lambda: path)


def is_torch_module(model: object) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (without importing torch when it is not
    loaded: then nothing can be one)."""
    if "torch" not in sys.modules:
        return False
    import torch.nn as nn

    return isinstance(model, nn.Module)


def module_digest(module: Any) -> str:
    """A digest of a module's structure and weights: its store key."""
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _object_ref(obj: Any) -> ModelRef:
    if "onnx" in sys.modules:
        import onnx

        if isinstance(obj, onnx.ModelProto):
            data = obj.SerializeToString(deterministic=True)
            return ModelRef(
                obj.graph.name or "model", "sha256:" + hashlib.sha256(data).hexdigest(), lambda: obj
            )
    if is_torch_module(obj):
        return ModelRef(type(obj).__name__, "torch:" + module_digest(obj), lambda: obj)
    raise ModelLoadError(
        f"cannot score a {type(obj).__name__}: give an ONNX file or a torch.nn.Module"
    )


def _python_ref(path: Path, function: str, seed: int) -> ModelRef:
    """``FILE.py:FUNCTION``: the file is imported with its folder on ``sys.path`` (so sibling
    imports work) and the function called with no arguments under a torch seed derived from
    ``seed`` (so ``init="keep"`` scores the same weights every run)."""
    if not _is_file(path):
        raise ModelLoadError(f"python file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"swapprobe_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise ModelLoadError(f"importing {path} failed: {type(error).__name__}: {error}") from None
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ModelLoadError(f"{path} has no function {function!r}")
    built = _call_factory(factory, f"{path.name}:{function}", seed)
    ref = _object_ref(built)
    return ModelRef(f"{path.name}:{function}", ref.key, ref.load)


# --- model zoos: architectures by name, random weights (weights are never needed) ---------
def _torchvision_model(name: str) -> tuple[Any, tuple[int, int] | None]:
    models = _import_zoo("torchvision", "torchvision.models")
    try:
        model = models.get_model(name, weights=None)
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


def _timm_model(name: str) -> tuple[Any, tuple[int, int] | None]:
    timm = _import_zoo("timm", "timm")
    try:
        model = timm.create_model(name, pretrained=False)
    except RuntimeError as error:  # timm's "Unknown model"
        raise ModelLoadError(f"timm: {str(error).splitlines()[0]}") from None
    config = getattr(model, "pretrained_cfg", None) or {}
    size = config.get("input_size")
    return model, (int(size[-2]), int(size[-1])) if size else None


#: ``ZOO:NAME`` → a function returning the model (random weights) and its input (H, W)
ZOOS: dict[str, Callable[[str], tuple[Any, tuple[int, int] | None]]] = {
    "torchvision": _torchvision_model,
    "timm": _timm_model,
}


def _import_zoo(package: str, module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except RuntimeError as error:
        if "torchvision::nms does not exist" not in str(error):
            raise ModelLoadError(f"{package} cannot be imported: {error}") from None
        # A torchvision wheel built for another torch (PyPI's CUDA build beside a CPU torch)
        # cannot load its C++ operators, and its import stops at the first fake registration.
        # Classification models never call those operators: declare the two the import
        # needs, without kernels, and import again. Detection models would still fail.
        _declare_torchvision_ops()
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        try:
            return importlib.import_module(module)
        except (ImportError, RuntimeError) as again:
            raise ModelLoadError(
                f"{package} is installed but cannot be imported beside this torch "
                f"({str(again).splitlines()[0]}); install the {package} build made for your "
                "torch"
            ) from None
    except ImportError:
        raise ModelLoadError(
            f"{package} models need {package}: pip install {package} (a build matching your torch)"
        ) from None


_TORCHVISION_OPS: list[Any] = []  # keeps the declaring library alive


def _declare_torchvision_ops() -> None:
    import torch

    if _TORCHVISION_OPS:
        return
    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_OPS.append(library)


def _zoo_ref(zoo: str, name: str, seed: int) -> ModelRef:
    """``torchvision:resnet18``, ``timm:convnext_atto``: built once, with random weights drawn
    under ``seed`` (only ``init="keep"`` scores them; other schemes re-draw every weight)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, size = ZOOS[zoo](name)
    ref = _object_ref(model)
    return ModelRef(f"{zoo}:{name}", ref.key, ref.load, input_size=size)


def _call_factory(factory: Callable[[], Any], label: str, seed: int) -> Any:
    import inspect

    try:
        needed = [
            p.name
            for p in inspect.signature(factory).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
    except (TypeError, ValueError):
        needed = []
    if needed:
        raise ModelLoadError(
            f"{label} needs arguments ({', '.join(needed)}); give a function that takes none "
            "and returns the model"
        )
    import torch

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory()
    except Exception as error:
        raise ModelLoadError(f"{label} raised {type(error).__name__}: {error}") from None
