"""Scores against a ground-truth table: Spearman ρ, Kendall τ with bootstrap intervals, plots.

The tables are CSV files with an architecture column and one or more accuracy columns: the
authors' DARTS table (no header: genotype, accuracy) and NAS-Bench-201 style tables (header
``arch,cifar10_test_acc_200ep``); JSON lists of records with a ``scores`` object, as the
FlexiBERT GLUE benchmark of SWAP_Universal (AFL-3.0); or NASLib's NAS-Bench-Suite-Zero tables
(a JSON object ``{task: {arch key: {"val_accuracy": x, proxy: value or {"score", "time"}}}}``),
whose tasks are the targets and whose proxies are competitors ranked beside swapprobe's
metrics. Every architecture is scored by the one Evaluator.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swapprobe import metrics
from swapprobe.errors import DataError
from swapprobe.results import Result

__all__ = [
    "AGREEMENT_QUANTITIES",
    "COMPETITOR_PREFIX",
    "Agreement",
    "Correlation",
    "CorrelationReport",
    "DuplicateArchitectureWarning",
    "GroundTruth",
    "Lookup",
    "correlate",
    "correlation_report",
    "for_space",
    "lookup",
    "metric_values",
    "read_table",
    "rule_report",
    "scatter_plot",
    "sweep_grid",
    "sweep_regularisation",
]

METRICS = (
    "aggregate",
    "swap",
    "reg_swap",
    "standard_ap",
    "nwot",
    "params",
    "expressivity",
    "progressivity",
    "trainability",
    "flops",
    "zico",
    "lswag",
    "lswag-lambda",
    "lswag-psi",
    "vkdnw",
)
#: the top of the ranking the table reports beside ρ and τ: nDCG@TOP_K and the mean accuracy
#: of the metric's TOP_K best (a search keeps only the top)
TOP_K = 10
#: metrics LIBRA does not choose among: the aggregate is itself a combination, standard AP
#: saturates at S
_NOT_LIBRA = ("aggregate", "standard_ap")


#: how a competitor's metric is named in a report (``naslib:nwot``)
COMPETITOR_PREFIX = "naslib:"
#: the quantities swapprobe computes that NASLib's tables also hold, named alike in both
AGREEMENT_QUANTITIES = ("nwot", "flops", "params")


@dataclass(frozen=True)
class GroundTruth:
    """Architecture texts and their accuracies (one array per accuracy column)."""

    archs: list[str]
    accuracies: dict[str, np.ndarray]
    path: str = ""
    #: the file line of each architecture (for error messages); empty when not from a file
    lines: tuple[int, ...] = ()
    #: per target, values other methods gave the same rows (NASLib's proxies), ranked beside
    #: swapprobe's metrics as ``naslib:NAME``; NaN where a row has none
    competitors: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: per row, the task its key belongs to (NASLib tables, before :func:`for_space`); empty
    #: when every row's architecture is its own text
    row_tasks: tuple[str, ...] = ()


def read_table(
    path: str | Path, *, arch_col: str | None = None, acc_cols: Sequence[str] | None = None
) -> GroundTruth:
    """Read a ground-truth CSV; with no header, column 0 is the architecture, 1 the accuracy.

    A ``.json`` file is a list of records instead (see :func:`_read_json_table`).

    Raises:
        DataError: missing file, unknown column, a non-number accuracy.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"ground-truth table not found: {path}")
    if path.suffix.lower() == ".json":
        document = _load_json(path)
        if isinstance(document, dict):
            if arch_col:
                raise DataError(f"{path}: a NASLib table has no architecture column to choose")
            return _read_naslib_table(path, document, acc_cols=acc_cols)
        return _read_json_table(path, document, arch_col=arch_col, acc_cols=acc_cols)
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        numbered = [(reader.line_num, row) for row in reader if row]
    rows = [row for _, row in numbered]
    if not rows:
        raise DataError(f"{path} is empty")
    has_header = not _is_number(rows[0][-1])
    if has_header:
        header, body = rows[0], rows[1:]
    else:
        header, body = (
            ["arch"] + [f"acc{i}" if i > 1 else "accuracy" for i in range(1, len(rows[0]))],
            rows,
        )
    arch_name = arch_col or header[0]
    if arch_name not in header:
        raise DataError(f"{path} has no column {arch_name!r}; columns: {', '.join(header)}")
    arch_index = header.index(arch_name)
    wanted = list(acc_cols) if acc_cols else [h for h in header if h != arch_name]
    if not wanted:
        raise DataError(
            f"{path} has no accuracy column (only {', '.join(header)!r}); a table is an "
            "architecture column and at least one accuracy column, e.g. 'arch,accuracy'"
        )
    if not body:
        raise DataError(
            f"{path} has a header ({', '.join(header)}) but no rows; add one row per "
            "architecture"
        )
    for name in wanted:
        if name not in header:
            raise DataError(f"{path} has no column {name!r}; columns: {', '.join(header)}")
    accuracies: dict[str, list[float]] = {name: [] for name in wanted}
    archs: list[str] = []
    lines = [line for line, _ in numbered[1 if has_header else 0 :]]
    for line, row in zip(lines, body, strict=True):
        if len(row) < len(header):
            raise DataError(f"{path}:{line}: expected {len(header)} columns, got {len(row)}")
        archs.append(row[arch_index])
        for name in wanted:
            cell = row[header.index(name)]
            if not _is_number(cell):
                raise DataError(f"{path}:{line}: {name} is not a number: {cell!r}")
            accuracies[name].append(float(cell))
    return _warn_duplicates(
        GroundTruth(
            archs, {k: np.asarray(v) for k, v in accuracies.items()}, str(path), tuple(lines)
        )
    )


