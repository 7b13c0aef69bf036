"""Objects: properties in a fixed order, then any additional members.

Order: declared properties in schema order (every clause's `properties`, then `required`
names no clause declares, then names used by `dependentRequired`), each once, then
"additional" members whose keys are none of those names. A grammar must fix some order to
stay regular; fixing the schema's own order is what models are trained to produce.

A declared key's value must satisfy, in every clause, the clause's `properties[key]` plus
the `patternProperties` that match the key, or else the clause's `additionalProperties`.
Additional keys are split by which set of patterns they match, so each part gets the exact
value schema. Only sets of pairwise intersecting patterns can be matched together (so
anchored patterns with different literal prefixes give one part each, plus "none"); more
than MAX_PATTERN_SETS such sets is refused. `propertyNames` is intersected with every key.

`min_extra` (from negating a closed object, `json_negation.py`) asks for that many
additional members at least.

Counting (`minProperties`/`maxProperties`) and `dependentRequired` are tracked while the
declared properties are chosen: the suffix after property i is memoized on (i, count so far,
whether a member was written, which dependency names are present), so the expression stays
polynomial. Additional members can repeat a key; the parsed object then has fewer members
than written. So when `minProperties` needs two or more additional members, the first ones
needed are written with keys whose first encoded bytes strictly increase (each code point
has one spelling, so different first bytes are different keys): sound, and complete up to
the order and first letters of those keys (`distinct_extras`).

Default for a missing `additionalProperties`: allowed (the JSON Schema rule), unless the
compiler runs with `strict=True`, which closes every object that declares `properties` and
says nothing about additional ones (a bare `{"type": "object"}` stays open).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UnsupportedSchemaError
from .json_flat import Flat, ObjectClause, Sub
from .json_strings import encode_string, quoted, string_not_in

if TYPE_CHECKING:
    from .json_schema import SchemaCompiler

MAX_PATTERN_SETS = 16  # sets of patterns one additional key can match together


def object_expr(c: SchemaCompiler, f: Flat) -> int:
    p, syn = c.pool, c.syntax
    clauses = f.objects or [ObjectClause({}, [], None)]
    names: list[str] = []
    for cl in clauses:
        names.extend(n for n in cl.props if n not in names)
    names.extend(n for n in f.required if n not in names)
    for k, deps in f.dep_required.items():
        names.extend(n for n in [k, *deps] if n not in names)
    if (c.options.strict and any(cl.props for cl in clauses)
            and all(cl.additional is None and not cl.patterns for cl in clauses)):
        anything = Sub(True, f.ctx)
        clauses = [*clauses, ObjectClause(dict.fromkeys(names, anything), [], Sub(False, f.ctx))]
    max_p = f.max_props
    if max_p is not None and f.min_props > max_p:
        return p.never

    values = {}
    for n in names:
        v = c.value(subs_for_key(c, clauses, n))
        if v != p.never and f.prop_names and not all(
                c.matches(c.value([s]), encode_string(n)) for s in f.prop_names):
            v = p.never
        values[n] = v
    members = {n: p.cat_all([p.literal(encode_string(n)), syn.colon, values[n]])
               for n in names if values[n] != p.never}
    if any(r not in members for r in f.required):
        return p.never
    extra = _extra_member(c, clauses, names, f)
    relevant = sorted({n for k, d in f.dep_required.items() for n in [k, *d]})
    cap = max_p if max_p is not None else f.min_props
    memo: dict = {}

    def tail(count: int, emitted: bool) -> int:
        lo = max(0, f.min_props - count, f.min_extra)
        hi = None if max_p is None else max_p - count
        if extra == p.never or hi == 0:
            return p.empty if lo == 0 else p.never
        if lo >= 2:
            return distinct_extras(c, extra, lo, hi, emitted)
        if emitted:
            return p.rep(p.cat(syn.comma, extra), lo, hi)
        more = p.rep(p.cat(syn.comma, extra), 0, None if hi is None else hi - 1)
        first = p.cat(extra, more)
        return first if lo else p.opt(first)

    def suffix(i: int, count: int, emitted: bool, present: frozenset) -> int:
        key = (i, count, emitted, present)
        if key in memo:
            return memo[key]
        if i == len(names):
            ok = all(set(f.dep_required[k]) <= present for k in f.dep_required if k in present)
            r = tail(count, emitted) if ok else p.never
        else:
            n = names[i]
            options = []
            if n in members and (max_p is None or count < max_p):
                has = present | {n} if n in relevant else present
                options.append(p.cat_all([syn.comma if emitted else p.empty, members[n],
                                          suffix(i + 1, min(count + 1, cap), True, has)]))
            if n not in f.required:
                options.append(suffix(i + 1, count, emitted, present))
            r = p.alt(options)
        memo[key] = r
        return r

    body = suffix(0, 0, False, frozenset())
    return p.cat_all([p.literal(b"{"), syn.ws, body, syn.ws, p.literal(b"}")])


def distinct_extras(c: SchemaCompiler, extra: int, lo: int, hi: int | None,
                    emitted: bool) -> int:
    """`lo` additional members with pairwise distinct keys (first key bytes strictly
    increasing), then up to `hi - lo` more of any key. `extra` is one `"key":value` member."""
    p, syn = c.pool, c.syntax
    if hi is not None and hi < lo:
        return p.never
    after_quote = p.deriv(extra, ord('"'))
    members = [m for b in range(256)
               if (m := p.cat(p.literal(bytes([34, b])), p.deriv(after_quote, b))) != p.never]
    more = p.rep(p.cat(syn.comma, extra), 0, None if hi is None else hi - lo)
    memo: dict = {}

    def chain(k: int, i: int, first: bool) -> int:
        """k members still to write, their first key bytes drawn from members[i:]."""
        if k == 0:
            return more
        if len(members) - i < k:
            return p.never
        key = (k, i, first)
        if key not in memo:
            take = p.cat_all([p.empty if first else syn.comma, members[i],
                              chain(k - 1, i + 1, False)])
            memo[key] = p.alt([take, chain(k, i + 1, first)])
        return memo[key]

    return chain(lo, 0, not emitted)


def subs_for_key(c: SchemaCompiler, clauses: list[ObjectClause], name: str) -> list[Sub]:
    """The schemas the value of member `name` must satisfy (all of them), clause by clause:
    its property and matching patterns, else the additional schema."""
    subs = []
    content = encode_string(name)[1:-1]
    for cl in clauses:
        matched = [s for pat, s in cl.patterns
                   if c.matches(c.pattern(pat, s.ctx, "patternProperties"), content)]
        if name in cl.props:
            subs.append(cl.props[name])
            subs.extend(matched)
        elif matched:
            subs.extend(matched)
        elif cl.additional is not None:
            subs.append(cl.additional)
    return subs


def _extra_member(c: SchemaCompiler, clauses: list[ObjectClause], names: list[str],
                  f: Flat) -> int:
    """Any one additional `"key": value` member (NEVER if none is allowed)."""
    p, syn = c.pool, c.syntax
    pats = [(pat, s, i) for i, cl in enumerate(clauses) for pat, s in cl.patterns]
    where = {}  # pattern text -> its index among the distinct patterns (same text, same keys)
    for pat, s, _ in pats:
        where.setdefault(pat, (len(where), s.ctx))
    exprs = [c.pattern(pat, ctx, "patternProperties") for pat, (_, ctx) in where.items()]
    meets, sets = _pattern_sets(c, exprs, f)
    not_declared = string_not_in(p, names)
    names_ok = [c.value([s]) for s in f.prop_names]
    branches = []
    for on in sets:
        subs = []
        for i, cl in enumerate(clauses):
            matched = [s for pat, s, j in pats if where[pat][0] in on and j == i]
            if matched:
                subs.extend(matched)
            elif cl.additional is not None:
                subs.append(cl.additional)
        value = c.value(subs)
        if value == p.never:
            continue
        parts = [not_declared, *(exprs[k] for k in sorted(on))]
        # a pattern disjoint from one that matched cannot match too: no need to exclude it
        parts.extend(p.not_(exprs[k]) for k in range(len(exprs))
                     if k not in on and all((min(k, m), max(k, m)) in meets for m in on))
        key = quoted(p, p.and_(parts) if len(parts) > 1 else parts[0])
        if names_ok:
            key = p.and_([key, *names_ok])
        branches.append(p.cat_all([key, syn.colon, value]))
    return p.alt(branches)


def _pattern_sets(c: SchemaCompiler, exprs: list[int],
                  f: Flat) -> tuple[set[tuple[int, int]], list[frozenset[int]]]:
    """(pairs (i, j), i < j, of patterns some key matches both, the sets of patterns that are
    pairwise such pairs: every set of patterns one key can match is among them)."""
    meets = {(i, j) for i in range(len(exprs)) for j in range(i + 1, len(exprs))
             if c.nonempty(c.pool.and_([exprs[i], exprs[j]]))}
    sets = [frozenset()]
    for k in range(len(exprs)):
        sets += [s | {k} for s in sets if all((m, k) in meets for m in s)]
        if len(sets) > MAX_PATTERN_SETS:
            raise UnsupportedSchemaError("patternProperties", f.ctx.pointer, "more than "
                                         f"{MAX_PATTERN_SETS} sets of patterns a key can "
                                         "match together")
    return meets, sets
