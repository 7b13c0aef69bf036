"""Token healing: continue a prompt whose last token may be the start of a longer token.

A prompt that ends inside what the model would write as one token ("is " before "Paris",
"http:" before "//") leaves the model a token it rarely saw in that place, and the answer
derails. Healing backs the prompt up by its last token(s) (`plan_healing`) and makes the first
generated tokens re-spell the removed bytes: each is a prefix of what is left of them, or
starts with all of it and goes on (`HealingMatcher`). The model so picks its own
tokenization of the boundary. The removed text is never shown twice: `HealedTextOutput`
drops it from the output, so a caller sees exactly the continuation of its prompt.

With a grammar the bytes after the removed text are the grammar's: a token that goes past
the removed bytes is allowed only when the grammar allows its extra bytes, and the grammar's
matcher starts in the state after them (`HealingMatcher.inner`). Once the removed bytes are
re-spelled the engine swaps the healing matcher for `inner` (None for free decoding).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...grammar.automaton import DEAD
from ...grammar.bitmask import ids_to_bitmask
from ...grammar.matcher import GrammarMatcher, utf8_complete_len
from ...grammar.vocabulary import TokenVocabulary
from ..tokenizer.tokenizer import Tokenizer
from .text_output import TextOutput
from .token_vocab import EngineVocabulary

MAX_HEAL_TOKENS = 4  # a multi-byte character may span several byte tokens
MAX_HEAL_BYTES = 16
FREE_MASK_CACHE = 512  # healing masks without a grammar, by (vocabulary, bytes left)
_FREE_MASKS: OrderedDict[tuple[str, bytes], np.ndarray] = OrderedDict()


@dataclass(frozen=True, slots=True)
class Healing:
    """The prompt's last `num_tokens` tokens, spelling `removed`. `text` is its whole
    characters: a prompt given as token ids may end inside a character, whose first bytes
    are removed too and completed by the generated tokens (shown as that character)."""

    num_tokens: int
    removed: bytes
    text: str


class HealingPlans:
    """The engine's healed requests (engine thread): the prompt tail each one backed up, by
    request id. Their masks walk the engine's vocabulary (made on the first healed request,
    if grammars have not made it)."""

    def __init__(self, vocab: EngineVocabulary):
        self._vocab = vocab
        self._plans: dict[str, Healing] = {}

    def plan(self, request_id: str, prompt_ids: list[int]) -> int:
        """Back `prompt_ids` up over its last token(s), in place; the number of tokens
        removed (0: nothing to heal). The first generated tokens re-spell them, so the
        caller gives them budget of their own."""
        plan = plan_healing(prompt_ids, self._vocab.get())
        if plan is None:
            return 0
        del prompt_ids[len(prompt_ids) - plan.num_tokens:]
        self._plans[request_id] = plan
        return plan.num_tokens

    def get(self, request_id: str) -> Healing | None:
        return self._plans.get(request_id)

    def matcher(self, plan: Healing, inner: GrammarMatcher | None) -> HealingMatcher:
        """A matcher that re-spells `plan`'s removed bytes, then hands over to `inner`."""
        return HealingMatcher(self._vocab.get(), plan.removed, inner)

    def forget(self, request_id: str) -> None:
        self._plans.pop(request_id, None)


def plan_healing(prompt_ids: Sequence[int], vocab: TokenVocabulary) -> Healing | None:
    """The fewest last tokens whose bytes start on a UTF-8 character boundary and are a
    proper prefix of some token (so the model could have written them differently), or
    None. At least one prompt token is kept; special tokens are never backed over."""
    for k in range(1, min(MAX_HEAL_TOKENS, len(prompt_ids) - 1) + 1):
        pieces = [vocab.token_bytes[t] for t in prompt_ids[-k:]]
        if any(p is None for p in pieces):
            return None
        removed = b"".join(pieces)
        if len(removed) > MAX_HEAL_BYTES:
            return None
        if removed[0] & 0xC0 == 0x80:  # starts inside a character: back up further
            continue
        whole = utf8_complete_len(removed)
        try:
            text = removed[:whole].decode("utf-8")
            if whole < len(removed):
                _check_char_start(removed[whole:])
        except UnicodeDecodeError:
            continue
        if _some_token_extends(vocab, removed):
            return Healing(k, removed, text)
    return None


def _check_char_start(tail: bytes) -> None:
    """Raise UnicodeDecodeError unless `tail` is the start of one UTF-8 character."""
    for end in (b"\x80", b"\x80\x80", b"\x80\x80\x80"):
        try:
            (tail + end).decode("utf-8")
            return
        except UnicodeDecodeError:
            pass
    raise UnicodeDecodeError("utf-8", tail, 0, len(tail), "not the start of a character")


def _some_token_extends(vocab: TokenVocabulary, prefix: bytes) -> bool:
    keys, _ = vocab.sorted_tokens
    i = bisect.bisect_left(keys, prefix)
    while i < len(keys) and keys[i] == prefix:
        i += 1
    return i < len(keys) and keys[i].startswith(prefix)


