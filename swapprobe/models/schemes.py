"""What a user may hand over as "a model", resolved to :class:`~swapprobe.models.ModelRef` s.

Text is read in this order, the first form that fits wins:

1. ``SPACE#INDEX`` — a name the tool printed for an indexed space (``nb201#8617``);
2. ``SCHEME:REST`` — a registered scheme (:func:`register_scheme`): ``torchvision:NAME`` and
   ``timm:NAME`` (a zoo's architecture with random weights, see :mod:`.zoos`), then every
   registered search space: ``SPACE:ARCH`` in its text form (``nb201:|nor_conv_3x3~0|+|...|``,
   ``darts:Genotype(...)``) or a named architecture (``darts:DARTS_V2``), ``SPACE:random:N``
   for N seeded random samples, ``SPACE:all`` for every architecture of an enumerable space;
3. ``FILE.py:FUNCTION`` — a Python file and a function in it that returns a torch module; a
   function of one argument (the choice recorder) is a define-by-run space, whose members are
   ``FILE.py:FUNCTION:{"width": 32, ...}`` and ``FILE.py:FUNCTION:random:N``;
4. an ONNX file path (``resnet.onnx``), or any existing file.

From Python also a ``ModelRef``, ``(space, arch)`` (a space object or its registered name; an
architecture value or its text), a ``torch.nn.Module`` or an ``onnx.ModelProto``.

Schemes come before paths: a DARTS genotype's text is longer than a file name may be. A new
way to name models is one :func:`register_scheme` call (as timm's ``register_model``); an
unknown ``SCHEME:`` lists the known ones.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from swapprobe.errors import ModelLoadError, SettingsError, UnknownArchitectureError
from swapprobe.models.files import file_ref, is_file, load_function, python_ref
from swapprobe.models.refs import ModelRef, arch_ref, object_ref
from swapprobe.models.zoos import timm_model, torchvision_model, zoo_scheme

__all__ = [
    "SchemeResolver",
    "list_schemes",
    "register_scheme",
    "resolve_models",
    "resolve_one",
    "unregister_scheme",
]

#: ``SCHEME:REST`` → its models: called with the scheme's name, the text after the colon and
#: the seed of the run (random samples, random weights)
SchemeResolver = Callable[[str, str, int], list[ModelRef]]

_SCHEMES: dict[str, SchemeResolver] = {}
_SCHEME_NAME = re.compile(r"[A-Za-z_][\w-]*")
_NON_SCHEME_FORMS = "FILE.py:FUNCTION or an .onnx file"


def register_scheme(name: str, resolver: SchemeResolver) -> SchemeResolver:
    """Make ``NAME:REST`` resolve through ``resolver`` (registered schemes are tried before the
    search spaces, so a scheme named like a space shadows it). Returns ``resolver``."""
    if not _SCHEME_NAME.fullmatch(name):
        raise SettingsError(f"a model scheme is a name such as 'timm', got {name!r}")
    if name in _SCHEMES and _SCHEMES[name] is not resolver:
        warnings.warn(
            f"model scheme {name!r} re-registered: {_origin(_SCHEMES[name])} replaced by "
            f"{_origin(resolver)}",
            stacklevel=2,
        )
    _SCHEMES[name] = resolver
    return resolver


def _origin(resolver: SchemeResolver) -> str:
    return f"{getattr(resolver, '__module__', '?')}.{getattr(resolver, '__qualname__', resolver)}"


def unregister_scheme(name: str) -> None:
    """Forget a scheme registered with :func:`register_scheme` (search spaces stay schemes)."""
    _SCHEMES.pop(name, None)


def list_schemes() -> list[str]:
    """Every ``SCHEME:`` a text spec may start with: the registered ones and the spaces."""
    from swapprobe.searchspaces import list_spaces

    return sorted({*_SCHEMES, *list_spaces()})


register_scheme("torchvision", zoo_scheme(torchvision_model))
register_scheme("timm", zoo_scheme(timm_model))


def resolve_models(specs: Iterable[Any], *, seed: int = 0) -> list[ModelRef]:
    """Turn model specs into :class:`ModelRef` s, failing early on any that cannot work.

    Raises:
        ModelLoadError: a missing file, or a ``.py`` spec whose function is missing or fails.
        UnknownArchitectureError: an unknown scheme or space, or an unparsable architecture.
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
        return [object_ref(spec)]
    text = str(spec)
    indexed = re.fullmatch(r"([A-Za-z_][\w-]*)#(\d+)", text)
    if indexed and _is_space(indexed.group(1)):
        return [_indexed_ref(indexed.group(1), int(indexed.group(2)))]
    head, _, rest = text.partition(":")
    if rest and head in _SCHEMES:
        return _SCHEMES[head](head, rest, seed)
    if rest and _is_space(head):
        return _space_refs(head, rest, seed)
    if rest and head.endswith(".py"):
        return _python_refs(Path(head), rest, seed)
    path = Path(text)
    if path.suffix.lower() == ".onnx" or is_file(path):
        return [file_ref(path)]
    if rest and head and not is_file(Path(head)) and "/" not in head and "\\" not in head:
        raise UnknownArchitectureError(
            f"unknown model scheme {head!r} in {text:.60}; known schemes: "
            f"{', '.join(list_schemes())} (or {_NON_SCHEME_FORMS})"
        )
    raise ModelLoadError(
        f"model file not found: {text:.200} (a model is an .onnx file, SPACE:ARCH, "
        "SPACE:random:N or FILE.py:FUNCTION)"
    )


