"""The correlation study of the SWAP-NAS paper's Figure 4 over benchmark tables, in one run.

Each table (NASLib's NAS-Bench-Suite-Zero files, ``nb201_dev.json`` …, or any table
``swapprobe correlate`` reads) is scored once through :class:`~swapprobe.plan.CorrelatePlan`,
on the space its file name names, into a store of its own (so a killed study resumes without
rescoring what the stores hold). The outcome is every metric's Spearman ρ on every task:
swapprobe's (SWAP, regularised SWAP, the space's aggregate, ...) and the table's own
competitors (NASLib's proxies), as a matrix (metrics × tasks) for the heatmap and the table.

A file's space is found by name, never by trying its keys: NASLib encodes different spaces
with look-alike tuples (a TransNAS-Bench-101 micro key is also a valid NAS-Bench-201 key), so
a guess could score a table on the wrong networks without a word. ``FILE=SPACE`` names one.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from swapprobe.errors import SwapprobeError
from swapprobe.plan import CorrelatePlan, Execution, Inputs, Scoring, TableSpec, _Silent

if TYPE_CHECKING:
    from swapprobe.plan import CorrelateRun, Progress

__all__ = [
    "StudyPlan",
    "StudyRun",
    "TableOutcome",
    "split_table_arg",
    "study_heatmap",
    "table_space",
]

#: the metrics of a study's matrix that are swapprobe's own, in the paper's order
OWN_METRICS = ("swap", "reg_swap", "aggregate")


def split_table_arg(text: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``FILE`` or ``FILE=SPACE`` → (path, space or ``None``)."""
    text = os.fspath(text)
    path, sep, space = text.rpartition("=")
    if sep and space and not Path(text).exists():
        return path, space
    return text, None


def table_space(path: str | os.PathLike[str]) -> str | None:
    """The registered space a table file names: the longest prefix of its stem (``_`` read as
    ``-``) that is a space's name or one of its :attr:`~SearchSpace.table_names`
    (``tnb101_micro_dev.json`` → ``tnb101-micro``, ``nb301_dev.json`` → the space that calls
    its tables ``nb301``); ``None`` when none is registered."""
    from swapprobe.searchspaces import get_space, list_spaces

    names = list_spaces()
    aliases = {alias: name for name in names for alias in get_space(name).table_names}
    parts = Path(path).stem.replace("_", "-").split("-")
    for count in range(len(parts), 0, -1):
        candidate = "-".join(parts[:count])
        if candidate in names:
            return candidate
        if candidate in aliases:
            return aliases[candidate]
    return None


@dataclass(frozen=True)
class TableOutcome:
    """One table of the study: its space and correlation run, or why it was left out."""

    path: str
    space: str | None
    run: CorrelateRun | None = None
    #: one line: why the table was skipped or failed (``None``: scored)
    problem: str | None = None

    @property
    def label(self) -> str:
        """The table's short name in the matrix (its file stem without ``_dev``)."""
        stem = Path(self.path).stem
        return stem[: -len("_dev")] if stem.endswith("_dev") else stem


