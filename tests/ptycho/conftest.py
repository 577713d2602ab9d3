"""Shared set-up of the ptychography tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Small reconstructions run on one torch thread: on the shared 2-core machine a
    2-thread pool oversubscribes and runs them several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
