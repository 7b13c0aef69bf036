"""A tokenizer's vocabulary as the grammar sees it: for every token id, the exact bytes it
puts into the output.

- Byte-level BPE (GPT-2, Llama 3, SmolLM, Qwen): token strings use the GPT-2 byte↔unicode
  table (`Ġ` is a space); each character maps back to one byte. A token with characters
  outside the table (an added token stored literally) is taken as its UTF-8.
- SentencePiece (Llama 2, Gemma): `▁` is a space, `<0xNN>` is the byte NN (byte fallback),
  other pieces are their UTF-8.
- Special tokens get `None` (never allowed by a grammar) unless they are EOS: EOS ids are
  kept separately and allowed exactly in accepting states.
- The model's vocab size (its logits' width) may exceed the token list; the extra ids are
  `None` too.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np

_T = TypeVar("_T")

_SP_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@functools.cache
def gpt2_unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's `bytes_to_unicode` table."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + n)] = b
            n += 1
    return table


def byte_level_token_bytes(token: str) -> bytes:
    table = gpt2_unicode_to_byte()
    try:
        return bytes(table[c] for c in token)
    except KeyError:
        return token.encode("utf-8")


def sentencepiece_token_bytes(token: str) -> bytes:
    m = _SP_BYTE.match(token)
    if m:
        return bytes([int(m.group(1), 16)])
    return token.replace("\u2581", " ").encode("utf-8")


def token_bytes_decoder(kind: str) -> Callable[[str], bytes]:
    """How a tokenizer of `kind` ("byte_level" or "sentencepiece") spells a token string as
    bytes."""
    if kind == "byte_level":
        return byte_level_token_bytes
    if kind == "sentencepiece":
        return sentencepiece_token_bytes
    raise ValueError(f"unknown tokenizer kind {kind!r} (byte_level | sentencepiece)")


class TokenVocabulary:
    """Immutable token-id → bytes table plus EOS ids; `fingerprint` keys grammar caches."""

    def __init__(self, token_bytes: Sequence[bytes | None], eos_token_ids: Iterable[int],
                 vocab_size: int | None = None):
        vocab_size = len(token_bytes) if vocab_size is None else int(vocab_size)
        if vocab_size < len(token_bytes):
            raise ValueError(f"vocab_size {vocab_size} is smaller than the token list "
                             f"({len(token_bytes)})")
        self.vocab_size = vocab_size
        tb = [None if b is None or len(b) == 0 else bytes(b) for b in token_bytes]
        self.token_bytes: tuple[bytes | None, ...] = tuple(tb + [None] * (vocab_size - len(tb)))
        self.eos_token_ids = frozenset(int(t) for t in eos_token_ids)
        if not self.eos_token_ids:
            raise ValueError("a vocabulary needs at least one EOS token id")
        for t in self.eos_token_ids:
            if not 0 <= t < vocab_size:
                raise ValueError(f"EOS id {t} is outside the vocabulary (size {vocab_size})")
        h = hashlib.sha256()
        h.update(f"{vocab_size}|{sorted(self.eos_token_ids)}|".encode())
        for b in self.token_bytes:
            h.update(b"\xff" if b is None else len(b).to_bytes(2, "little") + b)
        self.fingerprint = h.hexdigest()[:20]

    @classmethod
    def from_token_strings(cls, tokens: Sequence[str], kind: str, special_token_ids: Iterable[int],
                           eos_token_ids: Iterable[int], vocab_size: int | None = None
                           ) -> TokenVocabulary:
        """From the tokenizer's token strings. `kind` is "byte_level" or "sentencepiece"."""
        decode = token_bytes_decoder(kind)
        special = set(special_token_ids) | set(eos_token_ids)
        tb = [None if i in special else decode(t) for i, t in enumerate(tokens)]
        return cls(tb, eos_token_ids, vocab_size)

    @property
    def num_words(self) -> int:
        """int32 words per bitmask row: ceil(vocab_size / 32)."""
        return (self.vocab_size + 31) // 32

    @functools.cached_property
    def single_byte_mask(self) -> int:
        """Bytes that are a whole token by themselves (a 256-bit int). A grammar only uses
        these bytes, so every byte string it allows is spellable token by token."""
        m = 0
        for b in self.token_bytes:
            if b is not None and len(b) == 1:
                m |= 1 << b[0]
        return m

    @functools.cached_property
    def sorted_tokens(self) -> tuple[list[bytes], list[int]]:
        """(token bytes, their ids) in lexicographic byte order (ids with bytes only)."""
        items = sorted((b, i) for i, b in enumerate(self.token_bytes) if b is not None)
        return [b for b, _ in items], [i for _, i in items]

    @functools.cached_property
    def token_id_of_bytes(self) -> dict[bytes, int]:
        """bytes → the smallest non-special token id spelling exactly them."""
        out: dict[bytes, int] = {}
        for i, b in enumerate(self.token_bytes):
            if b is not None and b not in out:
                out[b] = i
        return out

    def ids_with_prefix(self, prefix: bytes) -> list[int]:
        """Token ids whose bytes start with `prefix` (the token `prefix` itself included)."""
        keys, ids = self.sorted_tokens
        lo = bisect.bisect_left(keys, prefix)
        hi = lo
        while hi < len(keys) and keys[hi].startswith(prefix):
            hi += 1
        return ids[lo:hi]

    @functools.cached_property
    def layout(self) -> WalkLayout:
        return WalkLayout(self.token_bytes)

    def derived(self, build: Callable[[TokenVocabulary], _T]) -> _T:
        """`build(self)`, built once per vocabulary and kept with it: the layouts the mask
        walks use (`lex_layout.LexLayout`, the CFG's `cfg.trie.VocabTrie`)."""
        cache = self.__dict__.setdefault("_derived", {})
        if build not in cache:
            cache[build] = build(self)
        return cache[build]

    def prepare(self) -> None:
        """Build the layouts token masks walk (~0.3 s for 49k tokens, once per vocabulary)
        now, e.g. at start-up, rather than inside the first grammar's first masks."""
        from .lex_layout import LexLayout  # lex_layout imports this module

        self.layout  # noqa: B018 - a cached property: building it is the point
        self.derived(LexLayout)

    def __repr__(self) -> str:
        return (f"TokenVocabulary(vocab_size={self.vocab_size}, eos={sorted(self.eos_token_ids)},"
                f" fingerprint={self.fingerprint!r})")


