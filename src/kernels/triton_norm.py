"""RMSNorm, alone and fused with the residual add, in Triton: one program per row.

Same ops as `norm.rms_norm_ref` / `norm.add_rms_norm_ref`: fp32 inside; the fused form
rounds the sum to the residual's dtype (as a separate add would) before normalizing it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm_kernel(X, Res, W, Out, ResOut, N, eps,
                     stride_x, stride_r, stride_o, stride_ro,
                     HAS_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    ok = cols < N
    x = tl.load(X + row * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
    if HAS_RESIDUAL:
        r = tl.load(Res + row * stride_r + cols, mask=ok, other=0.0).to(tl.float32)
        x = (x + r).to(ResOut.dtype.element_ty)
        tl.store(ResOut + row * stride_ro + cols, x, mask=ok)
        x = x.to(tl.float32)
    inv_rms = tl.rsqrt(tl.sum(x * x, 0) / N + eps)
    w = tl.load(W + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(Out + row * stride_o + cols, (x * inv_rms * w).to(Out.dtype.element_ty), mask=ok)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(..., N) -> (R, N) with unit stride on N (a view when possible)."""
    x2 = x.reshape(-1, x.shape[-1])  # (R, N)
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


def _launch(x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor,
            eps: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    N = x.shape[-1]
    x2 = _rows(x)
    # The output takes the dtype of what is normalized: x, or the sum x + residual.
    dtype = x.dtype if residual is None else torch.promote_types(x.dtype, residual.dtype)
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    out2 = out.view(-1, N)  # (R, N)
    if residual is None:
        r2 = res_out = res_out2 = x2  # unused by the kernel
    else:
        r2 = _rows(residual)
        res_out = torch.empty(x.shape, dtype=dtype, device=x.device)
        res_out2 = res_out.view(-1, N)
    _rms_norm_kernel[(x2.shape[0],)](
        x2, r2, weight, out2, res_out2, N, eps,
        x2.stride(0), r2.stride(0), out2.stride(0), res_out2.stride(0),
        HAS_RESIDUAL=residual is not None, BLOCK=triton.next_power_of_2(N))
    return out, (None if residual is None else res_out)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x (..., N), weight (N,) -> x / rms(x) * weight in x's dtype."""
    return _launch(x, None, weight, eps)[0]


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                 eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """residual' = x + residual; returns (rms_norm(residual'), residual'). Inputs unchanged."""
    out, res_out = _launch(x, residual, weight, eps)
    return out, res_out
