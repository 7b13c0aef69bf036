"""Which implementation of an op runs: the torch reference or its Triton twin.

`backend="auto"` picks Triton for CUDA tensors when triton imports, torch otherwise;
`"torch"` and `"triton"` force one (forcing Triton on CPU tensors works only under the
Triton interpreter, `TRITON_INTERPRET=1`, which is how the tests run it). Triton modules are
imported on first use, so `tines.kernels` imports without triton installed.

An engine picks its kernels once for the thread that runs it (`set_thread_backend`): from
then on `"auto"` on that thread means the engine's choice, so the model and sampler call the
dispatcher without a backend argument and other threads (another engine, a test) are not
affected. A thread set to "triton" runs Triton where Triton runs: on CUDA tensors, and on CPU
tensors only under the interpreter (so a GPU engine's host-side sampler takes the torch
bitmask). Code being traced by torch.compile ignores the thread's choice (the compiled CPU
decode path runs the torch references).
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from types import ModuleType
from typing import Literal

import torch

Backend = Literal["auto", "torch", "triton"]
BACKENDS = ("auto", "torch", "triton")

_thread = threading.local()  # .backend: what "auto" means on this thread (unset: by device)


def set_thread_backend(backend: Backend) -> None:
    """From now on, on the calling thread, `backend="auto"` means `backend` ("auto" restores
    the per-device choice). Raises ValueError for an unknown name and RuntimeError for
    "triton" without triton installed."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "triton" and not triton_available():
        raise RuntimeError("backend='triton' was asked for but triton is not installed")
    _thread.backend = backend


def triton_interpreting() -> bool:
    """Whether Triton kernels run under the interpreter (TRITON_INTERPRET=1, which triton
    reads when a kernel module is first imported)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def thread_backend() -> Backend:
    """What `backend="auto"` means on the calling thread."""
    return getattr(_thread, "backend", "auto")


@functools.cache
def triton_available() -> bool:
    """Whether `import triton` succeeds (checked once)."""
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def use_triton(x: torch.Tensor, backend: Backend) -> bool:
    """Whether an op on `x` runs its Triton kernel under `backend`."""
    if backend == "auto" and not torch.compiler.is_compiling():
        backend = thread_backend()
        if backend == "triton":
            return x.is_cuda or triton_interpreting()
    if backend == "auto":
        return x.is_cuda and triton_available()
    if backend == "torch":
        return False
    if backend == "triton":
        if not triton_available():
            raise RuntimeError("backend='triton' was asked for but triton is not installed")
        return True
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


@functools.cache
def triton_module(name: str) -> ModuleType:
    """`tines.kernels.triton_<name>`, imported on first use."""
    return importlib.import_module(f"{__package__}.triton_{name}")
