"""Negation (`not`, and through it `if`/`else` and overlapping `oneOf`) by complement.

`not S` compiles to `rest AND U AND NOT(G_S)`, where U is the *universe*: every JSON value
up to `any_depth`, numbers positional without negative zero, strings canonical. This is
sound only if G_S decides every text of U exactly (t in G_S iff t's value is valid under
S); otherwise a complement would let through a value S accepts but G_S spells differently.
G_S is exact on U when S (after flattening) has:
- no `pattern` and no asserted known `format` (ours are stricter than Python's `re`/format
  checkers in corner cases),
- no object assertions (G_S fixes key order and U does not), and no `enum` holding objects,
- arrays whose items are themselves exact, without `uniqueItems`/`contains`,
- no `$ref` cut by the recursion limit (the unrolled grammar is smaller than S),
- only exact nested `not`s.
`not {"required": [...]}` needs no complement (`negated_required`: a non-object, or an object
lacking one of the names; overlapping `oneOf` branches of that shape use it too). Negated
schemas that are not exact go to De Morgan (`json_negation.py`), which writes them as
flats or refuses with `UnsupportedSchemaError` naming the keyword that needed the
complement (`not`, `if`, `oneOf`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .errors import UnsupportedSchemaError
from .json_flat import Flat, ObjectClause, Sub
from .json_formats import FORMATS

if TYPE_CHECKING:
    from .json_schema import SchemaCompiler


def compile_negations(c: SchemaCompiler, f: Flat) -> int:
    """The grammar of `f` with its `nots` enforced by complement."""
    p = c.pool
    parts = [c.compile_flat(replace(f, nots=[])), c.syntax.universe()]
    for sub, keyword in f.nots:
        flats = exact_flats(c, sub)
        if flats is None:
            raise UnsupportedSchemaError(keyword, sub.ctx.pointer, "its complement cannot be "
                                         "enforced exactly (objects, patterns, formats or "
                                         "recursion in the negated schema)")
        parts.append(p.not_(p.alt([c.compile_flat(x) for x in flats])))
    return p.and_(parts)


_ANNOTATIONS = frozenset({"title", "description", "$comment", "examples", "default"})
_NON_OBJECT = frozenset({"null", "boolean", "number", "string", "array"})


def negated_required(schema, ctx) -> list[Flat] | None:
    """`not {"required": [n1, n2, ...]}` without a complement: a non-object, or an object
    lacking some n_i. None when `schema` has any other assertion."""
    if not isinstance(schema, dict) or "required" not in schema \
            or not set(schema) - _ANNOTATIONS <= {"required"}:
        return None
    names = schema["required"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    nctx = ctx.at("not")
    return [Flat(nctx, types=_NON_OBJECT)] + [
        Flat(nctx, types=frozenset({"object"}),
             objects=[ObjectClause({n: Sub(False, nctx)}, [], None)])
        for n in dict.fromkeys(names)]


def exact_flats(c: SchemaCompiler, sub: Sub, depth: int = 0) -> list[Flat] | None:
    """The flats of `sub` if their grammar is exact on the universe, else None."""
    if depth > 8:
        return None
    cuts = c.num_recursion_cuts
    flats = c.flatten(sub)
    if c.num_recursion_cuts != cuts:
        return None
    for f in flats:
        if not _exact(c, f, depth):
            return None
    return flats


def exact_flat(c: SchemaCompiler, f: Flat) -> bool:
    """Whether the grammar of `f` decides every text of the universe exactly."""
    return _exact(c, f, 0)


def _exact(c: SchemaCompiler, f: Flat, depth: int) -> bool:
    if f.patterns or (c.options.assert_formats and any(n in FORMATS for n, _ in f.formats)):
        return False  # unknown formats are annotations the grammar ignores too: exact
    if f.allows("object") and not f.free_objects():
        return False
    if any(_has_object(v) for e in f.enums for v in e):
        return False
    if f.allows("array") and not f.free_arrays():
        if f.unique_items or f.contains:
            return False
        for cl in f.arrays:
            for s in [*cl.prefix, *([cl.items] if cl.items is not None else [])]:
                if exact_flats(c, s, depth + 1) is None:
                    return False
    return all(exact_flats(c, s, depth + 1) is not None for s, _ in f.nots)


def _has_object(v) -> bool:
    if isinstance(v, dict):
        return True
    return isinstance(v, list) and any(_has_object(x) for x in v)
