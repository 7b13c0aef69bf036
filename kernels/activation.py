"""SwiGLU activation: torch reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def silu_and_mul_ref(gate_up: torch.Tensor) -> torch.Tensor:
    """gate_up (T, 2I), gate first -> silu(gate) * up, (T, I)."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up
