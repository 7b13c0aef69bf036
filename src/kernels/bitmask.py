"""Grammar token masks applied to logits: torch reference.

A bitmask row packs one bit per token into int32 words: token t is allowed when bit `t % 32`
of word `t // 32` is set. As a reference loop:

    for r, b in enumerate(rows):
        for t in range(vocab):
            if not (bitmask[r, t // 32] >> (t % 32)) & 1:
                logits[b, t] = -inf

Tokens past the bitmask's last word are forbidden.
"""

from __future__ import annotations

import sys

import torch

_BIT = torch.arange(32, dtype=torch.int32)
# Byte value -> the caps of its 8 tokens: +inf where the bit is set (allowed), -inf where not.
_CAP_BY_BYTE = torch.where(((torch.arange(256)[:, None] >> torch.arange(8)) & 1).bool(),
                           float("inf"), float("-inf"))  # (256, 8) float32
_LITTLE_ENDIAN = sys.byteorder == "little"


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, W) int32 -> (B, vocab_size) bool, True = allowed (False past the last word)."""
    bits = (bitmask[:, :, None] >> _BIT.to(bitmask.device)) & 1  # (B, W, 32)
    allowed = bits.reshape(bitmask.shape[0], -1)[:, :vocab_size].bool()
    return torch.nn.functional.pad(allowed, (0, vocab_size - allowed.shape[1]))


def apply_token_bitmask_ref(logits: torch.Tensor, bitmask: torch.Tensor,
                            rows: torch.Tensor | None = None) -> None:
    """In place: logits (B, V) get -inf where the bitmask (R, W) forbids a token. `rows` (R,)
    names the logits rows the bitmask rows belong to (default: all rows, R == B); rows not
    named are untouched."""
    caps = _token_caps(bitmask, logits.shape[-1], logits.dtype)  # (R, V)
    # min(logit, cap) is the masked_fill without a branch per token (a random mask costs
    # masked_fill_ a mispredicted branch every other token, ~8x slower).
    if rows is None:
        torch.minimum(logits, caps, out=logits)
    else:
        rows = rows.long()
        logits.index_copy_(0, rows, torch.minimum(logits.index_select(0, rows), caps))


def _token_caps(bitmask: torch.Tensor, vocab: int, dtype: torch.dtype) -> torch.Tensor:
    """(R, W) int32 -> (R, vocab) of +inf (allowed) / -inf (forbidden), in `dtype`."""
    R, W = bitmask.shape
    if not _LITTLE_ENDIAN:
        allowed = unpack_bitmask(bitmask, vocab)
        return torch.where(allowed, float("inf"), float("-inf")).to(dtype)
    # In little-endian memory, byte j of a word holds tokens 8j..8j+7 of that word, so the
    # bytes in order cover the tokens in order.
    table = _CAP_BY_BYTE.to(device=bitmask.device, dtype=dtype)
    caps = table.index_select(0, bitmask.contiguous().view(torch.uint8).view(-1).int())
    caps = caps.view(R, W * 32)[:, :vocab]  # (R, min(V, 32W))
    if caps.shape[1] < vocab:  # logits wider than the mask: the extra columns are forbidden
        caps = torch.nn.functional.pad(caps, (0, vocab - caps.shape[1]), value=float("-inf"))
    return caps