@dataclass
class StudyRun:
    """What a study gives its report: each table's outcome and the study's wall time."""

    tables: list[TableOutcome]
    wall_seconds: float = 0.0
    stores: dict[str, str] = field(default_factory=dict)

    @property
    def scored(self) -> list[TableOutcome]:
        return [t for t in self.tables if t.run is not None]

    def columns(self) -> list[str]:
        """``TABLE/TASK`` per task of each scored table, in file order."""
        return [
            f"{t.label}/{target}"
            for t in self.scored
            for target in t.run.report.accuracies  # type: ignore[union-attr]
        ]

    def matrix(self) -> tuple[list[str], list[str], np.ndarray]:
        """Metrics (sorted by their mean ρ over the tasks that have them, best first), the
        columns, and ρ (NaN where a metric has no value on a task)."""
        columns = self.columns()
        values: dict[str, dict[str, float]] = {}
        for table in self.scored:
            for row in table.run.report.correlations:  # type: ignore[union-attr]
                column = f"{table.label}/{row.target}"
                values.setdefault(row.metric, {})[column] = row.spearman
        metrics = [m for m in values if any(math.isfinite(v) for v in values[m].values())]
        grid = np.array(
            [[values[m].get(c, math.nan) for c in columns] for m in metrics], dtype=float
        ).reshape(len(metrics), len(columns))
        means = [float(np.nanmean(row)) if np.isfinite(row).any() else -math.inf for row in grid]
        order = sorted(range(len(metrics)), key=lambda i: -means[i])
        return [metrics[i] for i in order], columns, grid[order]

    def agreement(self) -> list[dict[str, Any]]:
        """Per table and task, Spearman ρ between swapprobe's NWOT, FLOPs and parameters and
        the table's own columns of them (:func:`swapprobe.correlate.agreement`): different
        draws, so not equal."""
        return [
            {
                "table": table.label,
                "space": table.space,
                "task": found.target,
                "quantity": found.quantity,
                "n": found.n,
                "spearman": found.spearman,
            }
            for table in self.scored
            for found in table.run.report.agreement  # type: ignore[union-attr]
        ]

    def rows(self) -> list[dict[str, Any]]:
        """The CSV: :meth:`correlations`, then one record per table, task and quantity of
        :meth:`agreement` (metric ``agreement:nwot``, ρ against the table's column instead of
        the accuracy; no τ or interval)."""
        blank = dict.fromkeys(
            ("spearman_low", "spearman_high", "kendall", "kendall_low", "kendall_high")
        )
        return self.correlations() + [
            {
                "table": found["table"],
                "space": found["space"],
                "task": found["task"],
                "metric": f"agreement:{found['quantity']}",
                "n": found["n"],
                "spearman": found["spearman"],
                **blank,
            }
            for found in self.agreement()
        ]

    def correlations(self) -> list[dict[str, Any]]:
        """One record per table, task and metric: ρ and τ with accuracy (the JSON's)."""
        out = []
        for table in self.scored:
            report = table.run.report  # type: ignore[union-attr]
            for row in report.correlations:
                out.append(
                    {
                        "table": table.label,
                        "space": table.space,
                        "task": row.target,
                        "metric": row.metric,
                        "n": row.n,
                        "spearman": row.spearman,
                        "spearman_low": row.spearman_ci[0],
                        "spearman_high": row.spearman_ci[1],
                        "kendall": row.kendall,
                        "kendall_low": row.kendall_ci[0],
                        "kendall_high": row.kendall_ci[1],
                    }
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        metrics, columns, grid = self.matrix()
        return {
            "wall_seconds": self.wall_seconds,
            "tables": [
                {
                    "path": t.path,
                    "space": t.space,
                    "problem": t.problem,
                    "architectures": None if t.run is None else len(t.run.report.results),
                    "wall_seconds": None if t.run is None else t.run.report.wall_seconds,
                    "store": self.stores.get(t.path),
                }
                for t in self.tables
            ],
            "matrix": {
                "metrics": metrics,
                "columns": columns,
                "spearman": [[None if math.isnan(v) else v for v in row] for row in grid],
            },
            "correlations": self.correlations(),
            "agreement": self.agreement(),
        }


@dataclass(frozen=True)
class StudyPlan:
    """``swapprobe benchmark``: score every table (``FILE`` or ``FILE=SPACE``) on its space and
    correlate, as :class:`~swapprobe.plan.CorrelatePlan` does for one table; tables whose space
    is not registered, or that fail (a key the space cannot read, a task the table lacks), are
    reported in one line each and the study goes on.

    ``store_dir``: one store per table (``STEM.h5``), resumed when present (``None``: no
    stores). ``tasks``: the targets to keep (``None``: each table's all). Without μ, σ or
    ``reg``, regularised SWAP takes μ, σ by :func:`swapprobe.regularisation.calibrate` on the
    table's own scored architectures (their SWAP and sizes, no accuracy), which costs nothing
    more; ``reg="auto"`` scores fresh samples as ``correlate`` does.
    """

    tables: tuple[str | os.PathLike[str], ...]
    inputs: Inputs = field(default_factory=Inputs)
    scoring: Scoring = field(default_factory=Scoring)
    execution: Execution = field(default_factory=lambda: Execution("auto"))
    store_dir: str | os.PathLike[str] | None = None
    tasks: tuple[str, ...] | None = None
    limit: int | None = None
    reg: str | None = None
    bootstrap: int = 1000

    def run(self, progress: Progress | None = None) -> StudyRun:
        progress = progress or _Silent()
        self.scoring.check(self.reg)
        if self.store_dir is not None:
            Path(self.store_dir).mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        outcomes: list[TableOutcome] = []
        planned: list[tuple[int, str, str, int]] = []
        for given in self.tables:
            path, named = split_table_arg(given)
            space = named or table_space(path)
            if space is None:
                outcomes.append(TableOutcome(path, None, problem=_unnamed(path)))
                continue
            try:
                count = _rows_of(path, space, self.tasks)
            except SwapprobeError as error:
                outcomes.append(TableOutcome(path, space, problem=_naming(path, error)))
                continue
            planned.append((len(outcomes), path, space, min(count, self.limit or count)))
            outcomes.append(TableOutcome(path, space))
        stores: dict[str, str] = {}
        total = sum(count for *_, count in planned)
        progress.begin("study", total)
        done_before = 0
        with self.execution.open() as executor:
            for index, path, space, count in planned:
                store = None
                if self.store_dir is not None:
                    store = str(Path(self.store_dir) / f"{Path(path).stem}.h5")
                    stores[path] = store
                plan = CorrelatePlan(
                    space,
                    TableSpec(path, acc_cols=self.tasks),
                    self.inputs,
                    self.scoring,
                    Execution(executor),
                    limit=self.limit,
                    reg=self.reg,
                    bootstrap=self.bootstrap,
                    store=store,
                    resume=store is not None,
                )
                try:
                    run = plan.run(_StudyProgress(progress, done_before, Path(path).name))
                except SwapprobeError as error:
                    outcomes[index] = TableOutcome(path, space, problem=_naming(path, error))
                else:
                    outcomes[index] = TableOutcome(path, space, self._regularised(run))
                done_before += count
                progress.advance("study", done_before)
        return StudyRun(outcomes, time.perf_counter() - started, stores)

    def _regularised(self, run: CorrelateRun) -> CorrelateRun:
        """``run`` with a regularised-SWAP row calibrated on its own architectures when it has
        none (see the class docstring)."""
        from swapprobe.correlate import correlation_report
        from swapprobe.regularisation import calibrate

        report = run.report
        results = report.results
        if not results or self.reg is not None or results[0].mu is not None:
            return run
        swap = [r.swap for r in results]
        theta = [r.theta for r in results]
        try:
            mu, sigma, _ = calibrate(swap, theta)
        except SwapprobeError:  # too few rows, or all of one size: no regularised row
            return run
        regularised = [r.with_regularisation(mu, sigma) for r in results]
        rows = report.rows
        truth = run.truth
        competitors = {
            target: {name: values[rows] for name, values in columns.items()}
            for target, columns in truth.competitors.items()
        }
        again = correlation_report(
            regularised,
            report.accuracies,
            rows,
            bootstrap=self.bootstrap,
            seed=self.scoring.seed,
            competitors=competitors,
        )
        again.failed, again.wall_seconds = report.failed, report.wall_seconds
        return replace(run, report=again)


class _StudyProgress:
    """A table's progress inside the study's: its architectures, and the study's count."""

    def __init__(self, outer: Any, before: int, name: str) -> None:
        self.outer, self.before, self.name = outer, before, name

    def announce(self, setup: Any) -> None:
        self.outer.announce(setup)

    def begin(self, task: str, total: int | None, **fields: Any) -> None:
        self.outer.begin(task, total, **fields)

    def advance(self, task: str, done: int, total: int | None = None, **fields: Any) -> None:
        self.outer.advance(task, done, total, **fields)
        if task == "architectures":
            self.outer.advance("study", self.before + done)


def _naming(path: str, error: Exception) -> str:
    """The error's line, led by the table's path unless it names it already."""
    text = str(error)
    return text if path in text else f"{path}: {text}"


def _unnamed(path: str) -> str:
    from swapprobe.searchspaces import list_spaces

    stem = Path(path).stem.replace("_", "-")
    return (
        f"{path}: skipped, no registered space is named after {stem!r} (registered: "
        f"{', '.join(list_spaces())}); name one as {Path(path).name}=SPACE"
    )


def _rows_of(path: str, space: str, tasks: tuple[str, ...] | None) -> int:
    """The table's architecture count on ``space``, read (and every key checked) before any
    scoring, so a bad table is reported before the study spends time on the others."""
    from swapprobe.searchspaces import get_space

    return len(TableSpec(path, acc_cols=tasks).read(get_space(space)).archs)


def study_heatmap(study: StudyRun, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """The paper's Figure 4: Spearman ρ of every metric (rows, best mean first) on every task
    (columns), each cell annotated; blank where a metric has no value on a task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics, columns, grid = study.matrix()
    labels = [_label(m) for m in metrics]
    fig, ax = plt.subplots(
        figsize=(max(5.0, 0.75 * len(columns) + 3.0), max(3.0, 0.38 * len(metrics) + 1.8))
    )
    shown = np.ma.masked_invalid(grid)
    image = ax.imshow(shown, cmap="RdYlGn", vmin=-1.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(metrics)), labels, fontsize=8)
    for i in range(len(metrics)):
        for j in range(len(columns)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="Spearman ρ", fraction=0.04)
    ax.set_title(title or "Spearman ρ with accuracy, metrics sorted by their mean", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _label(metric: str) -> str:
    from swapprobe.correlate import COMPETITOR_PREFIX

    own = {"swap": "SWAP", "reg_swap": "reg-SWAP", "aggregate": "aggregate (swapprobe)"}
    if metric.startswith(COMPETITOR_PREFIX):
        return f"{metric[len(COMPETITOR_PREFIX):]} (NASLib)"
    return own.get(metric, f"{metric} (swapprobe)")
