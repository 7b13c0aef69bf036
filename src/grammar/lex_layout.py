"""The vocabulary in lexicographic byte order, for walks that take the tokens starting
with one byte as one contiguous range (`wide_masks.py`). Built once per vocabulary:
`vocab.derived(LexLayout)`."""

from __future__ import annotations

import codecs

import numpy as np

from .vocabulary import TokenVocabulary

class LexLayout:
    """The vocabulary in lexicographic byte order. `ids[p]`: the token at position p;
    `pos_of_id`: id -> position (N for ids without bytes; padded to whole bitmask words);
    `first_start[b]`: first position whose token starts with a byte >= b; `mat`, `lens`:
    the bytes; `tail_bits` (4 x uint64 [N]): the set of bytes after the first, bytes
    64w..64w+63 in word w; `bad_utf8_tail` (uint64 [N], 0/1): those bytes hold a
    non-ASCII byte but are not valid UTF-8 (whole characters, the last one possibly
    cut short)."""

    def __init__(self, vocab: TokenVocabulary):
        keys, ids = vocab.sorted_tokens
        self.keys = keys
        self.num = n = len(ids)
        self.ids = np.array(ids, dtype=np.int64)
        self.pos_of_id = np.full(vocab.num_words * 32, n, dtype=np.int64)
        self.pos_of_id[self.ids] = np.arange(n)
        self.lens = np.array([len(k) for k in keys], dtype=np.int64)
        self.max_len = int(self.lens.max()) if n else 0
        flat = np.frombuffer(b"".join(keys), dtype=np.uint8)
        starts = np.cumsum(self.lens) - self.lens
        col = np.arange(len(flat)) - np.repeat(starts, self.lens)  # byte index in its token
        row = np.repeat(np.arange(n), self.lens)
        self.mat = np.zeros((n, max(self.max_len, 1)), dtype=np.uint8)  # (N, max_len)
        self.mat[row, col] = flat
        self.first_start = np.searchsorted(self.mat[:, 0], np.arange(257)).astype(np.int64)
        one_hot = np.left_shift(np.uint64(1), (flat & 63).astype(np.uint64))
        one_hot[col == 0] = 0  # first bytes are not part of the tail
        word = flat >> 6
        bits = [np.bitwise_or.reduceat(np.where(word == w, one_hot, np.uint64(0)), starts)
                if n else np.zeros(0, dtype=np.uint64) for w in range(4)]
        self.tail_bits = bits  # 4 x uint64 [N]
        # 1 where the bytes after the first hold a non-ASCII byte but are not valid UTF-8
        # (whole characters, the last one possibly cut): such tokens are always walked
        high = (bits[2] | bits[3]) != 0
        bad = [p for p in np.flatnonzero(high).tolist() if not _is_utf8_prefix(keys[p][1:])]
        self.bad_utf8_tail = np.zeros(n, dtype=np.uint64)
        self.bad_utf8_tail[bad] = 1


def _is_utf8_prefix(data: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
        return True
    except UnicodeDecodeError:
        return False
