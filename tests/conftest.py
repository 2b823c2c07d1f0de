"""Shared fixtures: where the read-only ``shared/`` data lives, if it is there at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path | None:
    env = os.environ.get("SWAPPROBE_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(_REPO.parent / "shared")
    for candidate in candidates:
        if (candidate / "data").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$SWAPPROBE_SHARED/data``); skips the test when absent."""
    shared = _shared_dir()
    if shared is None:
        pytest.skip("shared data not found: set SWAPPROBE_SHARED or place shared/ beside the repo")
    return shared / "data"


@pytest.fixture(scope="session")
def cifar10_dir(shared_data: Path) -> Path:
    path = shared_data / "cifar-10-batches-py"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path
