"""Arrays: `prefixItems`, `items`, `minItems`, `maxItems` (and `uniqueItems` where trivial).

Position i is governed, in every clause, by that clause's `prefixItems[i]` or else its
`items`; the element grammar is the merge of those. Positions past every prefix share one
element grammar, repeated with the remaining count bounds, so a long `maxItems` costs one
counter, not one copy per position.

`uniqueItems: true` is enforced when at most one item can occur, or when items come from a
finite set of at most `MAX_DISTINCT` strings, booleans or null (one spelling each, so distinct
texts are distinct values): the array is then a walk over subsets of that set, one state
per subset already written. Elsewhere "all items differ" is not a regular property and
`UnsupportedSchemaError` is raised.

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

MAX_DISTINCT = 8  # values of a uniqueItems set: 2**8 subset states at most


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

    def subs_at(i: int) -> list[Sub]:
        out = []
        for cl in f.arrays:
            if i < len(cl.prefix):
                out.append(cl.prefix[i])
            elif cl.items is not None:
                out.append(cl.items)
        return out

    if f.unique_items and (max_n is None or max_n > 1):
        values = _finite_scalars(c, subs_at(0)) if k == 0 else None
        if values is None:
            raise UnsupportedSchemaError("uniqueItems", f.ctx.pointer, "distinct items are "
                                         "only enforced when maxItems <= 1 or items are at "
                                         f"most {MAX_DISTINCT} strings/booleans/null")
        return _distinct(c, values, min_n, max_n)

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


def _finite_scalars(c: SchemaCompiler, subs: list[Sub]) -> list | None:
    """The values the item schemas allow, if that is a set of at most MAX_DISTINCT strings,
    booleans or null; else None."""
    flats = [Flat(subs[0].ctx)] if subs else []
    for s in subs:
        flats = c.conjoin(flats, c.flatten(s), "uniqueItems", s.ctx)
    if not flats or not all(x.enums for x in flats):
        return None
    candidates = []
    for x in flats:
        for v in x.enums[0]:
            if not (v is None or isinstance(v, (str, bool))):
                return None
            if v not in candidates:
                candidates.append(v)
    if len(candidates) > MAX_DISTINCT:
        return None
    elem = c.value(subs)
    return [v for v in candidates if c.matches(elem, c.syntax.literal_bytes(v))]


def _distinct(c: SchemaCompiler, values: list, min_n: int, max_n: int | None) -> int:
    """Arrays of pairwise different `values`, between min_n and max_n of them."""
    p, syn = c.pool, c.syntax
    items = [syn.literal_value(v) for v in values]
    memo: dict[int, int] = {}

    def body(used: int) -> int:  # `used`: bit i set when values[i] was written
        if used not in memo:
            n = bin(used).count("1")
            options = [p.empty] if n >= min_n else []
            if max_n is None or n < max_n:
                options.extend(p.cat_all([syn.comma if used else p.empty, item,
                                          body(used | 1 << i)])
                               for i, item in enumerate(items) if not used >> i & 1)
            memo[used] = p.alt(options)
        return memo[used]

    return p.cat_all([p.literal(b"["), syn.ws, body(0), syn.ws, p.literal(b"]")])
