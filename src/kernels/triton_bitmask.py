"""Grammar token masks applied to logits in Triton, in place.

Same op as `bitmask.apply_token_bitmask_ref`: one program per (bitmask row, block of
WORDS words); it unpacks the block as a (WORDS, 32) tile of bits and stores -inf into the
logits of the forbidden tokens only (the logits are never read).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _bitmask_kernel(Logits, Bitmask, Rows, vocab, num_words, stride_l, stride_b,
                    HAS_ROWS: tl.constexpr, WORDS: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    if HAS_ROWS:
        row = tl.load(Rows + r).to(tl.int64)
    else:
        row = r
    words = tl.program_id(1) * WORDS + tl.arange(0, WORDS)  # (WORDS,)
    packed = tl.load(Bitmask + r * stride_b + words, mask=words < num_words, other=0)
    bits = tl.arange(0, 32)
    tokens = words[:, None] * 32 + bits[None, :]  # (WORDS, 32)
    forbidden = ((packed[:, None] >> bits[None, :]) & 1) == 0  # words past the mask: 0 bits
    neg_inf = tl.full([WORDS, 32], float("-inf"), tl.float32)
    tl.store(Logits + row * stride_l + tokens, neg_inf, mask=forbidden & (tokens < vocab))


def apply_token_bitmask(logits: torch.Tensor, bitmask: torch.Tensor,
                        rows: torch.Tensor | None = None, words_per_block: int = 128) -> None:
    """In place: logits (B, V) get -inf where the bitmask (R, W) int32 forbids a token;
    `rows` (R,) names the logits row of each bitmask row (default: row r, R == B)."""
    R, num_words = bitmask.shape
    vocab = logits.shape[-1]
    if logits.stride(-1) != 1 or bitmask.stride(-1) != 1:
        raise ValueError("apply_token_bitmask needs unit stride on the vocab dim")
    if R == 0:
        return
    grid = (R, triton.cdiv(vocab, 32 * words_per_block))
    _bitmask_kernel[grid](logits, bitmask, bitmask if rows is None else rows, vocab, num_words,
                          logits.stride(0), bitmask.stride(0), HAS_ROWS=rows is not None,
                          WORDS=words_per_block)
