"""Rotary position embedding (rotate-half layout) in Triton, in place on q and k.

Same op as `rotary.apply_rotary_ref`: one program per token rotates all its q and k heads
with the cos/sin row of its position, in fp32, and writes them back where they are (views
such as slices of a fused qkv output are fine: only the head dim needs unit stride).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotate_heads(X, stride_h, num_heads, cos, sin, offs_d, d_ok, BLOCK_H: tl.constexpr,
                  HALF: tl.constexpr):
    offs_h = tl.arange(0, BLOCK_H)
    ok = (offs_h < num_heads)[:, None] & d_ok[None, :]
    ptr1 = X + offs_h[:, None] * stride_h + offs_d[None, :]  # (BH, BD) first halves
    x1 = tl.load(ptr1, mask=ok, other=0.0).to(tl.float32)
    x2 = tl.load(ptr1 + HALF, mask=ok, other=0.0).to(tl.float32)
    tl.store(ptr1, (x1 * cos - x2 * sin).to(X.dtype.element_ty), mask=ok)
    tl.store(ptr1 + HALF, (x2 * cos + x1 * sin).to(X.dtype.element_ty), mask=ok)


@triton.jit
def _rotary_kernel(Q, K, Positions, CosSin, num_q_heads, num_k_heads,
                   stride_qt, stride_qh, stride_kt, stride_kh, stride_cs,
                   HALF: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    pos = tl.load(Positions + t)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HALF
    row = CosSin + pos * stride_cs
    cos = tl.load(row + offs_d, mask=d_ok, other=0.0).to(tl.float32)[None, :]  # (1, BD)
    sin = tl.load(row + HALF + offs_d, mask=d_ok, other=0.0).to(tl.float32)[None, :]
    _rotate_heads(Q + t * stride_qt, stride_qh, num_q_heads, cos, sin, offs_d, d_ok, BLOCK_H, HALF)
    _rotate_heads(K + t * stride_kt, stride_kh, num_k_heads, cos, sin, offs_d, d_ok, BLOCK_H, HALF)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor,
                 cos_sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """In place: rotate q (T, Hq, D) and k (T, Hkv, D) by positions (T,) using the
    (max_positions, D) cos|sin table. Returns (q, k), the same tensors."""
    T, num_q_heads, D = q.shape
    if q.stride(-1) != 1 or k.stride(-1) != 1 or cos_sin.stride(-1) != 1:
        raise ValueError("apply_rotary needs unit stride on the head dim")
    if T == 0:
        return q, k
    half = D // 2
    _rotary_kernel[(T,)](
        q, k, positions, cos_sin, num_q_heads, k.shape[1],
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), cos_sin.stride(0),
        HALF=half, BLOCK_H=triton.next_power_of_2(max(num_q_heads, k.shape[1])),
        BLOCK_D=triton.next_power_of_2(half))
    return q, k
