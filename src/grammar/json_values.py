"""JSON syntax pieces shared by the schema compiler: whitespace, punctuation, unconstrained
values, and literal values (for `enum`/`const`).

Whitespace policy: `ws` is placed after `{`/`[`, before `}`/`]`, and on both sides of `:`
and `,` — never before or after the top-level value, so the output ends exactly where the
value does. Compact JSON (the default) uses the empty string there, which makes punctuation
and property names fully forced (good for jump-forward). Alternatively `separators` fixes
the two separators exactly, as `json.dumps(separators=...)` does (`(", ", ": ")` is the
style models see most), with nothing inside brackets: still fully forced.

Unconstrained values (`true`, `{}`, a missing `items`...) nest at most `any_depth` levels of
arrays/objects: a regular grammar cannot balance brackets without a bound.
"""

from __future__ import annotations

import json
from decimal import Decimal

from .expr import ExprPool
from .generalize import register_unit_bound
from .json_numbers import JSON_NUMBER, UNIVERSE_NUMBER, decimal_regex
from .json_strings import encode_string, json_char, quoted
from .regex import regex_expr

_WS_BYTES = frozenset(b" \t\n\r")


class JsonSyntax:
    def __init__(self, pool: ExprPool, ws: int, any_depth: int,
                 separators: tuple[str, str] | None = None, canonical_numbers: bool = False):
        self.pool = pool
        self.ws = ws
        self.any_depth = any_depth
        self.canonical_numbers = canonical_numbers
        # a string's length bound is a count of JSON characters beside patterns and formats
        # that spell whole characters: masks may share it (`generalize.py`)
        register_unit_bound(pool, json_char(pool))
        lit = pool.literal
        if separators is None:
            self.comma = pool.cat_all([ws, lit(b","), ws])
            self.colon = pool.cat_all([ws, lit(b":"), ws])
        else:
            item, key = separators
            if item.strip(" \t\n\r") != "," or key.strip(" \t\n\r") != ":":
                raise ValueError(f"separators must be ',' and ':' with optional whitespace, "
                                 f"got {separators!r}")
            self.comma, self.colon = lit(item.encode()), lit(key.encode())
        self.null = lit(b"null")
        self.boolean = pool.alt([lit(b"true"), lit(b"false")])
        self.number = regex_expr(pool, JSON_NUMBER)
        self.string = quoted(pool, pool.rep(json_char(pool), 0, None))
        self._any: dict = {}

    def array(self, item: int) -> int:
        """`[` items separated by commas `]`, any count."""
        p = self.pool
        items = p.opt(p.cat(item, p.rep(p.cat(self.comma, item), 0, None)))
        return p.cat_all([p.literal(b"["), self.ws, items, self.ws, p.literal(b"]")])

    def object(self, key: int, value: int) -> int:
        p = self.pool
        member = p.cat_all([key, self.colon, value])
        members = p.opt(p.cat(member, p.rep(p.cat(self.comma, member), 0, None)))
        return p.cat_all([p.literal(b"{"), self.ws, members, self.ws, p.literal(b"}")])

    def any_value(self, depth: int | None = None) -> int:
        """Any JSON value nesting at most `depth` (default `any_depth`) arrays/objects."""
        depth = self.any_depth if depth is None else depth
        e = self._any.get(depth)
        if e is None:
            p = self.pool
            scalars = [self.null, self.boolean, self.number, self.string]
            if depth <= 0:
                empty_arr = p.cat_all([p.literal(b"["), self.ws, p.literal(b"]")])
                empty_obj = p.cat_all([p.literal(b"{"), self.ws, p.literal(b"}")])
                e = p.alt(scalars + [empty_arr, empty_obj])
            else:
                inner = self.any_value(depth - 1)
                e = p.alt(scalars + [self.array(inner), self.object(self.string, inner)])
            self._any[depth] = e
        return e

    def universe(self, depth: int | None = None) -> int:
        """Like `any_value`, but numbers are positional without negative zero: the texts
        on which complements are exact (json_logic.py)."""
        depth = self.any_depth if depth is None else depth
        key = ("universe", depth)
        e = self._any.get(key)
        if e is None:
            p = self.pool
            scalars = [self.null, self.boolean, regex_expr(p, UNIVERSE_NUMBER), self.string]
            if depth <= 0:
                e = p.alt(scalars + [p.cat_all([p.literal(b"["), self.ws, p.literal(b"]")]),
                                     p.cat_all([p.literal(b"{"), self.ws, p.literal(b"}")])])
            else:
                inner = self.universe(depth - 1)
                e = p.alt(scalars + [self.array(inner), self.object(self.string, inner)])
            self._any[key] = e
        return e

    @staticmethod
    def literal_bytes(value: str | bool | None) -> bytes:
        """The one spelling of a string, boolean or null."""
        if value is None:
            return b"null"
        if isinstance(value, bool):
            return b"true" if value else b"false"
        return encode_string(value)

    def literal_value(self, value) -> int:
        """Exactly this JSON value: objects keep their key order, numbers accept every
        positional spelling of the same value (`1`, `1.0`, `1.00`) and Python's repr (only
        json.dumps' spelling with `canonical_numbers`)."""
        p = self.pool
        if value is None:
            return self.null
        if value is True:
            return p.literal(b"true")
        if value is False:
            return p.literal(b"false")
        if isinstance(value, str):
            return p.literal(encode_string(value))
        if isinstance(value, (int, float)):
            return self.number_literal(value)
        if isinstance(value, list):
            items = [self.literal_value(v) for v in value]
            body = []
            for i, it in enumerate(items):
                body.extend([self.comma, it] if i else [it])
            return p.cat_all([p.literal(b"["), self.ws, *body, self.ws, p.literal(b"]")])
        if isinstance(value, dict):
            body = []
            for i, (k, v) in enumerate(value.items()):
                member = [p.literal(encode_string(k)), self.colon, self.literal_value(v)]
                body.extend([self.comma, *member] if i else member)
            return p.cat_all([p.literal(b"{"), self.ws, *body, self.ws, p.literal(b"}")])
        raise TypeError(f"not a JSON value: {value!r}")

    def number_literal(self, value: int | float) -> int:
        p = self.pool
        if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
            return p.never
        if self.canonical_numbers:
            return p.literal(json.dumps(value).encode())
        d = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
        forms = [regex_expr(p, decimal_regex(d, d))]
        if d == 0:
            forms.append(regex_expr(p, r"-0(?:\.0+)?"))
        if isinstance(value, float) and "e" in repr(value):
            forms.append(p.literal(repr(value).encode()))
        return p.alt(forms)


def whitespace_expr(pool: ExprPool, pattern: str | None) -> int:
    """The whitespace expression for a policy (None = compact). Raises ValueError if the
    pattern can match anything but JSON whitespace (space, tab, newline, return)."""
    if pattern is None:
        return pool.empty
    e = regex_expr(pool, pattern)
    seen, stack = {e}, [e]
    while stack:
        cur = stack.pop()
        for lo, hi, d in pool.derivative_classes(cur):
            if d == pool.never:
                continue
            if any(b not in _WS_BYTES for b in range(lo, hi + 1)):
                raise ValueError(f"whitespace pattern {pattern!r} matches a non-whitespace "
                                 "character; JSON allows only space, tab, newline and return")
            if d not in seen:
                if len(seen) > 1000:
                    raise ValueError(f"whitespace pattern {pattern!r} is too complex")
                seen.add(d)
                stack.append(d)
    return e
