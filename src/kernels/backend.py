"""Which implementation of an op runs: the torch reference or its Triton twin.

`backend="auto"` picks Triton for CUDA tensors when triton imports, torch otherwise;
`"torch"` and `"triton"` force one (forcing Triton on CPU tensors works only under the
Triton interpreter, `TRITON_INTERPRET=1`, which is how the tests run it). Triton modules are
imported on first use, so `tines.kernels` imports without triton installed.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Literal

import torch

Backend = Literal["auto", "torch", "triton"]
BACKENDS = ("auto", "torch", "triton")


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