class HealingMatcher:
    """The engine's matcher while the removed bytes are re-spelled (see the module doc).
    `inner` is the request's grammar matcher, or None for free decoding."""

    __slots__ = ("vocab", "rest", "inner", "done")

    def __init__(self, vocab: TokenVocabulary, removed: bytes, inner: GrammarMatcher | None):
        self.vocab, self.rest, self.inner, self.done = vocab, removed, inner, False

    def allowed_token_ids(self) -> list[int]:
        """Tokens that are a prefix of the rest, or the rest and (grammar permitting) more."""
        vocab, rest = self.vocab, self.rest
        ids = [vocab.token_id_of_bytes[rest[:j]] for j in range(1, len(rest))
               if rest[:j] in vocab.token_id_of_bytes]
        for t in vocab.ids_with_prefix(rest):
            extra = vocab.token_bytes[t][len(rest):]
            if not extra or self._grammar_allows(extra):
                ids.append(t)
        return ids

    def fill_bitmask(self, bitmask: np.ndarray, row: int = 0) -> None:
        if self.inner is not None:  # depends on the grammar's state
            mask = self._grammar_mask()
            bitmask[row] = mask if mask is not None else \
                ids_to_bitmask(self.allowed_token_ids(), self.vocab.vocab_size)
            return
        key = (self.vocab.fingerprint, self.rest)
        mask = _FREE_MASKS.get(key)
        if mask is None:
            mask = ids_to_bitmask(self.allowed_token_ids(), self.vocab.vocab_size)
            _FREE_MASKS[key] = mask
            while len(_FREE_MASKS) > FREE_MASK_CACHE:
                _FREE_MASKS.popitem(last=False)
        bitmask[row] = mask

    def accept_token(self, token_id: int) -> bool:
        data = self.vocab.token_bytes[int(token_id)]
        if data is None or self.done:
            return False
        if self.rest.startswith(data):
            self.rest = self.rest[len(data):]
            self.done = not self.rest
            return True
        if not data.startswith(self.rest):
            return False
        extra = data[len(self.rest):]
        if not self._grammar_allows(extra):
            return False
        if self.inner is not None:
            self.inner = self.inner.started_after(extra)
        self.rest, self.done = b"", True
        return True

    def is_terminated(self) -> bool:
        return False

    def copy(self) -> HealingMatcher:
        m = HealingMatcher(self.vocab, self.rest, None if self.inner is None else self.inner.copy())
        m.done = self.done
        return m

    def _grammar_mask(self) -> np.ndarray | None:
        """`allowed_token_ids` as the grammar's own (vectorized, cached) mask of a state that
        must first read the rest, then goes on from the inner matcher's state: a token is a
        prefix of the rest, or the rest and more the grammar allows, exactly when it walks
        live from `cat(rest, inner state)`. None when the grammar is not an automaton (another
        backend) or cannot spell the rest byte by byte."""
        grammar = getattr(self.inner, "grammar", None)
        aut = getattr(grammar, "automaton", None)
        if aut is None or len(self.vocab.token_bytes) != len(grammar.vocab.token_bytes):
            return None
        with aut.lock:
            pool = grammar.pool
            node = pool.cat(pool.literal(self.rest), aut.node_of[self.inner.state])
            if node == pool.never:
                return None
            sid = aut.state(node)
        return grammar.index.mask(sid)

    def _grammar_allows(self, extra: bytes) -> bool:
        if self.inner is None:
            return True
        if not hasattr(self.inner, "grammar") or not hasattr(self.inner.grammar, "automaton"):
            return False  # another backend's matcher: only tokens that re-spell exactly
        aut = self.inner.grammar.automaton
        state = aut.walk(self.inner.state, extra)
        return state != DEAD and aut.is_live(state)


class HealedTextOutput(TextOutput):
    """A sequence's text without the healed prefix (`removed_text`), which its first tokens
    re-spell: stop strings and streams see only what follows it."""

    def __init__(self, tokenizer: Tokenizer, removed_text: str, *args: Any, **kwargs: Any):
        super().__init__(tokenizer, *args, **kwargs)
        self._heal_left = removed_text

    def _append(self, piece: str) -> str | None:
        if self._heal_left and piece:
            n = min(len(piece), len(self._heal_left))
            if piece[:n] != self._heal_left[:n]:
                # SentencePiece drops a word's leading space at the very start of a text
                self._heal_left = self._heal_left.lstrip(" ")
                n = min(len(piece), len(self._heal_left))
                if piece[:n] != self._heal_left[:n]:
                    raise ValueError(f"healed tokens spell {piece!r}, not the removed "
                                     f"{self._heal_left!r}")
            self._heal_left, piece = self._heal_left[n:], piece[n:]
        return super()._append(piece)
