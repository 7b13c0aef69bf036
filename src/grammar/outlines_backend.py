"""outlines-core's token index behind a small adapter, kept as a reference and for the bench.

tines does not use outlines-core on the decoding path (see `token_index.py` for why): its
`Index` is built eagerly (80 ms for a small JSON schema, seconds with bounds), and 0.2.14
forbids valid continuations of some regexes (after `mail` it refuses `.` in
`[a-z]+(\\.[a-z]+)?`). The tests run the same completeness checks against this adapter to
document that bug, and `bench/grammar.py` times it side by side.

The vocabulary is handed over as outlines-core expects it: raw token bytes → ids, with EOS
(the smallest EOS id) left out of the map and special tokens dropped.
"""

from __future__ import annotations

import numpy as np

from .bitmask import ids_to_bitmask
from .vocabulary import TokenVocabulary


def outlines_vocabulary(vocab: TokenVocabulary):
    from outlines_core import Vocabulary

    table: dict[bytes, list[int]] = {}
    for i, b in enumerate(vocab.token_bytes):
        if b is not None and i not in vocab.eos_token_ids:
            table.setdefault(b, []).append(i)
    return Vocabulary(min(vocab.eos_token_ids), table)


class OutlinesCoreIndex:
    """`Index(regex, vocab)` with the state API our tests use."""

    def __init__(self, regex: str, vocab: TokenVocabulary, ovocab=None):
        from outlines_core import Index

        self.vocab = vocab
        self.index = Index(regex, ovocab if ovocab is not None else outlines_vocabulary(vocab))
        self.start = self.index.get_initial_state()

    def allowed_token_ids(self, state: int) -> np.ndarray:
        ids = self.index.get_allowed_tokens(state) or []
        return np.array(sorted(int(t) for t in ids), dtype=np.int64)

    def mask(self, state: int) -> np.ndarray:
        return ids_to_bitmask(self.allowed_token_ids(state), self.vocab.vocab_size)

    def next_state(self, state: int, token_id: int) -> int | None:
        return self.index.get_next_state(state, token_id)

    def is_accepting(self, state: int) -> bool:
        return self.index.is_final_state(state)

    def accepts_tokens(self, token_ids) -> bool:
        """Every token allowed in turn and the end accepting."""
        s = self.start
        for t in token_ids:
            if t not in set(self.allowed_token_ids(s).tolist()):
                return False
            s = self.next_state(s, t)
            if s is None:
                return False
        return self.is_accepting(s)
