"""A schema without combinators: the assertions of one `allOf` branch product, merged.

`Flat` holds what one schema object asserts about each JSON type. Two flats merge into one
that asserts both (`merge`), which is how `allOf`, `$ref` with siblings and anyOf/oneOf
distribution are compiled exactly:
- numbers: the tighter bound wins (an exclusive bound beats an inclusive one at the same
  value); strings: the larger minLength, smaller maxLength, and every pattern and format;
- arrays and objects: each source keeps its own clause (`ArrayClause`, `ObjectClause`)
  because `items` and `additionalProperties` are relative to the prefix/properties of the
  same schema object. The array/object compilers combine clauses position by position and
  key by key;
- `enum`/`const`: every list must hold the value.
Sub-schemas stay unflattened (`Sub` = schema + context) until their value is compiled.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

from .errors import GrammarError

TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


@dataclass(frozen=True, slots=True)
class Ctx:
    pointer: str  # JSON pointer of the schema in the document, for error messages
    base: str  # base URI for $ref
    refs: tuple[str, ...] = ()  # $ref targets entered on the way here (recursion depth)

    def at(self, *parts) -> Ctx:
        tail = "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)
        return replace(self, pointer=f"{self.pointer}/{tail}")


@dataclass(frozen=True, slots=True)
class Sub:
    schema: object
    ctx: Ctx


@dataclass(slots=True)
class ArrayClause:
    prefix: list[Sub]
    items: Sub | None  # None: anything after the prefix


@dataclass(slots=True)
class ObjectClause:
    props: dict[str, Sub]
    patterns: list[tuple[str, Sub]]
    additional: Sub | None  # None: anything


@dataclass(slots=True)
class Flat:
    ctx: Ctx
    types: frozenset[str] | None = None  # None: every type
    enums: list[list] = field(default_factory=list)
    minimum: tuple[Decimal, bool] | None = None  # (value, exclusive)
    maximum: tuple[Decimal, bool] | None = None
    multiple_of: list[Decimal] = field(default_factory=list)
    min_length: int = 0
    max_length: int | None = None
    patterns: list[tuple[str, Ctx]] = field(default_factory=list)
    formats: list[tuple[str, Ctx]] = field(default_factory=list)
    arrays: list[ArrayClause] = field(default_factory=list)
    min_items: int = 0
    max_items: int | None = None
    unique_items: bool = False
    contains: list[tuple[Sub, int, int | None]] = field(default_factory=list)
    objects: list[ObjectClause] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    min_props: int = 0
    max_props: int | None = None
    min_extra: int = 0  # members with a key no clause declares (the negation of closed objects)
    dep_required: dict[str, list[str]] = field(default_factory=dict)
    prop_names: list[Sub] = field(default_factory=list)
    nots: list[tuple[Sub, str]] = field(default_factory=list)  # (schema, keyword)

    def free_arrays(self) -> bool:
        """No array assertion at all (any array is fine)."""
        return not (self.arrays or self.min_items or self.max_items is not None
                    or self.unique_items or self.contains)

    def free_objects(self) -> bool:
        return not (self.objects or self.required or self.min_props or self.min_extra
                    or self.max_props is not None or self.dep_required or self.prop_names)

    def is_trivial(self) -> bool:
        """Asserts nothing: every JSON value is valid."""
        return (self.types is None and not self.enums and self.minimum is None
                and self.maximum is None and not self.multiple_of and not self.min_length
                and self.max_length is None and not self.patterns and not self.formats
                and self.free_arrays() and self.free_objects() and not self.nots)

    def allows(self, t: str) -> bool:
        if self.types is None:
            return True
        return t in self.types or (t == "integer" and "number" in self.types)


def _types_and(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    out = set(a & b)
    if ("integer" in a and "number" in b) or ("number" in a and "integer" in b):
        out.add("integer")
    return frozenset(out)


def _min(a, b, lower: bool):
    if a is None:
        return b
    if b is None:
        return a
    if a[0] != b[0]:
        return max(a, b, key=lambda t: t[0]) if lower else min(a, b, key=lambda t: t[0])
    return (a[0], a[1] or b[1])


def _opt_min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def merge(a: Flat, b: Flat) -> Flat | None:
    """A flat asserting both; None when the types cannot meet."""
    types = _types_and(a.types, b.types)
    if types is not None and not types:
        return None
    deps = {k: list(v) for k, v in a.dep_required.items()}
    for k, v in b.dep_required.items():
        deps[k] = deps.get(k, []) + [x for x in v if x not in deps.get(k, [])]
    return Flat(
        ctx=a.ctx, types=types, enums=a.enums + b.enums,
        minimum=_min(a.minimum, b.minimum, True), maximum=_min(a.maximum, b.maximum, False),
        multiple_of=a.multiple_of + b.multiple_of,
        min_length=max(a.min_length, b.min_length),
        max_length=_opt_min(a.max_length, b.max_length),
        patterns=a.patterns + b.patterns, formats=a.formats + b.formats,
        arrays=a.arrays + b.arrays, min_items=max(a.min_items, b.min_items),
        max_items=_opt_min(a.max_items, b.max_items),
        unique_items=a.unique_items or b.unique_items, contains=a.contains + b.contains,
        objects=a.objects + b.objects,
        required=a.required + [r for r in b.required if r not in a.required],
        min_props=max(a.min_props, b.min_props), max_props=_opt_min(a.max_props, b.max_props),
        min_extra=max(a.min_extra, b.min_extra),
        dep_required=deps, prop_names=a.prop_names + b.prop_names, nots=a.nots + b.nots)


def parse_types(value, ctx: Ctx) -> frozenset[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise GrammarError(f"'type' at {ctx.pointer or '#'} must be a string or a list of strings")
    bad = [n for n in names if n not in TYPES]
    if bad:
        raise GrammarError(f"unknown type {bad[0]!r} at {ctx.pointer or '#'}")
    return frozenset(names)


def number(value, keyword: str, ctx: Ctx) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GrammarError(f"{keyword!r} at {ctx.pointer or '#'} must be a number")
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def count(value, keyword: str, ctx: Ctx) -> int:
    if isinstance(value, float) and value == int(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GrammarError(f"{keyword!r} at {ctx.pointer or '#'} must be a non-negative integer")
    return value
