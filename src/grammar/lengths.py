"""Lengths of the strings of an expression, for searches that need a bound on what is left:
the shortest string (`min_len`, the closing index's A* heuristic) and a bound on the shortest
completion of every derivative (`worst_completion`, for lifting a count in `generalize.py`).
Both are memoized in the pool, whose nodes never change.
"""

from __future__ import annotations

from .expr import ALT, AND, BYTES, CAT, EMPTY, FSM, NEVER, NOT, REP, ExprPool

INF = 1 << 40


def min_len(pool: ExprPool, e: int) -> int:
    """Length of the shortest string in expression `e` (a lower bound under AND/NOT/FSM;
    INF for NEVER and rule references not seeded in `known_min_lens`)."""
    memo = known_min_lens(pool)
    r = memo.get(e)
    if r is not None:
        return r
    stack = [e]
    while stack:  # post-order without recursion: CAT chains can be thousands deep
        n = stack[-1]
        if n in memo:
            stack.pop()
            continue
        k = pool.kind[n]
        kids = (pool.x[n], pool.y[n]) if k == CAT else pool.x[n] if k in (ALT, AND) else \
            (pool.x[n],) if k in (REP, NOT) else ()
        if k == NOT:
            kids = ()  # bound from nullability alone
        pending = [c for c in kids if c not in memo]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        if k == EMPTY:
            v = 0
        elif k == BYTES:
            v = 1
        elif k == CAT:
            v = min(INF, memo[pool.x[n]] + memo[pool.y[n]])
        elif k == ALT:
            v = min(memo[c] for c in pool.x[n])
        elif k == AND:
            v = max(memo[c] for c in pool.x[n])
        elif k == REP:
            lo = pool.y[n][0]
            v = 0 if lo == 0 else min(INF, lo * memo[pool.x[n]])
        elif k in (NOT, FSM):
            v = 0 if pool.nullable[n] else 1
        else:  # NEVER
            v = INF
        memo[n] = v
    return memo[e]


def known_min_lens(pool: ExprPool) -> dict[int, int]:
    """`min_len`'s memo (node -> length, kept in `pool.memo`), for callers that know lengths
    the structure does not show: a CFG seeds its rule references'."""
    return pool.memo.setdefault("min_len", {})


def worst_completion(pool: ExprPool, e: int) -> int | None:
    """A bound, in bytes, on the shortest completion of every derivative of `e`: from
    wherever a string of `e` has got to, one can finish within this many bytes. None for
    expressions with AND/NOT/FSM or rule references. Memoized in `pool.memo`."""
    memo = pool.memo.setdefault("worst_completion", {})
    if e in memo:
        return memo[e]
    k = pool.kind[e]
    if k in (NEVER, EMPTY):
        r = 0
    elif k == BYTES:
        r = 1
    elif k == CAT:  # iterative over the chain: max(W(head) + minlen(tail), W(tail))
        heads, last = cat_parts(pool, e)
        r = worst_completion(pool, last)
        tail_min = 0 if r is None else min_len(pool, last)
        for h in reversed(heads):
            wh = None if r is None else worst_completion(pool, h)
            if wh is None:
                r = None
                break
            r, tail_min = max(wh + tail_min, r), min_len(pool, h) + tail_min
    elif k == ALT:
        kids = [worst_completion(pool, c) for c in pool.x[e]]
        r = None if None in kids else max(kids)
    elif k == REP:
        lo = pool.y[e][0]
        w = worst_completion(pool, pool.x[e])
        r = None if w is None else w + max(lo - 1, 0) * min_len(pool, pool.x[e])
    else:
        r = None
    memo[e] = r
    return r


def cat_parts(pool: ExprPool, e: int) -> tuple[list[int], int]:
    """A CAT chain as (its elements but the last, the last)."""
    heads = []
    while pool.kind[e] == CAT:
        heads.append(pool.x[e])
        e = pool.y[e]
    return heads, e
