"""Counted repeats as one token sees them: states that differ only in a large count share
a mask.

A string bounded to 255 characters moves to a new state with every character written
(`x{0,253}`, `x{0,252}`, ...), so each token in it would start a new vocabulary walk. One
token walk takes at most `max_len` bytes (the longest token), hence at most `max_len`
iterations of a non-nullable body; so for the walk `x{lo,hi}` with `hi > max_len` acts as
`x{lo,}`, and `lo > max_len` as `x{max_len + 1,}` (no exit either way). `generalize` rewrites
every such repeat that is not inside an AND/NOT/FSM node (those are kept whole: their
liveness is searched, and a count can decide it). Outside them liveness is structural
(`Automaton._node_live`), so the result has exactly the same token mask as the original
state, and the same nullability, so the same EOS bit.

With `max_len` below the longest token, the result's mask is exact for the tokens of at
most `max_len` bytes: `TokenIndex` uses that (12 bytes) for counts between 12 and the
longest token, and walks the ~2k longer tokens from the real state.
"""

from __future__ import annotations

from .automaton import Automaton
from .expr import ALT, CAT, REP, ExprPool


def generalize(pool: ExprPool, e: int, max_len: int) -> int:
    """`e` with counted repeats generalized for walks of at most `max_len` bytes (`e`
    itself when it has none). Memoized in `pool.memo`: the states of one grammar share
    their tails, so each node is visited once."""
    memo = pool.memo.setdefault(("generalize", max_len), {})
    r = memo.get(e)
    if r is not None:
        return r
    k = pool.kind[e]
    if k not in (CAT, ALT, REP):  # AND/NOT/FSM (kept whole), BYTES, EMPTY, NEVER
        r = e
    elif k == CAT:  # iterative over the chain: a long literal is a long CAT chain
        chain, cur = [], e
        while pool.kind[cur] == CAT and cur not in memo:
            chain.append(cur)
            cur = pool.y[cur]
        r = generalize(pool, cur, max_len)
        for c in reversed(chain):
            r = memo[c] = pool.cat(generalize(pool, pool.x[c], max_len), r)
    elif k == ALT:
        r = pool.alt([generalize(pool, c, max_len) for c in pool.x[e]])
    else:
        lo, hi = pool.y[e]
        r = pool.rep(generalize(pool, pool.x[e], max_len), min(lo, max_len + 1),
                     None if hi is None or hi > max_len else hi)
    memo[e] = r
    return r


class CountGeneralizer:
    """`generalize` for the states of one automaton, skipped (a state is its own
    generalization) when the grammar has no count above `min_len` at all."""

    def __init__(self, automaton: Automaton, min_len: int):
        self.automaton = automaton
        pool = automaton.pool
        # derivatives only lower counts, so the expression as compiled decides it
        self.active = any(k == REP and (y[0] > min_len + 1 or (y[1] or 0) > min_len)
                          for k, y in zip(pool.kind, pool.y))

    def general(self, sid: int, max_len: int) -> int:
        """The state of `sid` generalized for walks of at most `max_len` bytes (its mask
        equals `sid`'s on tokens of at most `max_len` bytes; same EOS bit)."""
        if not self.active:
            return sid
        aut = self.automaton
        return aut.state(generalize(aut.pool, aut.node_of[sid], max_len))

    def general_short(self, sid: int, max_len: int) -> int | None:
        """`general(sid, max_len)` for states without boolean parts (AND/NOT/FSM), else
        None: a boolean part is kept whole and usually changes with every token, so a
        generalization for short tokens would rarely be shared."""
        aut = self.automaton
        if not self.active or aut.pool.boolean[aut.node_of[sid]]:
            return None
        return self.general(sid, max_len)
