"""GBNF (llama.cpp's grammar format; SGLang's `ebnf` is the same) → `Grammar` IR.

    root   ::= item ("," ws item)*        # comments run to the end of the line
    item   ::= [a-z]+ | "\"" [^"\n]* "\"" | "(" root? ")"
    ws     ::= [ \t\n]{0,4}

Rules are `name ::= alternatives` (names `[A-Za-z0-9_-]+`); a rule runs until the next
line that starts a rule. Literals take `\\n \\t \\r \\\\ \\" \\xHH \\uHHHH \\UHHHHHHHH`
escapes; `[...]`/`[^...]` are character classes, `.` any character; `( )` groups; postfix
`? * + {m} {m,} {m,n}`. Every name is a rule; there is no `%ignore`.
"""

from __future__ import annotations

import re

from .. import charset as cs
from . import ir
from .ir import CfgError, Grammar

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+)
  | (?P<comment>\#[^\n]*)
  | (?P<nl>\n)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<cls>\[\^?(?:[^\]\\]|\\.)*\])
  | (?P<define>::=)
  | (?P<name>[A-Za-z0-9_-]+)
  | (?P<brace>\{\s*\d+\s*(?:,\s*\d*\s*)?\})
  | (?P<op>[|()?*+.])
""", re.VERBOSE)

_ESC = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-",
        "^": "^", "/": "/", "0": "\0"}


def _chars(body: str, rule: str | None) -> list[int]:
    """Code points of a literal or class body, escapes decoded."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(ord(c))
            i += 1
            continue
        e = body[i + 1] if i + 1 < len(body) else ""
        if e in _ESC:
            out.append(ord(_ESC[e]))
            i += 2
        elif e in ("x", "u", "U"):
            n = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2:i + 2 + n]
            try:
                out.append(int(digits, 16))
            except ValueError:
                raise CfgError(f"bad escape \\{e}{digits}", rule) from None
            i += 2 + n
        else:
            raise CfgError(f"unknown escape \\{e}", rule)
    return out


def _class(tok: str, rule: str | None) -> ir.Chars:
    negated = tok.startswith("[^")
    body = tok[2:-1] if negated else tok[1:-1]
    # decode into (code point, was-escaped) so an escaped '-' is a literal dash
    cps: list[tuple[int, bool]] = []
    i = 0
    while i < len(body):
        if body[i] == "\\":
            j = i + 2 + {"x": 2, "u": 4, "U": 8}.get(body[i + 1:i + 2], 0)
            cps.append((_chars(body[i:j], rule)[0], True))
            i = j
        else:
            cps.append((ord(body[i]), False))
            i += 1
    pairs, k = [], 0
    while k < len(cps):
        lo = cps[k][0]
        if k + 2 < len(cps) and cps[k + 1] == (ord("-"), False):
            hi = cps[k + 2][0]
            if hi < lo:
                raise CfgError(f"empty character range in {tok}", rule)
            pairs.append((lo, hi))
            k += 3
        else:
            pairs.append((lo, lo))
            k += 1
    ranges = cs.normalize(pairs)
    return ir.Chars(cs.negate(ranges) if negated else ranges)


class _Parser:
    def __init__(self, text: str, g: Grammar):
        self.toks: list[tuple[str, str, int]] = []
        pos, line = 0, 1
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise CfgError(f"line {line}: unexpected {text[pos:pos + 20]!r}")
            if m.lastgroup not in ("ws", "comment"):
                self.toks.append((m.lastgroup, m.group(), line))
            line += m.group().count("\n")
            pos = m.end()
        self.toks.append(("eof", "", line))
        self.i = 0
        self.g = g
        self.rule: str | None = None

    def _starts_rule(self, j: int) -> bool:
        return self.toks[j][0] == "name" and self.toks[j + 1][0] == "define"

    def peek(self) -> tuple[str, str, int]:
        """The next token, newlines skipped unless one ends the current rule."""
        j = self.i
        while self.toks[j][0] == "nl":
            j += 1
        if j > self.i and (self._starts_rule(j) or self.toks[j][0] == "eof"):
            return ("end", "", self.toks[j][2])
        self.i = j
        return self.toks[j]

    def parse(self) -> None:
        while True:
            while self.toks[self.i][0] == "nl":
                self.i += 1
            kind, v, line = self.toks[self.i]
            if kind == "eof":
                return
            if not self._starts_rule(self.i):
                raise CfgError(f"line {line}: expected `name ::=`, found {v!r}", self.rule)
            self.rule = v
            self.i += 2
            body = self.alternates()
            kind, v, line = self.peek()
            if kind not in ("end", "eof"):
                raise CfgError(f"line {line}: unexpected {v!r}", self.rule)
            self.g.define(self.rule, body)

    def alternates(self) -> ir.Node:
        branches = [self.sequence()]
        while self.peek()[1] == "|":
            self.i += 1
            branches.append(self.sequence())
        return ir.alt(branches)

    def sequence(self) -> ir.Node:
        items = []
        while True:
            kind, v, line = self.peek()
            if kind in ("string", "cls", "name") or v in ("(", "."):
                items.append(self.postfix(self.atom()))
            else:
                return ir.seq(items) if items else ir.Seq(())

    def atom(self) -> ir.Node:
        kind, v, line = self.peek()
        self.i += 1
        if kind == "string":
            return ir.Lit("".join(map(chr, _chars(v[1:-1], self.rule))))
        if kind == "cls":
            return _class(v, self.rule)
        if kind == "name":
            return ir.Ref(v)
        if v == ".":
            return ir.Chars(cs.ALL)
        body = self.alternates()  # "("
        kind, v, line = self.peek()
        if v != ")":
            raise CfgError(f"line {line}: expected ')', found {v or 'end of rule'!r}", self.rule)
        self.i += 1
        return body

    def postfix(self, atom: ir.Node) -> ir.Node:
        while True:
            kind, v, line = self.toks[self.i]  # postfix operators never follow a newline
            if v in ("?", "*", "+"):
                atom = ir.Repeat(atom, 1 if v == "+" else 0, 1 if v == "?" else None)
            elif kind == "brace":
                lo_s, _, hi_s = v[1:-1].replace(" ", "").partition(",")
                lo = int(lo_s)
                hi = lo if "," not in v else (int(hi_s) if hi_s else None)
                if hi is not None and hi < lo:
                    raise CfgError(f"line {line}: repeat bounds {v} are empty", self.rule)
                atom = ir.Repeat(atom, lo, hi)
            else:
                return atom
            self.i += 1


def parse_gbnf(text: str, start: str = "root") -> Grammar:
    """Parse GBNF text. Raises `CfgError` naming the line and rule at fault."""
    g = Grammar(start=start, syntax="gbnf")
    _Parser(text, g).parse()
    return g
