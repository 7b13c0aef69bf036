"""Attention over the KV pool: the torch reference, which is also the CPU path.

The batch layout (flattened queries, slot table, causal positions) is described in
`attention_batch.py`. As a reference loop:

    for i in range(B):
        for j in range(q_lens[i]):
            pos = kv_lens[i] - q_lens[i] + j
            keys = k_cache[slot_table[i, :pos + 1]]        # (pos+1, Hkv, D)
            out[q_starts[i] + j] = softmax(q · keys * scale) @ values
    # GQA: query head h reads KV head h // (H / Hkv)

The torch version pads every sequence to the longest query and key length in the batch and
runs one `scaled_dot_product_attention` call, so there is no Python loop over sequences.
A step mixing prefill chunks and decodes is split into an `AttentionPlan`: the extend
sequences' rows first, then one row per decoding sequence, so decodes are not padded to the
longest chunk; extends of widely different lengths are run in parts
(`AttentionBatch.query_groups`).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .attention_batch import AttentionBatch, AttentionPlan

# (q, k_cache, v_cache, batch, scale) -> out
AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, AttentionBatch, float],
                       torch.Tensor]


def attention_ref(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                  plan: AttentionPlan, scale: float) -> torch.Tensor:
    """q (T, H, D); k_cache/v_cache (num_slots, Hkv, D) -> out (T, H, D), q's dtype."""
    return run_plan(extend_attention_ref, decode_attention_ref, q, k_cache, v_cache, plan, scale)


def run_plan(extend_fn: AttentionFn, decode_fn: AttentionFn, q: torch.Tensor,
             k_cache: torch.Tensor, v_cache: torch.Tensor, plan: AttentionPlan,
             scale: float) -> torch.Tensor:
    """Run a plan's extend part and decode part with the given implementations."""
    if plan.extend is None:
        return decode_fn(q, k_cache, v_cache, plan.decode, scale)
    if plan.decode is None:
        return extend_fn(q, k_cache, v_cache, plan.extend, scale)
    n = plan.num_extend_tokens
    return torch.cat((extend_fn(q[:n], k_cache, v_cache, plan.extend, scale),
                      decode_fn(q[n:], k_cache, v_cache, plan.decode, scale)))


def decode_attention_ref(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         batch: AttentionBatch, scale: float) -> torch.Tensor:
    """One query per sequence: q (B, H, D) -> (B, H, D)."""
    k, v = batch.gather_kv(k_cache, v_cache)  # (B, L, Hkv, D) each
    return _grouped_decode(q, k, v, batch.mask_bias(q.dtype), scale)


def decode_attention_traced(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            slot_table: torch.Tensor, mask: torch.Tensor,
                            scale: float) -> torch.Tensor:
    """`decode_attention_ref` on plain tensors, for a compiler to trace: slot_table (B, L),
    mask (B, 1, 1, L) bool -> (B, H, D). Gathers without the reusable buffers (a compiled
    graph plans its own memory)."""
    return _grouped_decode(q, k_cache[slot_table], v_cache[slot_table], mask, scale)


def _grouped_decode(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                    scale: float) -> torch.Tensor:
    """q (B, H, D), k/v (B, L, Hkv, D), mask (B, 1, 1, L) bool or additive. GQA without
    copying K/V: the H/Hkv query heads sharing a KV head become that head's query rows (one
    query per sequence has no causal order)."""
    B, H, D = q.shape
    q = q.unflatten(1, (k.shape[2], H // k.shape[2]))  # (B, Hkv, G, D)
    out = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2),
                                         attn_mask=mask, scale=scale)  # (B, Hkv, G, D)
    return out.reshape(B, H, D)


def in_query_groups(fn: AttentionFn, q: torch.Tensor, k_cache: torch.Tensor,
                    v_cache: torch.Tensor, batch: AttentionBatch, scale: float
                    ) -> torch.Tensor | None:
    """A padded extend implementation `fn` run part by part over a batch whose query lengths
    differ widely (`AttentionBatch.query_groups`), so no part is padded to another's longest
    chunk; None when the batch runs whole."""
    parts = batch.query_groups()
    if not parts:
        return None
    out = torch.empty_like(q)
    for rows, part in parts:
        out[rows] = fn(q[rows], k_cache, v_cache, part, scale)
    return out


def extend_attention_ref(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         batch: AttentionBatch, scale: float) -> torch.Tensor:
    """Several new tokens per sequence, attending to the cached prefix and causally to
    themselves: q (T, H, D) -> (T, H, D)."""
    out = in_query_groups(extend_attention_ref, q, k_cache, v_cache, batch, scale)
    if out is not None:
        return out
    gqa = q.shape[1] != k_cache.shape[1]
    if batch.num_seqs == 1 and batch.max_q_len == batch.max_kv_len:
        # A whole prompt with nothing cached: plain causal attention, no padding, no mask.
        slots = batch.slot_table[0, :batch.max_kv_len]
        k = k_cache.index_select(0, slots).transpose(0, 1)[None]  # (1, Hkv, L, D)
        v = v_cache.index_select(0, slots).transpose(0, 1)[None]
        out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k, v, is_causal=True,
                                             scale=scale, enable_gqa=gqa)  # (1, H, T, D)
        return out[0].transpose(0, 1)
    k, v = batch.gather_kv(k_cache, v_cache)  # (B, L, Hkv, D) each
    qp = q[batch.q_pad_index].transpose(1, 2)  # (B, H, Q, D)
    out = F.scaled_dot_product_attention(qp, k.transpose(1, 2), v.transpose(1, 2),
                                         attn_mask=batch.mask_bias(q.dtype), scale=scale,
                                         enable_gqa=gqa)  # (B, H, Q, D)
    return out.transpose(1, 2)[batch.q_valid]  # (T, H, D), rows in q's order