class DuplicateArchitectureWarning(UserWarning):
    """A table names an architecture on more than one row."""


def _warn_duplicates(truth: GroundTruth) -> GroundTruth:
    """Warn when an architecture appears on several rows, saying how many, how many of them
    with differing accuracies, and how they are treated: every row is kept as a measurement
    of its own (the architecture is scored once and paired with each row's accuracy), as two
    trainings of one network are two measurements. Averaging them instead would hide a
    conflicting row; the warning names the first such architecture and its lines so it can be
    checked.

    Architectures are compared as written; texts the space reads as the same network but
    spells differently are not found here (the reader does not know the space).
    """
    rows: dict[str, list[int]] = {}
    for index, arch in enumerate(truth.archs):
        rows.setdefault(arch, []).append(index)
    repeated = [arch for arch, where in rows.items() if len(where) > 1]
    if not repeated:
        return truth
    conflicting = [
        arch
        for arch in repeated
        if any(np.ptp(values[rows[arch]]) > 0 for values in truth.accuracies.values())
    ]
    first = (conflicting or repeated)[0]
    where = rows[first]
    at = (
        f"lines {', '.join(str(truth.lines[i]) for i in where[:3])}"
        if truth.lines
        else f"rows {', '.join(str(i + 1) for i in where[:3])}"
    )
    warnings.warn(
        f"{truth.path or 'the table'}: {len(repeated)} architecture(s) appear on more than "
        f"one row ({len(conflicting)} with differing accuracies; e.g. {first[:60]!r} at "
        f"{at}); every row is kept as its own measurement, the architecture scored once",
        DuplicateArchitectureWarning,
        stacklevel=3,
    )
    return truth


#: where a record of a JSON table keeps its architecture when it has no ``arch`` text: the
#: FlexiBERT benchmark's model configuration (hidden size and encoder layers)
_JSON_ARCH_PATH = ("hparams", "model_hparam_overrides")
#: the JSON tables' summary column, put first (the first target decides sweeps and plots)
_JSON_FIRST = "glue"


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read JSON table {path}: {error}") from None


#: a NASLib table's target column; every other column of a row is a competitor
_NASLIB_TARGET = "val_accuracy"
#: columns of a NASLib row that are neither target nor proxy (its index and key, repeated)
_NASLIB_SKIP = frozenset({"idx", "arch"})


