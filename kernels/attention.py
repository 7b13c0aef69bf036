"""Attention over the KV pool: the torch reference, which is also the CPU path.

A step's batch is flattened: the new tokens of every sequence are concatenated into one
[T, H, D] query tensor, sequence `i` owning rows `q_starts[i]:q_starts[i+1]`. Their K/V have
already been written into the pool; sequence `i` attends to `kv_lens[i]` slots listed in
`slot_table[i, :kv_lens[i]]` (cached prefix first, then its new tokens), causally: its query
row `j` sits at position `kv_lens[i] - q_lens[i] + j` and sees keys at positions <= that.

As a reference loop:

    for i in range(B):
        for j in range(q_lens[i]):
            pos = kv_lens[i] - q_lens[i] + j
            keys = k_cache[slot_table[i, :pos + 1]]        # (pos+1, Hkv, D)
            out[q_starts[i] + j] = softmax(q · keys * scale) @ values   (GQA: head h reads h // (H/Hkv))

The torch version pads every sequence to the longest query and key length in the batch and
runs one `scaled_dot_product_attention` call, so there is no Python loop over sequences.
A step mixing prefill chunks and decodes is split into an `AttentionPlan`: the extend
sequences' rows first, then one row per decoding sequence, so decodes are not padded to the
longest chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(slots=True)
class AttentionBatch:
    """Where each sequence's queries and keys are. Built once per step, shared by all layers."""

    q_starts: torch.Tensor  # (B+1,) int64, cumulative query rows
    q_lens: torch.Tensor  # (B,) int64
    kv_lens: torch.Tensor  # (B,) int64, keys per sequence incl. the new tokens
    slot_table: torch.Tensor  # (B, max_kv_len) int64, pool slots; padding points at slot 0
    max_q_len: int
    max_kv_len: int
    # Precomputed for the torch path (None until `prepare_torch` runs):
    q_pad_index: torch.Tensor | None = None  # (B, max_q_len) rows of q to gather, clamped
    q_valid: torch.Tensor | None = None  # (B, max_q_len) bool
    mask: torch.Tensor | None = None  # (B, 1, max_q_len, max_kv_len) bool, True = attend

    @property
    def num_seqs(self) -> int:
        return self.q_lens.numel()

    @property
    def is_decode(self) -> bool:
        return self.max_q_len == 1

    @classmethod
    def from_table(cls, q_lens: list[int], kv_lens: list[int], slot_table: torch.Tensor) -> AttentionBatch:
        """From per-sequence lengths and a (B, >= max kv_len) slot table."""
        device = slot_table.device
        q = torch.tensor(q_lens, dtype=torch.int64, device=device)
        starts = torch.zeros(len(q_lens) + 1, dtype=torch.int64, device=device)
        torch.cumsum(q, 0, out=starts[1:])
        max_kv = max(kv_lens)
        return cls(starts, q, torch.tensor(kv_lens, dtype=torch.int64, device=device),
                   slot_table[:, :max_kv], max(q_lens), max_kv)

    @classmethod
    def build(cls, q_lens: list[int], kv_slots: list[list[int]] | list[torch.Tensor],
              device: torch.device | str = "cpu") -> AttentionBatch:
        """From host lists: per sequence, its number of new tokens and all its kv slots
        (prefix + new tokens, in position order)."""
        if len(q_lens) != len(kv_slots) or not q_lens:
            raise ValueError("q_lens and kv_slots must be non-empty and of equal length")
        kv_lens = [len(s) for s in kv_slots]
        for q, kv in zip(q_lens, kv_lens):
            if not 1 <= q <= kv:
                raise ValueError(f"each sequence needs 1 <= q_len <= kv_len, got {q} and {kv}")
        max_kv = max(kv_lens)
        table = torch.zeros(len(q_lens), max_kv, dtype=torch.int64)
        for i, slots in enumerate(kv_slots):
            table[i, : kv_lens[i]] = torch.as_tensor(slots, dtype=torch.int64)
        q_lens_t = torch.tensor(q_lens, dtype=torch.int64)
        starts = torch.zeros(len(q_lens) + 1, dtype=torch.int64)
        torch.cumsum(q_lens_t, 0, out=starts[1:])
        batch = cls(starts.to(device), q_lens_t.to(device),
                    torch.tensor(kv_lens, dtype=torch.int64, device=device),
                    table.to(device), max(q_lens), max_kv)
        return batch

    def prepare_torch(self) -> None:
        """Build the padding index and the causal mask the torch path uses (once per step)."""
        if self.mask is not None:
            return
        device = self.q_lens.device
        j = torch.arange(self.max_q_len, device=device)  # (Q,)
        self.q_valid = j[None, :] < self.q_lens[:, None]  # (B, Q)
        total = int(self.q_starts[-1])
        self.q_pad_index = (self.q_starts[:-1, None] + j[None, :]).clamp_(max=total - 1)
        q_pos = (self.kv_lens - self.q_lens)[:, None] + j[None, :]  # (B, Q)
        k_pos = torch.arange(self.max_kv_len, device=device)  # (L,)
        mask = k_pos[None, None, :] <= q_pos[:, :, None]  # (B, Q, L); implies k_pos < kv_len
        # Padded query rows attend to key 0 so softmax stays finite; their output is dropped.
        mask |= (~self.q_valid)[:, :, None] & (k_pos == 0)[None, None, :]
        self.mask = mask[:, None]  # (B, 1, Q, L)


