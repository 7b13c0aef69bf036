"""Lark grammar text → `Grammar` IR.

The subset OpenAI's custom tools and llguidance accept: rules (lowercase, optional `?`/`!`
prefix and `.priority`), terminals (UPPERCASE, regular), alternation (continuation lines
start with `|`), grouping, `[optional]`, `? * +`, `~ n` / `~ m..n`, `{m}` / `{m,n}`,
string literals (`"..."i`), `"a".."z"` ranges, `/regex/flags`, `-> alias` (ignored),
`%import common.NAME [-> ALIAS]` / `%import common (A, B)`, `%ignore`. Anything else
(templates, `%declare`, `%override`, `%extend`, llguidance's `%json`...) is a `CfgError`
naming the rule or directive, never silently dropped.
"""

from __future__ import annotations

import re

from . import ir
from .ir import CfgError, Grammar

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\f\r]+|\\\n)
  | (?P<comment>//[^\n]*)
  | (?P<nl>\n)
  | (?P<string>"(?:[^"\\\n]|\\.)*"i?)
  | (?P<regex>/(?!/)(?:\\.|[^/\\\n])+/[imslux]*)
  | (?P<dots>\.\.)
  | (?P<arrow>->)
  | (?P<name>[?!]?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>\d+)
  | (?P<directive>%[A-Za-z_]+)
  | (?P<op>[|()\[\]?*+~{},:.])
""", re.VERBOSE)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0", "\\": "\\",
            '"': '"', "'": "'", "/": "/"}


def unescape(body: str, where: str | None) -> str:
    """Python-style escapes inside a literal."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\" or i + 1 == len(body):
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2:i + 2 + n]
            if len(digits) != n or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise CfgError(f"bad escape \\{e}{digits} in a literal", where)
            out.append(chr(int(digits, 16)))
            i += 2 + n
        else:
            out.append("\\" + e)
            i += 2
    return "".join(out)


def tokenize(text: str) -> list[tuple[str, str, int]]:
    out, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise CfgError(f"line {line}: unexpected {text[pos:pos + 20]!r}")
        kind, text_ = m.lastgroup, m.group()
        if kind == "name" and text_[0] in "?!" and out and out[-1][0] != "nl":
            out.append(("op", text_[0], line))  # `x?y` inside a rule: postfix `?`, then y
            text_ = text_[1:]
        if kind not in ("ws", "comment"):
            out.append((kind, text_, line))
        line += m.group().count("\n")
        pos = m.end()
    out.append(("eof", "", line))
    return out


def is_terminal_name(name: str) -> bool:
    core = name.lstrip("_")
    return bool(core) and core[0].isupper()


