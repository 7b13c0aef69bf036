"""Language tests run against `tines.MockBackend`; none of them uses a default backend.

The end-to-end tests (`test_lang_e2e_*`) run the same programs on the default model twice:
in-process (`local_backend`) and through `tines serve`'s app over HTTP (`remote_backend`),
both on the session's one default-model engine.
"""

from __future__ import annotations

import pytest

import tines


@pytest.fixture(autouse=True)
def _no_default_backend():
    tines.set_default_backend(None)
    yield
    tines.set_default_backend(None)


@pytest.fixture(scope="session")
def local_backend(default_engine):
    from tines.local import LocalBackend

    return LocalBackend(default_engine)


@pytest.fixture(scope="session")
def lang_server(default_engine):
    """The server's app over the default engine; skips (naming why) if it cannot start."""
    try:
        from tests.lang.e2e_server import start_server
        live = start_server(default_engine)
    except Exception as e:  # noqa: BLE001 (the server is being written alongside)
        pytest.skip(f"the tines server app does not start: {type(e).__name__}: {e}")
    yield live
    live.stop()


@pytest.fixture(scope="session")
def remote_backend(lang_server):
    from tines.remote import RemoteBackend

    backend = RemoteBackend(lang_server.url)
    yield backend
    backend.close()


@pytest.fixture(params=["local", "remote"])
def backend(request):
    """Each e2e program test runs on both: in-process, and over the native HTTP API."""
    return request.getfixturevalue(f"{request.param}_backend")
