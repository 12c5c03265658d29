"""Shared test fixtures: the project's ../shared material (skipped with a reason when absent), seeds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CRMNET_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared directory beside the project (test sets, peer predictions, Keras fixtures)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared material not found at {SHARED} (set CRMNET_SHARED to its path)")
    return SHARED


@pytest.fixture(scope="session")
def vaishnav_dir(shared: Path) -> Path:
    return shared / "data" / "vaishnav2022"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def one_thread():
    """One torch CPU thread for a module's tests, restored afterwards: small tensors gain nothing from a
    second thread and lose to OpenMP hand-offs on a shared CPU. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
