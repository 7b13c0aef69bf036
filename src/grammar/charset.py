"""Sets of Unicode code points as sorted, disjoint, inclusive ranges, and their UTF-8 form.

A `Ranges` value is a tuple of `(lo, hi)` pairs, sorted, non-overlapping and non-adjacent
(normalized), over 0..0x10FFFF. Surrogates (U+D800..U+DFFF) may appear in a set but have no
UTF-8 encoding, so `utf8_sequences` leaves them out.

Python's own `re` module is the reference for what a class means: `python_class` runs the
class over a string of every code point once and reads the matches back as ranges, so `\\w`,
`\\d`, IGNORECASE and friends mean exactly what `re.fullmatch` means.
"""

from __future__ import annotations

import functools
import re

Ranges = tuple[tuple[int, int], ...]

MAX_CP = 0x10FFFF
ALL: Ranges = ((0, MAX_CP),)
SURROGATES: Ranges = ((0xD800, 0xDFFF),)


def normalize(pairs) -> Ranges:
    """Sort and merge overlapping or adjacent ranges."""
    out: list[list[int]] = []
    for lo, hi in sorted(pairs):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def union(*sets: Ranges) -> Ranges:
    return normalize([r for s in sets for r in s])


def negate(s: Ranges) -> Ranges:
    """The complement within 0..0x10FFFF."""
    out, nxt = [], 0
    for lo, hi in s:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CP:
        out.append((nxt, MAX_CP))
    return tuple(out)


def intersect(a: Ranges, b: Ranges) -> Ranges:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def subtract(a: Ranges, b: Ranges) -> Ranges:
    return intersect(a, negate(b))


def chars(text: str) -> Ranges:
    return normalize((ord(c), ord(c)) for c in text)


def contains(s: Ranges, cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in s)


@functools.cache
def _all_code_points() -> str:
    return "".join(map(chr, range(MAX_CP + 1)))


@functools.lru_cache(maxsize=4096)
def python_class(regex: str, flags: int = 0) -> Ranges:
    """The code points `c` with `re.fullmatch(regex, c, flags)`, for a regex that matches
    exactly one character (a literal, a class, `.`, `\\d`...)."""
    found = re.finditer(f"(?:{regex})+", _all_code_points(), flags)
    return tuple((m.start(), m.end() - 1) for m in found)


def _utf8_len(cp: int) -> int:
    return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


_LEN_BOUNDS = ((0, 0x7F), (0x80, 0x7FF), (0x800, 0xFFFF), (0x10000, MAX_CP))


def utf8_sequences(s: Ranges) -> list[tuple[tuple[int, int], ...]]:
    """Split a code point set into UTF-8 byte-range sequences: each sequence is a tuple of
    `(lo_byte, hi_byte)` ranges whose product is exactly the encodings of a sub-range.
    Surrogates are dropped. (The classic split used by RE2 and regex-automata.)"""
    out: list[tuple[tuple[int, int], ...]] = []
    for lo, hi in subtract(s, SURROGATES):
        for blo, bhi in _LEN_BOUNDS:
            a, b = max(lo, blo), min(hi, bhi)
            if a <= b:
                _split_same_len(a, b, out)
    return out


def _split_same_len(lo: int, hi: int, out: list) -> None:
    n = _utf8_len(lo)
    for i in range(1, n):
        m = (1 << (6 * i)) - 1
        if lo & ~m != hi & ~m:
            if lo & m:
                _split_same_len(lo, lo | m, out)
                _split_same_len((lo | m) + 1, hi, out)
                return
            if hi & m != m:
                _split_same_len(lo, (hi & ~m) - 1, out)
                _split_same_len(hi & ~m, hi, out)
                return
    a, b = chr(lo).encode(), chr(hi).encode()
    out.append(tuple(zip(a, b)))
