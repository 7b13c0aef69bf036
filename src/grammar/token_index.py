r"""Which tokens a DFA state allows: packed int32 bitmasks, computed lazily and cached.

For a state s, token t is allowed iff walking t's bytes from s ends in a live state.
EOS ids are allowed iff s is accepting. Special (non-EOS) tokens are never allowed.

The walk runs for the whole vocabulary at once in numpy: tokens sorted by length, one
gather per byte position (`table[states, column]`), dropping tokens as soon as they hit
DEAD; a state with few live first bytes only touches the tokens starting with them. On the
49k vocabulary a new narrow state costs ~0.1 ms (median). A wide state (inside a string or
a key: most first bytes live) would walk most of the vocabulary (~4 ms); there tokens that
never leave the state's self-loop are decided without a walk (`wide_masks.py`, ~0.5 ms).
States that differ only in a large repeat count (a string of at most 255 characters, at
each length) share one mask (`generalize.py`). After that a mask is a cached
`int32[ceil(V/32)]` row (~1 µs to copy into the batch buffer).

Why not outlines-core's `Index` (which the issue suggested): it precomputes every state
eagerly — 25 ms for a two-field object, 0.3–2.1 s once bounds, formats or refs appear
(bench/grammar.py) — and 0.14 forbids valid continuations (after `mail`, the token `.` in
`[a-z]+(\.[a-z]+)?`; 7-letter labels after `mail.`; see tests/grammar/
test_outlines_core_reference.py). This index is lazy (compile 3–16 ms for the same
schemas), agrees with outlines-core's masks token for token where outlines-core is right,
and accepts what it wrongly refuses. outlines-core stays as a reference
(`outlines_backend.py`).

Bit layout (xgrammar's): token i is bit `i % 32` of word `i // 32`.
"""

from __future__ import annotations

import functools

import numpy as np

from .automaton import DEAD, Automaton
from .bitmask import ids_to_bitmask
from .generalize import CountGeneralizer
from .vocabulary import TokenVocabulary
from .wide_masks import WideMasks

WIDE_FIRST_BYTES = 32  # states with more live first bytes: `wide_masks.py`
SHORT_TOKEN = 12  # counts above it share a mask for tokens of at most this many bytes


