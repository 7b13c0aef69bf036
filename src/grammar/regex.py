"""Regex text → byte-level expression (`expr.py`), parsed by Python's own regex parser.

Two flavors:
- "python" (the `regex=` constraint): the language of `re.fullmatch(pattern, s)`.
- "ecma" (JSON Schema `pattern`): the strings `s` with `re.search(pattern, s)`, i.e. the
  pattern may match anywhere unless anchored. Classes are the intersection of what ECMA-262
  and Python's `re` mean (`\\d` is `[0-9]`, `.` excludes `\\r` and U+2028/9...), so a string
  the grammar accepts passes both a JavaScript and a Python validator.

Supported: literals, classes, `.`, categories, alternation, groups (with inline flags i, s,
a, x, m), greedy and lazy repeats, and `^`/`$`/`\\A`/`\\Z` at the start or end of a
top-level branch. Raises `GrammarError` for lookaround, backreferences, word boundaries,
possessive/atomic forms and anchors elsewhere: those change the language in ways a finite
automaton over the whole output cannot follow exactly.

`chars(ranges) -> expr` is pluggable so JSON strings can encode each code point the way
`json.dumps(ensure_ascii=False)` writes it (see `json_strings.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

try:  # Python >= 3.11
    from re import _constants as sre, _parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as sre  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

from . import charset as cs
from .charset import Ranges
from .errors import GrammarError
from .expr import ExprPool, byte_mask

_START = {sre.AT_BEGINNING, sre.AT_BEGINNING_STRING}
_END = {sre.AT_END, sre.AT_END_STRING}
_CAT_SRC = {sre.CATEGORY_DIGIT: r"\d", sre.CATEGORY_NOT_DIGIT: r"\D",
            sre.CATEGORY_SPACE: r"\s", sre.CATEGORY_NOT_SPACE: r"\S",
            sre.CATEGORY_WORD: r"\w", sre.CATEGORY_NOT_WORD: r"\W"}
_ECMA_DIGIT = cs.chars("0123456789")
_ECMA_WORD = cs.union(_ECMA_DIGIT, ((65, 90), (97, 122)), cs.chars("_"))
_ECMA_SPACE = cs.union(cs.chars("\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff"),
                       ((0x2000, 0x200A),))
_ECMA_CAT = {sre.CATEGORY_DIGIT: _ECMA_DIGIT, sre.CATEGORY_NOT_DIGIT: cs.negate(_ECMA_DIGIT),
             sre.CATEGORY_SPACE: _ECMA_SPACE, sre.CATEGORY_NOT_SPACE: cs.negate(_ECMA_SPACE),
             sre.CATEGORY_WORD: _ECMA_WORD, sre.CATEGORY_NOT_WORD: cs.negate(_ECMA_WORD)}
_ECMA_DOT = cs.negate(cs.chars("\n\r\u2028\u2029"))
_CLASS_FLAGS = re.IGNORECASE | re.ASCII


def char_expr(pool: ExprPool, ranges: Ranges) -> int:
    """UTF-8 encodings of a code point set, as a byte trie (cached per pool)."""
    key = ("chars", ranges)
    e = pool.memo.get(key)
    if e is None:
        e = pool.memo[key] = _seq_trie(pool, cs.utf8_sequences(ranges))
    return e


def _seq_trie(pool: ExprPool, seqs: list) -> int:
    groups: dict[tuple[int, int], list] = {}
    for s in seqs:
        groups.setdefault(s[0], []).append(s[1:])
    branches = []
    for (lo, hi), rests in groups.items():
        tail = pool.empty if not rests[0] else _seq_trie(pool, rests)
        branches.append(pool.cat(pool.bytes(byte_mask(lo, hi)), tail))
    return pool.alt(branches)


def regex_expr(pool: ExprPool, pattern: str, *, flavor: str = "python",
               chars: Callable[[Ranges], int] | None = None,
               search_chars: Ranges = cs.ALL) -> int:
    """Compile `pattern`. For flavor "ecma" the unanchored ends are padded with
    `chars(search_chars)*`. Raises GrammarError naming the problem."""
    if flavor not in ("python", "ecma"):
        raise ValueError(f"unknown regex flavor {flavor!r}")
    try:
        tree = sre_parse.parse(pattern, 0)
    except (re.error, RecursionError, OverflowError) as e:
        raise GrammarError(f"invalid regex {pattern!r}: {e}") from None
    conv = _Converter(pool, flavor, chars or (lambda r: char_expr(pool, r)))
    flags = tree.state.flags
    if flags & re.LOCALE:
        raise GrammarError(f"regex {pattern!r}: the LOCALE flag is not supported")
    variants = conv.variants(list(tree), flags)
    if flavor == "python":
        return pool.alt(x for _, _, x in variants)
    pad = pool.rep(conv.chars(search_chars), 0, None)
    return pool.alt(pool.cat_all([pool.empty if s else pad, x, pool.empty if e else pad])
                    for s, e, x in variants)


class _Converter:
    def __init__(self, pool: ExprPool, flavor: str, chars: Callable[[Ranges], int]):
        self.pool = pool
        self.ecma = flavor == "ecma"
        self.chars = chars

    def variants(self, items: list, flags: int) -> list[tuple[bool, bool, int]]:
        """`[(anchored_at_start, anchored_at_end, expr)]` whose union is the sequence."""
        start = end = False
        while items and items[0][0] == sre.AT and items[0][1] in _START:
            start, items = True, items[1:]
        while items and items[-1][0] == sre.AT and items[-1][1] in _END:
            end, items = True, items[:-1]
        if not items:
            return [(start, end, self.pool.empty)]
        if len(items) == 1:
            op, av = items[0]
            if op == sre.BRANCH:
                return [(s or start, e or end, x) for b in av[1]
                        for s, e, x in self.variants(list(b), flags)]
            if op == sre.SUBPATTERN:
                _, add, rem, sub = av
                return [(s or start, e or end, x)
                        for s, e, x in self.variants(list(sub), (flags | add) & ~rem)]
            return [(start, end, self.item(op, av, flags))]
        middle = self.seq(items[1:-1], flags)
        out = []
        for fs, fe, fx in self.variants(items[:1], flags):
            for ls, le, lx in self.variants(items[-1:], flags):
                if fe or ls:
                    raise GrammarError("regex anchors are only supported at the start or end")
                out.append((start or fs, end or le, self.pool.cat_all([fx, middle, lx])))
        return out

    def seq(self, items, flags: int) -> int:
        return self.pool.cat_all([self.item(op, av, flags) for op, av in items])

    def item(self, op, av, flags: int) -> int:
        pool = self.pool
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
            return self.chars(self.char_set(op, av, flags))
        if op == sre.BRANCH:
            return pool.alt(self.seq(b, flags) for b in av[1])
        if op == sre.SUBPATTERN:
            _, add, rem, sub = av
            return self.seq(sub, (flags | add) & ~rem)
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            lo, hi, sub = av
            return pool.rep(self.seq(sub, flags), lo, None if hi == sre.MAXREPEAT else hi)
        if op == sre.AT:
            raise GrammarError("regex anchors are only supported at the start or end")
        what = {sre.GROUPREF: "backreferences", sre.ASSERT: "lookaround",
                sre.ASSERT_NOT: "lookaround", sre.GROUPREF_EXISTS: "conditional groups",
                sre.POSSESSIVE_REPEAT: "possessive repeats", sre.ATOMIC_GROUP: "atomic groups"}
        raise GrammarError(f"regex {what.get(op, str(op).lower())} are not supported")

    def char_set(self, op, av, flags: int) -> Ranges:
        ic = flags & re.IGNORECASE
        cflags = flags & _CLASS_FLAGS
        if op == sre.ANY:
            py = cs.ALL if flags & re.DOTALL else cs.negate(cs.chars("\n"))
            return cs.intersect(py, _ECMA_DOT) if self.ecma and not flags & re.DOTALL else py
        if op == sre.LITERAL:
            return cs.python_class(_esc(av), cflags) if ic else ((av, av),)
        if op == sre.NOT_LITERAL:
            return cs.python_class(f"[^{_esc(av)}]", cflags) if ic else cs.negate(((av, av),))
        # IN: a bracketed class
        if ic or flags & re.ASCII or any(o == sre.CATEGORY for o, _ in av):
            py = cs.python_class(_class_src(av), cflags)
        else:
            py = _plain_class(av)
        if self.ecma and not ic:
            py = cs.intersect(py, _ecma_class(av))
        return py


def _esc(cp: int) -> str:
    return f"\\U{cp:08x}"


def _class_src(av) -> str:
    parts = []
    for op, v in av:
        if op == sre.NEGATE:
            parts.append("^")
        elif op == sre.LITERAL:
            parts.append(_esc(v))
        elif op == sre.RANGE:
            parts.append(f"{_esc(v[0])}-{_esc(v[1])}")
        elif op == sre.CATEGORY:
            parts.append(_CAT_SRC[v])
        else:
            raise GrammarError(f"unsupported item {op} in a regex character class")
    return "[" + "".join(parts) + "]"


def _plain_class(av) -> Ranges:
    pairs, neg = [], False
    for op, v in av:
        if op == sre.NEGATE:
            neg = True
        elif op == sre.LITERAL:
            pairs.append((v, v))
        elif op == sre.RANGE:
            pairs.append(v)
    s = cs.normalize(pairs)
    return cs.negate(s) if neg else s


def _ecma_class(av) -> Ranges:
    pairs, neg = [], False
    for op, v in av:
        if op == sre.NEGATE:
            neg = True
        elif op == sre.LITERAL:
            pairs.append((v, v))
        elif op == sre.RANGE:
            pairs.append(v)
        elif op == sre.CATEGORY:
            pairs.extend(_ECMA_CAT[v])
    s = cs.normalize(pairs)
    return cs.negate(s) if neg else s
