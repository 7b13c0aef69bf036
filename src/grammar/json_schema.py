"""JSON Schema (draft 2020-12, plus draft-7 array `items`) → one byte-level expression.

Decisions (the issue leaves these to us):
- Output is JSON as `json.dumps(value, ensure_ascii=False)` writes it, with the whitespace
  policy of `JsonOptions` between tokens: compact by default, a bounded whitespace regex
  (`whitespace=r"[ \n]{0,2}"`), or exact `separators=(", ", ": ")`.
- A missing `additionalProperties` allows additional members (the JSON Schema rule);
  `strict=True` closes such objects instead. Properties come in schema order.
- `$ref` cycles are unrolled: one reference target may be entered at most `max_recursion`
  times on a path (default 3); deeper instances are not generated.
- Unconstrained values nest at most `any_depth` (default 8) arrays/objects: deep enough for
  the free-form configs of a 500-schema real-world sample (with 5, six of their valid
  instances were rejected), at no measurable cost in compile or mask time.
- Compilation is bounded: past `max_subschemas` (default 4000) distinct subschema values
  (references unrolled), `UnsupportedSchemaError("$ref")` is raised rather than compiling
  for minutes (a 200 KB Vega-Lite schema took over a minute before this bound).
- `format` is enforced (date, time, date-time, uuid, email, hostname, ipv4, uri,
  uri-reference, regex: see `json_formats.py`) because that is
  what structured output wants; other names are annotations with a warning (logged and in
  `CompiledGrammar.warnings`), or raise under `refuse_unknown_formats=True`.
  `assert_formats=False` makes every format an annotation (the 2020-12 default), which the
  conformance run uses.
- `allOf` is merged exactly (see `json_flat.py`), `anyOf` distributes over the rest of the
  schema, `oneOf` is a plain union where its branches are provably disjoint (different
  types, different `const`/`enum` values, a required member whose values cannot meet, or
  scalar branches whose grammars do not intersect: `json_oneof.py`), and otherwise each
  branch excludes the others by negation (below).
- Numbers and strings (ranges, `multipleOf`, lengths, patterns, formats) are
  `json_scalars.py`; arrays `json_arrays.py`; objects `json_objects.py`.
- `enum`/`const` values are kept when they satisfy the rest of the schema object.
- `not`, `if`/`then`/`else` and overlapping `oneOf` branches use complements where the
  negated schema's grammar is exact (see `json_logic.py`), and De Morgan over the negated
  schema's assertions where it is not (objects, double negation: `json_negation.py`);
  what neither can write exactly is refused. `dependentSchemas` splits into
  "name absent" or "name present and the subschema holds" (draft-7 `dependencies` is
  split into `dependentRequired` and `dependentSchemas`); `multipleOf` intersects the
  number with a divisibility automaton (positional digits; divisors m = a / 10**s with
  a <= 10_000, so 7, 0.5, 0.01 and 1e-8 compile and 0.123456789 is refused).
- Unknown keywords are annotations (the spec says so) and are ignored. Keywords that assert
  something this compiler cannot enforce exactly raise `UnsupportedSchemaError(keyword,
  pointer)`: never a looser grammar.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from itertools import permutations

from .automaton import Automaton
from .errors import GrammarError, UnsupportedSchemaError
from .expr import ExprPool
from .json_arrays import array_expr
from .json_flat import Ctx, Flat, ObjectClause, Sub, merge
from .json_keywords import json_equal, legacy_dependencies, own_flat
from .json_numbers import JSON_INTEGER_FRACTION
from .json_logic import compile_negations, exact_flats, negated_required
from .json_negation import negated_options
from .json_objects import object_expr
from .json_oneof import one_of_branches
from .json_refs import ROOT_URI, SchemaIndex
from .json_options import JsonOptions
from .json_scalars import number_expr, string_expr
from .json_strings import json_chars
from .json_values import JsonSyntax, whitespace_expr
from .regex import regex_expr

logger = logging.getLogger(__name__)

MAX_BRANCHES = 256


def json_schema_expr(pool: ExprPool, schema, options: JsonOptions = JsonOptions(),
                     warnings: list[str] | None = None) -> int:
    """The schema's expression; what was compiled looser than written (unknown formats) is
    appended to `warnings` and logged."""
    c = SchemaCompiler(pool, schema, options)
    e = c.compile()
    if warnings is not None:
        warnings.extend(c.warnings)
    return e


def _is_draft4(root) -> bool:
    meta = root.get("$schema") if isinstance(root, dict) else None
    return isinstance(meta, str) and ("/draft-04/" in meta or "/draft-03/" in meta)


class SchemaCompiler:
    def __init__(self, pool: ExprPool, root, options: JsonOptions):
        if not isinstance(root, (dict, bool)):
            raise GrammarError("a JSON schema must be an object or a boolean")
        self.pool = pool
        self.root = root
        self.options = options
        self.index = SchemaIndex(root)
        # draft 4 counts only numbers written without a fraction as integers; later drafts
        # count 1.0 as one too
        self.integer_fraction = ("" if _is_draft4(root) or options.canonical_numbers
                                 else JSON_INTEGER_FRACTION)
        self.syntax = JsonSyntax(pool, whitespace_expr(pool, options.whitespace),
                                 options.any_depth, options.separators,
                                 options.canonical_numbers)
        self._values: dict = {}
        self.num_recursion_cuts = 0  # $ref expansions refused by max_recursion
        self.warnings: list[str] = []
        self.num_compiled = 0  # distinct subschema values compiled (bounded: compile time)
        self._patterns: dict = {}
        self._negations: dict = {}  # synthesized {"not": S} schemas, kept alive (cache by id)
        self.num_negation_options = 0  # flats written by De Morgan negations (bounded)

    def compile(self) -> int:
        return self.value([Sub(self.root, Ctx("", self.index.base_of(self.root, ROOT_URI)))])

    # ---- values --------------------------------------------------------------------------

    def value(self, subs: list[Sub]) -> int:
        """The grammar of values valid under every schema in `subs` ([] = anything)."""
        key = tuple((id(s.schema), s.ctx.base, self._chain_key(s)) for s in subs)
        e = self._values.get(key)
        if e is None:
            ctx = subs[0].ctx if subs else Ctx("", ROOT_URI)
            self.num_compiled += 1
            if self.num_compiled > self.options.max_subschemas:
                raise UnsupportedSchemaError("$ref", ctx.pointer, "schema too large: more than "
                                             f"{self.options.max_subschemas} subschemas to "
                                             "compile once references are unrolled")
            flats: list[Flat] = [Flat(ctx)]
            for s in subs:
                flats = self.conjoin(flats, self.flatten(s), "allOf", s.ctx)
            e = self.pool.alt([self.compile_flat(f) for f in flats])
            self._values[key] = e
        return e

    def _chain_key(self, sub: Sub) -> tuple:
        """The part of the `$ref` chain leading to `sub` that its value depends on: how often
        each reference it can re-enter was entered. A definition that cannot recurse into
        the chain compiles once, wherever it is referenced from."""
        reach = self.index.reachable_refs(sub.schema, sub.ctx.base)
        return tuple(sorted((k, n) for k, n in Counter(sub.ctx.refs).items() if k in reach))

    def conjoin(self, a: list[Flat], b: list[Flat], keyword: str, ctx: Ctx) -> list[Flat]:
        out = [m for x in a for y in b if (m := merge(x, y)) is not None]
        if len(out) > MAX_BRANCHES:
            raise UnsupportedSchemaError(keyword, ctx.pointer, f"more than {MAX_BRANCHES} "
                                         "branches after distributing anyOf/oneOf/allOf")
        return out

    def flatten(self, sub: Sub) -> list[Flat]:
        """The schema as a disjunction of flats (no $ref/allOf/anyOf/oneOf left)."""
        schema, ctx = sub.schema, sub.ctx
        if schema is True:
            return [Flat(ctx)]
        if schema is False:
            return []
        if not isinstance(schema, dict):
            raise GrammarError(f"schema at {ctx.pointer or '#'} must be an object or a boolean")
        base = self.index.base_of(schema, ctx.base)
        if base != ctx.base:
            ctx = replace(ctx, base=base)
        flats = [own_flat(schema, ctx)]
        if (neg := negated_required(schema.get("not"), ctx)) is not None:
            flats[0].nots = [n for n in flats[0].nots if n[1] != "not"]
            flats = self.conjoin(flats, neg, "not", ctx)
        if "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str):
                raise GrammarError(f"$ref at {ctx.pointer or '#'} must be a string")
            target, tbase, key = self.index.resolve(ref, ctx.base, ctx.pointer)
            if ctx.refs.count(key) >= self.options.max_recursion:
                self.num_recursion_cuts += 1
                return []
            tctx = Ctx(ctx.pointer + "/$ref", tbase, ctx.refs + (key,))
            flats = self.conjoin(flats, self.flatten(Sub(target, tctx)), "$ref", ctx)
        for kw in ("allOf", "anyOf", "oneOf"):
            if kw not in schema:
                continue
            subs = schema[kw]
            if not isinstance(subs, list) or not subs:
                raise GrammarError(f"{kw} at {ctx.pointer or '#'} must be a non-empty array")
            branches = [self.flatten(Sub(s, ctx.at(kw, i))) for i, s in enumerate(subs)]
            if kw == "allOf":
                for b in branches:
                    flats = self.conjoin(flats, b, kw, ctx)
            elif kw == "anyOf":
                flats = self.conjoin(flats, [f for b in branches for f in b], kw, ctx)
            else:
                subs_i = [Sub(s, ctx.at(kw, i)) for i, s in enumerate(subs)]
                flats = self.conjoin(flats, one_of_branches(self, branches, subs_i, ctx,
                                                            flats[0].types if len(flats) == 1
                                                            else None), kw, ctx)
        if "if" in schema and ("then" in schema or "else" in schema):
            cond = Sub(schema["if"], ctx.at("if"))
            yes = self.conjoin(self.flatten(cond),
                               self.flatten(Sub(schema.get("then", True), ctx.at("then"))),
                               "if", ctx)
            no = [replace(f, nots=f.nots + [(cond, "if")])
                  for f in self.flatten(Sub(schema.get("else", True), ctx.at("else")))]
            flats = self.conjoin(flats, yes + no, "if", ctx)
        deps = schema.get("dependentSchemas", {})
        if not isinstance(deps, dict):
            raise GrammarError(f"dependentSchemas at {ctx.pointer or '#'} must be an object")
        legacy = legacy_dependencies(schema, ctx)[1]
        for kw, name, dep in [*(("dependentSchemas", n, d) for n, d in deps.items()),
                              *(("dependencies", n, d) for n, d in legacy.items())]:
            dctx = ctx.at(kw, name)
            absent = Flat(dctx, objects=[ObjectClause({name: Sub(False, dctx)}, [], None)])
            trigger = Flat(dctx, required=[name],  # declared first: it comes first
                           objects=[ObjectClause({name: Sub(True, dctx)}, [], None)])
            present = self.conjoin([trigger], self.flatten(Sub(dep, dctx)), "dependentSchemas",
                                   dctx)
            flats = self.conjoin(flats, [absent, *present], "dependentSchemas", ctx)
        return flats

    def compile_flat(self, f: Flat) -> int:
        p, syn = self.pool, self.syntax
        if f.nots:
            return self._compile_nots(f)
        if f.enums:
            return self._enum(f)
        if f.is_trivial():
            return syn.any_value()
        inner = syn.any_value(self.options.any_depth - 1)
        parts = []
        if f.allows("null"):
            parts.append(syn.null)
        if f.allows("boolean"):
            parts.append(syn.boolean)
        if f.allows("number") or f.allows("integer"):
            parts.append(number_expr(self, f))
        if f.allows("string"):
            parts.append(string_expr(self, f))
        if f.allows("array"):
            parts.append(syn.array(inner) if f.free_arrays() else array_expr(self, f))
        if f.allows("object"):
            parts.append(syn.object(syn.string, inner) if f.free_objects()
                         else object_expr(self, f))
        return p.alt(parts)

    def _compile_nots(self, f: Flat) -> int:
        """`not {"required": [...]}` parts become alternatives (no complement needed); the
        remaining negations go to `compile_negations`."""
        flats, rest = [replace(f, nots=[])], []
        for sub, keyword in f.nots:
            neg = negated_required(sub.schema, sub.ctx)
            if neg is None:
                rest.append((sub, keyword))
            else:
                flats = self.conjoin(flats, neg, keyword, sub.ctx)
        if len(rest) == len(f.nots):
            return self._compile_complements(f)
        return self.pool.alt([self.compile_flat(replace(x, nots=x.nots + rest)) for x in flats])

    def _compile_complements(self, f: Flat) -> int:
        """Negations whose grammar is exact become complements (`compile_negations`); the
        first that is not is rewritten by De Morgan (`json_negation.py`) or refused."""
        for i, (sub, keyword) in enumerate(f.nots):
            if exact_flats(self, sub) is not None:
                continue
            rest = replace(f, nots=f.nots[:i] + f.nots[i + 1:])
            options = negated_options(self, rest, sub, keyword)
            if options is None:
                raise UnsupportedSchemaError(keyword, sub.ctx.pointer, "its complement cannot "
                                             "be enforced exactly (objects, patterns, formats "
                                             "or recursion in the negated schema)")
            return self.pool.alt([self.pool.and_([self.compile_flat(m), *exprs]) if exprs
                                  else self.compile_flat(m) for m, exprs in options])
        return compile_negations(self, f)

    def negation_sub(self, sub: Sub) -> Sub:
        """`{"not": sub}` with `sub`'s context. The synthesized schema is kept (values are
        cached by schema identity) and reused for the same `sub`."""
        key = (id(sub.schema), sub.ctx)
        hit = self._negations.get(key)
        if hit is None:
            hit = self._negations[key] = (Sub({"not": sub.schema}, sub.ctx), sub.schema)
        return hit[0]

    def _enum(self, f: Flat) -> int:
        values = f.enums[0]
        for other in f.enums[1:]:
            values = [v for v in values if any(json_equal(v, w) for w in other)]
        rest = self.compile_flat(replace(f, enums=[]))
        out = []
        for v in values:
            if v is None or isinstance(v, (str, bool)):  # one spelling: a membership test
                keep = self.matches(rest, self.syntax.literal_bytes(v))
            else:
                keep = any(self.nonempty(self.pool.and_([self.syntax.literal_value(w), rest]))
                           for w in _orders(v))
            if keep:
                out.append(self.syntax.literal_value(v))
        return self.pool.alt(out)

    # ---- helpers used by objects/arrays/oneOf ---------------------------------------------

    def pattern(self, pat: str, ctx: Ctx, keyword: str = "pattern") -> int:
        """Encoded string content containing a match of `pat` (ECMA search semantics)."""
        e = self._patterns.get(pat)
        if e is None:
            if not isinstance(pat, str):
                raise GrammarError(f"{keyword} at {ctx.pointer or '#'} must be a string")
            try:
                e = regex_expr(self.pool, pat, flavor="ecma",
                               chars=lambda r: json_chars(self.pool, r))
            except GrammarError as err:
                raise UnsupportedSchemaError(keyword, ctx.pointer, str(err)) from None
            self._patterns[pat] = e
        return e

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            logger.warning(message)

    def matches(self, e: int, data: bytes) -> bool:
        return self.pool.matches(e, data)

    def nonempty(self, e: int) -> bool:
        if e == self.pool.never:
            return False
        if not self.pool.boolean[e]:
            return True
        try:
            Automaton(self.pool, e)
        except GrammarError:
            return False
        return True


def _orders(value, limit: int = 120):
    """The value with its top-level keys in every order (objects of up to 5 keys)."""
    if isinstance(value, dict) and 1 < len(value) <= 5:
        for i, keys in enumerate(permutations(value)):
            if i >= limit:
                break
            yield {k: value[k] for k in keys}
    else:
        yield value
