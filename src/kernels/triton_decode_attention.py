"""Decode attention over the KV pool in Triton: one query per sequence, split-K.

Same op as `attention.decode_attention_ref`. Sequences of different lengths share one
launch; each reads its keys through its row of the slot table. Long contexts are split:

    stage 1, one program per (sequence b, KV head g, split s):
        for the keys of split s (a 1/num_splits share of kv_lens[b], in BLOCK_N blocks):
            online softmax of the G = H/Hkv query heads of g against them (fp32)
        -> partial output o[b, h, s] (normalized) and its log-sum-exp lse[b, h, s]
    stage 2, one program per (sequence b, query head h):
        out[b, h] = sum_s o[b, h, s] * exp(lse[b, h, s] - LSE),  LSE = logsumexp_s lse[b, h, s]

The G query heads of a KV head are one tile (padded to BLOCK_H rows), so each key block is
read once per KV head, not once per query head. Matmul operands are in `dot_dtype` (the
pool's 16-bit dtype on a GPU, else fp32 at IEEE precision); softmax statistics and
accumulators are fp32, and exponentials are base 2 with log2(e) folded into the scale.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .attention_batch import AttentionBatch
from .triton_common import LOG2_E, dot_dtype, dot_precision, key_block

MIN_KEYS_PER_SPLIT = 256
MAX_SPLITS = 16


@triton.jit
def _split_kernel(Q, K, V, Slots, KvLens, MidO, MidLse, scale_log2,
                  stride_qb, stride_qh, stride_ks, stride_kh, stride_vs, stride_vh, stride_tb,
                  GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, DOT: tl.constexpr,
                  PRECISION: tl.constexpr,
                  NUM_SPLITS: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
                  BLOCK_N: tl.constexpr):
    b = tl.program_id(0)
    g = tl.program_id(1)
    split = tl.program_id(2)
    kv_len = tl.load(KvLens + b)
    split_len = tl.cdiv(kv_len, NUM_SPLITS)
    start = split * split_len
    end = tl.minimum(start + split_len, kv_len)

    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    heads = g * GROUP + offs_h  # (BLOCK_H,) query heads of KV head g
    h_ok = offs_h < GROUP
    d_ok = offs_d < HEAD_DIM
    q = tl.load(Q + b * stride_qb + heads[:, None] * stride_qh + offs_d[None, :],
                mask=h_ok[:, None] & d_ok[None, :], other=0.0).to(DOT)  # (BH, BD)

    m = tl.full([BLOCK_H], float("-inf"), tl.float32)  # running max, log2 units
    l = tl.zeros([BLOCK_H], tl.float32)  # running sum of exp2(s - m)
    acc = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    for n0 in range(start, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < end
        slots = tl.load(Slots + b * stride_tb + offs_n, mask=n_ok, other=0)  # (BN,) int64
        kv_ok = n_ok[:, None] & d_ok[None, :]
        k = tl.load(K + slots[:, None] * stride_ks + g * stride_kh + offs_d[None, :],
                    mask=kv_ok, other=0.0).to(DOT)  # (BN, BD)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale_log2  # (BH, BN)
        s = tl.where(n_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        alpha = tl.exp2(m - m_new)
        p = tl.exp2(s - m_new[:, None])
        v = tl.load(V + slots[:, None] * stride_vs + g * stride_vh + offs_d[None, :],
                    mask=kv_ok, other=0.0).to(DOT)  # (BN, BD)
        acc = acc * alpha[:, None] + tl.dot(p.to(DOT), v, input_precision=PRECISION)
        l = l * alpha + tl.sum(p, 1)
        m = m_new

    if end > start:  # an empty split (short sequence) writes nothing; stage 2 skips it
        mid = (b * GROUP * tl.num_programs(1) + heads) * NUM_SPLITS + split  # (BH,)
        tl.store(MidO + mid[:, None] * HEAD_DIM + offs_d[None, :], acc / l[:, None],
                 mask=h_ok[:, None] & d_ok[None, :])
        tl.store(MidLse + mid, m + tl.log2(l), mask=h_ok)


@triton.jit
def _merge_kernel(MidO, MidLse, KvLens, Out, stride_ob, stride_oh,
                  HEAD_DIM: tl.constexpr, NUM_SPLITS: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    h = tl.program_id(1)
    kv_len = tl.load(KvLens + b)
    split_len = tl.cdiv(kv_len, NUM_SPLITS)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    row = (b * tl.num_programs(1) + h) * NUM_SPLITS

    m = float("-inf")
    l = 0.0
    acc = tl.zeros([BLOCK_D], tl.float32)
    for split in range(NUM_SPLITS):
        if split * split_len < kv_len:
            lse = tl.load(MidLse + row + split)
            o = tl.load(MidO + (row + split) * HEAD_DIM + offs_d, mask=d_ok, other=0.0)
            m_new = tl.maximum(m, lse)
            alpha = tl.exp2(m - m_new)
            w = tl.exp2(lse - m_new)
            acc = acc * alpha + o * w
            l = l * alpha + w
            m = m_new
    tl.store(Out + b * stride_ob + h * stride_oh + offs_d,
             (acc / l).to(Out.dtype.element_ty), mask=d_ok)


def num_kv_splits(batch: AttentionBatch, num_kv_heads: int) -> int:
    """Enough splits that a long context keeps many programs busy, each reading at least
    MIN_KEYS_PER_SPLIT keys; one split when the batch alone fills the GPU."""
    if batch.num_seqs * num_kv_heads >= 256:
        return 1
    return max(1, min(MAX_SPLITS, triton.cdiv(batch.max_kv_len, MIN_KEYS_PER_SPLIT)))


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     batch: AttentionBatch, scale: float, *, out: torch.Tensor | None = None,
                     num_splits: int | None = None, block_n: int | None = None) -> torch.Tensor:
    """q (B, H, D), k_cache/v_cache (num_slots, Hkv, D) -> (B, H, D) in q's dtype (written
    into `out` when given). `num_splits`/`block_n` override the defaults (tests use small
    ones to reach every path on short contexts). The split count depends only on the batch
    size and `batch.max_kv_len`, so a CUDA graph captured with a fixed max_kv_len keeps one
    grid for every context up to it (splits past a short sequence's keys are skipped)."""
    B, H, D = q.shape
    num_kv_heads = k_cache.shape[1]
    if H % num_kv_heads or q.stride(-1) != 1 or k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("decode_attention needs H % Hkv == 0 and unit stride on the head dim")
    group = H // num_kv_heads
    splits = num_splits or num_kv_splits(batch, num_kv_heads)
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device) if out is None else out
    mid_o = torch.empty(B, H, splits, D, dtype=torch.float32, device=q.device)
    mid_lse = torch.empty(B, H, splits, dtype=torch.float32, device=q.device)
    block_d = triton.next_power_of_2(D)
    _split_kernel[(B, num_kv_heads, splits)](
        q, k_cache, v_cache, batch.slot_table, batch.kv_lens, mid_o, mid_lse, scale * LOG2_E,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1),
        v_cache.stride(0), v_cache.stride(1), batch.slot_table.stride(0),
        GROUP=group, HEAD_DIM=D, DOT=dot_dtype(k_cache), PRECISION=dot_precision(k_cache),
        NUM_SPLITS=splits,
        BLOCK_H=max(16, triton.next_power_of_2(group)),  # tl.dot needs >= 16 rows on a GPU
        BLOCK_D=block_d, BLOCK_N=block_n or key_block(D))
    _merge_kernel[(B, H)](mid_o, mid_lse, batch.kv_lens, out, out.stride(0), out.stride(1),
                          HEAD_DIM=D, NUM_SPLITS=splits, BLOCK_D=block_d)
    return out