def _read_naslib_table(
    path: Path, document: dict[str, Any], *, acc_cols: Sequence[str] | None
) -> GroundTruth:
    """NASLib's zero-cost table: ``{task: {key: {column: number or {"score", "time"}}}}``.

    One row per task and key, in file order; each task is a target (its ``val_accuracy``,
    NaN on the other tasks' rows) and every other numeric column of the task a competitor.
    The keys are NASLib's encodings, read by the space (:func:`for_space`, which also merges
    rows of one network). ``acc_cols`` chooses tasks.
    """
    if not document or not all(isinstance(rows, dict) for rows in document.values()):
        raise DataError(f"{path}: a NASLib table is an object {{task: {{arch: columns}}}}")
    tasks = list(acc_cols) if acc_cols else list(document)
    for task in tasks:
        if task not in document:
            raise DataError(f"{path} has no task {task!r}; its tasks: {', '.join(document)}")
    archs: list[str] = []
    row_tasks: list[str] = []
    target: dict[str, list[float]] = {task: [] for task in tasks}
    proxies: dict[str, dict[str, list[float]]] = {task: {} for task in tasks}
    for task in tasks:
        for number, (key, record) in enumerate(document[task].items(), start=1):
            where = f"{path} {task} row {number} {key[:60]!r}"
            if not isinstance(record, dict):
                raise DataError(f"{where}: the row is not an object of columns")
            row = len(archs)
            archs.append(key)
            row_tasks.append(task)
            for other in tasks:
                target[other].append(math.nan)
            target[task][row] = _naslib_number(record.get(_NASLIB_TARGET), _NASLIB_TARGET, where)
            for column, value in record.items():
                if column in _NASLIB_SKIP or column == _NASLIB_TARGET:
                    continue
                values = proxies[task].setdefault(column, [math.nan] * row)
                values.extend([math.nan] * (row - len(values)))
                values.append(_naslib_number(value, column, where))
    competitors = {
        task: {
            name: np.asarray(values + [math.nan] * (len(archs) - len(values)))
            for name, values in columns.items()
        }
        for task, columns in proxies.items()
    }
    return GroundTruth(
        archs,
        {task: np.asarray(values) for task, values in target.items()},
        str(path),
        tuple(range(1, len(archs) + 1)),
        competitors,
        tuple(row_tasks),
    )


def _naslib_number(value: Any, column: str, where: str) -> float:
    number = value.get("score") if isinstance(value, dict) else value
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise DataError(f"{where}: column {column!r} is missing or not a number: {value!r}")
    return float(number)


def for_space(truth: GroundTruth, space: Any) -> GroundTruth:
    """``truth`` with its keys read by ``space`` (:meth:`SearchSpace.parse_table_key`, with the
    row's task) and written in the space's text; rows that are one network merge into one row
    holding each task's accuracy (NAS-Bench-201's three datasets share a cell). A table whose
    rows are already architecture texts (no tasks) is returned as it is.

    Raises:
        UnknownArchitectureError: a key the space cannot read (the message names the row:
            a NASLib table given to another space, an invalid encoding).
    """
    from swapprobe.errors import UnknownArchitectureError

    if not truth.row_tasks:
        return truth
    merged: dict[str, int] = {}
    source: list[list[int]] = []
    for index, (key, task) in enumerate(zip(truth.archs, truth.row_tasks, strict=True)):
        try:
            text = space.format(space.parse_table_key(key, task))
        except UnknownArchitectureError as error:
            number = _task_row(truth, index)
            raise UnknownArchitectureError(
                f"{truth.path} {task} row {number} {key[:60]!r} is not a {space.name} "
                f"architecture: {error}"
            ) from None
        if text not in merged:
            merged[text] = len(source)
            source.append([])
        source[merged[text]].append(index)

    def fold(values: np.ndarray) -> np.ndarray:
        out = np.full(len(source), math.nan)
        for row, indices in enumerate(source):
            finite = [values[i] for i in indices if np.isfinite(values[i])]
            if finite:
                out[row] = finite[0]
        return out

    return GroundTruth(
        list(merged),
        {task: fold(values) for task, values in truth.accuracies.items()},
        truth.path,
        tuple(truth.lines[indices[0]] for indices in source) if truth.lines else (),
        {
            task: {name: fold(values) for name, values in columns.items()}
            for task, columns in truth.competitors.items()
        },
    )


def _task_row(truth: GroundTruth, index: int) -> int:
    """The 1-based position of row ``index`` among its task's rows."""
    task = truth.row_tasks[index]
    return sum(1 for t in truth.row_tasks[: index + 1] if t == task)


