"""NASLib's NAS-Bench-101 zero-cost tables (``zc_nasbench101.json`` and its halves) as rows.

The file maps a task (``cifar10``) to ``{encoding text: {column: value}}``; a value is a
number or ``{"score": number, "time": seconds}`` (a proxy and the time NASLib took).
"""

from __future__ import annotations

import json
from pathlib import Path

from swapprobe.errors import DataError, UnknownArchitectureError
from swapprobe.searchspaces.nb101.encoding import Nb101Arch

__all__ = ["load_table"]


def load_table(path: str | Path, task: str = "cifar10") -> list[tuple[Nb101Arch, dict[str, float]]]:
    """``(arch, {column: value})`` per row of ``task``, in file order.

    Raises:
        DataError: the file cannot be read or is not such a table, the task is missing, or a
            value is not a number (the message names the row).
        UnknownArchitectureError: a key is not a valid NAS-Bench-101 cell (names the row).
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read NASLib table {path}: {error}") from None
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise DataError(f"{path} is not a NASLib zero-cost table ({{task: {{arch: values}}}})")
    if task not in document:
        raise DataError(f"{path} has no task {task!r}; its tasks: {', '.join(document)}")
    rows: list[tuple[Nb101Arch, dict[str, float]]] = []
    for number, (key, record) in enumerate(document[task].items(), start=1):
        try:
            arch = Nb101Arch.parse(key)
        except UnknownArchitectureError as error:
            raise UnknownArchitectureError(f"{path} {task} row {number}: {error}") from None
        if not isinstance(record, dict):
            raise DataError(f"{path} {task} row {number}: values must be an object")
        values: dict[str, float] = {}
        for column, value in record.items():
            number_value = value.get("score") if isinstance(value, dict) else value
            if isinstance(number_value, bool) or not isinstance(number_value, int | float):
                raise DataError(
                    f"{path} {task} row {number}: column {column!r} is not a number: {value!r}"
                )
            values[column] = float(number_value)
        rows.append((arch, values))
    return rows
