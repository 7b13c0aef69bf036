"""Language tests run against `tines.MockBackend`; none of them uses a default backend."""

from __future__ import annotations

import pytest

import tines


@pytest.fixture(autouse=True)
def _no_default_backend():
    tines.set_default_backend(None)
    yield
    tines.set_default_backend(None)
