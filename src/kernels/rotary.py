"""Rotary position embedding (the "rotate half" / NeoX layout), in place: torch reference.

`cos_sin` is a (max_positions, D) table whose first D/2 columns are cos and last D/2 are sin
of position * inv_freq; the model builds it once (with its rope scaling) and every layer reads
rows by position. As a reference loop (fp32 inside, rounded to x's dtype):

    for t in range(T):
        cos, sin = cos_sin[positions[t], :D/2], cos_sin[positions[t], D/2:]
        for x in (q, k):
            for h in range(x.shape[1]):
                x1, x2 = x[t, h, :D/2], x[t, h, D/2:]
                x[t, h] = cat(x1 * cos - x2 * sin, x2 * cos + x1 * sin)
"""

from __future__ import annotations

import torch


def apply_rotary_ref(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor,
                     cos_sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """In place: rotate q (T, Hq, D) and k (T, Hkv, D) by positions (T,). Returns (q, k),
    the same tensors, for convenience. Views (such as slices of a fused qkv output) are
    written through."""
    half = q.shape[-1] // 2
    cs = cos_sin[positions]  # (T, D)
    cos, sin = cs[:, None, :half], cs[:, None, half:]  # (T, 1, D/2)
    qk = _joint_view(q, k)
    for x in ((q, k) if qk is None else (qk,)):
        x1, x2 = x[..., :half], x[..., half:]
        f1, f2 = x1.float(), x2.float()
        y1 = f1 * cos - f2 * sin  # both halves computed before either is overwritten
        y2 = f2 * cos + f1 * sin
        x1.copy_(y1)
        x2.copy_(y2)
    return q, k


def rotary_ref(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor,
               cos_sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same rotation as `apply_rotary_ref`, returning new tensors (inputs untouched):
    the form a compiler can trace and fuse."""
    half = q.shape[-1] // 2
    cs = cos_sin[positions]  # (T, D)
    cos, sin = cs[:, None, :half], cs[:, None, half:]  # (T, 1, D/2)

    def rotate(x: torch.Tensor) -> torch.Tensor:
        f1, f2 = x[..., :half].float(), x[..., half:].float()
        return torch.cat((f1 * cos - f2 * sin, f2 * cos + f1 * sin), dim=-1).to(x.dtype)

    return rotate(q), rotate(k)


def _joint_view(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor | None:
    """(T, Hq + Hkv, D) covering q and k when k's heads follow q's in memory in every row (as
    when both are slices of one qkv projection), so they rotate in one pass; else None."""
    T, num_heads, D = q.shape
    if (q.dtype != k.dtype or q.stride() != k.stride() or q.stride()[1:] != (D, 1)
            or q.untyped_storage().data_ptr() != k.untyped_storage().data_ptr()
            or k.data_ptr() != q.data_ptr() + num_heads * D * q.element_size()):
        return None
    return q.as_strided((T, num_heads + k.shape[1], D), q.stride())  # (T, Hq+Hkv, D)
