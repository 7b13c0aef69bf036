"""Token masks of wide states (inside a free string or key) without walking every token.

Inside a JSON string most bytes lead back to the same state: the state's *self-loop set*
L(t) = {b : row_t[b] == t}. A token whose bytes after the first all lie in L(t) of the
state t its first byte leads to ends in t, so it is allowed iff t is live; no walk needed.
Multi-byte characters count as in L(t) when every valid character of their lead byte
walks from t back to t (checked once per state on the rows; tokens cut inside a character
or holding invalid UTF-8 are walked). Only the other tokens (those with a quote, a
backslash, ... — about a thousand of 49k in a JSON string) are walked, byte by byte, in
numpy. Per first-byte run of the row:

    inside = tail_bytes(token) ⊆ L(t)          # 4 uint64 words per token, one AND
    allowed = inside & live(t)  |  walk(rest)

Which tokens of a run are `inside` depends only on the vocabulary and the loop set, not on
the grammar, and JSON strings everywhere loop on the same few sets: `RunSplits` keeps the
split per vocabulary, so a new string state costs only the walk of the rest.

A state with no self-loops to speak of (an AND of a pattern and a length changes with
every byte) would walk most tokens this way; past `max_walk` of them `mask` gives up and
the caller uses the plain walk over the length-sorted vocabulary (`token_index.py`).

Tokens are kept in lexicographic byte order (`LexLayout`), where the tokens starting with
one byte are a contiguous range, so a run of first bytes is one slice.

Invariant: `mask(sid)` is the exact mask of `sid` without EOS (the tokens whose bytes walk
from `sid` into a live state). Call under the automaton's lock.
"""

from __future__ import annotations

import numpy as np

from .automaton import DEAD, Automaton
from .bitmask import ids_to_bitmask
from .lex_layout import LexLayout
from .vocabulary import TokenVocabulary

_ALL64 = (1 << 64) - 1
SMALL_RUN = 256  # a first-byte run with at most this many tokens is walked whole
MAX_RUN_SPLITS = 512  # RunSplits kept per vocabulary (~6 KB each on a 49k vocabulary)
NARROW_WALK = 12  # tokens still walking below which the walk goes on in plain Python
_C = (0x80, 0xBF)  # a continuation byte
# every valid multi-byte UTF-8 character, as byte-range products (RFC 3629's table)
_UTF8_SEQUENCES = (((0xC2, 0xDF), _C), ((0xE0, 0xE0), (0xA0, 0xBF), _C), ((0xE1, 0xEC), _C, _C),
                   ((0xED, 0xED), (0x80, 0x9F), _C), ((0xEE, 0xEF), _C, _C),
                   ((0xF0, 0xF0), (0x90, 0xBF), _C, _C), ((0xF1, 0xF3), _C, _C, _C),
                   ((0xF4, 0xF4), (0x80, 0x8F), _C, _C))


class RunSplits:
    """The split of a first-byte run of the vocabulary by a self-loop set, kept per
    vocabulary (it does not depend on the grammar): the run's tokens whose bytes after the
    first all lie in the set, as a bitmask, and the positions of the others. Inside JSON
    strings the loop sets are few and the same in every grammar, so a wide state mostly
    costs the walk of its few hundred other tokens."""

    def __init__(self, vocab: TokenVocabulary, max_kept: int = MAX_RUN_SPLITS):
        self.lex = vocab.derived(LexLayout)
        self.vocab_size = vocab.vocab_size
        self.max_kept = max_kept
        self._kept: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.num_hits = 0

    def split(self, a: int, b: int, loops: tuple[int, int, int, int], whole_chars: bool
              ) -> tuple[np.ndarray, np.ndarray]:
        """(int32 [ceil(V/32)] bitmask of the tokens at positions [a, b) whose tail bytes
        are all in `loops`, positions of the rest). `whole_chars`: bytes 128..255 in `loops`
        stand for whole valid characters; a tail with invalid or cut UTF-8 is the rest."""
        key = (a, b, loops, whole_chars)
        hit = self._kept.get(key)
        if hit is not None:
            self.num_hits += 1
            return hit
        lex = self.lex
        outside = lex.bad_utf8_tail[a:b] if whole_chars else None
        for w, loop in enumerate(loops):
            if loop != _ALL64:
                x = lex.tail_bits[w][a:b] & np.uint64(~loop & _ALL64)
                outside = x if outside is None else outside | x
        if outside is None:
            inside, others = np.arange(a, b), np.zeros(0, dtype=np.int64)
        else:
            inside, others = np.flatnonzero(outside == 0) + a, np.flatnonzero(outside) + a
        hit = (ids_to_bitmask(lex.ids[inside], self.vocab_size), others)
        if len(self._kept) >= self.max_kept:
            self._kept.pop(next(iter(self._kept)))
        self._kept[key] = hit
        return hit


