"""The engine's one `TokenVocabulary`: each token's bytes and the indexes that grammar masks
and token healing walk (~64 MiB on a 49k vocabulary once indexed). Made on first use by
either, from the tokenizer, and shared: the grammar bridge asks for it on request threads,
token healing on the engine thread."""

from __future__ import annotations

import threading

from ...grammar import TokenVocabulary
from ..tokenizer.tokenizer import Tokenizer


def token_vocabulary(tokenizer: Tokenizer, vocab_size: int) -> TokenVocabulary:
    return TokenVocabulary.from_token_strings(
        tokenizer.token_strings(), tokenizer.kind, tokenizer.special_token_ids,
        tokenizer.eos_token_ids, vocab_size)


class EngineVocabulary:
    def __init__(self, tokenizer: Tokenizer, vocab_size: int):
        self.tokenizer, self.vocab_size = tokenizer, vocab_size
        self._vocab: TokenVocabulary | None = None
        self._lock = threading.Lock()

    def get(self) -> TokenVocabulary:
        with self._lock:
            if self._vocab is None:
                self._vocab = token_vocabulary(self.tokenizer, self.vocab_size)
            return self._vocab
