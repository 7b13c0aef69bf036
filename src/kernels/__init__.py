"""tines.kernels: the hot ops behind one dispatch layer.

Every op has one torch reference (`*_ref`, the CPU path and the oracle) and a Triton twin
(`triton_*.py`). The functions below pick one per call: `backend="auto"` runs Triton when
the tensors are on a CUDA device and triton imports, the torch reference otherwise;
`"torch"` / `"triton"` force one. The model and sampler call only these functions, so they
carry no device branches; tests and benchmarks force a backend. An engine sets what "auto"
means on its own thread (`set_thread_backend`, from its `kernels` setting).
"""

from __future__ import annotations

import torch

from .activation import silu_and_mul_ref
from .attention import (attention_ref, decode_attention_ref, decode_attention_traced,
                        extend_attention_ref, run_plan)
from .attention_batch import AttentionBatch, AttentionPlan
from .backend import (Backend, set_thread_backend, thread_backend, triton_available,
                      triton_interpreting, triton_module, use_triton)
from .bitmask import apply_token_bitmask_ref, unpack_bitmask
from .kv import store_kv_ref
from .norm import add_rms_norm_ref, rms_norm_ref
from .rotary import apply_rotary_ref, rotary_ref


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, *,
             backend: Backend = "auto") -> torch.Tensor:
    """x (..., N), weight (N,) -> x / rms(x) * weight (fp32 inside), x's dtype."""
    if use_triton(x, backend):
        return triton_module("norm").rms_norm(x, weight, eps)
    return rms_norm_ref(x, weight, eps)


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float, *,
                 backend: Backend = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """residual' = x + residual; returns (rms_norm(residual'), residual'). Inputs unchanged."""
    if use_triton(x, backend):
        return triton_module("norm").add_rms_norm(x, residual, weight, eps)
    return add_rms_norm_ref(x, residual, weight, eps)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor,
                 cos_sin: torch.Tensor, *,
                 backend: Backend = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """In place: rotate q (T, Hq, D) and k (T, Hkv, D) by positions (T,) with the
    (max_positions, D) cos|sin table. Returns (q, k), the same tensors."""
    if use_triton(q, backend):
        return triton_module("rotary").apply_rotary(q, k, positions, cos_sin)
    if torch.compiler.is_compiling():  # traced: the out-of-place form, which fuses
        return rotary_ref(q, k, positions, cos_sin)
    return apply_rotary_ref(q, k, positions, cos_sin)


def silu_and_mul(gate_up: torch.Tensor, *, backend: Backend = "auto") -> torch.Tensor:
    """gate_up (T, 2I), gate first -> silu(gate) * up, (T, I)."""
    if use_triton(gate_up, backend):
        return triton_module("activation").silu_and_mul(gate_up)
    return silu_and_mul_ref(gate_up)


def store_kv(k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor,
             k: torch.Tensor, v: torch.Tensor, *, backend: Backend = "auto") -> None:
    """In place: write k/v (T, Hkv, D) into the pool rows `slots` (T,)."""
    if use_triton(k_cache, backend):
        return triton_module("kv").store_kv(k_cache, v_cache, slots, k, v)
    return store_kv_ref(k_cache, v_cache, slots, k, v)


def attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
              plan: AttentionPlan, scale: float, *, backend: Backend = "auto") -> torch.Tensor:
    """A step's attention (extend rows first, then decode rows): q (T, H, D),
    k_cache/v_cache (num_slots, Hkv, D) -> (T, H, D), q's dtype."""
    if use_triton(q, backend):
        return triton_module("attention").attention(q, k_cache, v_cache, plan, scale)
    return attention_ref(q, k_cache, v_cache, plan, scale)


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     batch: AttentionBatch, scale: float, *,
                     backend: Backend = "auto") -> torch.Tensor:
    """One query per sequence: q (B, H, D) -> (B, H, D)."""
    if use_triton(q, backend):
        return triton_module("decode_attention").decode_attention(q, k_cache, v_cache, batch, scale)
    return decode_attention_ref(q, k_cache, v_cache, batch, scale)


def extend_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     batch: AttentionBatch, scale: float, *,
                     backend: Backend = "auto") -> torch.Tensor:
    """New tokens attending to their cached prefix and causally to themselves:
    q (T, H, D) -> (T, H, D)."""
    if use_triton(q, backend):
        return triton_module("extend_attention").extend_attention(q, k_cache, v_cache, batch, scale)
    return extend_attention_ref(q, k_cache, v_cache, batch, scale)


def apply_token_bitmask(logits: torch.Tensor, bitmask: torch.Tensor,
                        rows: torch.Tensor | None = None, *, backend: Backend = "auto") -> None:
    """In place: logits (B, V) get -inf where the int32 bitmask (R, ceil(V/32)) forbids a
    token; `rows` (R,) names the logits row of each bitmask row (default: all, R == B)."""
    if use_triton(logits, backend):
        return triton_module("bitmask").apply_token_bitmask(logits, bitmask, rows)
    return apply_token_bitmask_ref(logits, bitmask, rows)


__all__ = [
    "AttentionBatch", "AttentionPlan", "Backend", "add_rms_norm", "add_rms_norm_ref",
    "apply_rotary", "apply_rotary_ref", "apply_token_bitmask", "apply_token_bitmask_ref",
    "attention", "attention_ref", "decode_attention", "decode_attention_ref",
    "decode_attention_traced", "extend_attention", "extend_attention_ref", "rms_norm",
    "rms_norm_ref", "rotary_ref", "run_plan", "set_thread_backend", "silu_and_mul",
    "silu_and_mul_ref", "store_kv", "store_kv_ref", "thread_backend", "triton_available",
    "triton_interpreting", "unpack_bitmask", "use_triton",
]
