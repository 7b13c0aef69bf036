"""JSON string values: every character encoded one way, as `json.dumps(ensure_ascii=False)`
writes it.

`"` and `\\` are escaped (`\\"`, `\\\\`), control characters use `\\b \\f \\n \\r \\t` or
`\\u00XX` (hex in either case), everything else is raw UTF-8. Because each code point has
exactly one encoding, a string of n encoded characters decodes to n code points, which makes
`minLength`/`maxLength` a plain repeat count and lets a `pattern` over decoded characters be
rewritten as a pattern over encoded ones (`chars` below is the hook `regex.py` calls).

A patterned or formatted string is the intersection (expression AND) of its length, each
`pattern` (search semantics, see `regex.py`) and its format: exact for any combination,
where outlines-core drops the pattern as soon as a length bound is present.
"""

from __future__ import annotations

import json

from . import charset as cs
from .charset import Ranges
from .expr import ExprPool
from .regex import char_expr, regex_expr

_ASCII: Ranges = ((0, 0x7F),)
_WIDE: Ranges = ((0x80, cs.MAX_CP),)
_ESCAPED = cs.union(((0, 0x1F),), cs.chars('"\\'))
_PLAIN_RANGES: Ranges = cs.subtract(((0x20, 0x7F),), cs.chars('"\\'))  # one byte, unescaped
_PLAIN = frozenset(c for lo, hi in _PLAIN_RANGES for c in range(lo, hi + 1))
_PLAIN_MASK = sum(1 << c for c in _PLAIN)
_SHORT = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r", 0x22: '\\"',
          0x5C: "\\\\"}


def json_chars(pool: ExprPool, ranges: Ranges) -> int:
    """Encoded forms of the code points in `ranges` (one JSON string character each)."""
    key = ("json_chars", ranges)
    e = pool.memo.get(key)
    if e is not None:
        return e
    ascii_part, wide_part = cs.intersect(ranges, _ASCII), cs.intersect(ranges, _WIDE)
    if ascii_part and wide_part:  # build (and memoize) the costly multi-byte part once
        e = pool.memo[key] = pool.alt([json_chars(pool, ascii_part),
                                       json_chars(pool, wide_part)])
        return e
    e = pool.memo[key] = pool.alt([char_expr(pool, cs.subtract(ranges, _ESCAPED)),
                                   _escapes(pool, cs.intersect(ranges, _ESCAPED))])
    return e


def _escapes(pool: ExprPool, ranges: Ranges) -> int:
    """The escaped encodings of the code points in `ranges` (a subset of `_ESCAPED`).
    Memoized on their own: the key sets of objects ask for every character but a few
    letters many times, and always for the same escapes."""
    key = ("json_escapes", ranges)
    e = pool.memo.get(key)
    if e is None:
        branches = []
        for lo, hi in ranges:
            for c in range(lo, hi + 1):
                if c in _SHORT:
                    branches.append(pool.literal(_SHORT[c].encode()))
                else:  # \u00XX with hex digits in either case
                    hexes = [pool.bytes(sum(1 << ord(h) for h in {d, d.upper()}))
                             for d in f"{c:02x}"]
                    branches.append(pool.cat_all([pool.literal(b"\\u00"), *hexes]))
        e = pool.memo[key] = pool.alt(branches)
    return e


def json_char(pool: ExprPool) -> int:
    """Any one encoded JSON string character."""
    return json_chars(pool, cs.ALL)


def quoted(pool: ExprPool, content: int) -> int:
    q = pool.literal(b'"')
    return pool.cat_all([q, content, q])


def string_content(pool: ExprPool, min_len: int = 0, max_len: int | None = None,
                   patterns: tuple[str, ...] = (), formats: tuple = ()) -> int:
    """Encoded content (without quotes) of strings with min_len..max_len characters that
    contain a match of every `pattern` (ECMA search semantics) and fully match every
    `formats` regex (given over decoded characters, or built by a `FormatBuilder`).
    Memoized on the arguments: `$ref` targets unrolled several times ask for the same
    strings again."""
    key = ("string_content", min_len, max_len, patterns, formats)
    e = pool.memo.get(key)
    if e is None:
        e = pool.memo[key] = _string_content(pool, min_len, max_len, patterns, formats)
    return e


def _string_content(pool: ExprPool, min_len: int, max_len: int | None,
                    patterns: tuple[str, ...], formats: tuple) -> int:
    parts = [pool.rep(json_char(pool), min_len, max_len)]
    chars = lambda r: json_chars(pool, r)  # noqa: E731
    for p in patterns:
        parts.append(regex_expr(pool, p, flavor="ecma", chars=chars))
    python_regex = lambda text: regex_expr(pool, text, flavor="python", chars=chars)  # noqa: E731
    for f in formats:
        parts.append(f(pool, python_regex) if callable(f) else python_regex(f))
    if len(parts) == 1:
        return parts[0]
    if min_len == 0 and max_len is None:
        parts = parts[1:]
    return parts[0] if len(parts) == 1 else pool.and_(parts)


def literal_string(pool: ExprPool, text: str) -> int:
    """Exactly this string value, quoted and encoded."""
    return pool.literal(encode_string(text))


def encode_string(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass")


def string_not_in(pool: ExprPool, names: list[str]) -> int:
    """Encoded content of every string except the given ones (a trie complement, so no
    boolean nodes and liveness stays syntactic). Memoized on the name set: `$ref` targets
    unrolled several times build the same objects again."""
    key = ("string_not_in", frozenset(names))
    e = pool.memo.get(key)
    if e is not None:
        return e
    e = pool.memo[key] = _not_in(pool, name_trie(names))
    return e


def name_trie(names: list[str]) -> dict:
    """The names as a trie of code points: {code point: subtrie}, with `None: True` where a
    name ends."""
    trie: dict = {}
    for name in names:
        node = trie
        for ch in name:
            node = node.setdefault(ord(ch), {})
        node[None] = True
    return trie


def _not_in(pool: ExprPool, node: dict) -> int:
    """Content strings that leave the trie at `node`: end here (unless a name does), take a
    character no name continues with and then anything, or follow a name's next character
    to a subtrie that is left later."""
    kids = [c for c in node if c is not None]
    branches = [] if None in node else [pool.empty]
    branches.extend(_leave_after(pool, kids))
    for c in kids:
        one = pool.bytes(1 << c) if c in _PLAIN else json_chars(pool, ((c, c),))
        branches.append(pool.cat(one, _not_in(pool, node[c])))
    return pool.alt(branches)


def _leave_after(pool: ExprPool, kids: list[int]) -> list[int]:
    """Alternatives for "a JSON character other than `kids`, then any content". With plain
    ASCII kids (names in a key trie almost always are) that is a byte class followed by
    anything, beside one shared branch for every other character: a trie node then costs a
    few small nodes rather than a copy of the multi-byte character classes."""
    rest = pool.rep(json_char(pool), 0, None)
    if not all(c in _PLAIN for c in kids):
        others = json_chars(pool, cs.subtract(cs.ALL, cs.normalize((c, c) for c in kids)))
        return [pool.cat(others, rest)]
    shared = pool.memo.get("leave_by_non_plain")
    if shared is None:
        non_plain = json_chars(pool, cs.subtract(cs.ALL, _PLAIN_RANGES))
        shared = pool.memo["leave_by_non_plain"] = pool.cat(non_plain, rest)
    mask = _PLAIN_MASK
    for c in kids:
        mask &= ~(1 << c)
    return [pool.cat(pool.bytes(mask), rest), shared]
