"""The matcher protocol the engine drives, and a base for matchers of other grammar engines.

The engine needs, per constrained sequence (see `grammar/matcher.py` for tines' own):
`fill_bitmask(bitmask, row)`, `accept_token(id) -> bool`, `is_terminated()`, `is_ended()`,
`is_accepting()`, `num_tokens`, `rollback(n)`, `copy()` and `forced_bytes()`. Budget-aware
closing (`fill_bitmask_within`, `min_tokens_to_accept`) and jump-forward are tines-only:
the engine checks for the first and gets no forced bytes from a foreign matcher, so with
another backend outputs cut at max_tokens may not parse (as in vLLM and SGLang).

`ForeignMatcher` keeps the accepted token ids itself, so `copy()` is a replay and
`is_terminated()` is computed the same way for every backend: accepting, and the mask
allows nothing but end tokens. The last mask is cached until the state changes, so asking
`is_terminated()` after a token and then filling the mask costs one mask computation.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..matcher import accept_all_or_none
from ..vocabulary import TokenVocabulary


class Matcher(Protocol):
    num_tokens: int

    def fill_bitmask(self, bitmask: np.ndarray, row: int = 0) -> None: ...
    def accept_token(self, token_id: int) -> bool: ...
    def is_terminated(self) -> bool: ...
    def is_ended(self) -> bool: ...
    def is_accepting(self) -> bool: ...
    def rollback(self, num_tokens: int) -> None: ...
    def copy(self) -> Matcher: ...
    def forced_bytes(self, limit: int = 256) -> bytes: ...


class ForeignMatcher:
    """A sequence's state in another engine. Subclasses implement `_mask_into(row_view)`,
    `_advance(id) -> bool`, `_rollback(n)`, `_accepting()` and `_fresh()` (a new matcher
    on the same grammar at the start)."""

    def __init__(self, vocab: TokenVocabulary):
        self.vocab = vocab
        self._tokens: list[int] = []
        self._ended = False
        self._mask: np.ndarray | None = None  # int32 [num_words] for the current state

    # ---- per backend --------------------------------------------------------------------
    def _mask_into(self, out: np.ndarray) -> None:
        raise NotImplementedError

    def _advance(self, token_id: int) -> bool:
        raise NotImplementedError

    def _rollback(self, num_tokens: int) -> None:
        raise NotImplementedError

    def _accepting(self) -> bool:
        raise NotImplementedError

    def _fresh(self) -> ForeignMatcher:
        raise NotImplementedError

    # ---- the protocol -------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return len(self._tokens) + self._ended

    def current_mask(self) -> np.ndarray:
        if self._mask is None:
            m = np.zeros(self.vocab.num_words, dtype=np.int32)
            if self._ended:
                bits = m.view(np.uint32)
                for t in self.vocab.eos_token_ids:
                    bits[t >> 5] |= np.uint32(1 << (t & 31))
            else:
                self._mask_into(m)
            self._mask = m
        return self._mask

    def fill_bitmask(self, bitmask: np.ndarray, row: int = 0) -> None:
        bitmask[row] = self.current_mask()

    def is_ended(self) -> bool:
        return self._ended

    def is_accepting(self) -> bool:
        return self._ended or self._accepting()

    def is_terminated(self) -> bool:
        if self._ended:
            return True
        if not self._accepting():
            return False
        m = self.current_mask().view(np.uint32).copy()
        for t in self.vocab.eos_token_ids:
            m[t >> 5] &= ~np.uint32(1 << (t & 31))
        return not m.any()

    def accept_token(self, token_id: int) -> bool:
        token_id = int(token_id)
        if self._ended:
            return False
        if token_id in self.vocab.eos_token_ids:
            if not self._accepting():
                return False
            self._ended, self._mask = True, None
            return True
        if not self._advance(token_id):
            return False
        self._tokens.append(token_id)
        self._mask = None
        return True

    def accept_tokens(self, token_ids) -> bool:
        return accept_all_or_none(self, token_ids)

    def rollback(self, num_tokens: int) -> None:
        if not 0 <= num_tokens <= self.num_tokens:
            raise ValueError(f"cannot roll back {num_tokens} tokens; {self.num_tokens} accepted")
        if num_tokens and self._ended:
            self._ended = False
            num_tokens -= 1
        if num_tokens:
            self._rollback(num_tokens)
            del self._tokens[-num_tokens:]
        self._mask = None

    def copy(self) -> ForeignMatcher:
        m = self._fresh()
        if not m.accept_tokens(self._tokens):
            raise RuntimeError("replaying accepted tokens failed on a fresh matcher")
        m._ended = self._ended
        return m

    def forced_bytes(self, limit: int = 256) -> bytes:
        return b""  # jump-forward is tines-only

    def allowed_token_ids(self) -> np.ndarray:
        bits = np.unpackbits(self.current_mask().view(np.uint8), bitorder="little")
        return np.flatnonzero(bits[:self.vocab.vocab_size])


def regex_escape(text: str) -> str:
    """`text` as a literal in the regex dialects of every backend (Rust regex and
    xgrammar's refuse some of Python's escapes, such as an escaped space)."""
    return "".join("\\" + c if c in r"\.^$|?*+()[]{}/" else c for c in text)


def choices_regex(choices: tuple[str, ...]) -> str:
    return "(" + "|".join(regex_escape(c) for c in choices) + ")"