class _Parser:
    def __init__(self, text: str, grammar: Grammar):
        self.toks = tokenize(text)
        self.i = 0
        self.g = grammar
        self.rule: str | None = None  # definition being parsed, for messages
        self.num_anon = 0

    def peek(self, k: int = 0) -> tuple[str, str, int]:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> tuple[str, str, int]:
        t = self.peek()
        self.i += 1
        return t

    def expect(self, value: str) -> None:
        kind, v, line = self.next()
        if v != value:
            raise CfgError(f"line {line}: expected {value!r}, found {v or 'end of text'!r}",
                           self.rule)

    def parse(self) -> None:
        while True:
            kind, v, line = self.peek()
            if kind == "eof":
                return
            if kind == "nl":
                self.i += 1
            elif kind == "directive":
                self.directive()
            elif kind == "name":
                self.definition()
            else:
                raise CfgError(f"line {line}: expected a rule, terminal or directive, found "
                               f"{v!r}")

    def definition(self) -> None:
        _, name, line = self.next()
        name = name.lstrip("?!")
        self.rule = name
        if self.peek()[1] == "{":
            raise CfgError("rule templates are not supported", name)
        if self.peek()[1] == ".":
            self.i += 1
            if self.peek()[0] != "number" and self.peek()[1] != "-":
                raise CfgError(f"line {line}: expected a priority after '.'", name)
            while self.peek()[0] in ("number",) or self.peek()[1] == "-":
                self.i += 1
        self.expect(":")
        body = self.expansions()
        if self.peek()[0] not in ("nl", "eof"):
            raise CfgError(f"line {self.peek()[2]}: unexpected {self.peek()[1]!r}", name)
        self.g.define(name, body, terminal=is_terminal_name(name))
        self.rule = None

    def expansions(self) -> ir.Node:
        branches = [self.alias()]
        while True:
            j = self.i
            while self.toks[j][0] == "nl":
                j += 1
            if self.toks[j][1] != "|":
                return ir.alt(branches)
            self.i = j + 1
            branches.append(self.alias())

    def alias(self) -> ir.Node:
        items = []
        while self.peek()[0] in ("string", "regex", "name") or self.peek()[1] in ("(", "["):
            if self.peek()[0] == "name" and self.peek(1)[1] in (":", "."):
                break  # the next definition on the same line is a syntax error below
            items.append(self.repeat())
        if self.peek()[0] == "arrow":
            self.i += 1
            if self.next()[0] != "name":
                raise CfgError("expected an alias name after '->'", self.rule)
        return ir.seq(items) if items else ir.Seq(())

    def repeat(self) -> ir.Node:
        atom = self.atom()
        while True:
            v = self.peek()[1]
            if v in ("?", "*", "+"):
                self.i += 1
                atom = ir.Repeat(atom, 1 if v == "+" else 0, 1 if v == "?" else None)
            elif v == "~":
                self.i += 1
                lo = self.number()
                hi = lo
                if self.peek()[0] == "dots":
                    self.i += 1
                    hi = self.number()
                atom = self._bounded(atom, lo, hi)
            elif v == "{":
                self.i += 1
                if self.peek()[0] != "number":
                    raise CfgError("rule templates (`name{args}`) are not supported", self.rule)
                lo = self.number()
                hi: int | None = lo
                if self.peek()[1] == ",":
                    self.i += 1
                    hi = None if self.peek()[1] == "}" else self.number()
                self.expect("}")
                atom = self._bounded(atom, lo, hi)
            else:
                return atom

    def _bounded(self, atom: ir.Node, lo: int, hi: int | None) -> ir.Node:
        if hi is not None and hi < lo:
            raise CfgError(f"repeat bounds {lo}..{hi} are empty", self.rule)
        return ir.Repeat(atom, lo, hi)

    def number(self) -> int:
        kind, v, line = self.next()
        if kind != "number":
            raise CfgError(f"line {line}: expected a number, found {v!r}", self.rule)
        return int(v)

    def atom(self) -> ir.Node:
        kind, v, line = self.next()
        if v == "(":
            body = self.expansions()
            self.expect(")")
            return body
        if v == "[":
            body = self.expansions()
            self.expect("]")
            return ir.Repeat(body, 0, 1)
        if kind == "name":
            return ir.Ref(v.lstrip("?!"))
        if kind == "regex":
            end = v.rindex("/")
            return ir.Regex(v[1:end].replace("\\/", "/"), v[end + 1:])
        if kind == "string":
            lit = self.literal(v)
            if self.peek()[0] == "dots":
                self.i += 1
                kind2, v2, _ = self.next()
                hi = self.literal(v2) if kind2 == "string" else None
                if hi is None or len(lit.text) != 1 or len(hi.text) != 1:
                    raise CfgError(f"line {line}: a range needs one-character literals",
                                   self.rule)
                return ir.Chars(((ord(lit.text), ord(hi.text)),))
            return lit
        raise CfgError(f"line {line}: unexpected {v or 'end of text'!r}", self.rule)

    def literal(self, tok: str) -> ir.Lit:
        ci = tok.endswith("i")
        body = tok[1:-2] if ci else tok[1:-1]
        return ir.Lit(unescape(body, self.rule), ci)

    def directive(self) -> None:
        _, d, line = self.next()
        if d == "%import":
            self.import_()
        elif d == "%ignore":
            self.rule = "%ignore"
            body = self.expansions()
            if isinstance(body, ir.Ref) and is_terminal_name(body.name):
                self.g.ignore.append(body.name)
            else:
                self.num_anon += 1
                name = f"__IGNORE_{self.num_anon}"
                self.g.define(name, body, terminal=True)
                self.g.ignore.append(name)
            self.rule = None
        else:
            raise CfgError(f"line {line}: unsupported directive {d}")
        if self.peek()[0] not in ("nl", "eof"):
            raise CfgError(f"line {line}: unexpected {self.peek()[1]!r} after {d}")

    def import_(self) -> None:
        from .common_terminals import common_definition

        _, module, line = self.next()
        name = ""
        if self.peek()[1] == ".":
            self.i += 1
            name = self.next()[1]
        path = f"{module}.{name}" if name else module
        if module != "common":
            raise CfgError(f"line {line}: %import {path}: only the 'common' module is available")
        names: list[tuple[str, str]] = []
        if name:
            alias = name
            if self.peek()[0] == "arrow":
                self.i += 1
                alias = self.next()[1]
            names.append((name, alias))
        else:
            self.expect("(")
            while self.peek()[1] != ")":
                n = self.next()[1]
                if n != ",":
                    names.append((n, n))
            self.expect(")")
        for name, alias in names:
            common_definition(self.g, name, alias)


def parse_lark(text: str, start: str = "start") -> Grammar:
    """Parse Lark grammar text. Raises `CfgError` with the line and the rule at fault."""
    g = Grammar(start=start, syntax="lark")
    _Parser(text, g).parse()
    return g
