"""Numeric ranges as regexes: exhaustive checks against Python arithmetic."""

from __future__ import annotations

import random
import re
from decimal import Decimal

import pytest

from tines.grammar.json_numbers import MultipleOf, decimal_regex, integer_bounds, integer_regex


def test_integer_ranges_exhaustively():
    rng = random.Random(0)
    for _ in range(400):
        lo = rng.choice([None, rng.randint(-1200, 1200)])
        hi = rng.choice([None, rng.randint(-1200, 1200)])
        r = integer_regex(lo, hi)
        for v in range(-1500, 1501):
            ok = (lo is None or v >= lo) and (hi is None or v <= hi)
            assert ok == (r is not None and bool(re.fullmatch(r, str(v)))), (lo, hi, v, r)


def test_integer_regex_is_canonical():
    r = integer_regex(-50, 50)
    assert not re.fullmatch(r, "-0") and not re.fullmatch(r, "007") and re.fullmatch(r, "0")


def test_large_bounds():
    r = integer_regex(10**15 + 7, 10**18)
    for v in (10**15 + 7, 10**16, 10**18, 999_999_999_999_999_999):
        assert re.fullmatch(r, str(v))
    for v in (10**15 + 6, 10**18 + 1, 5):
        assert not re.fullmatch(r, str(v))


def _texts():
    out = set()
    for i in range(13):
        for f in ["", "0", "00", "1", "01", "05", "5", "50", "25", "249", "251", "3", "999",
                  "0001", "9", "75", "7501"]:
            for sign in ("", "-"):
                out.add(sign + str(i) + ("." + f if f else ""))
    return sorted(out)


BOUNDS = [Decimal(x) for x in ["0", "0.25", "0.5", "1", "1.25", "2.5", "3", "-0.25", "-1",
                               "-2.5", "12", "-12", "0.0001", "7.501", "-7.5"]]


@pytest.mark.parametrize("lo_x,hi_x", [(False, False), (True, False), (False, True),
                                       (True, True)])
def test_decimal_ranges_exhaustively(lo_x, hi_x):
    texts = [t for t in _texts() if not (t.startswith("-") and Decimal(t) == 0)]
    for lo in [None, *BOUNDS]:
        for hi in [None, *BOUNDS]:
            r = decimal_regex(lo, hi, lo_x, hi_x)
            for t in texts:
                v = Decimal(t)
                ok = ((lo is None or (v > lo if lo_x else v >= lo))
                      and (hi is None or (v < hi if hi_x else v <= hi)))
                assert ok == (r is not None and bool(re.fullmatch(r, t))), (lo, hi, t, r)


def test_integer_bounds_of_fractional_and_exclusive_ranges():
    assert integer_bounds(Decimal("1.5"), Decimal("4.5")) == (2, 4)
    assert integer_bounds(Decimal(1), Decimal(4), True, True) == (2, 3)
    assert integer_bounds(Decimal("-1.5"), None) == (-1, None)


@pytest.mark.parametrize("m", ["7", "0.5", "1.5", "0.01", "100", "0.0001"])
def test_multiple_of_automaton(m):
    fsm = MultipleOf(Decimal(m))
    for t in _texts():
        st = fsm.start
        for b in t.encode():
            st = fsm.step(st, b) if st is not None else None
        got = st is not None and fsm.accepting(st)
        assert got == (Decimal(t) % Decimal(m) == 0), (m, t)
