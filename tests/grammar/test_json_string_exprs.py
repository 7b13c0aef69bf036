"""The faster builders of JSON string expressions against the plain construction: escapes
memoized apart build the very same nodes (compared by id in one hash-consing pool); key-trie
complements, built with a shared branch for the non-ASCII characters, the same language
(neither minus the other has a string, decided on the lazy automaton)."""

from __future__ import annotations

import pytest

from tines.grammar import EmptyLanguageError
from tines.grammar import charset as cs
from tines.grammar.automaton import Automaton
from tines.grammar.expr import ExprPool
from tines.grammar.json_strings import (_ESCAPED, _SHORT, json_char, json_chars, name_trie,
                                        string_not_in)
from tines.grammar.regex import char_expr


def plain_json_chars(pool: ExprPool, ranges) -> int:
    """The construction before memoizing escapes apart (one ALT over every branch)."""
    branches = []
    for part in (cs.intersect(ranges, ((0, 0x7F),)), cs.intersect(ranges, ((0x80, cs.MAX_CP),))):
        if not part:
            continue
        branches.append(char_expr(pool, cs.subtract(part, _ESCAPED)))
        for lo, hi in cs.intersect(part, _ESCAPED):
            for c in range(lo, hi + 1):
                if c in _SHORT:
                    branches.append(pool.literal(_SHORT[c].encode()))
                else:
                    hexes = [pool.bytes(sum(1 << ord(h) for h in {d, d.upper()}))
                             for d in f"{c:02x}"]
                    branches.append(pool.cat_all([pool.literal(b"\\u00"), *hexes]))
    return pool.alt(branches)


def plain_not_in(pool: ExprPool, names: list[str]) -> int:
    trie = name_trie(names)

    def walk(node: dict) -> int:
        kids = [c for c in node if c is not None]
        branches = [] if None in node else [pool.empty]
        others = cs.subtract(cs.ALL, cs.normalize((c, c) for c in kids))
        branches.append(pool.cat(plain_json_chars(pool, others),
                                 pool.rep(json_char(pool), 0, None)))
        for c in kids:
            branches.append(pool.cat(plain_json_chars(pool, ((c, c),)), walk(node[c])))
        return pool.alt(branches)

    return walk(trie)


@pytest.mark.parametrize("ranges", [cs.ALL, cs.chars("ab\"\\\n"), ((0, 0x1F),), ((0x41, 0x5A),),
                                    cs.subtract(cs.ALL, cs.chars("xyz")), ((0xE9, 0xE9),)])
def test_json_chars_builds_the_plain_construction(ranges):
    pool = ExprPool()
    assert json_chars(pool, ranges) == plain_json_chars(pool, ranges)


@pytest.mark.parametrize("names", [["name", "age", "nam"], ["a\"b", "é", "x\\y", ""],
                                   ["IndexName", "KeySchema", "Projection", "Index"]])
def test_string_not_in_has_the_language_of_the_plain_construction(names):
    pool = ExprPool()
    fast, plain = string_not_in(pool, names), plain_not_in(pool, names)
    for a, b in ((fast, plain), (plain, fast)):
        with pytest.raises(EmptyLanguageError):
            Automaton(pool, pool.diff(a, b))
    for name in names:
        assert not pool.matches(fast, name.encode().replace(b"\\", b"\\\\")
                                .replace(b'"', b'\\"'))
    assert pool.matches(fast, b"other") and pool.matches(fast, "z\u00e9".encode())
