"""`not` by De Morgan where a complement of the grammar would not be exact (objects).

`f AND NOT S` is rewritten as a union of flats, each merged with `f`. With S flattened to
S_1 | S_2 | ..., NOT S is the intersection of the NOT S_i (a product of unions), and for one
flat X AND NOT Y_1 AND NOT Y_2 ...:

    NOT (X AND NOT Y_1 ...) = NOT X | Y_1 | Y_2 ...        (the Y_j positive again)

NOT X splits by JSON type, within the types `f` allows:
- a type X does not allow: every value of it;
- non-object types X allows: the complement of X's grammar there, which needs the grammar
  to be exact on the universe (`json_logic.exact_flat`), as an expression ANDed in;
- objects: one flat per way an object breaks X: a required name absent; a name present with a
  value that breaks X's schema for it (X's property, matching patterns or additional schema;
  a nested `not`); an additional member where X is closed (`min_extra`); too few or too many
  members; a dependency missing; a name `f` declares that X's propertyNames rejects; for an
  `enum` of objects, differing from each value (a key missing, extra, or mapped elsewhere).
Names `f` declares (or that its finite `enum` values use) are checked one by one; members
`f` does not declare are covered only where X closes them without patterns, or where `f`
admits none (closed, or a finite enum). Anything else returns None and the caller refuses.
The result is exact: its union is precisely `f AND NOT S` (up to the object key order every
object grammar fixes). If flattening S cut a `$ref` recursion, S was under-approximated and
its negation would be too loose: None. Nested negations multiply, so past MAX_TOTAL_OPTIONS
flats in one schema the negation is refused rather than compiled for minutes.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import product
from typing import TYPE_CHECKING

from .errors import UnsupportedSchemaError
from .json_flat import Flat, ObjectClause, Sub, _types_and, merge
from .json_keywords import json_equal
from .json_logic import exact_flat
from .json_objects import subs_for_key
from .json_strings import encode_string

if TYPE_CHECKING:
    from .json_schema import SchemaCompiler

OBJECT = frozenset({"object"})
NON_OBJECT = frozenset({"null", "boolean", "number", "string", "array"})
MAX_OPTIONS = 256  # flats for one negation
MAX_TOTAL_OPTIONS = 1024  # flats for all negations of one schema (compile time stays bounded)

Option = tuple[Flat, tuple[int, ...]]  # a flat, and expressions the value must also match


def negated_options(c: SchemaCompiler, f: Flat, sub: Sub, keyword: str) -> list[Option] | None:
    """Flats (each `f` merged with one way to break `sub`), plus complement expressions to
    AND in, whose union is `f AND NOT sub`; None where that cannot be written exactly.
    Raises `UnsupportedSchemaError(keyword)` past MAX_TOTAL_OPTIONS flats per schema."""
    cuts = c.num_recursion_cuts
    flats = c.flatten(sub)
    if c.num_recursion_cuts != cuts:
        return None
    f = _narrowed_by_enum(f)
    out: list[Option] = [(f, ())]
    for x in flats:
        ways = _breaking(c, f, x)
        if ways is None:
            return None
        out = [(m, ea + eb) for (a, ea), (b, eb) in product(out, ways)
               if (m := merge(a, b)) is not None and not _plainly_empty(m)]
        if len(out) > MAX_OPTIONS:
            return None
    c.num_negation_options += len(out)
    if c.num_negation_options > MAX_TOTAL_OPTIONS:  # nested negations multiply: bound the work
        raise UnsupportedSchemaError(keyword, sub.ctx.pointer, "its negation needs more than "
                                     f"{MAX_TOTAL_OPTIONS} cases in all (De Morgan over objects)")
    return out


def _breaking(c: SchemaCompiler, f: Flat, x: Flat) -> list[Option] | None:
    """Ways a value allowed by `f` can break the flat `x` (each a flat to merge with `f`)."""
    ctx = x.ctx
    ways: list[Option] = [(y, ()) for sub, _ in x.nots for y in c.flatten(sub)]
    if x.types is not None:
        other = frozenset(t for t in ("null", "boolean", "string", "array", "object")
                          if not x.allows(t)) | ({"number"} if not x.allows("integer") else set())
        if other:
            ways.append((Flat(ctx, types=other), ()))
    domain = NON_OBJECT if f.types is None else _widen(f.types) - OBJECT
    x_types = NON_OBJECT if x.types is None else _widen(x.types) - OBJECT
    scalar = _scalar_part(x, domain & x_types)
    if scalar is not None:
        if not exact_flat(c, scalar):
            return None
        complement = c.pool.and_([c.syntax.universe(), c.pool.not_(c.compile_flat(scalar))])
        ways.append((Flat(ctx, types=domain & x_types), (complement,)))
    if f.allows("object") and x.allows("object"):
        objects = _object_ways(c, f, x)
        if objects is None:
            return None
        ways.extend((y, ()) for y in objects)
    return ways


def _scalar_part(x: Flat, types: frozenset[str]) -> Flat | None:
    """`x` restricted to `types` (no objects), or None when it asserts nothing there."""
    if not types:
        return None
    enums = [[v for v in e if not isinstance(v, dict)] for e in x.enums]
    part = Flat(x.ctx, types=_types_and(x.types, types) if x.types is not None else types,
                enums=enums, minimum=x.minimum, maximum=x.maximum,
                multiple_of=x.multiple_of, min_length=x.min_length, max_length=x.max_length,
                patterns=x.patterns, formats=x.formats, arrays=x.arrays,
                min_items=x.min_items, max_items=x.max_items, unique_items=x.unique_items,
                contains=x.contains)
    if part.types == types and not enums and replace(part, types=None).is_trivial():
        return None
    return part


def _object_ways(c: SchemaCompiler, f: Flat, x: Flat) -> list[Flat] | None:
    ctx = x.ctx

    def obj(**kw) -> Flat:
        return Flat(ctx, types=OBJECT, **kw)

    def absent(name: str) -> Flat:
        return obj(objects=[ObjectClause({name: Sub(False, ctx)}, [], None)])

    def present_breaking(name: str, subs: list[Sub]) -> list[Flat]:
        """NOT (S_1 AND S_2 ...) for the value of `name`: one flat per S_i (none for an S_i
        that `f` itself asserts there: no value breaks it)."""
        if any(s.schema is False for s in subs):
            return [obj(required=[name])]
        own = subs_for_key(c, f.objects, name)
        return [obj(required=[name], objects=[ObjectClause({name: c.negation_sub(s)}, [], None)])
                for s in subs if s.schema is not True and s.schema != {} and not any(
                    _same_assertions(t, s) for t in own)]

    names, closed = _declared(c, f)
    ways = [absent(r) for r in x.required]
    for cl in x.objects:
        for name in dict.fromkeys([*cl.props, *names]):
            ways.extend(present_breaking(name, subs_for_key(c, [cl], name)))
        if closed or (cl.additional is None and not cl.patterns):
            continue
        if cl.patterns or cl.additional.schema is not False:
            return None
        declared = {n: Sub(True, ctx) for n in [*cl.props, *names]}
        ways.append(obj(objects=[ObjectClause(declared, [], None)], min_extra=1))
    if x.min_props:
        ways.append(obj(max_props=x.min_props - 1))
    if x.max_props is not None:
        ways.append(obj(min_props=x.max_props + 1))
    for k, deps in x.dep_required.items():
        ways.extend(merge(obj(required=[k]), absent(d)) for d in deps)
    for pn in x.prop_names:
        if not closed or not all(exact_flat(c, y) for y in c.flatten(pn)):
            return None
        key_grammar = c.value([pn])
        ways.extend(obj(required=[n]) for n in names
                    if not c.matches(key_grammar, encode_string(n)))
    if x.enums:
        enum_ways = _not_in_enum(c, x, names, closed)
        if enum_ways is None:
            return None
        ways.extend(enum_ways)
    return ways


def _not_in_enum(c: SchemaCompiler, x: Flat, names: list[str], closed: bool) -> list[Flat] | None:
    """Objects equal to none of the object values of `x`'s enums."""
    values = x.enums[0]
    for other in x.enums[1:]:
        values = [v for v in values if any(json_equal(v, w) for w in other)]
    ctx = x.ctx
    out = [Flat(ctx, types=OBJECT)]
    for v in (v for v in values if isinstance(v, dict)):
        differs = []
        for k, val in v.items():
            differs.append(Flat(ctx, types=OBJECT,
                                objects=[ObjectClause({k: Sub(False, ctx)}, [], None)]))
            differs.append(Flat(ctx, types=OBJECT, required=[k], objects=[ObjectClause(
                {k: c.negation_sub(Sub({"const": val}, ctx))}, [], None)]))
        differs.extend(Flat(ctx, types=OBJECT, required=[n]) for n in names if n not in v)
        if not closed:
            differs.append(Flat(ctx, types=OBJECT, min_extra=1, objects=[ObjectClause(
                {n: Sub(True, ctx) for n in v}, [], None)]))
        out = [m for a, b in product(out, differs)
               if (m := merge(a, b)) is not None and not _plainly_empty(m)]
        if len(out) > MAX_OPTIONS:
            return None
    return out


