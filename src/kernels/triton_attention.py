"""A step's attention plan on Triton: the extend kernel on the first rows, the decode kernel
on the rest, both writing into one output (no concatenation)."""

from __future__ import annotations

import torch

from .attention_batch import AttentionPlan
from .triton_decode_attention import decode_attention
from .triton_extend_attention import extend_attention


def attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
              plan: AttentionPlan, scale: float) -> torch.Tensor:
    """q (T, H, D); k_cache/v_cache (num_slots, Hkv, D) -> out (T, H, D), q's dtype."""
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    n = plan.num_extend_tokens
    if plan.extend is not None:
        extend_attention(q[:n], k_cache, v_cache, plan.extend, scale, out=out[:n])
    if plan.decode is not None:
        decode_attention(q[n:], k_cache, v_cache, plan.decode, scale, out=out[n:])
    return out
