"""The KV write: each new token's K and V go into the pool at its slot. Torch reference.

As a reference loop:

    for t in range(T):
        k_cache[slots[t]] = k[t]        # (Hkv, D), cast to the pool's dtype
        v_cache[slots[t]] = v[t]
"""

from __future__ import annotations

import torch


def store_kv_ref(k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor,
                 k: torch.Tensor, v: torch.Tensor) -> None:
    """In place: write k/v (T, Hkv, D) into the pool rows `slots` (T,) of k_cache/v_cache
    (num_slots, Hkv, D)."""
    k_cache.index_copy_(0, slots, k.to(k_cache.dtype))
    v_cache.index_copy_(0, slots, v.to(v_cache.dtype))
