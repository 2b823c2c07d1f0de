"""Where the commands write: consoles, the progress bar a run reports to, output files
checked before any work, rows and failures written after it, and errors in flag terms.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from swapprobe.errors import SettingsError, SwapprobeError

__all__ = [
    "PlainProgress",
    "ProgressBar",
    "check_outputs",
    "consoles",
    "error_line",
    "flag",
    "report_failed",
    "write_rows",
]

#: library terms whose flag is not ``--NAME`` (``--NAME VALUE`` for ``{NAME='VALUE'}``)
FLAGS = {
    ("resume", "=True"): "--resume",
    ("baselines", "=False"): "--no-baselines",
    ("max_pattern_bytes", None): "--max-pattern-memory",
    ("acc_cols", None): "--acc-col",
}


def flag(name: str, value: str | None) -> str:
    """The flag of a parameter named in an error (``{mu}`` → ``--mu``, ``{reg='auto'}`` →
    ``--reg auto``, ``{resume=True}`` → ``--resume``)."""
    known = FLAGS.get((name, value))
    if known is not None:
        return known
    option = "--" + name.replace("_", "-")
    return option if value is None else f"{option} {value[1:].strip(chr(39))}"


def error_line(error: SwapprobeError) -> str:
    """The one line the CLI prints for a library error, parameters written as flags."""
    return shorten(f"swapprobe: error: {error.spelled(flag)}")


#: a word this long in a message is a spec or path a user pasted, not a word to read whole
LONG_WORD = 120
SHOWN_CHARS = 80


def shorten(line: str) -> str:
    """``line`` with every word of :data:`LONG_WORD` characters or more cut to its first
    :data:`SHOWN_CHARS` and "…" (a 100 KB architecture string is echoed in errors)."""
    return re.sub(
        rf"\S{{{LONG_WORD},}}",
        lambda word: f"{word.group()[:SHOWN_CHARS]}… ({len(word.group()):,} characters)",
        line,
    )


# --- consoles and progress ---------------------------------------------------------------
def consoles() -> tuple[Any, Any]:
    """stdout for results, stderr for progress and errors.

    Piped or redirected output gets 160 columns instead of Rich's 80, so that tables in logs
    and files keep whole numbers rather than wrapping them; messages to a redirected stderr are
    not wrapped at all.
    """
    from rich.console import Console

    out = Console()
    if not out.is_terminal:
        out = Console(width=160)
    err = Console(stderr=True)
    if not err.is_terminal:  # logs: one message, one line
        err = Console(stderr=True, width=160, soft_wrap=True)
    return out, err


class ProgressBar:
    """The CLI's :class:`swapprobe.plan.Progress`: a Rich bar on a terminal, a plain line at
    most every 30 s in logs (:class:`PlainProgress`). ``show``: fields shown beside the bar
    (numbers written ``1,234.5``, ``—`` until the first); ``announce`` renders a run's setup."""

    def __init__(
        self, err: Any, *, show: Sequence[str] = (), announce: Any = None
    ) -> None:
        self._show = tuple(show)
        self._announce = announce
        self._ids: dict[str, Any] = {}
        if not err.is_terminal:
            self._bar: Any = PlainProgress(err)
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            *(TextColumn(f"{name} {{task.fields[{name}]}}") for name in self._show),
            console=err,
            transient=False,
        )

    def __enter__(self) -> ProgressBar:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bar.__exit__(*exc)

    def announce(self, setup: Any) -> None:
        if self._announce is not None:
            self._announce(setup)

    def begin(self, task: str, total: int | None, **fields: Any) -> None:
        if task in self._ids:
            self._bar.reset(self._ids[task])
            return
        shown = {name: "—" for name in self._show}
        self._ids[task] = self._bar.add_task(task, total=total, **shown, **_shown(fields))

    def advance(self, task: str, done: int, total: int | None = None, **fields: Any) -> None:
        changes: dict[str, Any] = {"completed": done, **_shown(fields)}
        if total is not None:
            changes["total"] = total
        self._bar.update(self._ids[task], **changes)


def _shown(fields: dict[str, Any]) -> dict[str, str]:
    return {
        name: f"{value:,.1f}" if isinstance(value, float) else str(value)
        for name, value in fields.items()
    }


class PlainProgress:
    """Progress for logs (stderr not a terminal): a plain line per task at most every 30 s.

    Long runs in CI or under ``nohup`` should still say how far they are; Rich's live bar
    would print nothing until the end there. Same calls as ``rich.progress.Progress``.
    """

    def __init__(self, err: Any, every: float = 30.0) -> None:
        import time

        self._err, self._every, self._clock = err, every, time.monotonic
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:  # a failed run says so in its one error line, nothing more
            for task_id, task in self._tasks.items():
                if task.get("printed"):  # long runs close their log lines; short ones stay quiet
                    self._print(task_id)

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = {
            "description": description,
            "total": total,
            "completed": 0,
            "start": self._clock(),
            "last": self._clock(),
            **fields,
        }
        return task_id

    def update(self, task_id: int, **changes: Any) -> None:
        task = self._tasks[task_id]
        task.update(changes)
        if self._clock() - task["last"] >= self._every:
            self._print(task_id)

    def reset(self, task_id: int) -> None:
        self._tasks[task_id]["completed"] = 0

    def _print(self, task_id: int) -> None:
        task = self._tasks[task_id]
        task["last"] = self._clock()
        task["printed"] = True
        done, total = task["completed"], task["total"]
        share = f" ({100 * done / total:.0f} %)" if total else ""
        best = f"  best {task['best']}" if "best" in task else ""
        elapsed = self._clock() - task["start"]
        self._err.print(
            f"{task['description']}: {done}/{total}{share}  {elapsed:.0f} s{best}",
            highlight=False,
        )


# --- output files ----------------------------------------------------------------------
def check_outputs(paths: Iterable[str | None]) -> None:
    """Refuse, before any work, an output file whose folder is missing or not writable (``-``
    is stdout), so that no result is lost at the end of a long run."""
    for text in paths:
        if not text or text == "-":
            continue
        target = Path(text)
        if target.is_dir():
            raise SettingsError(f"output {target} is a directory; give a file path")
        if target.exists() and not os.access(target, os.W_OK):
            raise SettingsError(f"output {target} is not writable")
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise SettingsError(f"cannot write {target}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SettingsError(f"cannot write {target}: folder {parent} is not writable")


def write_rows(
    results: Sequence[Any], json_path: str | None, csv_path: str | None, **json_extra: Any
) -> None:
    """``--json``/``--csv`` of result rows (``-`` is stdout)."""
    from swapprobe import report

    if json_path:
        report.write_json(
            results, sys.stdout if json_path == "-" else json_path, extra=json_extra or None
        )
    if csv_path:
        report.write_csv(results, sys.stdout if csv_path == "-" else csv_path)


def report_failed(err: Any, failed: Sequence[Any], total: int) -> int:
    """One error line per model that failed; exit status 1 when there is any."""
    if not failed:
        return 0
    done = total - len(failed)
    if done:
        err.print(
            f"{len(failed)} of {total} failed; the {done} others are kept",
            markup=False,
            highlight=False,
        )
    for outcome in failed:
        err.print(
            shorten(f"swapprobe: error: {outcome.name}: {outcome.error}"),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return 1