def _read_json_table(
    path: Path, records: Any, *, arch_col: str | None, acc_cols: Sequence[str] | None
) -> GroundTruth:
    """A JSON list of records, each with an architecture and numbers (the targets).

    The architecture is the record's ``arch_col`` (default ``arch``): a text, or an object
    written as compact JSON (the space parses it: an AutoFormer record's ``arch``), else the
    object at ``hparams.model_hparam_overrides`` (FlexiBERT's table). The targets are every key
    of the record's ``scores`` object where it has one (``glue`` first when present), else
    every top-level number of the records (an AutoFormer record's ``c100_kd_acc``, ...), or
    ``acc_cols``. A target a record lacks is missing (NaN) for that record when other records
    have it (AutoFormer's ``c100_base_acc`` was trained on half the subnets); a ``scores``
    object must hold every target.
    """
    if not isinstance(records, list) or not records:
        raise DataError(f"{path}: a JSON table is a non-empty list of records")
    arch_name = arch_col or "arch"
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {number} is not an object")
    nested = isinstance(records[0].get("scores"), dict)
    names = list(acc_cols) if acc_cols else _json_targets(records, nested, arch_name)
    if not names:
        raise DataError(f"{path}: its records hold no numbers to correlate with")
    columns: dict[str, list[float]] = {name: [] for name in names}
    archs: list[str] = []
    for number, record in enumerate(records, start=1):
        values = record.get("scores") if nested else record
        if not isinstance(values, dict):
            raise DataError(f"{path}: record {number} has no 'scores' object")
        for name, column in columns.items():
            value = values.get(name)
            if value is None and not nested and not acc_cols:
                column.append(math.nan)  # this record was not measured on that target
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                known = ", ".join(k for k, v in values.items() if _is_json_number(v))
                raise DataError(
                    f"{path}: record {number}: {name!r} is missing or not a number "
                    f"(numbers: {known or 'none'})"
                )
            column.append(float(value))
        archs.append(_json_arch(record, arch_name, path, number))
    return _warn_duplicates(
        GroundTruth(
            archs,
            {k: np.asarray(v) for k, v in columns.items()},
            str(path),
            tuple(range(1, len(archs) + 1)),
        )
    )


def _is_json_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_targets(records: list[dict[str, Any]], nested: bool, arch_name: str) -> list[str]:
    """The target names: the first record's ``scores`` keys (``glue`` first), or every
    top-level number any record holds, in first-seen order."""
    if nested:
        return sorted(records[0]["scores"], key=lambda k: k != _JSON_FIRST)
    seen: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key != arch_name and _is_json_number(value):
                seen.setdefault(key)
    return list(seen)


def _json_arch(record: dict[str, Any], arch_name: str, path: Path, number: int) -> str:
    text = record.get(arch_name)
    if isinstance(text, str):
        return text
    if isinstance(text, dict):
        return json.dumps(text, separators=(",", ":"))
    node: Any = record
    for key in _JSON_ARCH_PATH:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        raise DataError(
            f"{path}: record {number} has neither an {arch_name!r} text nor "
            f"{'.'.join(_JSON_ARCH_PATH)}"
        )
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Lookup:
    """Accuracies of one architecture in a table, beside each column's optimum."""

    found: dict[str, float | None]
    optimum: dict[str, tuple[float, str]]


def lookup(truth: GroundTruth, space: Any, text: str) -> Lookup:
    """Find ``text`` in the table (texts compared in the space's canonical form)."""
    canonical = space.format(space.parse(text))
    index = None
    for row, arch in enumerate(truth.archs):
        try:
            if space.format(space.parse(arch)) == canonical:
                index = row
                break
        except Exception:  # a malformed row elsewhere in a user's table does not block a lookup
            continue
    found = {
        name: (None if index is None else float(values[index]))
        for name, values in truth.accuracies.items()
    }
    optimum = {
        name: (float(values.max()), _canonical(space, truth.archs[int(values.argmax())]))
        for name, values in truth.accuracies.items()
    }
    return Lookup(found, optimum)


