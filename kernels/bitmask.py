"""Grammar token masks applied to logits: torch reference.

A bitmask row packs one bit per token into int32 words: token t is allowed when bit `t % 32`
of word `t // 32` is set. As a reference loop:

    for b in rows:
        for t in range(vocab):
            if not (bitmask[b, t // 32] >> (t % 32)) & 1:
                logits[b, t] = -inf
"""

from __future__ import annotations

import torch

_BIT = torch.arange(32, dtype=torch.int32)


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, W) int32 -> (B, vocab_size) bool, True = allowed."""
    bits = (bitmask[:, :, None] >> _BIT.to(bitmask.device)) & 1  # (B, W, 32)
    return bits.reshape(bitmask.shape[0], -1)[:, :vocab_size].bool()


def apply_token_bitmask_ref(logits: torch.Tensor, bitmask: torch.Tensor,
                            rows: torch.Tensor | None = None) -> None:
    """In place: logits (B, V) get -inf where the bitmask (R, W) forbids a token. `rows` (R,)
    names the logits rows the bitmask rows belong to (default: all rows, R == B); rows not
    named are untouched."""
    vocab = logits.shape[-1]
    allowed = unpack_bitmask(bitmask, vocab)
    if allowed.shape[1] < vocab:  # logits wider than the mask: the extra columns are forbidden
        allowed = torch.nn.functional.pad(allowed, (0, vocab - allowed.shape[1]))
    if rows is None:
        logits.masked_fill_(~allowed, float("-inf"))
    else:
        logits[rows] = logits[rows].masked_fill(~allowed, float("-inf"))
