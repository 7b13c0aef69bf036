"""Grammars composed in Python, for `gen(grammar=...)`: stateless grammar functions in the
manner of guidance's, compiled to Lark text for the engine's CFG front end.

    from tines import gen, select
    from tines.grammars import rule, regex, one_or_more

    @rule
    def expr():
        return select([term(), expr() + select(["+", "-"]) + term()])   # recursive

    @rule
    def term():
        return select([regex(r"[0-9]+"), "(" + expr() + ")"])

    s += "2+3 = " + gen("calc", grammar=expr())

Fragments: a `str` (literal text), `regex(...)`, `select([...])` over strings or fragments,
`gen(regex=...)` with no name, `+` (sequence), `optional` / `zero_or_more` / `one_or_more` /
`repeat`, and calls of `@rule` functions. A rule is a named nonterminal: its body is built
once, when the grammar is compiled, so rules may refer to each other and to themselves
(left recursion included: the CFG front end rewrites it). A rule with arguments is one rule
per distinct argument tuple (arguments must be hashable).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tines.ir import Expr, Gen, Select, Seq, Text


class Grammar(Expr):
    """A grammar fragment. `+` concatenates (with strings and other fragments)."""

    __slots__ = ()

    def __add__(self, other: object) -> Grammar:  # type: ignore[override]
        return Cat((self, as_grammar(other)))

    def __radd__(self, other: object) -> Grammar:  # type: ignore[override]
        return Cat((as_grammar(other), self))

    def to_lark(self) -> str:
        """This fragment as a Lark grammar whose `start` is it."""
        return _LarkWriter().write(self)


@dataclass(frozen=True, slots=True)
class Literal(Grammar):
    text: str


@dataclass(frozen=True, slots=True)
class Pattern(Grammar):
    regex: str


@dataclass(frozen=True, slots=True)
class Cat(Grammar):
    parts: tuple[Grammar, ...]


@dataclass(frozen=True, slots=True)
class Alt(Grammar):
    options: tuple[Grammar, ...]


@dataclass(frozen=True, slots=True)
class Repeat(Grammar):
    item: Grammar
    low: int
    high: int | None  # None: unbounded


@dataclass(frozen=True, slots=True)
class RuleRef(Grammar):
    """A call of a `@rule` function: a named nonterminal, its body built on compile."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]


def regex(pattern: str) -> Pattern:
    """Text matching `pattern` (one lexer terminal)."""
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"regex {pattern!r} does not compile ({e})") from None
    return Pattern(pattern)


def optional(item: object) -> Repeat:
    return Repeat(as_grammar(item), 0, 1)


def zero_or_more(item: object) -> Repeat:
    return Repeat(as_grammar(item), 0, None)


def one_or_more(item: object) -> Repeat:
    return Repeat(as_grammar(item), 1, None)


def repeat(item: object, low: int, high: int | None = None) -> Repeat:
    """Between `low` and `high` copies (`high` None: no upper bound)."""
    if low < 0 or (high is not None and high < low):
        raise ValueError(f"repeat: need 0 <= low <= high, got {low}, {high}")
    return Repeat(as_grammar(item), low, high)


def any_of(options: list[object]) -> Alt:
    """One of `options` (what `select` builds when an option is a fragment)."""
    if not options:
        raise ValueError("select: a grammar alternative needs at least one option")
    return Alt(tuple(as_grammar(o) for o in options))


def rule(fn: Callable[..., object]) -> Callable[..., RuleRef]:
    """Make `fn` (returning a fragment) a named grammar rule; calling it refers to the rule."""

    @functools.wraps(fn)
    def ref(*args: Any) -> RuleRef:
        hash(args)  # one rule per argument tuple: they must be hashable
        return RuleRef(fn, args)

    return ref


def as_grammar(value: object) -> Grammar:
    """A fragment from a string, a fragment, an unnamed `select` or `gen(regex=...)`, or a
    `+` of those; anything else is a TypeError naming it."""
    if isinstance(value, Grammar):
        return value
    if isinstance(value, str):
        return Literal(value)
    if isinstance(value, Text):
        return Literal(value.value)
    if isinstance(value, Seq):
        return Cat(tuple(as_grammar(item) for item in value.items))
    if isinstance(value, Select) and value.name is None:
        return Alt(tuple(Literal(c) for c in value.choices))
    if isinstance(value, Gen) and value.name is None and set(value.overrides()) <= {"regex"} \
            and "regex" in value.overrides():
        return Pattern(value.overrides()["regex"])
    raise TypeError(f"cannot use a {type(value).__name__} in a grammar: use strings, regex(), "
                    f"select([...]), gen(regex=...) without a name, @rule calls and +")


def grammar_text(grammar: object) -> str:
    """Lark or GBNF text for `gen(grammar=...)`: text as given, a fragment compiled."""
    if isinstance(grammar, str):
        return grammar
    return as_grammar(grammar).to_lark()


class _LarkWriter:
    """Fragments → Lark: `start` is the top fragment; each distinct rule call one rule."""

    def __init__(self) -> None:
        self.names: dict[tuple[Any, tuple[Any, ...]], str] = {}
        self.pending: list[tuple[str, RuleRef]] = []

    def write(self, top: Grammar) -> str:
        lines = [f"start: {self.expr(top)}"]
        while self.pending:
            name, ref = self.pending.pop()
            lines.append(f"{name}: {self.expr(as_grammar(ref.fn(*ref.args)))}")
        return "\n".join(lines) + "\n"

    def rule_name(self, ref: RuleRef) -> str:
        key = (ref.fn, ref.args)
        if key not in self.names:
            base = re.sub(r"[^a-z0-9_]", "_", ref.fn.__name__.lower()).strip("_") or "rule"
            name = f"{base}_{len(self.names)}" if ref.args or base == "start" else base
            while name in self.names.values():
                name += "_"
            self.names[key] = name
            self.pending.append((name, ref))
        return self.names[key]

    def expr(self, g: Grammar) -> str:
        if isinstance(g, Literal):
            if not g.text:
                raise ValueError("a grammar literal must not be empty")
            return json.dumps(g.text, ensure_ascii=False)
        if isinstance(g, Pattern):
            return "/" + g.regex.replace("/", "\\/") + "/"
        if isinstance(g, Cat):
            if not g.parts:
                raise ValueError("a grammar sequence must not be empty")
            return " ".join(self.expr(p) for p in g.parts)
        if isinstance(g, Alt):
            return "(" + " | ".join(self.expr(o) for o in g.options) + ")"
        if isinstance(g, Repeat):
            inner = f"({self.expr(g.item)})"
            if (g.low, g.high) == (0, 1):
                return inner + "?"
            if g.high is None:
                return inner + ("*" if g.low == 0 else "+" if g.low == 1 else "") if g.low <= 1 \
                    else f"{inner} ~ {g.low} {inner}*"
            return f"{inner} ~ {g.low}..{g.high}" if g.low != g.high else f"{inner} ~ {g.low}"
        if isinstance(g, RuleRef):
            return self.rule_name(g)
        raise TypeError(f"not a grammar fragment: {g!r}")
