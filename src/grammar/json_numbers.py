"""Numeric ranges as regexes over JSON number text.

- `integer_regex(lo, hi)`: canonical integers (`0`, `-12`, no leading zeros, no `-0`) in
  [lo, hi]; either bound may be None.
- `decimal_regex(lo, hi, lo_exclusive, hi_exclusive)`: decimals `-?I(.F)?` (no exponent)
  whose exact value lies in the range. Fractions may carry trailing zeros (`2.50`).
- `JSON_NUMBER`, `JSON_INTEGER_FRACTION`: the unbounded forms.

Why no exponent inside a bounded range: the set of `m e k` strings with a value in a range
is not something a small regex states exactly, and a looser one would accept out-of-range
values. A bounded number is therefore written positionally; unbounded numbers keep the
full JSON syntax (`1e5` included). The regexes are built digit by digit: an integer range
splits by length and then by leading digit (the classic range-to-regex construction);
fractions compare digit by digit against the bound's fraction.

All functions return None when the range is empty.
"""

from __future__ import annotations

import math
from decimal import Decimal

JSON_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
JSON_DECIMAL = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
JSON_INTEGER = r"-?(?:0|[1-9][0-9]*)"
# JSON Schema counts 1.0 as an integer, so an integer may carry a zero fraction.
JSON_INTEGER_FRACTION = r"(?:\.0+)?"


def integer_regex(lo: int | None, hi: int | None) -> str | None:
    if lo is not None and hi is not None and lo > hi:
        return None
    parts = []
    if lo is None or lo < 0:  # negatives: "-" and a magnitude in [max(1, -hi), -lo]
        mag_lo = 1 if hi is None or hi >= 0 else -hi
        mag = _nonneg_int(mag_lo, None if lo is None else -lo)
        if mag:
            parts.append("-" + _group(mag))
    if hi is None or hi >= 0:
        parts.extend(_nonneg_int(max(lo or 0, 0), hi))
    return _group(parts) if parts else None


def _group(parts: list[str] | str) -> str:
    if isinstance(parts, str):
        parts = [parts]
    return parts[0] if len(parts) == 1 and _atomic(parts[0]) else "(?:" + "|".join(parts) + ")"


def _atomic(s: str) -> bool:
    return s.isdigit() or (s.startswith("(?:") and s.endswith(")") and _balanced(s[3:-1]))


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        depth += c == "("
        depth -= c == ")"
        if depth < 0:
            return False
    return depth == 0


def _nonneg_int(a: int, b: int | None) -> list[str]:
    """Alternatives for canonical integers in [a, b], a >= 0."""
    parts = []
    if a == 0:
        parts.append("0")
        a = 1
    if b is not None and a > b:
        return parts
    la = len(str(a))
    lb = la if b is None else len(str(b))
    for n in range(la, lb + 1):
        lo = max(a, 10 ** (n - 1))
        hi = 10 ** n - 1 if b is None else min(b, 10 ** n - 1)
        if lo <= hi:
            parts.append(_same_len(str(lo), str(hi)))
    if b is None:
        parts.append(f"[1-9][0-9]{{{la},}}")
    return parts


