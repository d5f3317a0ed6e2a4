"""Shared fixtures for the operator tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_dir() -> Path | None:
    env = os.environ.get("PNP_SHARED_DATA")
    p = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return p if p.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    p = shared_data_dir()
    if p is None or not (p / "kernels").is_dir():
        pytest.skip("../shared/data/kernels not found (set PNP_SHARED_DATA to run this test)")
    return p
