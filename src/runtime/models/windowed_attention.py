"""Attention over the KV pool with a sliding window and tanh soft-capping (Gemma 3).

The same batch layout as kernels.attention (flattened queries, slot table, causal positions),
plus two optional changes, as a reference loop:

    pos = kv_lens[i] - q_lens[i] + j                      # query row j of sequence i
    keys at positions k with  k <= pos  and  pos - k < window    (window None: no limit)
    scores = q · keys * scale;  scores = cap * tanh(scores / cap)   (cap None: unchanged)

It is the torch path: every sequence padded to the longest query and key length, one masked
product per part of the plan (extends of widely different lengths in parts, as
`kernels.attention` runs them). The window is a mask only (keys outside it stay in the pool), so
it is exact, not a memory saving.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import kernels
from ...kernels import AttentionBatch, AttentionPlan
from ...kernels.attention import in_query_groups


def windowed_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                       plan: AttentionPlan, scale: float, window: int | None,
                       softcap: float | None) -> torch.Tensor:
    """q (T, H, D); k_cache/v_cache (num_slots, Hkv, D) -> out (T, H, D), q's dtype."""
    if window is None and softcap is None:
        return kernels.attention(q, k_cache, v_cache, plan, scale)

    def part(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
             batch: AttentionBatch, scale: float) -> torch.Tensor:
        out = in_query_groups(part, q, k_cache, v_cache, batch, scale)
        if out is not None:
            return out
        return _padded_attention(q, k_cache, v_cache, batch, scale, window, softcap)

    return kernels.run_plan(part, part, q, k_cache, v_cache, plan, scale)


def _padded_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                      batch: AttentionBatch, scale: float, window: int | None,
                      softcap: float | None) -> torch.Tensor:
    k, v = batch.gather_kv(k_cache, v_cache)  # (B, L, Hkv, D) each; builds the causal mask
    mask = batch.mask  # (B, 1, Q, L)
    if window is not None:
        mask = mask & _window_mask(batch, window)
    qp = q[batch.q_pad_index].transpose(1, 2)  # (B, H, Q, D)
    k, v = k.transpose(1, 2), v.transpose(1, 2)  # (B, Hkv, L, D)
    if softcap is None:
        out = F.scaled_dot_product_attention(qp, k, v, attn_mask=mask, scale=scale,
                                             enable_gqa=qp.shape[1] != k.shape[1])
    else:
        group = qp.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)  # (B, H, L, D)
        scores = (qp.float() @ k.float().transpose(-1, -2)) * scale  # (B, H, Q, L)
        scores = softcap * torch.tanh(scores / softcap)
        probs = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        out = (probs @ v.float()).to(q.dtype)
    return out.transpose(1, 2)[batch.q_valid]  # (T, H, D), rows in q's order


def _window_mask(batch: AttentionBatch, window: int) -> torch.Tensor:
    """(B, 1, Q, L) bool: key position k within `window` of query position q (q - k < window).
    Padded query rows keep key 0, as the causal mask gives them, so their softmax stays finite."""
    j = torch.arange(batch.max_q_len, device=batch.q_lens.device)
    q_pos = (batch.kv_lens - batch.q_lens)[:, None] + j[None, :]  # (B, Q)
    k_pos = torch.arange(batch.max_kv_len, device=q_pos.device)  # (L,)
    near = k_pos[None, None, :] > q_pos[:, :, None] - window  # (B, Q, L)
    near |= (~batch.q_valid)[:, :, None] & (k_pos == 0)[None, None, :]
    return near[:, None]
