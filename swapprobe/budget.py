"""Search under a size budget: hard limits on the parameters and multiply-adds of the network
the user will train.

A search's fitness (SWAP, reg-SWAP's soft size control) ranks architectures; a budget rules
some out altogether. What is counted is the space's *evaluation* network, the one that is
trained and deployed (DARTS' 20-cell C=36 CIFAR network, or its 14-cell C=48 ImageNet network
for ImageNet-sized inputs), never the small network SWAP is computed on: a budget is a
deployment limit. Which evaluation network a batch's input size means is the space's rule
(:meth:`~swapprobe.searchspaces.base.SearchSpace.evaluation_dataset`).

The engine only sees a predicate (:class:`BudgetCheck` is one), so every space gets the
budget through the SearchSpace protocol. Counts are cached per architecture: every child the
engine draws is counted before it may be scored.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass

from swapprobe.errors import SettingsError
from swapprobe.searchspaces.base import SearchSpace

__all__ = [
    "BudgetCheck",
    "NetworkSize",
    "SizeBudget",
    "format_count",
    "parse_count",
]

_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgG]?)\s*$")


def parse_count(text: str | float) -> int:
    """A count with an optional decimal suffix: ``6M`` → 6,000,000, ``0.5M``, ``600m``,
    ``1.2G``, ``1500`` (K = 10³, M = 10⁶, G = 10⁹; a budget, not a memory size).

    Raises:
        SettingsError: not a positive number with at most one suffix.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        found = _COUNT.match(str(text))
        if found is None:
            raise SettingsError(
                f"cannot read {text!r} as a count: write a number with an optional K, M or G "
                f"(6M, 0.5M, 600M, 1500)"
            )
        value = float(found.group(1)) * _SUFFIXES[found.group(2).upper()]
    if not value > 0:
        raise SettingsError(f"a size budget must be positive, got {text!r}")
    return round(value)


def format_count(value: float) -> str:
    """``73_306`` → ``0.073 M``; the unit of the budget messages (millions, three decimals, or
    more digits where three would show 0.000)."""
    millions = value / 1e6
    return f"{millions:.3f} M" if millions >= 0.001 else f"{millions:.3g} M"


@dataclass(frozen=True)
class SizeBudget:
    """Hard limits on the evaluation network: ``max_params`` parameters and ``max_flops``
    multiply-adds per image at the batch's input size (``None``: no limit)."""

    max_params: int | None = None
    max_flops: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_params", "max_flops"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SettingsError(f"{{{name}}} must be positive, got {value}")

    @classmethod
    def read(
        cls, max_params: int | float | str | None, max_flops: int | float | str | None
    ) -> SizeBudget:
        """The budget of two limits as a user gives them (numbers, or text with K/M/G).

        Raises:
            SettingsError: a limit that is not a positive count; the message names it.
        """
        limits: dict[str, int | None] = {}
        for name, value in (("max_params", max_params), ("max_flops", max_flops)):
            try:
                limits[name] = None if value is None else parse_count(value)
            except SettingsError as error:
                raise SettingsError(f"{{{name}}}: {error.message}") from None
        return cls(**limits)

    @property
    def active(self) -> bool:
        return self.max_params is not None or self.max_flops is not None

    def describe(self) -> str:
        """``at most 6.000 M parameters and 600.000 M multiply-adds`` (empty without limits)."""
        parts = []
        if self.max_params is not None:
            parts.append(f"{format_count(self.max_params)} parameters")
        if self.max_flops is not None:
            parts.append(f"{format_count(self.max_flops)} multiply-adds")
        return "at most " + " and ".join(parts) if parts else ""

    def store_settings(self) -> dict[str, int]:
        """The limits a store records (only those set, so stores without a budget still match)."""
        settings = {"max_params": self.max_params, "max_flops": self.max_flops}
        return {name: value for name, value in settings.items() if value is not None}


@dataclass(frozen=True)
class NetworkSize:
    """What a budget counts of one architecture; ``flops`` is ``None`` where no limit asks."""

    params: int
    flops: int | None


class BudgetCheck:
    """The feasibility predicate of a search: ``check(arch)`` is True when the evaluation
    network of ``arch`` (the space's for ``input_size``) fits the budget.

    Counts are cached by the architecture's text; the smallest count seen per limit is kept
    for the message of a budget nothing meets (:meth:`infeasible`).
    """

    def __init__(
        self,
        space: SearchSpace,
        budget: SizeBudget,
        input_size: tuple[int, ...],
        source: str | None = None,
    ) -> None:
        self.space = space
        self.budget = budget
        self.input_size = tuple(input_size)
        #: the evaluation network counted, by the space's rule for this input size and the
        #: batch's named dataset ``source`` (NAS-Bench-201's CIFAR-100 network on CIFAR-100)
        self.dataset = space.evaluation_dataset(self.input_size, source)
        self._sizes: dict[str, NetworkSize] = {}
        self._smallest: dict[str, int] = {}

    def size(self, arch: Hashable) -> NetworkSize:
        """Parameters (and multiply-adds where limited) of ``arch``'s evaluation network."""
        text = self.space.format(arch)
        found = self._sizes.get(text)
        if found is None:
            params = self.space.evaluation_param_count(arch, self.dataset)
            flops = None
            # parameters first: they are arithmetic, FLOPs build a network
            if self.budget.max_flops is not None and (
                self.budget.max_params is None or params <= self.budget.max_params
            ):
                flops = self.space.evaluation_flops(arch, self.input_size, self.dataset)
            found = self._sizes[text] = NetworkSize(params, flops)
            self._remember("params", params)
            if flops is not None:
                self._remember("flops", flops)
        return found

    def __call__(self, arch: Hashable) -> bool:
        size = self.size(arch)
        budget = self.budget
        if budget.max_params is not None and size.params > budget.max_params:
            return False
        if budget.max_flops is None:
            return True
        return size.flops is not None and size.flops <= budget.max_flops

    def infeasible(self, draws: int) -> SettingsError:
        """The one line for a budget no drawn architecture met: ``no architecture of nb201 has
        at most 0.010 M parameters in its cifar10 network (max_params): smallest seen
        0.073 M after 1000 draws``."""
        budget, name = self.budget, self.space.name
        if budget.max_params is not None and self._smallest.get("params", 0) > budget.max_params:
            limit, term, seen = budget.max_params, "max_params", self._smallest["params"]
            what = "parameters"
        elif budget.max_flops is not None and "flops" in self._smallest:
            limit, term, seen = budget.max_flops, "max_flops", self._smallest["flops"]
            what = "multiply-adds"
        else:  # each limit alone is met by some architecture, never both at once
            return SettingsError(
                f"no architecture of {name} has {budget.describe()} at once in its "
                f"{self.dataset} network ({{max_params}}, {{max_flops}}): none in {draws} draws"
            )
        return SettingsError(
            f"no architecture of {name} has at most {format_count(limit)} {what} in its "
            f"{self.dataset} network ({{{term}}}): smallest seen {format_count(seen)} after "
            f"{draws} draws"
        )

    def _remember(self, key: str, value: int) -> None:
        self._smallest[key] = min(value, self._smallest.get(key, value))
