"""Inputs and plain oracles shared by the kernel tests: random KV pools and ragged batches,
naive per-sequence loops, bool mask <-> packed bitmask."""

from __future__ import annotations

import math

import torch

from tines.kernels import AttentionBatch, AttentionPlan


def random_pool(num_slots: int, num_kv_heads: int, head_dim: int, seed: int = 0,
                dtype: torch.dtype = torch.float32,
                device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A KV pool's k and v, (num_slots, Hkv, D) each, filled with randn."""
    g = torch.Generator().manual_seed(seed)
    shape = (num_slots, num_kv_heads, head_dim)
    return (torch.randn(shape, generator=g).to(device, dtype),
            torch.randn(shape, generator=g).to(device, dtype))


def scattered_batch(q_lens: list[int], kv_lens: list[int], num_slots: int, seed: int = 0,
                    device: str = "cpu") -> AttentionBatch:
    """Each sequence gets kv_len distinct slots in random order, so reads go through the
    slot table, never a contiguous range."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num_slots, generator=g)
    offsets = [0, *torch.tensor(kv_lens).cumsum(0).tolist()]
    return AttentionBatch.build(q_lens, [perm[a:b] for a, b in zip(offsets, offsets[1:])], device)


def naive_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                    batch: AttentionBatch, scale: float) -> torch.Tensor:
    """The reference loop of attention.py, one sequence and one query at a time, in fp32."""
    out = torch.empty(q.shape, dtype=torch.float32)
    group = q.shape[1] // k_cache.shape[1]
    for i in range(batch.num_seqs):
        q_len, kv_len = int(batch.q_lens[i]), int(batch.kv_lens[i])
        start = int(batch.q_starts[i])
        slots = batch.slot_table[i, :kv_len]
        keys = k_cache[slots].float().repeat_interleave(group, dim=1)  # (L, H, D)
        values = v_cache[slots].float().repeat_interleave(group, dim=1)
        for j in range(q_len):
            pos = kv_len - q_len + j
            scores = torch.einsum("hd,lhd->hl", q[start + j].float(), keys[:pos + 1]) * scale
            out[start + j] = torch.einsum("hl,lhd->hd", scores.softmax(-1), values[:pos + 1])
    return out.to(q.dtype)


def naive_plan_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         plan: AttentionPlan, scale: float) -> torch.Tensor:
    """Extend rows first, then decode rows, each through `naive_attention`."""
    n = plan.num_extend_tokens
    outs = []
    if plan.extend is not None:
        outs.append(naive_attention(q[:n], k_cache, v_cache, plan.extend, scale))
    if plan.decode is not None:
        outs.append(naive_attention(q[n:], k_cache, v_cache, plan.decode, scale))
    return torch.cat(outs)


def pack_bitmask(allowed: torch.Tensor) -> torch.Tensor:
    """(B, V) bool -> (B, ceil(V/32)) int32, bit t % 32 of word t // 32 set = token t allowed."""
    B, V = allowed.shape
    words = math.ceil(V / 32)
    bits = torch.zeros(B, words * 32, dtype=torch.int64)
    bits[:, :V] = allowed.long()
    packed = (bits.view(B, words, 32) << torch.arange(32)).sum(-1)  # (B, W) in [0, 2**32)
    return torch.where(packed >= 2**31, packed - 2**32, packed).to(torch.int32)


def naive_bitmask(logits: torch.Tensor, bitmask: torch.Tensor,
                  rows: list[int] | None = None) -> torch.Tensor:
    """The reference loop of bitmask.py on a copy."""
    out = logits.clone()
    for r, b in enumerate(range(len(bitmask)) if rows is None else rows):
        for t in range(logits.shape[1]):
            word = t // 32
            bit = (int(bitmask[r, word]) >> (t % 32)) & 1 if word < bitmask.shape[1] else 0
            if not bit:
                out[b, t] = float("-inf")
    return out
