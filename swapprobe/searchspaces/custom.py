"""A define-by-run search space: a Python function that builds a model while naming its choices.

The user writes::

    def space(c):
        width = c.choice("width", [16, 32, 64])
        depth = c.choice("depth", [2, 3, 4])
        return build_my_net(width, depth)      # any torch.nn.Module

and :class:`CustomSpace` turns it into a :class:`~swapprobe.searchspaces.base.SearchSpace`: the
choices the function records while it runs *are* the architecture. Their text form is a JSON
object in the order the function asked (``{"width": 32, "depth": 3}``), which is canonical
(replaying it records the same choices in the same order), so it is the store key and what
``FILE.py:FUNCTION:{...}`` names. Sampling draws each choice uniformly as the function asks
for it; mutation re-draws one recorded choice and re-runs the function, crossover takes each
named choice from either parent and re-runs it, so choices that depend on earlier ones (a
per-layer width under a sampled depth) are always those the function would ask for.

Why a module beside :mod:`.base` and not a package like the built-in spaces:
:func:`~swapprobe.searchspaces.base.load_builtin` treats every package here as a registered
built-in space (and preloads its ``networks`` into pool workers); a define-by-run space is made
per function and never registered. It is the protocol's neighbour, not one of the spaces.

Workers of a process pool or Ray rebuild the space from where its function lives: a file
(``FILE.py:FUNCTION``) or an importable module. A lambda, a closure, or a function defined in
``__main__`` cannot be found there; :meth:`CustomSpace.check_importable` says so in one line.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from swapprobe.errors import ModelLoadError, SettingsError, SwapprobeError, UnknownArchitectureError
from swapprobe.searchspaces.base import InputKind, SearchSpace, SpaceDefaults

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = [
    "ChoiceRecorder",
    "CustomArch",
    "CustomSpace",
    "FunctionSource",
    "is_space_function",
    "space_from_file",
]

#: a choice's value: what JSON writes and reads back as itself
Scalar = str | int | float | bool | None
#: an architecture: the recorded ``(name, value)`` pairs, in the order the function asked
CustomArch = tuple[tuple[str, Scalar], ...]
T = TypeVar("T")

#: what the token models' data source is unless one is given (as the FlexiBERT space)
_TOKEN_DATA = "tokens:zipf"


class ChoiceRecorder:
    """What a space function is handed: :meth:`choice` returns one of the options and records
    it. ``given`` values are replayed; a name without one (or, unless ``strict``, with one the
    options no longer hold) is drawn uniformly from ``rng``. ``strict`` replay (parsing a text
    form) refuses both instead, so a text names exactly one member."""

    def __init__(
        self,
        given: Mapping[str, Scalar] | None = None,
        rng: np.random.Generator | None = None,
        *,
        strict: bool = False,
    ) -> None:
        self._given = dict(given or {})
        self._rng = rng
        self._strict = strict
        #: the choices made, in order
        self.choices: dict[str, Scalar] = {}
        #: each choice's options, as the function offered them
        self.options: dict[str, tuple[Scalar, ...]] = {}

    def choice(self, name: str, options: Sequence[T]) -> T:
        """One of ``options`` (str, int, float, bool or None: the text form is JSON) under
        ``name``, which is unique within one run of the function."""
        if not isinstance(name, str) or not name:
            raise SettingsError(f"a choice's name is a non-empty string, got {name!r}")
        if name in self.choices:
            raise SettingsError(f"choice {name!r} is made twice; give each choice its own name")
        if isinstance(options, (str, bytes)) or not isinstance(options, Sequence) or not options:
            raise SettingsError(f"choice {name!r} needs a non-empty list of options")
        for option in options:
            if option is not None and not isinstance(option, (str, int, float, bool)):
                raise SettingsError(
                    f"choice {name!r}: options are str, int, float, bool or None (the "
                    f"architecture's text is JSON), got a {type(option).__name__}; choose a name "
                    "and map it to the object"
                )
        offered: tuple[Scalar, ...] = tuple(options)  # type: ignore[arg-type]
        if len({_identity(o) for o in offered}) != len(offered):
            raise SettingsError(f"choice {name!r} lists an option twice")
        index = _index_of(offered, self._given[name]) if name in self._given else None
        if index is None:
            if self._strict:
                if name in self._given:
                    raise UnknownArchitectureError(
                        f"{name}={json.dumps(self._given[name])} is not one of "
                        f"{json.dumps(list(offered))}"
                    )
                raise UnknownArchitectureError(
                    f"no value for choice {name!r} (one of {json.dumps(list(offered))})"
                )
            if self._rng is None:  # pragma: no cover - every non-strict recorder has one
                raise SettingsError(f"no value for choice {name!r}")
            index = int(self._rng.integers(len(offered)))
        self.choices[name] = offered[index]
        self.options[name] = offered
        return options[index]

    def arch(self) -> CustomArch:
        return tuple(self.choices.items())


def _identity(value: Scalar) -> tuple[str, Scalar]:
    """Equality that keeps ``True`` and ``1`` (and ``1`` and ``1.0``) apart, as JSON does."""
    return type(value).__name__, value


def _index_of(options: Sequence[Scalar], value: Scalar) -> int | None:
    wanted = _identity(value)
    for i, option in enumerate(options):
        if _identity(option) == wanted:
            return i
    return None


@dataclass(frozen=True)
class FunctionSource:
    """Where a space function can be found again in another process: a file and a name in it
    (``path``), or a module and a qualified name."""

    name: str
    path: str | None = None
    module: str | None = None

    def load(self) -> Callable[[ChoiceRecorder], Any]:
        if self.path is not None:
            from swapprobe.models.files import load_function

            return load_function(Path(self.path), self.name)
        assert self.module is not None
        found: Any = importlib.import_module(self.module)
        for part in self.name.split("."):
            found = getattr(found, part)
        return found  # type: ignore[no-any-return]


def _source_of(function: Callable[..., Any]) -> tuple[FunctionSource | None, str]:
    """Where workers find ``function`` again, or why they cannot."""
    qualname = getattr(function, "__qualname__", "")
    module = getattr(function, "__module__", None)
    if "<lambda>" in qualname:
        return None, "is a lambda"
    if "<locals>" in qualname:
        return None, "is defined inside another function"
    if module in (None, "__main__"):
        return None, "is defined in __main__"
    source = FunctionSource(qualname, module=module)
    try:
        found = source.load()
    except (ImportError, AttributeError):
        return None, f"cannot be imported as {module}.{qualname}"
    if found is not function:
        return None, f"is not what {module}.{qualname} names"
    return source, ""


def is_space_function(function: Callable[..., Any]) -> bool:
    """Whether ``function`` takes exactly one argument without a default (the recorder): a
    space; a function that takes none returns one model."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    needed = [
        p
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(needed) == 1


