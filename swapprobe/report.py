"""Rich renderables and plain writers for results. Nothing here prints.

The CLI owns the one Console; these functions return tables and panels it can print, and
tests render them into a ``StringIO`` console of fixed width.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from swapprobe import metrics
from swapprobe.results import Result
from swapprobe.safe_io import write_text_atomically

__all__ = [
    "correlation_table",
    "dump_json",
    "format_params",
    "json_safe",
    "layer_table",
    "profile_table",
    "rank_results",
    "ranking_table",
    "run_header",
    "run_header_for",
    "saturation_notes",
    "search_panel",
    "write_csv",
    "write_csv_rows",
    "write_json",
]


def format_params(count: int, unit: str) -> str:
    """Parameter count in the unit the regularisation uses, e.g. ``1.53 M`` or ``5.67 K``."""
    return f"{metrics.parameters_in_unit(count, unit):.3g} {unit}"


def rank_results(results: Iterable[Result]) -> list[Result]:
    """Best first: by the proxy aggregate when every result has one, else by regularised SWAP
    when every result has one, else by SWAP."""
    items = list(results)
    if items and all(r.aggregate is not None for r in items):
        return sorted(items, key=lambda r: -r.aggregate)  # type: ignore[operator]
    use_reg = bool(items) and all(r.reg_swap is not None for r in items)
    return sorted(items, key=lambda r: -(r.reg_swap if use_reg else r.swap))  # type: ignore[operator]


def run_header_for(
    data: Any, settings: Any, first: Result, notes: Sequence[str] = ()
) -> Text:
    """:func:`run_header` of a run: its batch, its settings and its first result (which says
    the provider that ran it and the μ, σ and unit the scores carry); ``notes``: the defaults
    chosen from the models, one line each."""
    return run_header(
        data_source=data.source,
        fingerprint=data.fingerprint,
        backend=settings.backend,
        device=first.metadata.get("provider", "?"),
        seed=settings.seed,
        repeats=settings.repeats,
        init=settings.init,
        samples=settings.batch_size,
        size_unit=first.size_unit,
        mu=first.mu,
        sigma=first.sigma,
        notes=notes,
    )


def run_header(
    *,
    data_source: str,
    fingerprint: str,
    backend: str,
    device: str,
    seed: int,
    repeats: int,
    init: str,
    samples: int,
    size_unit: str | None = None,
    mu: float | None = None,
    sigma: float | None = None,
    notes: Sequence[str] = (),
) -> Text:
    """The line that says how the numbers were made, then one per default chosen from the
    models (``notes``)."""
    text = Text()
    text.append("data ", style="dim")
    text.append(f"{data_source} [{fingerprint}]")
    for label, value in (
        ("backend", backend),
        ("device", device),
        ("S", samples),
        ("repeats", repeats),
        ("init", init),
        ("seed", seed),
    ):
        text.append(f"  {label} ", style="dim")
        text.append(str(value))
    if mu is not None and sigma is not None:
        text.append("  reg ", style="dim")
        text.append(f"μ={mu:g} σ={sigma:g} (Θ in {size_unit})")
    for note in notes:
        text.append(f"\n{note}", style="dim")
    return text


def ranking_table(results: Sequence[Result], *, title: str | None = "SWAP ranking") -> Table:
    """Rank, model, SWAP mean ± std, reg. SWAP, params, V, S, saturation, seconds."""
    ranked = rank_results(results)
    show_reg = any(r.reg_swap is not None for r in ranked)
    show_baselines = any(r.nwot is not None for r in ranked)
    proxies = list(dict.fromkeys(name for r in ranked for name in r.proxies))
    show_aggregate = any(r.aggregate is not None for r in ranked)
    if show_aggregate and title == "SWAP ranking":
        title = "ranking by the aggregate of SWAP and " + ", ".join(proxies or ["its proxies"])
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("model", overflow="ellipsis", no_wrap=True, max_width=48)
    if show_aggregate:
        table.add_column("aggregate", justify="right", style="bold magenta", no_wrap=True)
    table.add_column("SWAP", justify="right", style="bold cyan", no_wrap=True)
    if show_reg:
        table.add_column("reg. SWAP", justify="right", style="bold green", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("V", justify="right", no_wrap=True)
    table.add_column("S", justify="right")
    table.add_column("sat.", justify="right")
    if show_baselines:
        table.add_column("std. AP", justify="right", style="dim")
        table.add_column("NWOT", justify="right", style="dim")
    for name in proxies:
        table.add_column(_PROXY_LABELS.get(name, name), justify="right", no_wrap=True)
    table.add_column("s", justify="right", style="dim")
    for rank, result in enumerate(ranked, 1):
        cells = [str(rank), result.name]
        if show_aggregate:
            cells.append("—" if result.aggregate is None else f"{result.aggregate:.2f}")
        cells.append(_swap_cell(result))
        if show_reg:
            cells.append("—" if result.reg_swap is None else f"{result.reg_swap:,.1f}")
        cells += [
            format_params(result.param_count, result.size_unit),
            f"{result.units:,}",
            str(result.samples),
            f"{result.saturation:.3f}",
        ]
        if show_baselines:
            cells.append("—" if result.standard_ap is None else f"{result.standard_ap:g}")
            cells.append("—" if result.nwot is None else _fmt_float(result.nwot))
        for name in proxies:
            value = result.proxies.get(name)
            cells.append("—" if value is None else _fmt_proxy(name, value))
        cells.append(f"{result.seconds:.2f}")
        table.add_row(*cells)
    return table


_PROXY_LABELS = {
    "expressivity": "E",
    "progressivity": "P",
    "trainability": "T",
    "flops": "MACs",
    "zico": "ZiCo",
    "lswag": "L-SWAG",
    "lswag-lambda": "Λ",
    "lswag-psi": "Ψ",
    "vkdnw": "VKDNW",
}


def _fmt_proxy(name: str, value: float) -> str:
    """A proxy's cell: MACs in millions, products of counts (L-SWAG, Λ) in scientific
    notation once they pass a million, the rest to three decimals."""
    if not math.isfinite(value):
        return str(value)
    if name == "flops":
        return f"{value / 1e6:,.1f} M"
    return f"{value:.3e}" if abs(value) >= 1e6 else f"{value:.3f}"


def _swap_cell(result: Result) -> str:
    """SWAP's mean ± its standard deviation over repeats; one draw has no spread to show
    (a "± 0.0" would claim one)."""
    if result.repeats < 2:
        return f"{result.swap:,.0f}"
    return f"{result.swap:,.1f} ± {result.swap_std:,.1f}"


def profile_table(results: Sequence[Result]) -> Table:
    """Where the time went per model: export, session, draw, forward, pack, count, store, and
    the torch pass of the proxies (a column only when some model ran it)."""
    stages = ["export", "session", "draw", "forward", "pack", "count", "store"]
    if any("proxies" in result.timings for result in results):
        stages.append("proxies")
    table = Table(title="time per stage (s)", title_justify="left", header_style="bold")
    table.add_column("model", overflow="fold", max_width=40)
    for stage in stages:
        table.add_column(stage, justify="right")
    table.add_column("total", justify="right", style="bold")
    for result in results:
        row = [result.name]
        for stage in stages:
            value = result.timings.get(stage)
            row.append("—" if value is None else f"{value:.3f}")
        row.append(f"{result.seconds:.3f}")
        table.add_row(*row)
    return table


def layer_table(name: str, per_layer: Mapping[str, float], layers: Sequence[Any]) -> Table:
    """SWAP per activation layer (a step beyond the paper: where the distinct patterns are)."""
    table = Table(title=f"per-layer SWAP — {name}", title_justify="left", header_style="bold")
    table.add_column("layer", overflow="fold")
    table.add_column("op")
    table.add_column("shape", justify="right")
    table.add_column("units", justify="right")
    table.add_column("SWAP", justify="right", style="cyan")
    table.add_column("share", justify="right")
    for info in layers:
        value = per_layer.get(info.name)
        share = "—" if value is None or info.size == 0 else f"{value / info.size:.3f}"
        table.add_row(
            info.name,
            info.op,
            "×".join(map(str, info.shape)),
            f"{info.size:,}",
            "—" if value is None else f"{value:,.1f}",
            share,
        )
    return table


def correlation_table(rows: Sequence[Any], *, title: str | None = None) -> Table:
    """Spearman ρ and Kendall τ with bootstrap 95 % intervals, one row per metric × target."""
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("target")
    table.add_column("metric")
    table.add_column("n", justify="right", style="dim")
    table.add_column("Spearman ρ", justify="right", style="bold cyan")
    table.add_column("95 % CI", justify="right", style="dim")
    table.add_column("Kendall τ", justify="right", style="bold cyan")
    table.add_column("95 % CI", justify="right", style="dim")
    table.add_column("nDCG@10", justify="right")
    table.add_column("top-10 acc", justify="right")
    for row in rows:
        if "constant" in row.extra:
            label = _METRIC_LABELS.get(row.metric, row.metric)
            constant = f"constant ({row.extra['constant']:g})"
            table.add_row(row.target, label, str(row.n), constant, "", "", "", "", "")
            continue
        table.add_row(
            row.target,
            _METRIC_LABELS.get(row.metric, row.metric),
            str(row.n),
            f"{row.spearman:.3f}",
            f"[{row.spearman_ci[0]:.3f}, {row.spearman_ci[1]:.3f}]",
            f"{row.kendall:.3f}",
            f"[{row.kendall_ci[0]:.3f}, {row.kendall_ci[1]:.3f}]",
            f"{row.ndcg:.3f}",
            f"{row.top_mean:.2f}",
        )
    return table


def study_table(study: Any) -> Table:
    """The study's matrix (:meth:`swapprobe.benchmark.StudyRun.matrix`) as a table: one row
    per metric, best mean Spearman ρ first, one column per table and task, and the mean."""
    metrics, columns, grid = study.matrix()
    table = Table(
        title="Spearman ρ with accuracy (metrics by mean)",
        title_justify="left",
        header_style="bold",
    )
    table.add_column("metric")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("mean", justify="right", style="bold cyan")
    for metric, row in zip(metrics, grid, strict=True):
        finite = [float(v) for v in row if math.isfinite(v)]
        cells = [f"{v:.3f}" if math.isfinite(v) else "" for v in row]
        mean = f"{sum(finite) / len(finite):.3f}" if finite else ""
        table.add_row(_study_label(metric), *cells, mean)
    return table


def _study_label(metric: str) -> str:
    if metric.startswith("naslib:"):
        return f"{metric[len('naslib:'):]} (NASLib)"
    return _METRIC_LABELS.get(metric, metric)


def agreement_table(rows: Sequence[Mapping[str, Any]]) -> Group:
    """swapprobe's NWOT, FLOPs and parameters against the table's own columns of them
    (Spearman ρ per task; a ``table`` column when the rows have one): different draws, so
    not equal, but they should rank alike. A heading line, then the table (a title would
    wrap to the narrow table's width)."""
    heading = Text(
        "swapprobe's values against the table's own columns of them (Spearman ρ; different "
        "draws, so not equal)"
    )
    table = Table(header_style="bold")
    tables = any("table" in row for row in rows)
    if tables:
        table.add_column("table")
    table.add_column("task")
    table.add_column("quantity")
    table.add_column("n", justify="right", style="dim")
    table.add_column("ρ", justify="right", style="bold cyan")
    for row in rows:
        rho = row["spearman"]
        cells = [row["task"], row["quantity"], str(row["n"])]
        cells.append(f"{rho:.3f}" if math.isfinite(rho) else "—")
        table.add_row(*([str(row.get("table", ""))] if tables else []), *cells)
    return Group(heading, table)


def libra_lines(libra: dict[str, Any]) -> list[str]:
    """LIBRA per target: each half's three proxies, their combined ρ on that half and on the
    other (the held-out figure)."""
    lines = []
    for target, folds in libra.items():
        for half, fold in zip("AB", folds, strict=True):
            other = "B" if half == "A" else "A"
            chosen = " + ".join(fold.choice.proxies)
            lines.append(
                f"LIBRA {target}: chosen on half {half}: {chosen}; combined ρ "
                f"{fold.rho_inside:.3f} on {half}, {fold.rho_outside:.3f} on {other} (held out)"
            )
    return lines


def rule_lines(choice: Any, *, shown: int = 8) -> list[str]:
    """The default rule's verdict: the best sets by mean criterion, each proxy alone, each
    half's own choice with its held-out figure, and the default (nothing when not asked)."""
    if choice is None:
        return []
    lines = ["default rule: J = ½(ρ + weighted τ), mean over targets; halves A / B"]
    for figures in choice.ranked()[:shown]:
        mark = "  ← default" if figures.proxies == choice.chosen else ""
        lines.append(
            f"  {' + '.join(figures.proxies):<58} {figures.halves[0]:6.3f} / "
            f"{figures.halves[1]:6.3f}  mean {figures.mean:6.3f}{mark}"
        )
    alone = ", ".join(f"{name} {(v[0] + v[1]) / 2:.3f}" for name, v in choice.alone.items())
    lines.append(f"  alone (mean J): {alone}")
    for half, (proxies, inside, outside) in zip("AB", choice.folds, strict=True):
        other = "B" if half == "A" else "A"
        lines.append(
            f"  chosen on {half}: {' + '.join(proxies)}  J {inside:.3f} on {half}, "
            f"{outside:.3f} on {other} (held out)"
        )
    lines.append(f"  default: {' + '.join(choice.chosen)}")
    return lines


def interval_note(
    settings: Any, space: str | None, *, default_proxies: tuple[str, ...] = ()
) -> str | None:
    """The one-line note of an L-SWAG run without a calibrated interval, else None; none for
    a space's own default ranking, which the default rule measured over the whole depth."""
    if settings.interval is not None:
        return None
    if not any(name in ("lswag", "lswag-lambda", "lswag-psi") for name in settings.proxies):
        return None
    if tuple(settings.proxies) == default_proxies:
        return None
    where = f"`swapprobe calibrate {space}`" if space else "`swapprobe calibrate SPACE`"
    return (
        f"L-SWAG over the whole depth: no calibrated interval ({where} caches the paper's "
        "interval rule; on NAS-Bench-201 the whole depth ranked better, docs/lswag.md)"
    )


_METRIC_LABELS = {
    "aggregate": "aggregate (ranks)",
    "swap": "SWAP",
    "reg_swap": "regularised SWAP",
    "standard_ap": "standard AP",
    "nwot": "NWOT",
    "params": "parameter count",
    "expressivity": "expressivity",
    "progressivity": "progressivity",
    "trainability": "trainability",
    "flops": "FLOPs (MACs)",
    "zico": "ZiCo",
    "lswag": "L-SWAG (Λ×Ψ)",
    "lswag-lambda": "L-SWAG Λ",
    "lswag-psi": "L-SWAG Ψ",
    "vkdnw": "VKDNW",
}


def store_panel(summary: Any) -> Panel:
    """A summary of an HDF5 store (see :meth:`swapprobe.store.PatternStore.summary`)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    grid.add_row("file", str(summary.path))
    grid.add_row("models", str(summary.n_models))
    grid.add_row("pattern blocks", str(summary.n_pattern_blocks))
    grid.add_row("size", f"{summary.file_bytes / 1e6:.2f} MB")
    grid.add_row("created", str(summary.created))
    for key, value in sorted(summary.settings.items()):
        grid.add_row(key, str(value))
    return Panel(grid, title="swapprobe store", title_align="left", expand=False)


def _fmt_float(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else str(value)


def write_json(
    results: Sequence[Result],
    target: str | Path | TextIO,
    *,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Rows as JSON to a path or an open text stream (ranked, best first)."""
    payload = {"results": [r.to_row() for r in rank_results(results)], **(extra or {})}
    dump_json(payload, target)


def write_csv(results: Sequence[Result], target: str | Path | TextIO) -> None:
    """The same rows as CSV to a path or an open text stream (per-layer columns are JSON-only)."""
    rows = [r.to_row() for r in rank_results(results)]
    for row in rows:
        row.pop("per_layer_swap", None)
    write_csv_rows(rows, target)


def write_csv_rows(rows: Sequence[Mapping[str, Any]], target: str | Path | TextIO) -> None:
    """Dict rows as CSV (columns from the first row) to a path or an open text stream."""

    def write(handle: TextIO) -> None:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["name"])
        writer.writeheader()
        writer.writerows(rows)

    _write_text(target, write)


