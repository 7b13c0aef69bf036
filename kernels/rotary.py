"""Rotary position embedding (the "rotate half" / NeoX layout): torch reference.

`cos_sin` is a (max_positions, D) table whose first D/2 columns are cos and last D/2 are sin
of position * inv_freq; the model builds it once (with its rope scaling) and every layer reads
rows by position.
"""

from __future__ import annotations

import torch


def apply_rotary_ref(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor,
                     cos_sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q (T, Hq, D), k (T, Hkv, D), positions (T,) -> rotated (q, k), same dtypes."""
    half = q.shape[-1] // 2
    cs = cos_sin[positions]  # (T, D)
    cos, sin = cs[:, None, :half], cs[:, None, half:]  # (T, 1, D/2)
    return _rotate(q, cos, sin), _rotate(k, cos, sin)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)