class CustomSpace(SearchSpace):
    """A search space made of a define-by-run function (see the module's docstring).

    ``name`` labels it in reports and store keys (``my_space.py:space``, or the function's
    module and name). The function is run once here, on the first sampled member, so a
    function that raises, returns no module or makes no choice fails now, in one line; that
    member's module also says whether the space takes images or token ids (an
    ``nn.Embedding`` inside: tokens), which chooses the default data as ``score`` does.
    """

    size_unit = "M"

    def __init__(
        self,
        function: Callable[[ChoiceRecorder], Any],
        *,
        name: str | None = None,
        source: FunctionSource | None = None,
    ) -> None:
        if not callable(function):
            raise SettingsError(f"a space is a function of the choice recorder, got {function!r}")
        self.function = function
        self.name = name or getattr(function, "__name__", "space")  # type: ignore[misc]
        if source is None:
            source, self._not_importable = _source_of(function)
        else:
            self._not_importable = ""
        self.source = source
        probe = self._run(ChoiceRecorder(rng=np.random.default_rng(0)))
        vocab = _vocabulary(probe)
        self.input_kind: InputKind = "tokens" if vocab is not None else "images"  # type: ignore[misc]
        self.vocab_size = vocab  # type: ignore[misc]
        self.input_shape = (128,) if vocab is not None else (3, 32, 32)  # type: ignore[misc]
        self.defaults = (  # type: ignore[misc]
            SpaceDefaults(data=_TOKEN_DATA) if vocab is not None else SpaceDefaults()
        )

    def __repr__(self) -> str:
        return f"CustomSpace({self.name})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Workers rebuild the space from where its function lives (the function itself may
        not pickle: a file imported by path is no module they know)."""
        if self.source is None:
            self.check_importable()
        assert self.source is not None
        return _space_of_source, (self.source, self.name)

    def check_importable(self) -> None:
        """Refuse, in one line, a function workers of another process cannot find."""
        if self.source is None:
            raise SettingsError(
                f"space function {self.name!r} {self._not_importable}, so workers of another "
                f"process cannot import it: define it at the top level of a file and give "
                f"'FILE.py:{getattr(self.function, '__name__', 'space')}', or use "
                "{executor='local'}"
            )

    # --- running the function -----------------------------------------------------------
    def _run(self, recorder: ChoiceRecorder) -> nn.Module:
        """The function's module under ``recorder``, which must have recorded a choice; the
        caller's torch random state is left as it was (a build draws weights)."""
        import torch

        with torch.random.fork_rng(devices=[]):
            module = self._call(recorder)
        if not recorder.choices:
            raise ModelLoadError(
                f"space function {self.name} made no choice (call c.choice(name, options)); a "
                "single model is a function that takes no argument"
            )
        return module

    def _call(self, recorder: ChoiceRecorder) -> nn.Module:
        """The function's module; what it raises or returns instead is one line."""
        import torch.nn as nn

        try:
            module = self.function(recorder)
        except SwapprobeError:
            raise
        except Exception as error:
            raise ModelLoadError(
                f"space function {self.name} raised {type(error).__name__}: {error}"
            ) from None
        if not isinstance(module, nn.Module):
            raise ModelLoadError(
                f"space function {self.name} returned a {type(module).__name__}, not a "
                "torch.nn.Module"
            )
        return module

    def _record(
        self, given: Mapping[str, Scalar], rng: np.random.Generator | None, *, strict: bool
    ) -> ChoiceRecorder:
        recorder = ChoiceRecorder(given, rng, strict=strict)
        try:
            self._run(recorder)
        except UnknownArchitectureError as error:
            raise UnknownArchitectureError(f"{self.name}: {error}") from None
        return recorder

    def _replay(self, arch: CustomArch) -> ChoiceRecorder:
        """The exact run of ``arch``; extra names are refused (a text names one member)."""
        recorder = self._record(dict(arch), None, strict=True)
        unused = [name for name, _ in arch if name not in recorder.choices]
        if unused:
            raise UnknownArchitectureError(
                f"{self.name}: no choice {unused[0]!r} is made here (its choices: "
                f"{', '.join(recorder.choices)})"
            )
        return recorder

    # --- values -------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> CustomArch:
        """Every choice uniform over its options, in the order the function asks."""
        return self._record({}, rng, strict=False).arch()

    def mutate(self, arch: Hashable, rng: np.random.Generator) -> CustomArch:
        """One recorded choice (of those with several options) gets another of its options;
        the function runs again, so choices that depend on it are kept where still valid and
        drawn afresh where they are new or their old value is no longer offered."""
        parent = self._replay(_coerce(arch))
        names = [name for name, options in parent.options.items() if len(options) > 1]
        if not names:
            return parent.arch()
        name = names[int(rng.integers(len(names)))]
        options = parent.options[name]
        current = _index_of(options, parent.choices[name])
        assert current is not None
        shift = int(rng.integers(1, len(options)))
        given = {**parent.choices, name: options[(current + shift) % len(options)]}
        return self._record(given, rng, strict=False).arch()

    def crossover(
        self, first: Hashable, second: Hashable, rng: np.random.Generator
    ) -> tuple[CustomArch, CustomArch]:
        """Each named choice (of either parent) is taken from one parent by a fair coin for
        the first child and from the other for the second; the function runs again on each,
        so a child is always a member (choices only one parent made are drawn where the
        other's is taken and the function asks for them)."""
        a, b = dict(_coerce(first)), dict(_coerce(second))
        names = list(dict.fromkeys([*a, *b]))
        coins = rng.random(len(names)) < 0.5
        one: dict[str, Scalar] = {}
        two: dict[str, Scalar] = {}
        for name, swap in zip(names, coins, strict=True):
            left, right = (b, a) if swap else (a, b)
            if name in left:
                one[name] = left[name]
            if name in right:
                two[name] = right[name]
        return (
            self._record(one, rng, strict=False).arch(),
            self._record(two, rng, strict=False).arch(),
        )

    def parse(self, text: str) -> CustomArch:
        """A JSON object of choice names and values; the function is run on it, so the text
        must name every choice the function asks for and nothing else."""
        try:
            given = json.loads(text)
        except json.JSONDecodeError as error:
            raise UnknownArchitectureError(
                f"{self.name}: an architecture is a JSON object of choices such as "
                f'{{"width": 32}}, got {text[:60]!r} ({error.msg})'
            ) from None
        if not isinstance(given, dict):
            raise UnknownArchitectureError(
                f"{self.name}: an architecture is a JSON object of choices, got {text[:60]!r}"
            )
        return self._replay(tuple(given.items())).arch()

    def format(self, arch: Hashable) -> str:
        """``{"width": 32, "depth": 3}``: the choices in the order the function made them."""
        return json.dumps(dict(_coerce(arch)))

    # --- networks -----------------------------------------------------------------------
    def build_scoring_network(self, arch: Hashable) -> nn.Module:
        return self._build(arch)

    def build_evaluation_network(self, arch: Hashable, dataset: str = "cifar10") -> nn.Module:
        """The same module: the function builds the model one trains."""
        return self._build(arch)

    def scoring_param_count(self, arch: Hashable) -> int:
        """Θ: the parameters of the module (built under a forked torch random state, so
        counting draws nothing from the caller's)."""
        import torch

        with torch.random.fork_rng(devices=[]):
            return sum(p.numel() for p in self._build(arch).parameters())

    def evaluation_param_count(self, arch: Hashable, dataset: str = "cifar10") -> int:
        return self.scoring_param_count(arch)

    def _build(self, arch: Hashable) -> nn.Module:
        """The module of ``arch``, built under the caller's torch random state (the
        Evaluator seeds it by the store key)."""
        return self._call(ChoiceRecorder(dict(_coerce(arch)), None, strict=True))