# --- search spaces: every registered space is a scheme -------------------------------------
def _is_space(name: str) -> bool:
    from swapprobe.searchspaces import list_spaces

    return name in list_spaces()


def _space_refs(space_name: str, rest: str, seed: int) -> list[ModelRef]:
    from swapprobe.searchspaces import get_space

    return _members(get_space(space_name), rest, seed)


def _python_refs(path: Path, rest: str, seed: int) -> list[ModelRef]:
    """``FILE.py:FUNCTION``: the model a function of no argument returns; for a function of
    the choice recorder (a define-by-run space), ``FILE.py:FUNCTION:MEMBER`` names members as
    ``SPACE:MEMBER`` does (``{"width": 32}``, ``random:N``)."""
    from swapprobe.searchspaces.custom import is_space_function, space_from_file

    function, _, member = rest.partition(":")
    label = f"{path.name}:{function}"
    found = load_function(path, function)
    if not is_space_function(found):
        if member:
            raise ModelLoadError(
                f"{label} takes no choices, so {label}:{member:.40} names nothing; give "
                f"{label} alone (or a function of the choice recorder to name its members)"
            )
        return [python_ref(path, function, seed, found)]
    if not member:
        import inspect

        argument = next(iter(inspect.signature(found).parameters))
        raise ModelLoadError(
            f"{label} needs arguments ({argument}): a function of one argument is a search "
            f"space that takes the choice recorder; score its members as "
            f"{label}:'{{\"NAME\": VALUE, ...}}' or {label}:random:N, or search it with "
            f"swapprobe search {label}"
        )
    return _members(space_from_file(path, function, found), member, seed)


def _members(space: Any, rest: str, seed: int) -> list[ModelRef]:
    """The architectures of ``space`` that ``rest`` names: ``all``, ``random[:N]``, a named
    architecture or a text form."""
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
            "(the 'key' of the JSON rows or of a store)"
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
    """An architecture the space names (``DARTS_V2``, see
    :meth:`~swapprobe.searchspaces.SearchSpace.named_architectures`), else the parsed text.

    Returns the architecture and whether ``text`` was such a name (it then names the model in
    reports, rather than a hash of the architecture). An identifier that names nothing lists
    the names the space has.
    """
    if text.isidentifier():
        known = space.named_architectures()
        if text in known:
            return space.parse(space.format(known[text])), True
        if known:
            raise UnknownArchitectureError(
                f"unknown {space.name} architecture {text!r}; named ones: {', '.join(known)}"
            )
    return space.parse(text), False


def _random_count(rest: str) -> int:
    _, _, count = rest.partition(":")
    try:
        value = int(count or 1)
    except ValueError:
        raise UnknownArchitectureError(f"'random:{count}' needs a whole number") from None
    if value < 1:
        raise UnknownArchitectureError("random:N needs N ≥ 1")
    return value
