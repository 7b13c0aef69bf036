"""The grammar IR both front ends (Lark, GBNF) parse into.

A `Grammar` is a dict of named definitions plus a start name. Definitions are trees of
frozen nodes. A name is either a *rule* (may recurse; each terminal occurrence inside a
rule may be preceded by the `%ignore`d text) or a *terminal* (Lark's UPPERCASE names: a
regular language, inlined where used, never recursive). GBNF has only rules and no ignore.

Invariants (checked by `analysis.py`, errors name the rule):
- every `Ref` names a definition; a terminal's definition refers to terminals only, and not
  to itself through any chain;
- repeat bounds satisfy 0 <= lo <= hi (hi None = unbounded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..charset import Ranges
from ..errors import GrammarError


class CfgError(GrammarError):
    """A grammar that cannot be compiled. `rule` names the definition at fault (None when
    the problem is not inside one, e.g. a missing start rule)."""

    def __init__(self, message: str, rule: str | None = None):
        self.rule = rule
        super().__init__(f"rule {rule!r}: {message}" if rule else message)


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal string; `ci` = case-insensitive (Lark's `"abc"i`)."""
    text: str
    ci: bool = False


@dataclass(frozen=True, slots=True)
class Chars:
    """One character out of a set of code points (GBNF `[a-z]`, `.`, Lark `"a".."z"`)."""
    ranges: Ranges


@dataclass(frozen=True, slots=True)
class Regex:
    """A Python-syntax regular expression, matched in full (`/.../flags` in Lark)."""
    pattern: str
    flags: str = ""


@dataclass(frozen=True, slots=True)
class Ref:
    name: str


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple


@dataclass(frozen=True, slots=True)
class Alt:
    items: tuple


@dataclass(frozen=True, slots=True)
class Repeat:
    item: object
    lo: int
    hi: int | None  # None = unbounded


Node = Lit | Chars | Regex | Ref | Seq | Alt | Repeat


@dataclass(slots=True)
class Grammar:
    """Definitions by name; `terminals` are the names defined as terminals (Lark)."""
    rules: dict[str, Node] = field(default_factory=dict)
    terminals: set[str] = field(default_factory=set)
    start: str = "start"
    ignore: list[str] = field(default_factory=list)  # terminal names skipped between tokens
    syntax: str = "lark"  # "lark" | "gbnf", for messages

    def define(self, name: str, body: Node, *, terminal: bool = False) -> None:
        if name in self.rules:
            raise CfgError("is defined twice", name)
        self.rules[name] = body
        if terminal:
            self.terminals.add(name)


def seq(items: list) -> Node:
    items = [x for x in items if not (isinstance(x, Seq) and not x.items)]
    return items[0] if len(items) == 1 else Seq(tuple(items))


def alt(items: list) -> Node:
    return items[0] if len(items) == 1 else Alt(tuple(items))


def children(node: Node) -> tuple:
    if isinstance(node, (Seq, Alt)):
        return node.items
    if isinstance(node, Repeat):
        return (node.item,)
    return ()


def refs(node: Node) -> set[str]:
    """Names referenced anywhere in a node."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Ref):
            out.add(n.name)
        stack.extend(children(n))
    return out
