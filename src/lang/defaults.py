"""The process-wide default backend (SGLang's `set_default_backend`).

When none is set, the first run makes the in-process engine backend, which pulls and loads
the default model on first use. It is imported here, inside the function, so `import tines`
never loads the engine (or torch).
"""

from __future__ import annotations

import threading

from tines.backend import Backend

_default: Backend | None = None
_lock = threading.Lock()


def set_default_backend(backend: Backend | None) -> None:
    """Use `backend` for runs that do not pass `backend=` (None: back to the engine)."""
    global _default
    if backend is not None and not isinstance(backend, Backend):
        raise TypeError(f"set_default_backend: {type(backend).__name__} does not implement "
                        f"the tines Backend protocol")
    with _lock:
        _default = backend


def get_default_backend() -> Backend:
    global _default
    with _lock:
        if _default is None:
            _default = _engine_backend()
        return _default


def _engine_backend() -> Backend:
    try:
        from tines.local import LocalBackend  # the in-process engine (loads torch lazily)
    except ImportError as e:
        raise RuntimeError("no backend: pass backend=... or call tines.set_default_backend(...) "
                           f"(the in-process engine backend is unavailable: {e})") from e
    return LocalBackend()
