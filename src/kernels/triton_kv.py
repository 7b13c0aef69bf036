"""The KV write into the pool in Triton: one program per new token copies its K and V rows
(Hkv * D values each) to its slot, cast to the pool's dtype. Same op as `kv.store_kv_ref`."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _store_kv_kernel(K, V, KCache, VCache, Slots, row_len,
                     stride_kt, stride_vt, stride_kc, stride_vc, BLOCK: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    slot = tl.load(Slots + t).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    ok = cols < row_len
    k = tl.load(K + t * stride_kt + cols, mask=ok)
    v = tl.load(V + t * stride_vt + cols, mask=ok)
    tl.store(KCache + slot * stride_kc + cols, k.to(KCache.dtype.element_ty), mask=ok)
    tl.store(VCache + slot * stride_vc + cols, v.to(VCache.dtype.element_ty), mask=ok)


def _token_rows(x: torch.Tensor) -> torch.Tensor:
    """(T, Hkv, D) -> (T, Hkv*D) view when each token's heads are contiguous, else a copy."""
    if x.stride(2) == 1 and x.stride(1) == x.shape[2]:
        return x.flatten(1)
    return x.reshape(x.shape[0], -1).contiguous()


def store_kv(k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor,
             k: torch.Tensor, v: torch.Tensor) -> None:
    """In place: write k/v (T, Hkv, D) into the pool rows `slots` (T,) of k_cache/v_cache
    (num_slots, Hkv, D), whose rows must be contiguous."""
    if k_cache[0].stride() != (k_cache.shape[2], 1) or v_cache[0].stride() != (v_cache.shape[2], 1):
        raise ValueError("store_kv needs pool rows of contiguous (Hkv, D)")
    T = k.shape[0]
    if T == 0:
        return
    k2, v2 = _token_rows(k), _token_rows(v)  # (T, Hkv*D)
    row_len = k2.shape[1]
    _store_kv_kernel[(T,)](k2, v2, k_cache, v_cache, slots, row_len,
                           k2.stride(0), v2.stride(0), k_cache.stride(0), v_cache.stride(0),
                           BLOCK=triton.next_power_of_2(row_len))
