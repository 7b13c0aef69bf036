"""The dispatch layer: torch on CPU tensors, Triton when forced (or on CUDA), a clear error
for a bad backend, and an import that needs no triton."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tines import kernels
from tines.kernels import backend as backend_module


def test_auto_runs_the_torch_reference_on_cpu_tensors(monkeypatch):
    def no_triton(name: str):
        raise AssertionError(f"triton_{name} was reached on a CPU tensor")

    monkeypatch.setattr(kernels, "triton_module", no_triton)
    x, w = torch.randn(2, 8), torch.randn(8)
    assert torch.equal(kernels.rms_norm(x, w, 1e-5), kernels.rms_norm_ref(x, w, 1e-5))
    assert not kernels.use_triton(x, "auto")


def test_forcing_triton_runs_the_triton_module(monkeypatch):
    pytest.importorskip("triton")
    reached = []
    real = backend_module.triton_module

    def spy(name: str):
        reached.append(name)
        return real(name)

    monkeypatch.setattr(kernels, "triton_module", spy)
    x, w = torch.randn(2, 8), torch.randn(8)
    kernels.rms_norm(x, w, 1e-5, backend="triton")
    kernels.silu_and_mul(torch.randn(2, 8), backend="triton")
    assert reached == ["norm", "activation"]


def test_forcing_torch_never_reaches_triton():
    assert not kernels.use_triton(torch.randn(1), "torch")


def test_an_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="backend must be one of"):
        kernels.rms_norm(torch.randn(2, 8), torch.randn(8), 1e-5, backend="cuda")


def test_tines_kernels_imports_and_runs_without_triton():
    code = """
import sys
sys.modules["triton"] = None  # any `import triton` now raises ImportError
import torch
from tines import kernels
assert not kernels.triton_available()
x, w = torch.randn(3, 16), torch.randn(16)
kernels.rms_norm(x, w, 1e-5)
logits = torch.randn(2, 40)
kernels.apply_token_bitmask(logits, torch.zeros(2, 2, dtype=torch.int32))
assert torch.isinf(logits).all()
try:
    kernels.rms_norm(x, w, 1e-5, backend="triton")
except RuntimeError as e:
    assert "triton is not installed" in str(e)
else:
    raise AssertionError("backend='triton' without triton must raise")
"""
    subprocess.run([sys.executable, "-c", code], check=True)
