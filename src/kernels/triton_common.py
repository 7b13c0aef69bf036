"""What the Triton attention kernels share: the base-2 softmax constant and the dtype and
precision their matmuls run in."""

from __future__ import annotations

import torch
import triton.language as tl

LOG2_E = 1.4426950408889634  # exp(x) == exp2(x * LOG2_E): the kernels fold it into the scale

def key_block(head_dim: int) -> int:
    """Keys per tile: 64, halved for wide heads so the K and V tiles stay small in shared
    memory."""
    return 64 if head_dim <= 64 else 32


_DOT_DTYPES = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


def dot_precision(k_cache: torch.Tensor) -> str:
    """`tl.dot`'s input_precision: "ieee" for fp32 operands (an fp32 pool is the exactness
    mode; TF32 would round its scores to 10 mantissa bits), "tf32" (unused) for 16-bit ones."""
    return "ieee" if dot_dtype(k_cache) == tl.float32 else "tf32"


def dot_dtype(k_cache: torch.Tensor) -> tl.dtype:
    """The operand dtype of the kernels' `tl.dot`s (accumulation is always fp32): the pool's
    16-bit dtype on a GPU (tensor cores), fp32 for an fp32 pool (IEEE, not TF32) and always
    under the interpreter, whose 16-bit float arithmetic is wrong (CPU tensors there)."""
    if k_cache.device.type == "cpu":
        return tl.float32
    return _DOT_DTYPES.get(k_cache.dtype, tl.float32)
