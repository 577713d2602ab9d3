"""Fixtures of the io tests (the cases themselves are in :mod:`io_cases`)."""

import pytest
from io_cases import make_project


@pytest.fixture
def project():
    return make_project()
