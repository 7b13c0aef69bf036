"""Shortest accepting continuations ("closing paths"), for decoding under a token budget.

For a DFA state s, the closing path is a shortest byte string leading from s to an
accepting state: closing a string, ending a number, closing arrays and objects, adding
required members with their shortest valid values. It is found by A* search over the lazy
DFA with `min_len` of the state's expression as the heuristic. `min_len` is exact for
expressions without AND/NOT/FSM (there A* walks straight down the path, one DFA row per
byte) and a lower bound otherwise (so the search stays exact, just wider).

Invariants:
- `closing_bytes(s)` is a shortest byte string from s to acceptance; every state on it was
  assigned its `next byte` when the path was found, so the closing path of a state on the
  path is the rest of the path (following it never changes its mind).
- `min_tokens(s)` is the number of tokens of the greedy longest-match tokenization of
  `closing_bytes(s)` over the vocabulary (special tokens excluded). It is exactly the
  length of the path `closing_token_ids` forces, so an upper bound on the true minimum
  over all continuations. Greedy tokenization is left to right, so after accepting the
  first closing token, `min_tokens` drops by exactly one.
- Every closing token is allowed by the token mask: its bytes end on the closing path,
  whose states are all live.
- `budget_mask(s, budget)` allows exactly the tokens t with `1 + min_tokens(next(t)) <=
  budget`, plus EOS when s is accepting. When `budget >= min_tokens(s)` it is never empty
  (the first closing token passes); when the budget is already short it falls back to the
  closing token alone.
- Per-state results are cached (closing paths forever, successor tables in an LRU); all
  mutation happens under the automaton's lock.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict

import numpy as np

from .automaton import DEAD, Automaton
from .bitmask import ids_to_bitmask
from .lengths import INF, min_len
from .token_index import TokenIndex

# A* expansions allowed per closing search; past it the state has no known closing path
# (only boolean expressions with wide dead regions come near it).
MAX_EXPANSIONS = 20_000


class ClosingIndex:
    def __init__(self, automaton: Automaton, index: TokenIndex, max_cached_successors: int = 256):
        self.automaton = automaton
        self.index = index
        self.vocab = index.vocab
        self.max_cached_successors = max_cached_successors
        self._dist: dict[int, int] = {}  # state -> shortest closing length in bytes (exact)
        self._next: dict[int, int] = {}  # state -> next byte on its closing path
        self._tokens: dict[int, tuple[int, int]] = {}  # state -> (first token, token count)
        self._unclosable: set[int] = set()  # states whose search ran out of budget
        self._successors: OrderedDict[int, tuple] = OrderedDict()

    # ---- bytes --------------------------------------------------------------------------


    def distance(self, sid: int) -> int | None:
        """Bytes on the shortest path from `sid` to acceptance (None: search gave up)."""
        if sid not in self._dist:
            with self.automaton.lock:
                self._search(sid)
        return self._dist.get(sid)

    def closing_bytes(self, sid: int) -> bytes | None:
        if self.distance(sid) is None:
            return None
        out = bytearray()
        nxt, aut = self._next, self.automaton
        while not aut.accepting[sid]:
            b = nxt[sid]
            out.append(b)
            sid = aut.step(sid, b)
        return bytes(out)

    def _search(self, start: int) -> None:
        aut, dist = self.automaton, self._dist
        if start in dist or start in self._unclosable:
            return
        if aut.accepting[start]:
            dist[start] = 0
            return
        if start == DEAD:
            self._unclosable.add(start)
            return

        def h(s: int) -> int:
            d = dist.get(s)
            return d if d is not None else min_len(aut.pool, aut.node_of[s])

        best = {start: 0}
        parent: dict[int, tuple[int, int]] = {}
        seq = 0
        heap = [(h(start), 0, seq, start)]
        expansions = 0
        while heap:
            f, neg_g, _, s = heapq.heappop(heap)
            g = -neg_g
            if g > best[s] or f >= INF:
                continue
            if aut.accepting[s] or s in dist:
                self._record_path(start, s, parent)
                return
            expansions += 1
            if expansions > MAX_EXPANSIONS:
                break
            row = aut.row(s)
            for b, t in _first_byte_per_successor(row):
                if t == DEAD or t in self._unclosable:
                    continue
                if g + 1 < best.get(t, INF):
                    best[t] = g + 1
                    parent[t] = (s, b)
                    seq += 1
                    # deeper first among equals: with an exact heuristic, a straight descent
                    heapq.heappush(heap, (g + 1 + h(t), -(g + 1), seq, t))
        self._unclosable.add(start)

    def _record_path(self, start: int, goal: int, parent: dict[int, tuple[int, int]]) -> None:
        path = []
        s = goal
        while s != start:
            prev, b = parent[s]
            path.append((prev, b))
            s = prev
        d = self._dist.get(goal, 0)
        if goal not in self._dist:
            self._dist[goal] = 0
        for prev, b in path:  # from the goal backwards
            d += 1
            self._dist[prev] = d
            self._next[prev] = b

    # ---- tokens -------------------------------------------------------------------------

    def first_token_and_count(self, sid: int) -> tuple[int, int] | None:
        """(first closing token id or -1 when accepting, closing token count)."""
        r = self._tokens.get(sid)
        if r is not None:
            return r
        data = self.closing_bytes(sid)
        if data is None:
            return None
        with self.automaton.lock:
            chain = []  # (state, token) from sid until a state already counted
            s, i = sid, 0
            while i < len(data) and s not in self._tokens:
                tok, n = self._longest_token(data, i)
                chain.append((s, tok))
                s = self.automaton.walk(s, data[i:i + n])
                i += n
            count = self._tokens[s][1] if s in self._tokens else 0
            if s not in self._tokens:
                self._tokens[s] = (-1, 0)
            for st, tok in reversed(chain):
                count += 1
                self._tokens[st] = (tok, count)
        return self._tokens[sid]

    def _longest_token(self, data: bytes, i: int) -> tuple[int, int]:
        ids_of = self.vocab.token_id_of_bytes
        for n in range(min(len(data) - i, self.vocab.layout.max_len), 0, -1):
            tok = ids_of.get(data[i:i + n])
            if tok is not None:
                return tok, n
        raise AssertionError("closing byte is not a token: the pool only uses token bytes")

    def tokens_upper_bound(self, sid: int) -> int | None:
        """A cheap number >= `min_tokens(sid)`: the expression's shortest length in bytes
        (exact, and no search) when the state has no AND/NOT/FSM, else `min_tokens`."""
        node = self.automaton.node_of[sid]
        if not self.automaton.pool.boolean[node]:
            n = min_len(self.automaton.pool, node)
            return None if n >= INF else n
        return self.min_tokens(sid)

    def min_tokens(self, sid: int) -> int | None:
        r = self.first_token_and_count(sid)
        return None if r is None else r[1]

    def closing_token_ids(self, sid: int) -> list[int] | None:
        if self.first_token_and_count(sid) is None:
            return None
        out = []
        while True:
            tok, _ = self._tokens[sid]
            if tok < 0:
                return out
            out.append(tok)
            sid = self.index.next_state(sid, tok)

    # ---- masks --------------------------------------------------------------------------

    def budget_mask(self, sid: int, budget: int) -> np.ndarray:
        """int32 [ceil(V/32)]: tokens after which the rest still closes within budget."""
        ids, need, max_need, masks = self._successor_needs(sid)
        if budget >= max_need:
            return self.index.mask(sid)
        budget = max(budget, 0)
        m = masks.get(budget)
        if m is None:
            keep = ids[need <= budget]
            if not len(keep) and not self.automaton.accepting[sid]:
                r = self.first_token_and_count(sid)
                if r is None or r[0] < 0:
                    return self.index.mask(sid)
                keep = np.array([r[0]], dtype=np.int64)
            if self.automaton.accepting[sid]:
                keep = np.concatenate([keep, np.array(sorted(self.vocab.eos_token_ids))])
            m = masks[budget] = ids_to_bitmask(keep, self.vocab.vocab_size)
        return m

    def _successor_needs(self, sid: int) -> tuple[np.ndarray, np.ndarray, int, dict]:
        """(allowed non-EOS ids, 1 + min_tokens of the state each leads to, max of those,
        budget -> mask cache)."""
        r = self._successors.get(sid)
        if r is not None:
            return r
        with self.automaton.lock:
            ids, states = self.index.successors(sid)
            uniq, inverse = np.unique(states, return_inverse=True)
            counts = [self.min_tokens(int(s)) for s in uniq]
            per_state = np.array([INF if c is None else c + 1 for c in counts], dtype=np.int64)
            need = per_state[inverse] if len(ids) else np.zeros(0, dtype=np.int64)
            r = (ids, need, int(need.max()) if len(need) else 0, {})
            self._successors[sid] = r
            if len(self._successors) > self.max_cached_successors:
                self._successors.popitem(last=False)
        return r


# Among equally short paths, letters first: BPE vocabularies merge runs of letters into few
# tokens, while digits and punctuation are often one token each ("aaaaaaaa" vs "00000000").
_BYTE_PREFERENCE = [*range(ord("a"), ord("z") + 1), *range(ord("A"), ord("Z") + 1),
                    *(b for b in range(256) if not chr(b).isascii() or not chr(b).isalpha())]


def _first_byte_per_successor(row: np.ndarray) -> list[tuple[int, int]]:
    """(preferred byte, successor) for each distinct successor in a DFA row, in byte
    preference order."""
    seen: dict[int, int] = {}
    row_list = row.tolist()
    for b in _BYTE_PREFERENCE:
        t = row_list[b]
        if t not in seen:
            seen[t] = b
    return [(b, t) for t, b in seen.items()]