def _canonical(space: Any, text: str) -> str:
    """The space's text form of a table's architecture (a JSON table's record reads as the
    space's own text), or the table's text where it does not parse."""
    try:
        return str(space.format(space.parse(text)))
    except Exception:
        return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Correlation:
    """Rank correlations of one metric with one accuracy column."""

    metric: str
    target: str
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]
    extra: dict[str, Any] = field(default_factory=dict)
    #: nDCG@TOP_K (accuracies in percent; :func:`swapprobe.proxies.ranking.ndcg`)
    ndcg: float = math.nan
    #: mean accuracy of the TOP_K rows the metric ranks highest
    top_mean: float = math.nan


def correlate(
    scores: np.ndarray,
    truth: np.ndarray,
    *,
    metric: str = "",
    target: str = "",
    bootstrap: int = 1000,
    seed: int = 0,
) -> Correlation:
    """Spearman ρ and Kendall τ (τ-b) with percentile bootstrap 95 % intervals, and the top
    of the ranking: nDCG@k and the top-k mean accuracy, k = min(:data:`TOP_K`, n)."""
    from scipy import stats

    from swapprobe.proxies.ranking import ndcg, top_k_mean

    scores = np.asarray(scores, dtype=float)
    truth = np.asarray(truth, dtype=float)
    keep = np.isfinite(scores) & np.isfinite(truth)
    scores, truth = scores[keep], truth[keep]
    n = len(scores)
    nan = (math.nan, math.nan)
    if n < 3:
        return Correlation(metric, target, n, math.nan, nan, math.nan, nan)
    if np.ptp(scores) == 0:
        # e.g. standard activation patterns, which saturate at S: rank correlation undefined
        return Correlation(
            metric, target, n, math.nan, nan, math.nan, nan, extra={"constant": float(scores[0])}
        )
    rho = float(stats.spearmanr(scores, truth).statistic)
    tau = float(stats.kendalltau(scores, truth).statistic)
    rng = np.random.default_rng(seed)
    rhos, taus = [], []
    for _ in range(bootstrap):
        pick = rng.integers(0, n, n)
        rhos.append(stats.spearmanr(scores[pick], truth[pick]).statistic)
        taus.append(stats.kendalltau(scores[pick], truth[pick]).statistic)
    k = min(TOP_K, n)
    return Correlation(
        metric,
        target,
        n,
        rho,
        _interval(rhos),
        tau,
        _interval(taus),
        ndcg=ndcg(scores, truth, k),
        top_mean=top_k_mean(scores, truth, k),
    )


@dataclass(frozen=True)
class Agreement:
    """Spearman ρ between swapprobe's value of a quantity and the table's own column of it
    (NASLib's ``nwot``, ``flops``, ``params``) on the same rows of one task.

    Different draws (weights, images, batch size), and for ``flops`` and ``params`` another
    network where the table counts a task's head or swapprobe its proxy network, so the two
    are not equal: ρ says whether they rank the architectures alike, which is what a ranking
    needs (and a check that the table's rows were read as the networks NASLib built)."""

    target: str
    quantity: str
    n: int
    spearman: float


def agreement(
    results: Sequence[Result], competitors: dict[str, dict[str, np.ndarray]]
) -> list[Agreement]:
    """One :class:`Agreement` per target and per quantity of :data:`AGREEMENT_QUANTITIES`
    that both have: swapprobe's values of ``results`` (NWOT needs the baselines, FLOPs the
    ``flops`` proxy, parameters always) and the target's competitor column of that name,
    aligned with ``results``; ρ over the rows where both are finite (NaN below 3 rows or
    where either side is constant)."""
    from scipy import stats

    found = []
    for target, columns in competitors.items():
        for quantity in AGREEMENT_QUANTITIES:
            theirs = columns.get(quantity)
            ours = metric_values(results, quantity)
            if theirs is None or not np.isfinite(ours).any():
                continue
            keep = np.isfinite(ours) & np.isfinite(np.asarray(theirs, dtype=float))
            a, b = ours[keep], np.asarray(theirs, dtype=float)[keep]
            defined = len(a) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0
            rho = float(stats.spearmanr(a, b).statistic) if defined else math.nan
            found.append(Agreement(target, quantity, int(keep.sum()), rho))
    return found


