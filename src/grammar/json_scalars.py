"""Numbers and strings of a flat schema: ranges, `multipleOf`, lengths, patterns, formats.

- A number range is a regex over its digits (`json_numbers.py`); `integer` admits `1.0`
  except under draft 4 or `canonical_numbers` (`SchemaCompiler.integer_fraction`).
- `multipleOf` intersects the number with a divisibility automaton over the positional
  digits; divisors m = a / 10**s with a above `MAX_DIVISOR` are refused (liveness cost).
- A string is its quoted content: lengths and formats in one content expression
  (`json_strings.string_content`), intersected with the patterns (ECMA search semantics,
  `SchemaCompiler.pattern`). Unknown formats are annotations with a warning, or refused
  under `refuse_unknown_formats`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UnsupportedSchemaError
from .json_flat import Flat
from .json_formats import FORMATS
from .json_numbers import (JSON_DECIMAL, JSON_INTEGER, MultipleOf, decimal_regex,
                           integer_bounds, integer_regex)
from .json_strings import quoted, string_content
from .regex import regex_expr

if TYPE_CHECKING:
    from .json_schema import SchemaCompiler

MAX_DIVISOR = 10_000


def number_expr(c: SchemaCompiler, f: Flat) -> int:
    g = _number_range(c, f)
    if not f.multiple_of or g == c.pool.never:
        return g
    if g == c.syntax.number:  # multiples are written positionally
        g = regex_expr(c.pool, JSON_DECIMAL)
    fsms = [MultipleOf(m) for m in f.multiple_of]
    if any(x.a > MAX_DIVISOR for x in fsms):
        raise UnsupportedSchemaError("multipleOf", f.ctx.pointer, "the divisor has more "
                                     f"than {len(str(MAX_DIVISOR))} significant digits")
    return c.pool.and_([g, *(c.pool.fsm(x) for x in fsms)])


def _number_range(c: SchemaCompiler, f: Flat) -> int:
    lo, lo_x = f.minimum if f.minimum else (None, False)
    hi, hi_x = f.maximum if f.maximum else (None, False)
    if not f.allows("number"):  # integers only
        if lo is None and hi is None:
            return regex_expr(c.pool, JSON_INTEGER + c.integer_fraction)
        r = integer_regex(*integer_bounds(lo, hi, lo_x, hi_x))
        return c.pool.never if r is None else regex_expr(c.pool, r + c.integer_fraction)
    if lo is None and hi is None:
        return c.syntax.number
    r = decimal_regex(lo, hi, lo_x, hi_x)
    return c.pool.never if r is None else regex_expr(c.pool, r)


def string_expr(c: SchemaCompiler, f: Flat) -> int:
    if f.max_length is not None and f.min_length > f.max_length:
        return c.pool.never
    patterns = tuple(c.pattern(pat, ctx) for pat, ctx in f.patterns)
    formats = []
    for name, ctx in (f.formats if c.options.assert_formats else ()):
        if name not in FORMATS:
            if c.options.refuse_unknown_formats:
                raise UnsupportedSchemaError("format", ctx.pointer, f"unknown format {name!r}")
            c.warn(f"format {name!r} at {ctx.pointer or '#'} is not enforced (unknown "
                   "format: an annotation, as JSON Schema 2020-12 allows)")
            continue
        formats.append(FORMATS[name])
    content = string_content(c.pool, f.min_length, f.max_length, (), tuple(formats))
    if patterns:  # a pattern already spells only JSON characters: no AND with "any"
        free = f.min_length == 0 and f.max_length is None and not formats
        content = c.pool.and_(list(patterns) if free else [content, *patterns])
    return quoted(c.pool, content)
