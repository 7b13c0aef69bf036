"""RMSNorm, alone and fused with the residual add: torch references (the CPU path).

As a reference loop (fp32 inside, rounded to x's dtype at the end):

    for row in x.view(-1, N):
        out[row] = row / sqrt(mean(row ** 2) + eps) * weight

The fused form first adds the residual (rounded to the input dtype, as a separate add
would be) and normalizes that sum, returning both.
"""

from __future__ import annotations

import torch


def rms_norm_ref(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x (..., N), weight (N,) -> x / rms(x) * weight, computed in fp32, returned in x's dtype."""
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (xf * weight.float()).to(x.dtype)


def add_rms_norm_ref(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                     eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """residual' = x + residual; returns (rms_norm(residual'), residual'). Inputs unchanged."""
    residual = x + residual
    return rms_norm_ref(residual, weight, eps), residual
