r"""Which tokens a DFA state allows: packed int32 bitmasks, computed lazily and cached.

For a state s, token t is allowed iff walking t's bytes from s ends in a live state.
EOS ids are allowed iff s is accepting. Special (non-EOS) tokens are never allowed.

The walk runs for the whole vocabulary at once in numpy: tokens sorted by length, one
gather per byte position (`table[states, column]`), dropping tokens as soon as they hit
DEAD; a state with few live first bytes only touches the tokens starting with them. On the
49k vocabulary a new state costs ~0.1 ms (median; a free JSON string's first state a few
ms, since its tokens lead into many new states); after that its mask is a cached
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

import numpy as np

from .automaton import DEAD, Automaton
from .bitmask import ids_to_bitmask
from .vocabulary import TokenVocabulary


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
                    ids = self._allowed_sorted_positions(sid)
                    if self.automaton.accepting[sid]:
                        ids = np.concatenate([ids, self._eos])
                    m = ids_to_bitmask(ids, self.vocab.vocab_size)
                    if len(self._masks) >= self.max_cached:
                        self._masks.pop(next(iter(self._masks)))
                    self._masks[sid] = m
                    self.num_computed += 1
        return m

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
                col = lay.columns[i][pos]
                flat = st.astype(np.int64) * 256 + col
                nxt = aut.table.ravel()[flat]
                bad = nxt < 0
                if bad.any():
                    aut.ensure_rows(np.unique(st[bad]))
                    nxt = aut.table.ravel()[flat]
            e = int(np.searchsorted(pos, lay.num_longer[i + 1]))
            if e < len(pos):  # tokens of length i + 1 end here
                ends = nxt[e:]
                ok = ends != DEAD
                unknown = np.unique(ends[ok & (aut.live[ends] < 0)])
                for s in unknown.tolist():
                    aut.is_live(s)
                ok &= aut.live[ends] == 1
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