def _digits(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"[{lo}-{hi}]"


def _same_len(lo: str, hi: str) -> str:
    """Digit strings of len(lo) between lo and hi (inclusive), lo <= hi."""
    if lo == hi:
        return lo
    n = len(lo) - 1
    l0, h0 = int(lo[0]), int(hi[0])
    if n == 0:
        return _digits(l0, h0)
    if l0 == h0:
        return lo[0] + _group(_same_len(lo[1:], hi[1:]))
    parts, start, end = [], l0, h0
    if lo[1:] != "0" * n:
        parts.append(lo[0] + _group(_same_len(lo[1:], "9" * n)))
        start += 1
    if hi[1:] != "9" * n:
        end -= 1
    if start <= end:
        tail = f"[0-9]{{{n}}}" if n > 1 else "[0-9]"
        parts.append(_digits(start, end) + tail)
    if hi[1:] != "9" * n:
        parts.append(hi[0] + _group(_same_len("0" * n, hi[1:])))
    return "(?:" + "|".join(parts) + ")"


def _split(d: Decimal) -> tuple[int, str]:
    """Non-negative decimal → (integer part, fraction digits without trailing zeros)."""
    i = int(d)  # truncates toward zero; d >= 0
    frac = d - i
    digits = format(frac, "f").partition(".")[2].rstrip("0") if frac else ""
    return i, digits


def _frac(lo: str, lo_strict: bool, hi: str | None, hi_strict: bool) -> tuple[str | None, bool]:
    """Fractions F (digit strings, compared as 0.F) with 0.lo <=/< 0.F <=/< 0.hi; hi None
    means no upper bound (< 1). Returns (regex for non-empty F or None, whether F may be
    empty, i.e. the value 0 qualifies)."""
    empty_ok = (lo == "" and not lo_strict) and (hi is None or not hi_strict or hi != "")
    if lo == "" and hi is None:
        return ("[0-9]*[1-9][0-9]*" if lo_strict else "[0-9]+"), empty_ok
    if lo == "" and hi == "":
        return (None if lo_strict or hi_strict else "0+"), empty_ok
    l_d, l_rest = (int(lo[0]), lo[1:]) if lo else (0, "")
    if hi is None:
        h_d, h_rest = 9, None
    else:
        h_d, h_rest = (int(hi[0]), hi[1:]) if hi else (0, "")
    parts = []
    if l_d < h_d:
        parts.append(_then(str(l_d), _frac(l_rest, lo_strict, None, False)))
        if l_d + 1 <= h_d - 1:
            parts.append(f"{_digits(l_d + 1, h_d - 1)}[0-9]*")
        if hi is None:
            parts.append("9[0-9]*")
        else:
            parts.append(_then(str(h_d), _frac("", False, h_rest, hi_strict)))
    elif l_d == h_d:
        if hi is None:  # l_d == 9
            parts.append(_then("9", _frac(l_rest, lo_strict, None, False)))
        else:
            parts.append(_then(str(l_d), _frac(l_rest, lo_strict, h_rest, hi_strict)))
    parts = [p for p in parts if p]
    return ("(?:" + "|".join(parts) + ")" if parts else None), empty_ok


def _then(head: str, rest: tuple[str | None, bool]) -> str | None:
    ne, empty_ok = rest
    if ne is None:
        return head if empty_ok else None
    return f"{head}(?:{ne})?" if empty_ok else f"{head}(?:{ne})"


def _with_frac(int_part: str, f: tuple[str | None, bool]) -> str | None:
    ne, empty_ok = f
    if ne is None:
        return int_part if empty_ok else None
    return f"{int_part}(?:\\.(?:{ne}))?" if empty_ok else f"{int_part}\\.(?:{ne})"


def _nonneg_decimal(a: Decimal, a_strict: bool, b: Decimal | None, b_strict: bool) -> list[str]:
    """Positional decimals with value in [a, b] (strictness per flag), a >= 0."""
    if b is not None and (a > b or (a == b and (a_strict or b_strict))):
        return []
    ai, af = _split(a)
    parts = []
    if b is None:
        parts.append(_with_frac(str(ai), _frac(af, a_strict, None, False)))
        mid = _nonneg_int(ai + 1, None)
        if mid:
            parts.append(_group(mid) + r"(?:\.[0-9]+)?")
    else:
        bi, bf = _split(b)
        if ai == bi:
            parts.append(_with_frac(str(ai), _frac(af, a_strict, bf, b_strict)))
        else:
            parts.append(_with_frac(str(ai), _frac(af, a_strict, None, False)))
            mid = _nonneg_int(ai + 1, bi - 1) if bi - 1 >= ai + 1 else []
            if mid:
                parts.append(_group(mid) + r"(?:\.[0-9]+)?")
            parts.append(_with_frac(str(bi), _frac("", False, bf, b_strict)))
    return [p for p in parts if p]


def decimal_regex(lo: Decimal | None, hi: Decimal | None, lo_exclusive: bool = False,
                  hi_exclusive: bool = False) -> str | None:
    lo = None if lo is None else Decimal(lo)
    hi = None if hi is None else Decimal(hi)
    if lo is None and hi is None:
        return JSON_DECIMAL
    parts = []
    if lo is None or lo < 0:  # x < 0: magnitude m = -x in (max(0, -hi), -lo]
        if hi is None or hi >= 0:
            m_lo, m_lo_strict = Decimal(0), True
        else:
            m_lo, m_lo_strict = -hi, hi_exclusive
        neg = _nonneg_decimal(m_lo, m_lo_strict, None if lo is None else -lo, lo_exclusive)
        if neg:
            parts.append("-" + _group(neg))
    if hi is None or hi > 0 or (hi == 0 and not hi_exclusive):
        if lo is None or lo < 0:
            a, a_strict = Decimal(0), False
        else:
            a, a_strict = lo, lo_exclusive
        parts.extend(_nonneg_decimal(a, a_strict, hi, hi_exclusive))
    return _group(parts) if parts else None


def integer_bounds(lo: Decimal | None, hi: Decimal | None, lo_exclusive: bool = False,
                   hi_exclusive: bool = False) -> tuple[int | None, int | None]:
    """The integer range inside a (possibly fractional, possibly exclusive) range."""
    ilo = ihi = None
    if lo is not None:
        ilo = math.floor(lo) + 1 if lo_exclusive and lo == int(lo) else math.ceil(lo)
    if hi is not None:
        ihi = math.ceil(hi) - 1 if hi_exclusive and hi == int(hi) else math.floor(hi)
    return ilo, ihi


# Positional numbers with no negative zero: the number syntax of the "universe" that
# `not`/`oneOf`/`if` complements are taken in (see json_logic.py).
UNIVERSE_NUMBER = r"(?:0|-?[1-9][0-9]*)(?:\.[0-9]+)?|-0\.[0-9]*[1-9][0-9]*"


class MultipleOf:
    """A byte automaton accepting positional number text `-?I(.F)?` whose value is a
    multiple of `m` (other syntax is left to the number grammar it is intersected with).

    With m = a / 10**s (a, s integers), x is a multiple of m iff x * 10**s is an integer
    divisible by a: read the digits of I and the first s digits of F as one integer modulo
    a, allow only zeros after the s-th fraction digit, and at the end scale the residue by
    the fraction digits not written. State: (residue, fraction digits read or -1).
    """

    def __init__(self, m: Decimal):
        m = Decimal(m).normalize()
        if m <= 0:
            raise ValueError("multipleOf must be > 0")
        exp = m.as_tuple().exponent
        self.s = max(0, -exp)
        self.a = int(m.scaleb(self.s))
        self.start = (0, -1)

    def __eq__(self, other) -> bool:
        return isinstance(other, MultipleOf) and (self.a, self.s) == (other.a, other.s)

    def __hash__(self) -> int:
        return hash((self.a, self.s))

    def step(self, state, byte: int):
        r, k = state
        if byte == 0x2D:  # "-": the sign does not change divisibility
            return state if r == 0 and k == -1 else None
        if byte == 0x2E:  # "."
            return (r, 0) if k == -1 else None
        if not 0x30 <= byte <= 0x39:
            return None
        d = byte - 0x30
        if k == -1:
            return ((10 * r + d) % self.a, -1)
        if k < self.s:
            return ((10 * r + d) % self.a, k + 1)
        return state if d == 0 else None

    def accepting(self, state) -> bool:
        r, k = state
        return r * pow(10, self.s - max(k, 0), self.a) % self.a == 0
