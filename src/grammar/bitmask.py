"""Packed token bitmasks (int32 [batch, ceil(V/32)]), as xgrammar lays them out.

Token i is allowed iff bit `i % 32` of word `i // 32` is set. A row of all ones (-1) allows
everything (an unconstrained sequence in a mixed batch). The engine allocates one buffer per
step (a torch int32 tensor's `.numpy()` shares memory), matchers fill their rows, and
`tines.kernels.apply_token_bitmask` masks the logits in one op. The numpy helpers here are
for tests and references.
"""

from __future__ import annotations

import numpy as np


def num_words(vocab_size: int) -> int:
    return (vocab_size + 31) // 32


def allocate_token_bitmask(batch_size: int, vocab_size: int) -> np.ndarray:
    """int32 [batch_size, ceil(vocab_size/32)], all tokens allowed."""
    return np.full((batch_size, num_words(vocab_size)), -1, dtype=np.int32)


def ids_to_bitmask(ids, vocab_size: int) -> np.ndarray:
    """int32 [ceil(V/32)] with exactly the given token ids set."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) < 256:  # sparse: set bits word by word
        words = np.zeros(num_words(vocab_size), dtype=np.uint32)
        np.bitwise_or.at(words, ids >> 5, np.left_shift(1, ids & 31).astype(np.uint32))
        return words.view(np.int32)
    bits = np.zeros(num_words(vocab_size) * 32, dtype=bool)
    bits[ids] = True
    return np.packbits(bits, bitorder="little").view("<i4").astype(np.int32)


def bool_to_bitmask(mask: np.ndarray) -> np.ndarray:
    """bool [..., V] → int32 [..., ceil(V/32)]."""
    mask = np.asarray(mask, dtype=bool)
    v = mask.shape[-1]
    pad = num_words(v) * 32 - v
    if pad:
        mask = np.concatenate([mask, np.zeros(mask.shape[:-1] + (pad,), dtype=bool)], axis=-1)
    packed = np.packbits(mask, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<i4").astype(np.int32)


def bitmask_to_bool(bitmask: np.ndarray, vocab_size: int) -> np.ndarray:
    """int32 [..., W] → bool [..., vocab_size]."""
    b = np.ascontiguousarray(np.asarray(bitmask, dtype=np.int32)).astype("<i4")
    bits = np.unpackbits(b.view(np.uint8), axis=-1, bitorder="little")
    return bits[..., :vocab_size].astype(bool)


def apply_token_bitmask_numpy(logits: np.ndarray, bitmask: np.ndarray) -> np.ndarray:
    """Reference: logits[b, i] = -inf where bit i of row b is clear (in place; returned)."""
    allowed = bitmask_to_bool(bitmask, logits.shape[-1])
    logits[~allowed] = -np.inf
    return logits
