"""Arrays: `prefixItems`, `items`, `minItems`, `maxItems` (and `uniqueItems` where trivial).

Position i is governed, in every clause, by that clause's `prefixItems[i]` or else its
`items`; the element grammar is the merge of those. Positions past every prefix share one
element grammar, repeated with the remaining count bounds, so a long `maxItems` costs one
counter, not one copy per position.

`uniqueItems: true` is enforced only when at most one item can occur (otherwise "all items
differ" is not a regular property) and raises `UnsupportedSchemaError` elsewhere.

`contains` (with `minContains`/`maxContains`) intersects the array with a second array
grammar in which each item either matches the `contains` schema or matches its complement
(so that schema must be exact, see `json_logic.py`), counting the matches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import replace

from .errors import UnsupportedSchemaError
from .json_flat import Flat, Sub
from .json_logic import exact_flats

if TYPE_CHECKING:
    from .json_schema import SchemaCompiler


def array_expr(c: SchemaCompiler, f: Flat) -> int:
    if not f.contains:
        return _plain(c, f)
    if len(f.contains) > 1:
        raise UnsupportedSchemaError("contains", f.ctx.pointer, "more than one contains")
    sub, lo, hi = f.contains[0]
    plain = _plain(c, replace(f, contains=[]))
    if hi is not None and lo > hi:
        return c.pool.never
    if lo == 0 and hi is None:
        return plain
    flats = exact_flats(c, sub)
    if flats is None:
        raise UnsupportedSchemaError("contains", f.ctx.pointer, "its schema is not exact "
                                     "enough to count non-matching items")
    p, syn = c.pool, c.syntax
    match = p.alt([c.compile_flat(x) for x in flats])
    item = syn.universe(c.options.any_depth - 1)
    m, n = p.and_([item, match]), p.and_([item, p.not_(match)])
    cm, cn = p.cat(syn.comma, m), p.cat(syn.comma, n)

    def rest(lo: int, hi: int | None) -> int:  # later items, each after a comma
        return p.cat(p.rep(cn, 0, None), p.rep(p.cat(cm, p.rep(cn, 0, None)), lo, hi))

    options = [p.cat(n, rest(lo, hi))]
    if lo == 0:
        options.append(p.empty)
    if hi is None or hi >= 1:
        options.append(p.cat(m, rest(max(lo - 1, 0), None if hi is None else hi - 1)))
    counted = p.cat_all([p.literal(b"["), syn.ws, p.alt(options), syn.ws, p.literal(b"]")])
    return p.and_([plain, counted])


def _plain(c: SchemaCompiler, f: Flat) -> int:
    p, syn = c.pool, c.syntax
    k = max((len(cl.prefix) for cl in f.arrays), default=0)
    min_n, max_n = f.min_items, f.max_items
    if max_n is not None and min_n > max_n:
        return p.never
    if f.unique_items and (max_n is None or max_n > 1):
        raise UnsupportedSchemaError("uniqueItems", f.ctx.pointer,
                                     "distinct items are only enforced when maxItems <= 1")

    def subs_at(i: int) -> list[Sub]:
        out = []
        for cl in f.arrays:
            if i < len(cl.prefix):
                out.append(cl.prefix[i])
            elif cl.items is not None:
                out.append(cl.items)
        return out

    rest = c.value(subs_at(k))
    lo = max(0, min_n - k)
    hi = None if max_n is None else max_n - k
    if hi is not None and hi < 0:
        tail = p.never
    elif k > 0:
        tail = p.rep(p.cat(syn.comma, rest), lo, hi)
    elif hi == 0:
        tail = p.empty
    else:
        more = p.rep(p.cat(syn.comma, rest), max(lo - 1, 0), None if hi is None else hi - 1)
        tail = p.cat(rest, more)
        if lo == 0:
            tail = p.opt(tail)
    body = tail
    for i in reversed(range(k)):
        options = []
        if i >= min_n:
            options.append(p.empty)
        if max_n is None or i < max_n:
            elem = c.value(subs_at(i))
            options.append(p.cat_all([syn.comma if i else p.empty, elem, body]))
        body = p.alt(options)
    return p.cat_all([p.literal(b"["), syn.ws, body, syn.ws, p.literal(b"]")])