def dump_json(payload: Any, target: str | Path | TextIO) -> None:
    """Strict JSON (NaN and infinities written as ``null``: ``jq`` and browsers refuse
    ``NaN``) to a path or an open text stream."""
    text = json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n"
    _write_text(target, lambda handle: handle.write(text))


def json_safe(value: Any) -> Any:
    """``value`` with numpy values made plain and non-finite floats made ``None``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return json_safe(asdict(value))
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _write_text(target: str | Path | TextIO, write: Callable[[TextIO], object]) -> None:
    """Write to an open stream, or to a path whole or not at all: a full disk leaves no
    truncated file (the previous one, if any, stays) and raises a one-line DiskFullError."""
    if isinstance(target, (str, Path)):
        write_text_atomically(target, write)
    else:
        write(target)


def saturation_notes(results: Sequence[Result], *, at: float = 0.99) -> list[str]:
    """One line per model whose SWAP met the 2^S bound (more samples would tell its units
    apart), with the S that lifts the bound above its V units."""
    notes = []
    for result in results:
        samples, units = result.samples, result.units
        if samples >= 63 or (1 << samples) >= units or result.swap < at * (1 << samples):
            continue
        wanted = max(samples + 1, math.ceil(math.log2(units)))
        notes.append(
            f"{result.name}: SWAP is at its bound 2^S = {1 << samples:,} (V = {units:,} units); "
            f"score with -S {wanted} or more to tell them apart"
        )
    return notes


def search_panel(space: Any, outcome: Any) -> Panel:
    """The found architecture of a search: its text, fitness, scores, sizes and cost (and
    the space's drawing of its cell when the space has one)."""
    best = outcome.best
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column(overflow="fold")
    grid.add_row("architecture", outcome.best_text)
    grid.add_row("fitness", f"{outcome.search.best.fitness:,.2f}")
    grid.add_row("SWAP", _swap_cell(best))
    if best.reg_swap is not None:
        grid.add_row(
            "reg. SWAP",
            f"{best.reg_swap:,.1f}  (μ={best.mu:g}, σ={best.sigma:g}, Θ in {best.size_unit})",
        )
    grid.add_row("scoring params", f"{best.param_count:,}")
    if outcome.data:
        grid.add_row("scored on", outcome.data)
    network = f" ({outcome.evaluation_dataset} network)"
    grid.add_row(
        "evaluation params",
        f"{metrics.parameters_in_unit(outcome.evaluation_params, 'M'):.3f} M{network}",
    )
    if outcome.evaluation_flops is not None:
        size = "×".join(str(n) for n in outcome.input_size)
        grid.add_row(
            "evaluation MACs", f"{outcome.evaluation_flops / 1e6:.1f} M per input at {size}"
        )
    if outcome.budget.active:
        grid.add_row("budget", outcome.budget.describe())
    grid.add_row(
        "evaluations",
        f"{outcome.search.evaluations:,} scored, {outcome.search.cache_hits:,} cache hits",
    )
    calibration = outcome.calibration.seconds if outcome.calibration is not None else 0.0
    grid.add_row(
        "wall time",
        f"{outcome.wall_seconds:.1f} s (every export and session included"
        + (f"; {calibration:.1f} s of it --reg auto calibration)" if calibration else ")"),
    )
    drawing = getattr(space, "draw_cell", None)
    if callable(drawing):
        grid.add_row("cell", drawing(outcome.best_arch))
    return Panel(grid, title=f"best architecture — {space.name}", title_align="left")
