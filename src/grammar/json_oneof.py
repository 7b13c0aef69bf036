"""`oneOf`: a union of branches that no value can satisfy together.

Branch pairs that are provably disjoint need nothing more; a pair that may overlap gets
"and not the other branch" on each side, which `json_logic.py` compiles only where the
complement is exact (and refuses with `UnsupportedSchemaError("oneOf", ...)` elsewhere).
Disjointness is proved by one of:
1. types that cannot meet;
2. finite value sets (`const`/`enum`) with no common value, or a finite scalar set none of
   whose values the other branch's exact grammar accepts;
3. a discriminator: both branches are objects and require a property whose values are
   finite sets with nothing in common (pydantic's tagged unions);
3b. a property one object-only branch requires and the other forbids (`false`, or closed
   by `additionalProperties: false` without patternProperties; `strict=True` does not
   count, since it closes the grammar, not the schema);
3c. a property one object-only branch requires whose values there are disjoint (by these
   same rules, up to MAX_DEPTH levels) from what the other branch allows for it (its
   property, matching patterns or additional schema);
4. scalar branches without `pattern`/`format` (where the grammar is exactly the schema)
   whose grammars do not intersect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import replace

from .json_flat import Ctx, Flat, Sub, _types_and
from .errors import UnsupportedSchemaError
from .json_keywords import json_equal
from .json_objects import subs_for_key

if TYPE_CHECKING:
    from .json_schema import SchemaCompiler

MAX_DEPTH = 3  # nested members compared when proving object branches disjoint
_SCALARS = frozenset({"null", "boolean", "integer", "number", "string"})


def one_of_branches(c: SchemaCompiler, branches: list[list[Flat]], subs: list[Sub],
                    ctx: Ctx, within: frozenset[str] | None = None) -> list[Flat]:
    """Flats for `oneOf`: the union when branches are disjoint, else each branch AND NOT
    every other branch (which `json_logic.py` compiles or refuses). `within`: the types the
    enclosing schema allows (values of other types satisfy no branch there, so branches
    need only be disjoint within these types)."""
    def narrowed(f: Flat) -> Flat:
        return f if within is None else replace(f, types=_types_and(f.types, within))

    overlaps = set()
    for i in range(len(branches)):
        for j in range(i + 1, len(branches)):
            if not all(_disjoint(c, narrowed(a), narrowed(b))
                       for a in branches[i] for b in branches[j]):
                overlaps.update({(i, j), (j, i)})
    out = []
    for i, flats in enumerate(branches):
        others = [(subs[j], "oneOf") for j in range(len(branches)) if (i, j) in overlaps]
        out.extend(replace(f, nots=f.nots + others) for f in flats)
    return out


def _finite(f: Flat) -> list | None:
    if not f.enums:
        return None
    values = f.enums[0]
    for other in f.enums[1:]:
        values = [v for v in values if any(json_equal(v, w) for w in other)]
    return values


def _exact(f: Flat) -> bool:
    return not (f.formats or f.patterns or f.nots or f.multiple_of)


def _scalar_only(f: Flat) -> bool:
    return f.types is not None and f.types <= _SCALARS


def _disjoint(c: SchemaCompiler, a: Flat, b: Flat, depth: int = 0) -> bool:
    t = _types_and(a.types, b.types)
    if t is not None and not t:
        return True
    va, vb = _finite(a), _finite(b)
    if va is not None and vb is not None:
        return not any(json_equal(x, y) for x in va for y in vb)
    for vals, other in ((va, b), (vb, a)):
        if vals is not None and _exact(other) and all(
                not isinstance(v, (dict, list)) for v in vals):
            g = c.compile_flat(other)
            if not any(c.nonempty(c.pool.and_([c.syntax.literal_value(v), g])) for v in vals):
                return True
    if a.types == frozenset({"object"}) and b.types == frozenset({"object"}):
        for name in set(a.required) & set(b.required):
            xa, xb = _finite_property(c, a, name), _finite_property(c, b, name)
            if xa is not None and xb is not None and not any(
                    json_equal(x, y) for x in xa for y in xb):
                return True
    for x, y in ((a, b), (b, a)):
        if x.types == frozenset({"object"}) and any(_forbids(y, n) for n in x.required):
            return True
    if depth < MAX_DEPTH:
        for x, y in ((a, b), (b, a)):
            if x.types == frozenset({"object"}) and any(
                    _member_disjoint(c, x, y, n, depth) for n in x.required):
                return True
    if _scalar_only(a) and _scalar_only(b) and _exact(a) and _exact(b) and not (
            a.enums or b.enums):
        both = c.pool.and_([c.compile_flat(a), c.compile_flat(b)])
        return not c.nonempty(both)
    return False


def _member_disjoint(c: SchemaCompiler, x: Flat, y: Flat, name: str, depth: int) -> bool:
    """Whether no value can be `name`'s under both `x` (which requires it) and `y`."""
    sx, sy = subs_for_key(c, x.objects, name), subs_for_key(c, y.objects, name)
    if not sy:
        return False
    cuts = c.num_recursion_cuts
    try:
        fx, fy = _conjoined(c, sx), _conjoined(c, sy)
    except UnsupportedSchemaError:
        return False
    if c.num_recursion_cuts != cuts:  # a cut flattening is smaller than the schema
        return False
    return all(_disjoint(c, u, v, depth + 1) for u in fx for v in fy)


def _conjoined(c: SchemaCompiler, subs: list[Sub]) -> list[Flat]:
    flats = [Flat(subs[0].ctx)] if subs else []
    for s in subs:
        flats = c.conjoin(flats, c.flatten(s), "oneOf", s.ctx)
    return flats


def _forbids(f: Flat, name: str) -> bool:
    """Whether no object valid under `f` has a member `name` (by its own keywords)."""
    for clause in f.objects:
        sub = clause.props.get(name)
        if sub is not None:
            if sub.schema is False:
                return True
            continue
        if not clause.patterns and clause.additional is not None \
                and clause.additional.schema is False:
            return True
    return False


def _finite_property(c: SchemaCompiler, f: Flat, name: str) -> list | None:
    """A finite set that holds every valid value of property `name`, if one is known."""
    for clause in f.objects:
        sub = clause.props.get(name)
        if sub is None:
            continue
        flats = c.flatten(sub)
        sets = [_finite(x) for x in flats]
        if all(s is not None for s in sets):
            return [v for s in sets for v in s]
    return None
