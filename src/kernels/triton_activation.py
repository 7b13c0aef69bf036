"""SwiGLU activation in Triton: out = silu(gate) * up, fp32 inside, one program per
(token, block of columns). Same op as `activation.silu_and_mul_ref`."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _silu_and_mul_kernel(X, Out, I, stride_x, stride_o, BLOCK: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = cols < I
    gate = tl.load(X + t * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
    up = tl.load(X + t * stride_x + I + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(Out + t * stride_o + cols, (gate * tl.sigmoid(gate) * up).to(Out.dtype.element_ty),
             mask=ok)


def silu_and_mul(gate_up: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """gate_up (T, 2I), gate first -> silu(gate) * up, (T, I), gate_up's dtype."""
    T, two_i = gate_up.shape
    inter = two_i // 2
    x = gate_up if gate_up.stride(-1) == 1 else gate_up.contiguous()
    out = torch.empty(T, inter, dtype=gate_up.dtype, device=gate_up.device)
    if T:
        block = min(block, triton.next_power_of_2(inter))
        _silu_and_mul_kernel[(T, triton.cdiv(inter, block))](
            x, out, inter, x.stride(0), out.stride(0), BLOCK=block)
    return out
