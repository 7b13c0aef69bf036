"""Extend (prefill) attention over the KV pool in Triton: new tokens attend to the cached
prefix and causally to themselves.

Same op as `attention.extend_attention_ref`. The new tokens' K/V are already in the pool, so
a sequence's keys are just its slot-table row: prefix first, then the new tokens.

    one program per (sequence b, query head h, block of BLOCK_M new tokens):
        q rows j (positions p_j = kv_lens[b] - q_lens[b] + j)
        for key blocks up to the block's last position (in BLOCK_N blocks):
            s = q · k * scale, masked to keys at positions <= p_j
            online softmax: running max m, sum l and output acc in fp32
            (each block's log-sum-exp merged into the running one)
        out rows = acc / l

Matmul operands are in `dot_dtype` (the pool's 16-bit dtype on a GPU, else fp32 at IEEE
precision); softmax statistics and accumulators are fp32, and exponentials are base 2 with
log2(e) folded into the scale. Each program serves one query head; the H/Hkv heads of a KV
head each read its keys (a grouped tile as in the decode kernel would read them once).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .attention_batch import AttentionBatch
from .triton_common import LOG2_E, dot_dtype, dot_precision, key_block


@triton.jit
def _extend_kernel(Q, K, V, Out, Slots, QStarts, QLens, KvLens, scale_log2,
                   stride_qt, stride_qh, stride_ks, stride_kh, stride_vs, stride_vh,
                   stride_ot, stride_oh, stride_tb,
                   GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, DOT: tl.constexpr,
                   PRECISION: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    b = tl.program_id(0)
    h = tl.program_id(1)
    block = tl.program_id(2)
    q_len = tl.load(QLens + b)
    if block * BLOCK_M < q_len:
        kv_len = tl.load(KvLens + b)
        q_start = tl.load(QStarts + b)
        g = h // GROUP
        offs_m = block * BLOCK_M + tl.arange(0, BLOCK_M)  # (BM,) new-token index j
        offs_d = tl.arange(0, BLOCK_D)
        m_ok = offs_m < q_len
        d_ok = offs_d < HEAD_DIM
        q_pos = kv_len - q_len + offs_m  # (BM,) absolute positions
        rows = q_start + offs_m
        q = tl.load(Q + rows[:, None] * stride_qt + h * stride_qh + offs_d[None, :],
                    mask=m_ok[:, None] & d_ok[None, :], other=0.0).to(DOT)  # (BM, BD)

        m = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        # Keys past the block's last valid position are masked for every row: stop there.
        end = tl.minimum(kv_len, kv_len - q_len + (block + 1) * BLOCK_M)
        for n0 in range(0, end, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_ok = offs_n < end
            slots = tl.load(Slots + b * stride_tb + offs_n, mask=n_ok, other=0)  # (BN,) int64
            kv_ok = n_ok[:, None] & d_ok[None, :]
            k = tl.load(K + slots[:, None] * stride_ks + g * stride_kh + offs_d[None, :],
                        mask=kv_ok, other=0.0).to(DOT)  # (BN, BD)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale_log2  # (BM, BN)
            # Key 0 is visible to every row, so each row's max is finite after block one.
            s = tl.where(n_ok[None, :] & (offs_n[None, :] <= q_pos[:, None]), s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, 1))
            alpha = tl.exp2(m - m_new)
            p = tl.exp2(s - m_new[:, None])
            v = tl.load(V + slots[:, None] * stride_vs + g * stride_vh + offs_d[None, :],
                        mask=kv_ok, other=0.0).to(DOT)  # (BN, BD)
            acc = acc * alpha[:, None] + tl.dot(p.to(DOT), v, input_precision=PRECISION)
            l = l * alpha + tl.sum(p, 1)
            m = m_new
        tl.store(Out + rows[:, None] * stride_ot + h * stride_oh + offs_d[None, :],
                 (acc / l[:, None]).to(Out.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :])


def extend_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     batch: AttentionBatch, scale: float, *, out: torch.Tensor | None = None,
                     block_m: int = 64, block_n: int | None = None) -> torch.Tensor:
    """q (T, H, D), k_cache/v_cache (num_slots, Hkv, D) -> (T, H, D) in q's dtype (written
    into `out` when given). `block_m`/`block_n` override the tile sizes (tests use small
    ones to reach several blocks on short sequences)."""
    T, H, D = q.shape
    num_kv_heads = k_cache.shape[1]
    if H % num_kv_heads or q.stride(-1) != 1 or k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("extend_attention needs H % Hkv == 0 and unit stride on the head dim")
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device) if out is None else out
    grid = (batch.num_seqs, H, triton.cdiv(batch.max_q_len, block_m))
    _extend_kernel[grid](
        q, k_cache, v_cache, out, batch.slot_table, batch.q_starts, batch.q_lens, batch.kv_lens,
        scale * LOG2_E, q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1),
        v_cache.stride(0), v_cache.stride(1), out.stride(0), out.stride(1),
        batch.slot_table.stride(0),
        GROUP=H // num_kv_heads, HEAD_DIM=D, DOT=dot_dtype(k_cache),
        PRECISION=dot_precision(k_cache), BLOCK_M=block_m,
        BLOCK_D=triton.next_power_of_2(D), BLOCK_N=block_n or key_block(D))
    return out
