"""Regex → expression: the grammar's language equals Python's `re.fullmatch`."""

from __future__ import annotations

import random
import re

import pytest

from tines.grammar import GrammarError, GrammarSpec
from tines.grammar.expr import ExprPool
from tines.grammar.regex import regex_expr

REGEXES = [
    r"a(bc)*", r"[a-z]+(\.[a-z]+)?", r"(cat|car|cart)s?", r"\d{2,4}-\d\d", r"[^abc]x",
    r"(?i)hello|wor[a-c]d", r"x{0,3}y{2}", r"(a|b)*abb", r"\w+@\w+\.com", r"[\s,]*end",
    r"colou?r", r"(?:ab|a)(?:bc|c)", r"[α-ω]+ς?", r"\D\W\S", r"(?s).x", r".x", r"^ab$",
    r"[\x00-\x7f]*é", r"(a{2}){2,3}", r"a*?b+?", r"[0-9a-fA-F]{4}", r"", r"(|a)b",
    r"\U0001F600+", r"[-+]?[0-9]*\.?[0-9]+",
]
ALPHABET = (list("abcrtsxyz.-@,0123459 \n\tHhWwEeLlOoé€ςαωΣ٣")
            + ["\U0001F600", "\r", "ſ", "K"])


def strings(rng: random.Random, regex: str, n: int):
    extra = [c for c in regex if c.isprintable()]
    for _ in range(n):
        k = rng.randint(0, 8)
        yield "".join(rng.choice(ALPHABET + extra) for _ in range(k))


@pytest.mark.parametrize("regex", REGEXES)
def test_language_matches_python_re(byte_compiler, regex):
    g = byte_compiler.compile(GrammarSpec.regex(regex))
    rng = random.Random(regex)
    for s in strings(rng, regex, 400):
        assert g.accepts_text(s) == bool(re.fullmatch(regex, s)), (regex, s)


@pytest.mark.parametrize("regex", REGEXES)
def test_random_walks_produce_matches(byte_compiler, regex):
    g = byte_compiler.compile(GrammarSpec.regex(regex))
    rng = random.Random(0)
    for _ in range(30):
        m = g.matcher()
        out = bytearray()
        while not m.is_terminated() and len(out) < 40:
            ids = m.allowed_token_ids().tolist()
            t = rng.choice(ids)
            assert m.accept_token(t)
            if t != 256:
                out.append(t)
        if m.is_accepting():
            assert re.fullmatch(regex, out.decode("utf-8")), (regex, out)


def test_unicode_classes_follow_python():
    pool = ExprPool()
    e = regex_expr(pool, r"\w\d")
    assert pool.matches(e, "é٣".encode())  # Arabic-indic digit is \d in Python
    assert not pool.matches(e, "_ ".encode())


def test_ecma_flavor_searches_and_uses_ascii_classes():
    pool = ExprPool()
    e = regex_expr(pool, r"\d", flavor="ecma")
    assert pool.matches(e, b"ab3cd")
    assert not pool.matches(e, "ab٣".encode())  # ECMA \d is [0-9]
    anchored = regex_expr(pool, r"^a.$", flavor="ecma")
    assert pool.matches(anchored, b"ab")
    assert not pool.matches(anchored, b"a\r")  # ECMA . excludes line terminators
    assert not pool.matches(anchored, b"xab")
    alt = regex_expr(pool, r"^a|b$", flavor="ecma")
    assert pool.matches(alt, b"axx") and pool.matches(alt, b"xxb")
    assert not pool.matches(alt, b"xax")


@pytest.mark.parametrize("regex", [r"(?=a)a", r"(a)\1", r"a\bb", r"a^b", r"a$b", r"a++",
                                   r"(?>a)", r"[", r"a{2,1}"])
def test_unsupported_or_invalid_regex_raises(byte_compiler, regex):
    with pytest.raises(GrammarError):
        byte_compiler.compile(GrammarSpec.regex(regex))