def _declared(c: SchemaCompiler, f: Flat) -> tuple[list[str], bool]:
    """(names `f` declares or its enum objects use, whether `f` admits no other member)."""
    names: list[str] = []
    for cl in f.objects:
        names.extend(cl.props)
    names.extend(f.required)
    for k, deps in f.dep_required.items():
        names.extend([k, *deps])
    closed = any(cl.additional is not None and cl.additional.schema is False
                 and not cl.patterns for cl in f.objects)
    if f.enums:
        closed = True
        for v in f.enums[0]:
            if isinstance(v, dict):
                names.extend(v)
    return list(dict.fromkeys(names)), closed


_ANNOTATIONS = frozenset({"title", "description", "$comment", "examples", "default"})


def _same_assertions(a: Sub, b: Sub) -> bool:
    """Equal schemas up to top-level annotations, resolved from the same base."""
    if a.ctx.base != b.ctx.base:
        return False
    if not (isinstance(a.schema, dict) and isinstance(b.schema, dict)):
        return a.schema == b.schema
    return ({k: v for k, v in a.schema.items() if k not in _ANNOTATIONS}
            == {k: v for k, v in b.schema.items() if k not in _ANNOTATIONS})


def _narrowed_by_enum(f: Flat) -> Flat:
    """`f` with its types cut to those of its enum values (fewer types to negate over)."""
    if not f.enums:
        return f
    kinds = set()
    for v in f.enums[0]:
        if isinstance(v, bool):
            kinds.add("boolean")
        elif v is None:
            kinds.add("null")
        elif isinstance(v, (int, float)):
            kinds.add("number")
        else:
            kinds.add({str: "string", list: "array", dict: "object"}[type(v)])
    kinds = frozenset(kinds)
    return replace(f, types=_types_and(f.types, kinds) if f.types is not None else kinds)


def _widen(types: frozenset[str]) -> frozenset[str]:
    return frozenset("number" if t == "integer" else t for t in types)


def _plainly_empty(f: Flat) -> bool:
    """A required name whose value some clause forbids (cheap; the grammar decides the rest)."""
    if f.types is not None and not f.types:
        return True
    if f.max_props is not None and f.min_props > f.max_props:
        return True
    return any(cl.props.get(r) is not None and cl.props[r].schema is False
               for r in f.required for cl in f.objects)