@dataclass(slots=True)
class AttentionPlan:
    """A step's attention: `extend` covers the first `num_extend_tokens` query rows, `decode`
    the rest (one row per sequence). Either may be None."""

    extend: AttentionBatch | None
    decode: AttentionBatch | None

    @property
    def num_extend_tokens(self) -> int:
        return 0 if self.extend is None else int(self.extend.q_starts[-1])

    @classmethod
    def single(cls, batch: AttentionBatch) -> AttentionPlan:
        return cls(None, batch) if batch.is_decode else cls(batch, None)


def attention_ref(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                  plan: AttentionPlan, scale: float) -> torch.Tensor:
    """q (T, H, D); k_cache/v_cache (num_slots, Hkv, D) -> out (T, H, D), q's dtype."""
    return run_plan(extend_attention_ref, decode_attention_ref, q, k_cache, v_cache, plan, scale)


def run_plan(extend_fn, decode_fn, q: torch.Tensor, k_cache: torch.Tensor,
             v_cache: torch.Tensor, plan: AttentionPlan, scale: float) -> torch.Tensor:
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
    batch.prepare_torch()
    k = k_cache[batch.slot_table].transpose(1, 2)  # (B, Hkv, L, D)
    v = v_cache[batch.slot_table].transpose(1, 2)
    out = F.scaled_dot_product_attention(
        q[:, :, None, :], k, v, attn_mask=batch.mask, scale=scale,
        enable_gqa=q.shape[1] != k.shape[1])  # (B, H, 1, D)
    return out[:, :, 0, :]


def extend_attention_ref(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         batch: AttentionBatch, scale: float) -> torch.Tensor:
    """Several new tokens per sequence, attending to the cached prefix and causally to
    themselves: q (T, H, D) -> (T, H, D)."""
    batch.prepare_torch()
    if batch.num_seqs == 1 and batch.max_q_len == batch.max_kv_len:
        # A whole prompt with nothing cached: plain causal attention, no gather, no mask.
        k = k_cache[batch.slot_table[0]].transpose(0, 1)[None]  # (1, Hkv, L, D)
        v = v_cache[batch.slot_table[0]].transpose(0, 1)[None]
        out = F.scaled_dot_product_attention(
            q.transpose(0, 1)[None], k, v, is_causal=True, scale=scale,
            enable_gqa=q.shape[1] != k.shape[1])  # (1, H, T, D)
        return out[0].transpose(0, 1)
    qp = q[batch.q_pad_index].transpose(1, 2)  # (B, H, Q, D)
    k = k_cache[batch.slot_table].transpose(1, 2)  # (B, Hkv, L, D)
    v = v_cache[batch.slot_table].transpose(1, 2)
    out = F.scaled_dot_product_attention(qp, k, v, attn_mask=batch.mask, scale=scale,
                                         enable_gqa=q.shape[1] != k.shape[1])  # (B, H, Q, D)
    return out.transpose(1, 2)[batch.q_valid]  # (T, H, D), rows in q's order


def store_kv_ref(k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor,
                 k: torch.Tensor, v: torch.Tensor) -> None:
    """Write k/v (T, Hkv, D) into the pool rows `slots` (T,)."""
    k_cache.index_copy_(0, slots, k.to(k_cache.dtype))
    v_cache.index_copy_(0, slots, v.to(v_cache.dtype))
