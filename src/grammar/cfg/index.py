"""Token masks for parser states: a trie walk, cached per state and per *cut* stack.

A parser state is a set of stacks (`pool.py`). Which tokens it allows depends mostly on the
top few stack entries: `f(g(h(` and `g(h(` allow the same identifiers. So a new state is
cut after its top `CUT_DEPTH` non-nullable entries, over a `hole` (`CfgPool.truncate`), and
the vocabulary
trie is walked from the cut state, stopping at trie nodes whose walk reached the hole
(`CfgPool.entered_hole`). That walk is shared by every state with the same top entries, at
any nesting depth. For each state only the stopped subtrees (tokens like `)))` that close
into the entries below the cut, usually a few hundred) are walked from the real state.

Invariants:
- `mask(sid)` equals the exact mask of `sid` (allowed tokens walk into live states; EOS
  iff `sid` is accepting). A token that never reaches the hole walks the cut and the real
  state alike (the entries above the cut are the same); one that reaches it is walked
  from the real state.
- cut states are only walked for masks, never matched against: `next_state` uses the real
  state.
"""

from __future__ import annotations

import numpy as np

from ..automaton import DEAD, Automaton
from ..bitmask import ids_to_bitmask
from ..token_index import TokenIndex
from ..vocabulary import TokenVocabulary
from .pool import CfgPool
from .trie import VocabTrie

CUT_DEPTH = 2  # non-nullable stack entries kept above the hole


class CfgTokenIndex(TokenIndex):
    def __init__(self, automaton: Automaton, vocab: TokenVocabulary, max_cached: int = 8192,
                 max_cut_walks: int = 2048):
        super().__init__(automaton, vocab, max_cached)
        self.pool: CfgPool = automaton.pool
        self.trie = vocab.derived(VocabTrie)
        # cut state -> (bitmask of its walk's tokens, trie nodes where the walk hit the hole)
        self._cut_walks: dict[int, tuple[np.ndarray, list[tuple[int, int]]]] = {}
        self.max_cut_walks = max_cut_walks
        self._in_hole = _InHole(automaton, self.pool)
        self.num_cut_hits = 0

    def mask(self, sid: int) -> np.ndarray:
        m = self._masks.get(sid)
        if m is not None:
            return m
        with self.automaton.lock:
            m = self._masks.get(sid)
            if m is None:
                m = self._compute_mask(sid)
                if len(self._masks) >= self.max_cached:
                    self._masks.pop(next(iter(self._masks)))
                self._masks[sid] = m
                self.num_computed += 1
        return m

    def _compute_mask(self, sid: int) -> np.ndarray:
        shared, ids = self._mask_parts(sid)
        if self.automaton.accepting[sid]:
            ids.append(self._eos)
        m = ids_to_bitmask(np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64),
                           self.vocab.vocab_size)
        return m if shared is None else m | shared

    def _mask_parts(self, sid: int) -> tuple[np.ndarray | None, list[np.ndarray]]:
        """(a bitmask shared with other states or None, token id arrays of this state)."""
        aut, pool, trie = self.automaton, self.pool, self.trie
        node = aut.node_of[sid]
        cut = pool.truncate(node, CUT_DEPTH)
        if cut == node:
            return None, [trie.walk(aut, sid).ids]
        csid = aut.state(cut)
        shared = self._cut_walks.get(csid)
        if shared is None:
            if len(self._cut_walks) >= self.max_cut_walks:
                self._cut_walks.pop(next(iter(self._cut_walks)))
            w = trie.walk(aut, csid, self._in_hole)
            shared = self._cut_walks[csid] = (ids_to_bitmask(w.ids, self.vocab.vocab_size),
                                              w.stopped)
        else:
            self.num_cut_hits += 1
        bits, stopped = shared
        by_level: dict[int, tuple[list[int], list[int]]] = {}
        ids = []
        for d, i in stopped:  # tokens that reach below the cut: walk them for real
            real = aut.walk(sid, trie.prefix(d, i))
            if real == DEAD:
                continue
            if aut.is_live(real):
                ids.append(np.array(trie.node_token_ids(d, i), dtype=np.int64))
            nodes, states = by_level.setdefault(d, ([], []))
            nodes.append(i)
            states.append(real)
        for d, (nodes, states) in by_level.items():
            ids.append(trie.walk(aut, states, start=(d, nodes)).ids)
        return bits, ids

    def _allowed_sorted_positions(self, sid: int) -> np.ndarray:
        return self.trie.walk(self.automaton, sid).ids

    def successors(self, sid: int) -> tuple[np.ndarray, np.ndarray]:
        """`(ids, states)` of every allowed non-EOS token (for budget masks)."""
        with self.automaton.lock:
            w = self.trie.walk(self.automaton, sid)
            return w.ids, w.states


class _InHole:
    """`StopTest` for cut walks: has a state's walk got past the cut? One flag per
    automaton state, extended as states appear."""

    def __init__(self, automaton: Automaton, pool: CfgPool):
        self.automaton = automaton
        self.pool = pool
        self.flags = np.zeros(0, dtype=bool)

    def _extend(self) -> np.ndarray:
        n = self.automaton.num_states
        if len(self.flags) < n:
            node_of = self.automaton.node_of
            new = [self.pool.entered_hole(node_of[s]) for s in range(len(self.flags), n)]
            self.flags = np.concatenate([self.flags, np.array(new, dtype=bool)])
        return self.flags

    def __call__(self, sid: int) -> bool:
        f = self.flags if sid < len(self.flags) else self._extend()
        return bool(f[sid])

    def many(self, sids: np.ndarray) -> np.ndarray:
        f = self.flags
        if len(sids) and int(sids.max()) >= len(f):
            f = self._extend()
        return f[sids]