class WideMasks:
    def __init__(self, automaton: Automaton, vocab: TokenVocabulary, small_run: int = SMALL_RUN,
                 max_walk: int | None = None):
        self.automaton = automaton
        self.small_run = small_run
        self.max_walk = vocab.vocab_size // 4 if max_walk is None else max_walk
        self.lex = vocab.derived(LexLayout)
        self.runs = vocab.derived(RunSplits)
        self.num_words = vocab.num_words
        self.vocab_size = vocab.vocab_size
        self._short: dict[int, np.ndarray] = {}
        self._utf8_loop: dict[int, tuple[int, int] | None] = {}
        self.num_walked = 0  # tokens walked byte by byte (the rest were decided by L(t))

    def mask(self, sid: int) -> np.ndarray | None:
        """int32 [ceil(V/32)] bitmask of the non-EOS tokens allowed in `sid`, or None when
        more than `max_walk` tokens would need a walk (no self-loops to speak of: the
        plain walk over the length-sorted vocabulary is faster then)."""
        aut, lex = self.automaton, self.lex
        row = aut.row(sid)
        edges = np.flatnonzero(row[1:] != row[:-1]) + 1
        m = np.zeros(self.num_words, dtype=np.int32)
        rest_pos, rest_st = [], []
        for lo, hi in zip([0, *edges.tolist()], [*edges.tolist(), 256]):
            t = int(row[lo])
            a, b = int(lex.first_start[lo]), int(lex.first_start[hi])
            if t == DEAD or a == b or not aut.is_live(t):
                continue
            if b - a <= self.small_run:  # walking them all costs less than the test
                rest_pos.append(np.arange(a, b))
                rest_st.append(np.full(b - a, t, dtype=np.int64))
                continue
            loops = aut.loop_bytes(np.array([t]))[0].tolist()
            high = self._utf8_loop_bytes(t) if _string_like(loops) else None
            if high is not None:  # whole characters of these leads come back to t
                loops[2] |= high[0]
                loops[3] |= high[1]
            inside, others = self.runs.split(a, b, tuple(loops), high is not None)
            m |= inside
            if len(others):
                rest_pos.append(others)
                rest_st.append(np.full(len(others), t, dtype=np.int64))
        if rest_pos:
            pos = np.concatenate(rest_pos)
            if len(pos) > self.max_walk:
                return None
            m |= ids_to_bitmask(lex.ids[pos[self._walk(pos, np.concatenate(rest_st))]],
                                self.vocab_size)
        return m

    def short_bits(self, max_len: int) -> np.ndarray:
        """int32 [ceil(V/32)]: every token id except those of more than `max_len` bytes."""
        m = self._short.get(max_len)
        if m is None:
            long_ids = self.lex.ids[self.lex.lens > max_len]
            m = self._short[max_len] = ~ids_to_bitmask(long_ids, self.vocab_size)
        return m

    def long_mask(self, sid: int, max_len: int) -> np.ndarray:
        """int32 [ceil(V/32)] bitmask of the allowed tokens of more than `max_len` bytes."""
        aut, lex = self.automaton, self.lex
        pos = np.flatnonzero(lex.lens > max_len)
        st = aut.row(sid)[lex.mat[pos, 0]].astype(np.int64)
        alive = st != DEAD
        pos, st = pos[alive], st[alive]
        ok = self._walk(pos, st) if len(pos) else np.zeros(0, dtype=bool)
        return ids_to_bitmask(lex.ids[pos[ok]], self.vocab_size)

    def _utf8_loop_bytes(self, t: int) -> tuple[int, int] | None:
        """Bytes 128..255 (as words 2 and 3 of a byte set) that may stand in a token's
        valid UTF-8 after the first byte without leaving `t`: continuation bytes and the
        lead bytes all of whose characters walk from `t` back to `t` (as inside a JSON
        string). None when no lead byte does. Checked on the rows, per lead byte range."""
        if t not in self._utf8_loop:
            leads = 0
            for seq in _UTF8_SEQUENCES:
                if self._returns(t, t, seq):
                    lo, hi = seq[0]
                    leads |= (1 << (hi + 1)) - (1 << lo)
            bits = leads | ((1 << 0xC0) - (1 << 0x80)) if leads else None
            self._utf8_loop[t] = None if bits is None else (bits >> 128 & _ALL64, bits >> 192)
        return self._utf8_loop[t]

    def _returns(self, start: int, target: int, ranges: tuple[tuple[int, int], ...]) -> bool:
        """Whether every byte string of the byte-range product `ranges` walks from `start`
        to `target` (one row per distinct intermediate state)."""
        lo, hi = ranges[0]
        nxt = self.automaton.row(start)[lo:hi + 1]
        if len(ranges) == 1:
            return bool((nxt == target).all())
        return all(s != DEAD and self._returns(s, target, ranges[1:])
                   for s in np.unique(nxt).tolist())

    def _walk(self, pos: np.ndarray, st: np.ndarray) -> np.ndarray:
        """bool [len(pos)]: whether the token at lexicographic position `pos[k]`, from its
        second byte on, walks from state `st[k]` into a live state. Longest tokens first,
        so the tokens still walking at byte i are a prefix that only shrinks."""
        aut, lex = self.automaton, self.lex
        self.num_walked += len(pos)
        order = np.argsort(-lex.lens[pos], kind="stable")
        pos, cur = pos[order], st[order]
        lens = lex.lens[pos]
        idx = np.arange(len(pos))  # index into the sorted arrays of the tokens still walking
        ends = np.full(len(pos), DEAD, dtype=np.int64)  # state each token ends in
        single = lens == 1
        ends[single] = cur[single]
        for i in range(1, int(lens[0]) if len(lens) else 0):
            k = int(np.count_nonzero(lens[idx] > i))
            idx, cur = idx[:k], cur[:k]
            if not k:
                break
            nxt = aut.step_many(cur, lex.mat[pos[idx], i])
            done = lens[idx] == i + 1
            ends[idx[done]] = nxt[done]
            keep = (nxt != DEAD) & ~done
            idx, cur = idx[keep], nxt[keep].astype(np.int64)
            if len(idx) <= NARROW_WALK:
                for j, s in zip(idx.tolist(), cur.tolist()):
                    ends[j] = aut.walk(s, lex.keys[int(pos[j])][i + 1:])
                break
        ok = (ends != DEAD) & aut.live_many(ends)
        result = np.zeros(len(pos), dtype=bool)
        result[order] = ok
        return result


def _string_like(loops: list[int]) -> bool:
    """Whether a self-loop set holds most printable ASCII (as inside a string): only then
    is checking multi-byte characters worth building their rows."""
    return (loops[0] >> 32).bit_count() + (loops[1] & _ALL64).bit_count() >= 64
