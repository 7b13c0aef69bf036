"""SwiGLU activation: torch reference.

As a reference loop:

    for t in range(T):
        for i in range(I):
            out[t, i] = silu(gate_up[t, i]) * gate_up[t, I + i]     # silu(x) = x * sigmoid(x)

computed in float32 and rounded once to the input's dtype (as a fused kernel would).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def silu_and_mul_ref(gate_up: torch.Tensor) -> torch.Tensor:
    """gate_up (T, 2I), gate first -> silu(gate) * up, (T, I), gate_up's dtype."""
    gate, up = gate_up.chunk(2, dim=-1)
    if gate_up.dtype == torch.float32:
        return F.silu(gate) * up
    return (F.silu(gate.float()) * up.float()).to(gate_up.dtype)
