"""tines.kernels: the hot ops behind one dispatch layer.

Every op has one torch reference (the CPU path and the oracle). Where a Triton twin exists it
runs when the tensors are on a CUDA device; the model and sampler call only the functions
below, so they carry no device branches.
"""

from __future__ import annotations

from .activation import silu_and_mul_ref
from .attention import AttentionBatch, AttentionPlan, attention_ref, decode_attention_ref, \
    extend_attention_ref, store_kv_ref
from .bitmask import apply_token_bitmask_ref, unpack_bitmask
from .norm import add_rms_norm_ref, rms_norm_ref
from .rotary import apply_rotary_ref

rms_norm = rms_norm_ref
add_rms_norm = add_rms_norm_ref
apply_rotary = apply_rotary_ref
silu_and_mul = silu_and_mul_ref
store_kv = store_kv_ref
attention = attention_ref
decode_attention = decode_attention_ref
extend_attention = extend_attention_ref
apply_token_bitmask = apply_token_bitmask_ref

__all__ = [
    "AttentionBatch", "AttentionPlan", "add_rms_norm", "apply_rotary", "apply_token_bitmask", "attention",
    "decode_attention", "extend_attention", "rms_norm", "silu_and_mul", "store_kv",
    "unpack_bitmask",
]