def _coerce(arch: object) -> CustomArch:
    """An architecture value: the recorded pairs, or a mapping of them (from Python)."""
    if isinstance(arch, Mapping):
        return tuple(arch.items())
    if isinstance(arch, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in arch):
        return arch  # type: ignore[return-value]
    raise UnknownArchitectureError(
        f"a define-by-run architecture is its choices (a dict or (name, value) pairs), got "
        f"{type(arch).__name__}"
    )


def _vocabulary(module: nn.Module) -> int | None:
    """Rows of the module's first ``nn.Embedding``: it takes token ids (the rule of
    :func:`swapprobe.capture.feeds.token_shape` for torch modules)."""
    import torch.nn as nn

    for sub in module.modules():
        if isinstance(sub, nn.Embedding):
            return int(sub.num_embeddings)
    return None


def space_from_file(
    path: str | os.PathLike[str],
    function: str,
    found: Callable[..., Any] | None = None,
) -> CustomSpace:
    """``FILE.py:FUNCTION`` as a space: the file imported by path (its folder on ``sys.path``
    while it runs; ``found``: the function already imported), the function taking the
    recorder.

    Raises:
        ModelLoadError: a missing file or function, a failing import, or a function that is no
            space (one that takes no argument is a model: score it, do not search it).
    """
    from swapprobe.models.files import load_function

    path = Path(path)
    if found is None:
        found = load_function(path, function)
    if not is_space_function(found):
        raise ModelLoadError(
            f"{path.name}:{function} is not a space: a space function takes one argument, the "
            "choice recorder (def space(c): width = c.choice('width', [16, 32]) ...)"
        )
    source = FunctionSource(function, path=str(path.resolve()))
    return CustomSpace(found, name=f"{path.name}:{function}", source=source)


def _space_of_source(source: FunctionSource, name: str) -> CustomSpace:
    """A pickled space, rebuilt in a worker: once per process and source (every task of the
    space carries it)."""
    stamp = os.stat(source.path).st_mtime_ns if source.path is not None else 0
    return _cached_space(source, name, stamp)


@functools.lru_cache(maxsize=16)
def _cached_space(source: FunctionSource, name: str, stamp: int) -> CustomSpace:
    return CustomSpace(source.load(), name=name, source=source)