def _interval(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if not len(arr):
        return (math.nan, math.nan)
    low, high = np.percentile(arr, [2.5, 97.5])
    return (float(low), float(high))


def metric_values(results: Sequence[Result], metric: str) -> np.ndarray:
    """One column of scores: any of :data:`METRICS` (NaN where a result lacks it)."""
    getters: dict[str, Callable[[Result], float | None]] = {
        "aggregate": lambda r: r.aggregate,
        "reg_swap": lambda r: r.reg_swap,
        "standard_ap": lambda r: r.standard_ap,
    }
    get = getters.get(metric) or (lambda r: r.proxy(metric))
    return np.array([math.nan if get(r) is None else float(get(r)) for r in results])  # type: ignore[arg-type]


def sweep_regularisation(
    results: Sequence[Result], truth: np.ndarray, values: Sequence[float]
) -> list[tuple[float, float]]:
    """Spearman ρ of regularised SWAP for μ = σ = each value (Fig. 5 style sweeps)."""
    from scipy import stats

    swap = metric_values(results, "swap")
    units = {r.size_unit for r in results}
    unit = units.pop() if len(units) == 1 else "M"
    theta = metrics.parameters_in_unit(np.array([r.param_count for r in results], float), unit)
    out = []
    for value in values:
        reg = swap * metrics.regularisation_factor(theta, value, value)
        out.append((float(value), float(stats.spearmanr(reg, truth).statistic)))
    return out


def scatter_plot(
    results: Sequence[Result],
    truth: np.ndarray,
    path: str | Path,
    *,
    metrics: Sequence[str] = METRICS,
    target: str = "accuracy",
    title: str = "",
) -> Path:
    """A PNG with one score-vs-accuracy panel per metric that has values: the aggregate (the
    default ranking) first, then every metric the correlation table reports.

    Each panel's title gives Spearman ρ over the pairs where both values are finite, n, and
    how many rows lack the metric (NaN: a proxy that failed or does not apply to that model)
    so an n below the table's size is explained. Axes are robust: each spans the 1st-99th
    percentile (plus a margin), and points beyond it are drawn on the edge as red crosses
    and counted, so one diverged run at 10 % accuracy does not squash every other point.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    shown = [m for m in dict.fromkeys(metrics) if np.isfinite(metric_values(results, m)).any()]
    columns = min(4, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 3.8 * rows), squeeze=False
    )
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    truth = np.asarray(truth, dtype=float)
    for ax, metric in zip(axes.flat, shown, strict=False):
        values = metric_values(results, metric)
        keep = np.isfinite(values) & np.isfinite(truth)
        rho = stats.spearmanr(values[keep], truth[keep]).statistic
        x, x_out = _robust(values[keep])
        y, y_out = _robust(truth[keep])
        outside = x_out | y_out
        ax.scatter(x[~outside], y[~outside], s=6, alpha=0.5, color="#1f77b4", linewidths=0)
        ax.scatter(x[outside], y[outside], s=14, color="#d62728", marker="x", linewidths=0.8)
        ax.set_xlabel(_LABELS.get(metric, metric))
        ax.set_ylabel(target)
        missing = int((~np.isfinite(values)).sum())
        notes = [f"n={int(keep.sum())}"]
        if missing:
            notes.append(f"{missing} without a value")
        if outside.any():
            notes.append(f"{int(outside.sum())} beyond the axes")
        ax.set_title(f"Spearman ρ = {rho:.3f}  ({', '.join(notes)})", fontsize=9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _robust(values: np.ndarray, *, tail: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``values`` clipped to the [tail, 100 − tail] percentile span widened by 5 % on each
    side, and which of them were clipped (the axes then show the bulk of the points)."""
    if values.size < 3:
        return values, np.zeros(values.shape, dtype=bool)
    low, high = np.percentile(values, [tail, 100.0 - tail])
    margin = 0.05 * (high - low)
    low, high = low - margin, high + margin
    clipped = np.clip(values, low, high)
    return clipped, clipped != values


_LABELS = {
    "swap": "SWAP-Score",
    "aggregate": "aggregate (the default ranking)",
    "reg_swap": "regularised SWAP",
    "nwot": "NWOT",
    "standard_ap": "standard activation patterns",
    "params": "parameters",
}


@dataclass
class CorrelationReport:
    """What ``swapprobe correlate`` reports: every metric against every accuracy column, the
    μ = σ sweeps, and the μ the regularised row used when none was given."""

    results: list[Result]
    accuracies: dict[str, np.ndarray]
    #: table rows the results belong to (same order)
    rows: list[int]
    correlations: list[Correlation]
    sweeps: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    #: μ = σ of the regularised row when chosen by the sweep (None: given, or no sweep)
    chosen_mu: float | None = None
    #: architectures that failed (executor outcomes), left out of everything above
    failed: list[Any] = field(default_factory=list)
    #: LIBRA per target (``select="libra"``): the two seeded halves' folds
    libra: dict[str, Any] = field(default_factory=dict)
    #: the default rule over every target (``select="rule"``), a
    #: :class:`swapprobe.proxies.default_rule.RuleChoice`
    rule: Any = None
    #: wall time of the scoring, and the ``--reg auto`` calibration when there was one
    wall_seconds: float = 0.0
    calibration: Any = None
    #: swapprobe's NWOT, FLOPs and parameters against the table's own columns of them
    agreement: list[Agreement] = field(default_factory=list)

    def best_of_sweeps(self) -> dict[str, tuple[float, float]]:
        """Per target: the μ = σ with the highest Spearman ρ, and that ρ."""
        return {t: max(s, key=lambda pair: pair[1]) for t, s in self.sweeps.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "correlations": [vars(c) for c in self.correlations],
            "sweeps": self.sweeps,
            "chosen_mu": self.chosen_mu,
            "agreement": [vars(a) for a in self.agreement],
            "calibration": None if self.calibration is None else self.calibration.describe(),
            "failed": [{"name": f.name, "error": f.error} for f in self.failed],
            "libra": {
                target: [
                    {
                        "proxies": list(fold.choice.proxies),
                        "rho_inside": fold.rho_inside,
                        "rho_outside": fold.rho_outside,
                    }
                    for fold in folds
                ]
                for target, folds in self.libra.items()
            },
            "rule": None if self.rule is None else rule_dict(self.rule),
        }

    def table_rows(self, truth: GroundTruth) -> list[dict[str, Any]]:
        """One row per scored architecture: its text, accuracies and scores (the CSV)."""
        out = []
        for index, (row, result) in enumerate(zip(self.rows, self.results, strict=True)):
            out.append(
                {
                    "arch": truth.archs[row],
                    **{name: float(acc[index]) for name, acc in self.accuracies.items()},
                    "swap": result.swap,
                    "swap_std": result.swap_std,
                    "reg_swap": result.reg_swap,
                    "standard_ap": result.standard_ap,
                    "nwot": result.nwot,
                    "params": result.param_count,
                    "units": result.units,
                    **result.proxies,
                    "seconds": round(result.seconds, 4),
                }
            )
        return out


def sweep_grid(results: Sequence[Result]) -> list[float]:
    """μ = σ values to sweep: 40 quantiles of the results' Θ, and 1.5× and 2× of each."""
    theta = np.array([r.theta for r in results])
    grid = np.unique(np.round(np.quantile(theta, np.linspace(0.05, 1.0, 40)), 4))
    grid = np.concatenate([grid, grid * 1.5, grid * 2])
    return sorted({float(v) for v in grid if v > 0})


def correlation_report(
    results: Sequence[Result],
    accuracies: dict[str, np.ndarray],
    rows: Sequence[int],
    *,
    sweep: bool = False,
    bootstrap: int = 1000,
    seed: int = 0,
    competitors: dict[str, dict[str, np.ndarray]] | None = None,
) -> CorrelationReport:
    """Correlate every metric of ``results`` with every accuracy column, and each target's
    ``competitors`` (values of the same rows, e.g. NASLib's proxies) as ``naslib:NAME`` beside
    them.

    With ``sweep``, μ = σ is swept over the size range per target; when the results carry no
    μ/σ of their own, the regularised row then uses the first target's best sweep value (and
    :attr:`CorrelationReport.chosen_mu` says which).
    """
    if bootstrap < 0:
        raise DataError(f"bootstrap resamples must be 0 or more, got {bootstrap}")
    results = list(results)
    sweeps: dict[str, list[tuple[float, float]]] = {}
    chosen = None
    if sweep and results:
        grid = sweep_grid(results)
        for target, acc in accuracies.items():
            sweeps[target] = sweep_regularisation(results, acc, grid)
        if results[0].mu is None and sweeps:
            chosen, _ = max(next(iter(sweeps.values())), key=lambda pair: pair[1])
            results = [r.with_regularisation(chosen, chosen) for r in results]
    correlations = []
    for target, acc in accuracies.items():
        for metric in METRICS:
            values = metric_values(results, metric)
            if not np.isfinite(values).any():
                continue
            correlations.append(
                correlate(values, acc, metric=metric, target=target, bootstrap=bootstrap, seed=seed)
            )
        for name, values in (competitors or {}).get(target, {}).items():
            correlations.append(
                correlate(
                    values,
                    acc,
                    metric=f"{COMPETITOR_PREFIX}{name}",
                    target=target,
                    bootstrap=bootstrap,
                    seed=seed,
                )
            )
    report = CorrelationReport(results, accuracies, list(rows), correlations, sweeps, chosen)
    report.agreement = agreement(results, competitors or {})
    return report


def libra_candidates(results: Sequence[Result]) -> dict[str, np.ndarray]:
    """The metrics LIBRA chooses among: every :data:`METRICS` column with a finite value for
    every result, less the aggregate and standard AP."""
    columns = {}
    for metric in METRICS:
        if metric in _NOT_LIBRA:
            continue
        values = metric_values(results, metric)
        if len(values) and np.isfinite(values).all() and np.ptp(values) > 0:
            columns[metric] = values
    return columns


def rule_report(results: Sequence[Result], accuracies: dict[str, np.ndarray]) -> Any:
    """The default rule (:mod:`swapprobe.proxies.default_rule`) over every target: SWAP plus
    every subset of the rule's views the results carry, judged on the seeded halves."""
    from swapprobe.errors import SettingsError
    from swapprobe.proxies.default_rule import MIN_ROWS, RULE_VIEWS, choose_default

    if len(results) < 2 * MIN_ROWS:
        raise SettingsError(
            f"the rule's two halves need at least {2 * MIN_ROWS} architectures, got {len(results)}"
        )
    table = {name: metric_values(results, name) for name in ("swap", *RULE_VIEWS)}
    return choose_default(table, accuracies)


def rule_dict(choice: Any) -> dict[str, Any]:
    """A :class:`~swapprobe.proxies.default_rule.RuleChoice` as JSON: every set's figures,
    each half's choice and the default."""
    return {
        "criterion": "mean over targets of (Spearman rho + weighted Kendall tau) / 2",
        "chosen": list(choice.chosen),
        "folds": [
            {"proxies": list(p), "inside": inside, "outside": outside}
            for p, inside, outside in choice.folds
        ],
        "alone": {name: list(v) for name, v in choice.alone.items()},
        "sets": [
            {
                "proxies": list(s.proxies),
                "halves": list(s.halves),
                "per_target": {t: list(v) for t, v in s.per_target.items()},
            }
            for s in choice.ranked()
        ],
    }


def libra_report(
    results: Sequence[Result], accuracies: dict[str, np.ndarray], *, seed: int = 0
) -> dict[str, Any]:
    """LIBRA per target (:func:`swapprobe.proxies.libra.libra_halves`): on each seeded half
    the three proxies it chooses among :func:`libra_candidates` and their combination's ρ
    there and on the other half."""
    from swapprobe.errors import SettingsError
    from swapprobe.proxies.libra import libra_halves

    columns = libra_candidates(results)
    if len(columns) < 2:
        raise SettingsError(
            "LIBRA needs at least two scored proxies to choose among; add {proxies}"
        )
    if len(results) < 8:
        raise SettingsError(f"LIBRA's two halves need at least 8 architectures, got {len(results)}")
    params = np.array([float(r.param_count) for r in results])
    return {
        target: libra_halves(columns, acc, params, seed=seed)
        for target, acc in accuracies.items()
    }
