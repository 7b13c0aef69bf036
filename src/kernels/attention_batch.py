"""Where a step's queries and keys are: the batch description every attention kernel reads.

A step's batch is flattened: the new tokens of every sequence are concatenated into one
[T, H, D] query tensor, sequence `i` owning rows `q_starts[i]:q_starts[i+1]`. Their K/V have
already been written into the pool; sequence `i` attends to `kv_lens[i]` slots listed in
`slot_table[i, :kv_lens[i]]` (cached prefix first, then its new tokens), causally: its query
row `j` sits at position `kv_lens[i] - q_lens[i] + j` and sees keys at positions <= that.

The Triton kernels read the lengths and the slot table directly. The torch path pads every
sequence to the longest query and key length and needs a padding index, a mask and a gather
buffer; those are built on first use and kept for the step, so all layers share them. A
batch whose query lengths differ widely (a long prefill chunk beside short extends) would
pad every sequence to the long chunk, so it is split by query length first
(`query_groups`), each part padded on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(slots=True)
class AttentionBatch:
    """Where each sequence's queries and keys are. Built once per step, shared by all layers."""

    q_starts: torch.Tensor  # (B+1,) int64, cumulative query rows
    q_lens: torch.Tensor  # (B,) int64
    kv_lens: torch.Tensor  # (B,) int64, keys per sequence incl. the new tokens
    slot_table: torch.Tensor  # (B, >= max_kv_len) int64, pool slots; padding points at slot 0
    max_q_len: int
    max_kv_len: int
    total_q_len: int | None = None  # sum of q_lens when known on the host (no device sync)
    # Built by `prepare_torch` for the torch path (None until then):
    q_pad_index: torch.Tensor | None = None  # (B, max_q_len) rows of q to gather, clamped
    q_valid: torch.Tensor | None = None  # (B, max_q_len) bool
    mask: torch.Tensor | None = None  # (B, 1, max_q_len, max_kv_len) bool, True = attend
    bias: torch.Tensor | None = None  # `mask` as 0 / -inf in the attention dtype (`mask_bias`)
    flat_slots: torch.Tensor | None = None  # (B * max_kv_len,) int64, contiguous
    kv_buffers: tuple[torch.Tensor, torch.Tensor] | None = None  # flat, see `gather_kv`
    # Built by `query_groups`: [(query rows, the part's batch)], [] when not split
    parts: list[tuple[torch.Tensor, AttentionBatch]] | None = None

    @property
    def num_seqs(self) -> int:
        return self.q_lens.numel()

    @property
    def num_tokens(self) -> int:
        return int(self.q_starts[-1]) if self.total_q_len is None else self.total_q_len

    @property
    def is_decode(self) -> bool:
        return self.max_q_len == 1

    @classmethod
    def from_table(cls, q_lens: list[int], kv_lens: list[int],
                   slot_table: torch.Tensor) -> AttentionBatch:
        """From per-sequence lengths and a (B, >= max kv_len) slot table."""
        device = slot_table.device
        q = torch.tensor(q_lens, dtype=torch.int64, device=device)
        starts = torch.zeros(len(q_lens) + 1, dtype=torch.int64, device=device)
        torch.cumsum(q, 0, out=starts[1:])
        max_kv = max(kv_lens)
        return cls(starts, q, torch.tensor(kv_lens, dtype=torch.int64, device=device),
                   slot_table[:, :max_kv], max(q_lens), max_kv, sum(q_lens))

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
        table = torch.zeros(len(q_lens), max(kv_lens), dtype=torch.int64)
        for i, slots in enumerate(kv_slots):
            table[i, : kv_lens[i]] = torch.as_tensor(slots, dtype=torch.int64)
        return cls.from_table(q_lens, kv_lens, table.to(device))

    def query_groups(self, ratio: int = 4) -> list[tuple[torch.Tensor, AttentionBatch]]:
        """The batch split into parts whose query lengths are within `ratio` of the part's
        longest, as (rows of the step's queries, the part's batch); [] when padding the whole
        batch costs at most twice the attention it computes (one call is cheaper then).
        Built once per step (host lists: the torch path runs on the CPU)."""
        if self.parts is not None:
            return self.parts
        q, kv = self.q_lens.tolist(), self.kv_lens.tolist()
        actual = sum(a * b for a, b in zip(q, kv))
        self.parts = []
        if len(q) == 1 or len(q) * self.max_q_len * self.max_kv_len <= 2 * actual:
            return self.parts
        order = sorted(range(len(q)), key=lambda i: -q[i])
        groups = [[order[0]]]
        for i in order[1:]:
            if q[i] * ratio >= q[groups[-1][0]]:
                groups[-1].append(i)
            else:
                groups.append([i])
        if len(groups) == 1:
            return self.parts
        starts = self.q_starts.tolist()
        for g in groups:
            rows = torch.cat([torch.arange(starts[i], starts[i + 1]) for i in g])
            part = AttentionBatch.from_table([q[i] for i in g], [kv[i] for i in g],
                                             self.slot_table[g])
            part.parts = []  # a part is not split again
            self.parts.append((rows.to(self.q_lens.device), part))
        return self.parts

    def prepare_torch(self) -> None:
        """Build the padding index and the causal mask the torch path uses (once per step)."""
        if self.mask is not None:
            return
        device = self.q_lens.device
        j = torch.arange(self.max_q_len, device=device)  # (Q,)
        self.q_valid = j[None, :] < self.q_lens[:, None]  # (B, Q)
        total = self.num_tokens
        self.q_pad_index = (self.q_starts[:-1, None] + j[None, :]).clamp_(max=total - 1)
        q_pos = (self.kv_lens - self.q_lens)[:, None] + j[None, :]  # (B, Q)
        k_pos = torch.arange(self.max_kv_len, device=device)  # (L,)
        mask = k_pos[None, None, :] <= q_pos[:, :, None]  # (B, Q, L); implies k_pos < kv_len
        # Padded query rows attend to key 0 so softmax stays finite; their output is dropped.
        mask |= (~self.q_valid)[:, :, None] & (k_pos == 0)[None, None, :]
        self.mask = mask[:, None]  # (B, 1, Q, L)
        self.flat_slots = self.slot_table[:, :self.max_kv_len].reshape(-1)  # (B*L,)

    def mask_bias(self, dtype: torch.dtype) -> torch.Tensor:
        """`mask` as an additive bias, 0 where attended and -inf elsewhere, in `dtype` (built
        once per step: SDPA would turn a boolean mask into this on every call, in every layer;
        the outputs are the same)."""
        self.prepare_torch()
        if self.bias is None or self.bias.dtype != dtype:
            self.bias = torch.zeros(self.mask.shape, dtype=dtype, device=self.mask.device)
            self.bias.masked_fill_(~self.mask, float("-inf"))
        return self.bias

    def gather_kv(self, k_cache: torch.Tensor,
                  v_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every sequence's keys and values, padded: two (B, max_kv_len, Hkv, D) tensors.

        They are written into `kv_buffers`, which this batch keeps for the step so every
        layer reuses them: a fresh tensor of tens of MB per layer costs more in page faults
        than the copy. The buffers are flat and only grow, so a runner may also hand one
        step's `kv_buffers` to the next step's batch. The returned tensors are overwritten by
        the next call."""
        self.prepare_torch()
        shape = (self.num_seqs, self.max_kv_len, *k_cache.shape[1:])
        numel = math.prod(shape)
        bufs = self.kv_buffers
        if (bufs is None or bufs[0].numel() < numel or bufs[0].dtype != k_cache.dtype
                or bufs[0].device != k_cache.device):
            capacity = numel + numel // 4  # headroom: contexts grow a token per step
            bufs = self.kv_buffers = (k_cache.new_empty(capacity), v_cache.new_empty(capacity))
        k_buf, v_buf = (b[:numel].view(shape) for b in bufs)
        torch.index_select(k_cache, 0, self.flat_slots, out=k_buf.view(-1, *shape[2:]))
        torch.index_select(v_cache, 0, self.flat_slots, out=v_buf.view(-1, *shape[2:]))
        return k_buf, v_buf


@dataclass(slots=True)
class AttentionPlan:
    """A step's attention: `extend` covers the first `num_extend_tokens` query rows, `decode`
    the rest (one row per sequence). Either may be None."""

    extend: AttentionBatch | None
    decode: AttentionBatch | None

    @property
    def num_extend_tokens(self) -> int:
        return 0 if self.extend is None else self.extend.num_tokens

    @classmethod
    def single(cls, batch: AttentionBatch) -> AttentionPlan:
        return cls(None, batch) if batch.is_decode else cls(batch, None)