class TokenIndex:
    def __init__(self, automaton: Automaton, vocab: TokenVocabulary, max_cached: int = 8192):
        self.automaton = automaton
        self.vocab = vocab
        self.max_cached = max_cached
        self._masks: dict[int, np.ndarray] = {}
        self._eos = np.array(sorted(vocab.eos_token_ids), dtype=np.int64)
        self.num_computed = 0

    def mask(self, sid: int) -> np.ndarray:
        """int32 [ceil(V/32)] bitmask of the tokens allowed in state `sid` (cached; do not
        modify the returned array)."""
        m = self._masks.get(sid)
        if m is None:
            with self.automaton.lock:
                m = self._masks.get(sid)
                if m is None:
                    m = self._counted_mask(sid)
                    self._keep(sid, m)
        return m

    def _counted_mask(self, sid: int) -> np.ndarray:
        """The mask of `sid`, shared between the counts of a repeat (`generalize.py`):
        that of its generalization for tokens of any length, or, when counts below the
        longest token's length remain, that of its generalization for tokens of at most
        SHORT_TOKEN bytes plus a walk of the longer tokens (~2k of 49k). The second way
        only pays off when several counts share it, so not for states with an AND (kept
        whole, it changes with every token anyway)."""
        g = self._counts.general(sid, self.vocab.layout.max_len)
        m = self._masks.get(g)  # another count of the same repeat computed it
        if m is None:
            short = self._counts.general_short(sid, SHORT_TOKEN)
            if short is not None and short != g:
                m = self._masks.get(short)
                if m is None:
                    m = self._compute_mask(short)
                    self._keep(short, m)
                    self.num_computed += 1
                wide = self._wide
                m = (m & wide.short_bits(SHORT_TOKEN)) | wide.long_mask(g, SHORT_TOKEN)
            else:
                m = self._compute_mask(g)
                self.num_computed += 1
            self._keep(g, m)
        return m

    def _keep(self, sid: int, m: np.ndarray) -> None:
        if len(self._masks) >= self.max_cached:
            self._masks.pop(next(iter(self._masks)))
        self._masks[sid] = m

    @functools.cached_property
    def _counts(self) -> CountGeneralizer:
        return CountGeneralizer(self.automaton, SHORT_TOKEN)

    def _compute_mask(self, sid: int) -> np.ndarray:
        row = self.automaton.row(sid)
        if np.count_nonzero(row) > WIDE_FIRST_BYTES:
            m = self._wide.mask(sid)
            if m is not None:
                if self.automaton.accepting[sid]:
                    m = m | ids_to_bitmask(self._eos, self.vocab.vocab_size)
                return m
        ids = self._allowed_sorted_positions(sid)
        if self.automaton.accepting[sid]:
            ids = np.concatenate([ids, self._eos])
        return ids_to_bitmask(ids, self.vocab.vocab_size)

    @functools.cached_property
    def _wide(self) -> WideMasks:
        return WideMasks(self.automaton, self.vocab)

    def allowed_token_ids(self, sid: int) -> np.ndarray:
        """Sorted token ids allowed in `sid` (EOS included when accepting)."""
        bits = np.unpackbits(self.mask(sid).view(np.uint8), bitorder="little")
        return np.flatnonzero(bits[:self.vocab.vocab_size])

    def next_state(self, sid: int, token_id: int) -> int:
        """The state after a (non-EOS) token, or DEAD if the token is not allowed."""
        if not 0 <= token_id < self.vocab.vocab_size:
            return DEAD
        data = self.vocab.token_bytes[token_id]
        if data is None:
            return DEAD
        t = self.automaton.walk(sid, data)
        return t if t != DEAD and self.automaton.is_live(t) else DEAD

    def successors(self, sid: int) -> tuple[np.ndarray, np.ndarray]:
        """`(ids, states)`: every allowed non-EOS token and the live state it leads to
        (int64 arrays of one length, ids in walk order). Not cached: for budget masks."""
        with self.automaton.lock:
            return self._walk(sid, want_states=True)

    def _allowed_sorted_positions(self, sid: int) -> np.ndarray:
        return self._walk(sid, want_states=False)[0]

    def _walk(self, sid: int, want_states: bool) -> tuple[np.ndarray, np.ndarray]:
        aut, lay = self.automaton, self.vocab.layout
        # step 0 is one gather from the start row: restrictive states drop most tokens here
        row = aut.row(sid)
        live_first = np.flatnonzero(row != DEAD)
        if len(live_first) <= 32:  # a few first bytes: gather only their tokens
            parts = [lay.by_first_byte[b] for b in live_first.tolist()]
            pos = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
            st = row[lay.columns[0][pos]]
        else:
            first = row[lay.columns[0]]
            pos = np.flatnonzero(first != DEAD)  # sorted positions still walking, ascending
            st = first[pos]
        found, found_states = [], []
        for i in range(lay.max_len):
            k = int(np.searchsorted(pos, lay.num_longer[i]))
            pos, st = pos[:k], st[:k]
            if not len(pos):
                break
            if i == 0:
                nxt = st
            else:
                nxt = aut.step_many(st, lay.columns[i][pos])
            e = int(np.searchsorted(pos, lay.num_longer[i + 1]))
            if e < len(pos):  # tokens of length i + 1 end here
                ends = nxt[e:]
                ok = (ends != DEAD) & aut.live_many(ends)
                found.append(pos[e:][ok])
                if want_states:
                    found_states.append(ends[ok])
            keep = nxt[:e] != DEAD
            pos, st = pos[:e][keep], nxt[:e][keep]
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        ids = lay.ids[np.concatenate(found)]
        states = (np.concatenate(found_states).astype(np.int64) if want_states
                  else np.zeros(0, dtype=np.int64))
        return ids, states
