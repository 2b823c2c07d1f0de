"""The small protocol every search space implements, and the registry that names them.

The evolution engine and the Evaluator only talk to this protocol: a new space is one new
package (``NAME/space.py``, ``NAME/networks.py``) with a class derived from
:class:`SearchSpace`, decorated with :func:`register_space`.
Search spaces know nothing of scoring.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from swapprobe.errors import UnknownArchitectureError

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = [
    "InputKind",
    "SearchSpace",
    "SpaceDefaults",
    "get_space",
    "list_spaces",
    "load_builtin",
    "register_space",
]

SizeUnit = Literal["K", "M"]
#: what a space's networks take: float images (S, C, H, W) or int64 token ids (S, T)
InputKind = Literal["images", "tokens"]


@dataclass(frozen=True)
class SpaceDefaults:
    """What ``score``, ``search`` and ``correlate`` use for a space unless told otherwise: the
    one place each default is declared (the CLI's help, the engine and the API all read it).

    ``batch_size`` S, ``init`` scheme and ``repeats`` decide the scores; ``proxies`` are
    the ones aggregated with SWAP by default (empty: SWAP alone); ``fitness`` is a search's
    (``swap``, ``reg-swap`` or ``aggregate``); ``population`` P, ``cycles`` C and
    ``mutation_times`` size a search. ``data`` is the input source the space is scored on
    unless one is given (``None``: the command's own default, the synthetic images).
    ``backend`` runs the space's networks: ``onnx`` (onnxruntime on the emitted graph) or
    ``torch`` (the module itself), where one measured faster for the same bits.
    ``input_size`` (H, W) is the image size the space's benchmark scores at, unless the user
    gives one (``None``: the data source's own, 32×32 for CIFAR and the synthetic images).
    """

    batch_size: int = 16
    init: str = "gaussian"
    repeats: int = 32
    population: int = 50
    cycles: int = 100
    mutation_times: int = 5
    proxies: tuple[str, ...] = ()
    fitness: str = "swap"
    data: str | None = None
    backend: Literal["onnx", "torch"] = "onnx"
    input_size: tuple[int, int] | None = None
    #: how the scoring defaults were chosen, one clause for ``search --help`` (which set won
    #: the default rule, :mod:`swapprobe.proxies.default_rule`, on which table)
    chosen_by: str = ""

    def describe(self, *, engine: bool = True) -> str:
        """One help line: ``S=16 init=gaussian repeats=32 proxies=none [fitness=swap P=50 C=100
        mutants=5]``."""
        scoring = (
            f"S={self.batch_size} init={self.init} repeats={self.repeats} "
            f"proxies={','.join(self.proxies) or 'none'}"
        )
        if self.data is not None:
            scoring += f" data={self.data}"
        if self.backend != "onnx":
            scoring += f" backend={self.backend}"
        if self.input_size is not None:
            scoring += f" input={self.input_size[0]}x{self.input_size[1]}"
        if not engine:
            return scoring
        return (
            f"{scoring} fitness={self.fitness} P={self.population} C={self.cycles} "
            f"mutants={self.mutation_times}"
        )


class SearchSpace(ABC):
    """A family of architectures: sample, vary, name, and build them.

    Architectures are immutable and hashable values (frozen dataclasses or tuples) so they can
    be cached and compared; their text form from :meth:`format` is canonical, i.e. two equal
    architectures format to the same string, which makes it a cache key.
    """

    #: registry name, e.g. ``"darts"``
    name: ClassVar[str]
    #: unit of the parameter count used by regularised SWAP for this space's scoring network
    size_unit: ClassVar[SizeUnit]
    #: ``images`` (float (S, C, H, W)) or ``tokens`` (int64 ids (S, T))
    input_kind: ClassVar[InputKind] = "images"
    #: one sample's shape: (channels, height, width) for images, (tokens,) for token models
    input_shape: ClassVar[tuple[int, ...]] = (3, 32, 32)
    #: token models: ids are below this (``None`` for image models)
    vocab_size: ClassVar[int | None] = None
    #: scoring and search defaults, measured per space (see each space's package and the README)
    defaults: ClassVar[SpaceDefaults] = SpaceDefaults()
    #: the ``dataset`` :meth:`build_evaluation_network` builds for unless told otherwise
    evaluation_default: ClassVar[str] = "cifar10"
    #: other names of the space's benchmark tables (``nb301`` for the DARTS space as NAS-Bench-301
    #: scores it): a table file ``NAME_dev.json`` is found by its space's name or one of these
    table_names: ClassVar[tuple[str, ...]] = ()

    # --- values -----------------------------------------------------------------------
    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Hashable:
        """Draw one architecture uniformly at random (as the paper's random sampling)."""

    @abstractmethod
    def mutate(self, arch: Hashable, rng: np.random.Generator) -> Hashable:
        """Return a valid architecture that differs from ``arch`` by one small change."""

    @abstractmethod
    def crossover(
        self, first: Hashable, second: Hashable, rng: np.random.Generator
    ) -> tuple[Hashable, Hashable]:
        """Return two valid children that mix the parents."""

    @abstractmethod
    def parse(self, text: str) -> Hashable:
        """Parse the text form; raise :class:`UnknownArchitectureError` with the reason."""

    @abstractmethod
    def format(self, arch: Hashable) -> str:
        """The canonical text form (``parse(format(a)) == a``)."""

    def parse_table_key(self, key: str, task: str | None = None) -> Hashable:
        """An architecture as a benchmark table writes it (NASLib's encodings in
        NAS-Bench-Suite-Zero's tables), for the table's ``task``; default: :meth:`parse`.

        A space whose tables use another encoding than its text form accepts both here, and a
        space whose network depends on the task (a task-specific head) puts the task into the
        architecture. Raise :class:`UnknownArchitectureError` with the reason.
        """
        return self.parse(key)

    def named_architectures(self) -> Mapping[str, Hashable]:
        """Architectures known by a name (``DARTS_V2``), accepted as ``SPACE:NAME`` and shown
        under that name in reports; default: none."""
        return {}

    # --- networks ---------------------------------------------------------------------
    @abstractmethod
    def build_scoring_network(self, arch: Hashable) -> nn.Module:
        """The network SWAP is computed on (the paper's scoring setting)."""

    @abstractmethod
    def build_evaluation_network(self, arch: Hashable, dataset: str = "cifar10") -> nn.Module:
        """The network one would train and deploy (size reporting, export of a found model)."""

    def proxy_network(self, arch: Hashable) -> nn.Module:
        """The network the block-wise proxies (expressivity, progressivity, trainability) run
        on; default: the scoring network."""
        return self.build_scoring_network(arch)

    def task_loss(self, arch: Hashable) -> str:
        """The kind of the network's head, which decides the gradient pass's loss and targets
        (:mod:`swapprobe.capture.task_targets`): ``classification`` (default),
        ``segmentation``, ``reconstruction`` or ``regression``."""
        return "classification"

    def proxy_blocks(self, network: nn.Module) -> list[nn.Module]:
        """The block boundaries of :meth:`proxy_network`: submodules whose outputs are the
        features F_0, F_1, … in forward order; default: its top-level modules."""
        return list(network.children())

    def scoring_param_count(self, arch: Hashable) -> int:
        """Θ of the scoring network, counted in parameters (not yet in ``size_unit``)."""
        return _count_parameters(self.build_scoring_network(arch))

    def evaluation_param_count(self, arch: Hashable, dataset: str = "cifar10") -> int:
        """Parameters of the evaluation network."""
        return _count_parameters(self.build_evaluation_network(arch, dataset))

    def evaluation_dataset(self, input_size: tuple[int, ...], source: str | None = None) -> str:
        """Which evaluation network inputs of ``input_size`` ((H, W), or (T,) for tokens) from
        the named dataset ``source`` (``"cifar100"``; ``None``: no named dataset) are for: the
        one a size budget counts and ``--export`` writes. Default: the space's
        :attr:`evaluation_default`, whatever the size and source; a space with a network per
        dataset (NAS-Bench-201's CIFAR-100 head) names the source's."""
        return self.evaluation_default

    def for_dataset(self, dataset: str) -> SearchSpace:
        """This space with its networks' classifier for the named ``dataset`` (``"cifar100"``,
        a :attr:`~swapprobe.data.Batch.dataset`), so a labelled pass on that dataset's images
        has a logit for each of its classes. Default: the space itself (its networks have no
        per-dataset head, or it does not know the dataset); the cells and so the scores of
        the unlabelled passes are the same either way."""
        return self

    def evaluation_flops(
        self,
        arch: Hashable,
        input_size: tuple[int, ...] | None = None,
        dataset: str | None = None,
    ) -> int:
        """Multiply-adds per input of the evaluation network at ``input_size`` ((H, W) for
        images, (T,) for tokens; ``None``: :attr:`input_shape`'s), for ``dataset`` (``None``:
        :meth:`evaluation_dataset` of the size).

        Counted by forward hooks over every ``Conv2d`` and ``Linear``
        (:func:`swapprobe.capture.proxy_pass.module_macs`, the AZ-NAS FLOPs proxy's counter),
        on a network built on torch's ``meta`` device: shapes only, no arithmetic, so a DARTS
        ImageNet network counts in milliseconds. A space whose networks compute elsewhere
        (attention's matmuls are functions, not modules) overrides this to add them.
        """
        import torch

        from swapprobe.capture.proxy_pass import module_macs

        size = tuple(input_size) if input_size is not None else self._sample_size()
        dataset = dataset if dataset is not None else self.evaluation_dataset(size)
        with torch.device("meta"):
            network = self.build_evaluation_network(arch, dataset)
            if self.input_kind == "tokens":
                sample = torch.zeros((1, *size), dtype=torch.int64)
            else:
                sample = torch.zeros((1, self.input_shape[0], *size))
        return module_macs(network, sample)

    def _sample_size(self) -> tuple[int, ...]:
        return self.input_shape if self.input_kind == "tokens" else self.input_shape[1:]


def _count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


_REGISTRY: dict[str, type[SearchSpace]] = {}


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator: make a space reachable by its ``name`` through :func:`get_space`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        warnings.warn(
            f"search space {cls.name!r} re-registered: {_REGISTRY[cls.name].__module__} "
            f"replaced by {cls.__module__}",
            stacklevel=2,
        )
    _REGISTRY[cls.name] = cls
    return cls


def load_builtin(*, networks: bool = False) -> None:
    """Import every built-in space (registration happens on import), lazily so that
    ``import swapprobe`` stays cheap. A space is a package here, ``NAME/`` with ``space.py``
    (the registered class) and ``networks.py`` (its torch modules); other modules (``base``)
    are not spaces, so a new space is one new package and nothing else names it.

    ``networks=True`` also imports each space's ``networks`` module (torch): what a pool's
    forkserver preloads so that its workers start with the modules they will build.
    """
    import importlib
    import pkgutil

    import swapprobe.searchspaces as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.ispkg:
            space = importlib.import_module(f"{package.__name__}.{module.name}")
            if networks:
                importlib.import_module(f"{space.__name__}.networks")


def list_spaces() -> list[str]:
    """Names of all registered search spaces, sorted."""
    load_builtin()
    return sorted(_REGISTRY)


def get_space(name: str, **kwargs: object) -> SearchSpace:
    """Instantiate a registered search space by name (``"darts"``, ``"nb201"``)."""
    load_builtin()
    try:
        factory: Callable[..., SearchSpace] = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownArchitectureError(
            f"unknown search space {name!r}; known spaces: {known}"
        ) from None
    return factory(**kwargs)
