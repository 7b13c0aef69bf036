"""The vocabulary as a byte trie, level by level, and a walk of a DFA state through it.

A walk over the flat token list (`token_index.py`) touches every token that survives each
byte; with a trie, tokens sharing a prefix share the work: after `" "` in a grammar that
allows a space before `[` only, the ~20k space-led tokens are one node whose children die
at the next level. The cost is proportional to the surviving *trie nodes*.

Layout, for levels d = 1..max_len (level d holds the prefixes of length d, in sorted
order, so the children of a node are a contiguous run of the next level):
- `byte[d]` (uint8 [n_d]): the last byte of each prefix;
- `token[d]` (int64 [n_d]): the id of the token spelling exactly that prefix, or -1;
- `child_lo[d]`, `child_hi[d]` (int64 [n_d]): its children's run in level d + 1.
Byte strings spelled by several ids keep the extra ids in `extra` (rare).

Subtrees decided whole: `sub_bytes[d]` (uint64 [n_d, 4], a 256-bit set) holds every byte
below a node, and its descendants' tokens are `sorted_ids[desc_lo[d][i]:sub_hi[d][i]]` (the
trie is in sorted order, so a subtree is a run of sorted tokens). When a node's state loops
on every byte below it (an identifier state, under a node whose subtree is all letters), each
token below ends in that same state: the walk adds the run without visiting the subtree.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from ..automaton import DEAD, Automaton
from ..vocabulary import TokenVocabulary

_NARROW = 24  # frontier size below which the walk goes on in plain Python
_DENSE = 64  # frontier size above which whole levels are stepped at once


class StopTest(Protocol):
    """Which states end a walk branch (`__call__` for one state, `many` for an array)."""

    def __call__(self, sid: int) -> bool: ...

    def many(self, sids: np.ndarray) -> np.ndarray: ...


class Walk(NamedTuple):
    ids: np.ndarray  # int64 [n] allowed token ids
    states: np.ndarray  # int64 [n] the live state each leads to
    stopped: list[tuple[int, int]]  # (level, node) where `stop` held (subtrees not walked)


class VocabTrie:
    def __init__(self, vocab: TokenVocabulary):
        items = zip(*vocab.sorted_tokens)
        byte: list[list[int]] = [[]]
        parent: list[list[int]] = [[]]
        token: list[list[int]] = [[]]
        self.extra: dict[tuple[int, int], list[int]] = {}
        pos: list[list[int]] = [[]]  # per node: the sorted position of its token, or -1
        path: list[int] = []  # node index per level of the previous token
        prev = b""
        for k, (data, tid) in enumerate(items):
            lcp = 0
            n = min(len(prev), len(data))
            while lcp < n and prev[lcp] == data[lcp]:
                lcp += 1
            if lcp == len(data) == len(prev):  # same bytes, another id
                self.extra.setdefault((len(data), path[-1]), []).append(tid)
                continue
            del path[lcp:]
            for d in range(lcp + 1, len(data) + 1):
                while len(byte) <= d:
                    byte.append([])
                    parent.append([])
                    token.append([])
                    pos.append([])
                parent[d].append(path[d - 2] if d >= 2 else 0)
                byte[d].append(data[d - 1])
                token[d].append(-1)
                pos[d].append(-1)
                path.append(len(byte[d]) - 1)
            token[len(data)][path[-1]] = tid
            pos[len(data)][path[-1]] = k
            prev = data
        self.max_len = len(byte) - 1
        self.byte = [np.array(x, dtype=np.int64) for x in byte]
        self.parent = [np.array(x, dtype=np.int64) for x in parent]
        self.token = [np.array(x, dtype=np.int64) for x in token]
        # plain-list copies for the narrow part of a walk (numpy calls cost more than the
        # work on a frontier of a few nodes, e.g. the long runs of whitespace tokens)
        self.byte_l = [x for x in byte]
        self.parent_l = [x for x in parent]
        self.token_l = [x for x in token]
        self.child_lo: list[np.ndarray] = []
        self.child_hi: list[np.ndarray] = []
        for d in range(self.max_len + 1):
            n = len(byte[d]) if d else 1
            if d < self.max_len:
                par = np.array(parent[d + 1], dtype=np.int64)
                self.child_lo.append(np.searchsorted(par, np.arange(n), side="left"))
                self.child_hi.append(np.searchsorted(par, np.arange(n), side="right"))
            else:
                self.child_lo.append(np.zeros(n, dtype=np.int64))
                self.child_hi.append(np.zeros(n, dtype=np.int64))
        self.lo_l = [x.tolist() for x in self.child_lo]
        self.hi_l = [x.tolist() for x in self.child_hi]
        self.sorted_ids = np.array(vocab.sorted_tokens[1], dtype=np.int64)
        self._subtree_runs([np.array(x, dtype=np.int64) for x in pos])

    def _subtree_runs(self, pos: list[np.ndarray]) -> None:
        """`sub_bytes`, `desc_lo`, `sub_hi` (see the module docstring), bottom-up."""
        n_ids = [np.ones(len(p), dtype=np.int64) for p in pos]
        for (d, i), more in self.extra.items():
            n_ids[d][i] += len(more)
        self.sub_bytes = [np.zeros((0, 4), dtype=np.uint64)] * (self.max_len + 2)
        self.desc_lo = [np.zeros(0, dtype=np.int64)] * (self.max_len + 2)
        self.sub_hi = [np.zeros(0, dtype=np.int64)] * (self.max_len + 2)
        first = [np.zeros(0, dtype=np.int64)] * (self.max_len + 2)  # first position in subtree
        kid_bits = np.zeros((0, 4), dtype=np.uint64)
        for d in range(self.max_len, 0, -1):
            n = len(pos[d])
            lo, hi = self.child_lo[d], self.child_hi[d]
            kids = hi > lo
            own_end = np.where(pos[d] >= 0, pos[d] + n_ids[d], 0)
            sub_hi = own_end.copy()
            sub_hi[kids] = self.sub_hi[d + 1][hi[kids] - 1]
            self.sub_hi[d] = sub_hi
            self.desc_lo[d] = np.where(pos[d] >= 0, own_end, sub_hi)
            self.desc_lo[d][kids & (pos[d] < 0)] = first[d + 1][lo[kids & (pos[d] < 0)]]
            first[d] = np.where(pos[d] >= 0, pos[d], self.desc_lo[d])
            sub = np.zeros((n, 4), dtype=np.uint64)
            if kids.any():
                sub[kids] = np.bitwise_or.reduceat(kid_bits, lo[kids], axis=0)
            self.sub_bytes[d] = sub
            kid_bits = sub.copy()  # what level d contributes to its parents: own byte | below
            bit = np.uint64(1) << (self.byte[d] & 63).astype(np.uint64)
            kid_bits[np.arange(n), self.byte[d] >> 6] |= bit
        self.sub_bytes_l = [[int.from_bytes(r.tobytes(), "little") for r in x]
                            for x in self.sub_bytes]
        self.desc_lo_l = [x.tolist() for x in self.desc_lo]
        self.sub_hi_l = [x.tolist() for x in self.sub_hi]

    def prefix(self, d: int, i: int) -> bytes:
        """The bytes of node `i` of level `d`."""
        out = []
        while d > 0:
            out.append(self.byte_l[d][i])
            i = self.parent_l[d][i]
            d -= 1
        return bytes(reversed(out))

    def node_token_ids(self, d: int, i: int) -> list[int]:
        """Ids of the tokens spelling exactly node `i` of level `d`."""
        t = self.token_l[d][i]
        return [] if t < 0 else [t, *self.extra.get((d, i), ())]

    def walk(self, aut: Automaton, sid, stop: StopTest | None = None,
             start: tuple[int, list[int]] | None = None) -> Walk:
        """Walk the tokens below the root from DFA state `sid` (or below the nodes
        `start = (level, indices)`, from the states `sid[k]` their own bytes led to). Returns every token whose bytes lead
        to a live state, with that state. With `stop`, a node whose state `s` has
        `stop(s)` is not walked further: it and its subtree are left out of `ids` and
        reported in `stopped` as (level, index). Call under `aut.lock`."""
        ids: list = []
        states: list = []
        stopped: list[tuple[int, int]] = []
        d0, nodes = start if start is not None else (0, [0])
        idx = np.array(nodes, dtype=np.int64)
        st = np.array(sid if start is not None else [sid], dtype=np.int64)
        if d0:
            keep = self._decide_whole(aut, d0, idx, st, ids, states)
            idx, st = idx[keep], st[keep]
        for d in range(d0 + 1, self.max_len + 1):
            if d > d0 + 2 and len(idx) <= _NARROW:
                self._walk_narrow(aut, d - 1, idx, st, stop, ids, states, stopped)
                break
            if len(idx) > _DENSE:
                self._walk_dense(aut, d - 1, idx, st, stop, ids, states, stopped)
                break
            lo, hi = self.child_lo[d - 1][idx], self.child_hi[d - 1][idx]
            cnt = hi - lo
            if d > d0 + 1:
                has = cnt > 0
                if not has.all():
                    lo, cnt, st = lo[has], cnt[has], st[has]
            total = int(cnt.sum())
            if not total:
                break
            first = np.cumsum(cnt) - cnt
            kids = np.arange(total) - np.repeat(first - lo, cnt)  # child node indices
            pst = np.repeat(st, cnt)
            nxt = aut.step_many(pst, self.byte[d][kids])
            keep = nxt != DEAD
            idx, st = kids[keep], nxt[keep].astype(np.int64)
            if stop is not None and len(st):
                hit = stop.many(st)
                if hit.any():
                    stopped.extend((d, i) for i in idx[hit].tolist())
                    idx, st = idx[~hit], st[~hit]
            self._collect_ends(aut, d, idx, st, ids, states)
            keep = self._decide_whole(aut, d, idx, st, ids, states)
            idx, st = idx[keep], st[keep]
        if not ids:
            empty = np.zeros(0, dtype=np.int64)
            return Walk(empty, empty, stopped)
        return Walk(np.concatenate(ids), np.concatenate(states), stopped)

    def _collect_ends(self, aut: Automaton, d: int, nodes: np.ndarray, node_states: np.ndarray,
                      ids: list, states: list) -> None:
        """Record the tokens that end at level-`d` `nodes` (reached in `node_states`) whose
        end state is live, with those states (plus tokens sharing a node, in `extra`)."""
        tok = self.token[d][nodes]
        ends = tok >= 0
        if not ends.any():
            return
        e_st = node_states[ends]
        ok = aut.live_many(e_st)
        ids.append(tok[ends][ok])
        states.append(e_st[ok])
        if self.extra:
            for node, s in zip(nodes[ends][ok].tolist(), e_st[ok].tolist()):
                for t in self.extra.get((d, node), ()):
                    ids.append(np.array([t]))
                    states.append(np.array([s]))

    def _decide_whole(self, aut: Automaton, d: int, nodes: np.ndarray, node_states: np.ndarray,
                      ids: list, states: list) -> np.ndarray:
        """Of level-`d` `nodes` (whose own tokens are collected), which have a subtree left to
        walk (a bool mask). A subtree whose bytes all loop on its node's state is decided
        here: its tokens all end in that state, recorded when it is live."""
        below = self.sub_bytes[d][nodes]
        walk_on = below.any(axis=1)
        if not walk_on.any():
            return walk_on
        cand = np.flatnonzero(walk_on)
        u, inv = np.unique(node_states[cand], return_inverse=True)
        whole = ~(below[cand] & ~aut.loop_bytes(u)[inv]).any(axis=1)
        if whole.any():
            done = cand[whole]
            walk_on[done] = False
            s = node_states[done]
            live = aut.live_many(s)
            done, s = nodes[done][live], s[live]
            lo, hi = self.desc_lo[d][done], self.sub_hi[d][done]
            cnt = hi - lo
            total = int(cnt.sum())
            if total:
                runs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt - lo, cnt)
                ids.append(self.sorted_ids[runs])
                states.append(np.repeat(s, cnt))
        return walk_on

    def _walk_dense(self, aut: Automaton, d: int, idx: np.ndarray, st: np.ndarray,
                    stop: StopTest | None, ids: list, states: list,
                    stopped: list) -> None:
        """Continue a wide walk below level `d` over whole levels: one state per node
        (DEAD for nodes off the walk), two gathers per level instead of expanding child
        runs. Hands over to the narrow walk once few nodes are left."""
        cur = np.zeros(len(self.byte_l[d]), dtype=np.int64)  # DEAD == 0
        cur[idx] = st
        for d in range(d + 1, self.max_len + 1):
            nxt = aut.step_many(cur[self.parent[d]], self.byte[d]).astype(np.int64)
            alive = np.flatnonzero(nxt)
            if stop is not None and len(alive):
                hit = stop.many(nxt[alive])
                if hit.any():
                    stopped.extend((d, i) for i in alive[hit].tolist())
                    nxt[alive[hit]] = 0
                    alive = alive[~hit]
            self._collect_ends(aut, d, alive, nxt[alive], ids, states)
            keep = self._decide_whole(aut, d, alive, nxt[alive], ids, states)
            nxt[alive[~keep]] = 0
            alive = alive[keep]
            if len(alive) <= _NARROW:
                if len(alive):
                    self._walk_narrow(aut, d, alive, nxt[alive], stop, ids, states, stopped)
                return
            cur = nxt

    def _walk_narrow(self, aut: Automaton, d: int, idx: np.ndarray, st: np.ndarray,
                     stop: StopTest | None, ids: list, states: list,
                     stopped: list) -> None:
        """Continue a walk below level `d` (whose tokens are collected) node by node, in
        plain Python, appending to `ids`, `states` and `stopped`."""
        rows: dict[int, list[int]] = {}
        loops: dict[int, int] = {}  # state -> the bytes it loops on, as a 256-bit int
        out_ids: list[int] = []
        out_st: list[int] = []
        stack = list(zip([d] * len(idx), idx.tolist(), st.tolist()))
        while stack:
            d, i, s = stack.pop()
            lo, hi = self.lo_l[d][i], self.hi_l[d][i]
            if lo == hi:
                continue
            row = rows.get(s)
            if row is None:
                row = rows[s] = aut.row(s).tolist()
                loops[s] = int.from_bytes(aut.loop_bytes(np.array([s])).tobytes(), "little")
            if not self.sub_bytes_l[d][i] & ~loops[s]:  # the subtree loops on s: all in
                if aut.is_live(s):
                    run = self.sorted_ids[self.desc_lo_l[d][i]:self.sub_hi_l[d][i]]
                    ids.append(run)
                    states.append(np.full(len(run), s, dtype=np.int64))
                continue
            bl, tl = self.byte_l[d + 1], self.token_l[d + 1]
            for c in range(lo, hi):
                t = row[bl[c]]
                if t == DEAD:
                    continue
                if stop is not None and stop(t):
                    stopped.append((d + 1, c))
                    continue
                tok = tl[c]
                if tok >= 0 and aut.is_live(t):
                    out_ids.append(tok)
                    out_st.append(t)
                    for extra in self.extra.get((d + 1, c), ()):
                        out_ids.append(extra)
                        out_st.append(t)
                stack.append((d + 1, c, t))
        ids.append(np.array(out_ids, dtype=np.int64))
        states.append(np.array(out_st, dtype=np.int64))