class WalkLayout:
    """Token bytes arranged for walking every token through a DFA at once.

    Tokens are sorted by length, longest first, so "tokens longer than i bytes" is the
    prefix `[:num_longer[i]]`. `columns[i]` is byte i of each sorted token (uint8 [n]).
    `ids[k]` is the token id of sorted position k.
    """

    def __init__(self, token_bytes: Sequence[bytes | None]):
        items = sorted(((len(b), i) for i, b in enumerate(token_bytes) if b is not None),
                       key=lambda t: (-t[0], t[1]))
        self.ids = np.array([i for _, i in items], dtype=np.int64)
        lengths = np.array([n for n, _ in items], dtype=np.int64)
        self.max_len = int(lengths[0]) if len(lengths) else 0
        # num_longer[i] = number of tokens with length > i, for i in 0..max_len
        self.num_longer = [int(np.count_nonzero(lengths > i)) for i in range(self.max_len + 1)]
        mat = np.zeros((len(items), max(self.max_len, 1)), dtype=np.uint8)
        for k, (_, i) in enumerate(items):
            b = token_bytes[i]
            mat[k, :len(b)] = np.frombuffer(b, dtype=np.uint8)
        self.columns = [np.ascontiguousarray(mat[:self.num_longer[i], i])
                        for i in range(self.max_len)]
        # sorted positions of the tokens starting with each byte (ascending)
        first = self.columns[0] if self.max_len else np.zeros(0, dtype=np.uint8)
        order = np.argsort(first, kind="stable")
        bounds = np.searchsorted(first[order], np.arange(257))
        self.by_first_byte = [order[bounds[b]:bounds[b + 1]] for b in range(256)]
