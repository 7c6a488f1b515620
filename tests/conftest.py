"""Shared fixtures. Each fixture family has its own section; keep sections independent."""

from __future__ import annotations

import pathlib

import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data" / "tb-radiological-signs"


# --- real data -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tb_data_dir() -> pathlib.Path:
    """The folder of the real TB radiological-sign features (read-only, outside the project)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
