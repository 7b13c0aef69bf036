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

One AND is generalized too: a string's length bound beside its pattern, `AND(REP(u, lo,
hi), X)` where `u` is a unit registered with `register_unit_bound` (a JSON character: X
then spells whole units). Lifting `hi` to unbounded keeps the mask exact when
`hi - max_len >= lo + W`, W bounding the shortest completion of every derivative of X
(`worst_completion`): the walk cannot run out of count, and an end state that is live
without the bound has a completion within it (take `lo` more units of a live string, then
finish X within W bytes). With two conjuncts beside the count (a pattern and a format)
their common completion has no such bound, so the AND is kept whole. Without the lift
every character of a pattern with a `maxLength` was a new state and a new mask.
"""

from __future__ import annotations

from .automaton import Automaton
from .expr import ALT, AND, CAT, REP, ExprPool
from .lengths import cat_parts, worst_completion

UNIT_BOUNDS = "unit_bounds"  # pool.memo: {unit expression: True}, see register_unit_bound


def generalize(pool: ExprPool, e: int, max_len: int) -> int:
    """`e` with counted repeats generalized for walks of at most `max_len` bytes (`e`
    itself when it has none). Memoized in `pool.memo`: the states of one grammar share
    their tails, so each node is visited once."""
    memo = pool.memo.setdefault(("generalize", max_len), {})
    r = memo.get(e)
    if r is not None:
        return r
    k = pool.kind[e]
    if k == AND:
        r = _lift_count(pool, e, max_len)
    elif k not in (CAT, ALT, REP):  # NOT/FSM (kept whole), BYTES, EMPTY, NEVER
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


def register_unit_bound(pool: ExprPool, unit: int) -> None:
    """Declare that wherever an AND holds `REP(unit, lo, hi)` (possibly after the rest of a
    unit begun), its other conjuncts spell whole units only, so `generalize` may lift the
    count (as `json_strings` does for a string's length beside its patterns)."""
    pool.memo.setdefault(UNIT_BOUNDS, {})[unit] = True


def _lift_count(pool: ExprPool, e: int, max_len: int) -> int:
    """The AND `e` with its unit count made unbounded where that cannot change a mask of
    walks of at most `max_len` bytes (see the module docstring), else `e`."""
    units = pool.memo.get(UNIT_BOUNDS)
    if not units:
        return e
    counted, others = None, []
    for c in pool.x[e]:
        heads, last = cat_parts(pool, c)
        if pool.kind[last] == REP and pool.x[last] in units and counted is None:
            counted = (heads, last)
        else:
            others.append(c)
    if counted is None or len(others) != 1 or any(pool.boolean[x]
                                                 for x in [*others, *counted[0]]):
        return e
    heads, rep = counted
    lo, hi = pool.y[rep]
    bound = worst_completion(pool, others[0])
    if hi is None or bound is None or hi - max_len < lo + bound:
        return e
    lifted = pool.cat_all([*heads, pool.rep(pool.x[rep], lo, None)])
    return pool.and_([lifted, others[0]])


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
        """`general(sid, max_len)` for states without boolean parts (AND/NOT/FSM) or led
        by a length bound `_lift_count` lifts for `max_len`, else None: any other boolean
        part is kept whole and usually changes with every token, so a generalization for
        short tokens would rarely be shared."""
        aut = self.automaton
        if not self.active:
            return None
        pool, node = aut.pool, aut.node_of[sid]
        if pool.boolean[node]:
            head = pool.x[node] if pool.kind[node] == CAT else node
            if pool.kind[head] != AND or _lift_count(pool, head, max_len) == head:
                return None
        return self.general(sid, max_len)
