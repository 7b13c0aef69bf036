"""Lark's `common` terminals (`%import common.NUMBER`), defined in Lark syntax.

The languages match Lark's own `common.lark`, except ESCAPED_STRING, which Lark writes with
a lookbehind: here it is the same strings spelled without one (a quote ends the string
unless escaped; no newline inside).
"""

from __future__ import annotations

import functools

from . import ir
from .ir import CfgError, Grammar

COMMON_LARK = r"""
DIGIT: "0".."9"
HEXDIGIT: "a".."f" | "A".."F" | DIGIT
INT: DIGIT+
SIGNED_INT: ["+" | "-"] INT
DECIMAL: INT "." INT? | "." INT
_EXP: ("e" | "E") SIGNED_INT
FLOAT: INT _EXP | DECIMAL _EXP?
SIGNED_FLOAT: ["+" | "-"] FLOAT
NUMBER: FLOAT | INT
SIGNED_NUMBER: ["+" | "-"] NUMBER
ESCAPED_STRING: "\"" /([^"\\\n]|\\[^\n])*/ "\""
LCASE_LETTER: "a".."z"
UCASE_LETTER: "A".."Z"
LETTER: UCASE_LETTER | LCASE_LETTER
WORD: LETTER+
CNAME: ("_" | LETTER) ("_" | LETTER | DIGIT)*
WS_INLINE: (" " | /\t/)+
WS: /[ \t\f\r\n]/+
CR: /\r/
LF: /\n/
NEWLINE: (CR? LF)+
SH_COMMENT: /#[^\n]*/
CPP_COMMENT: /\/\/[^\n]*/
C_COMMENT: "/*" /(.|\n)*?/ "*/"
SQL_COMMENT: /--[^\n]*/
"""

_PREFIX = "common__"


@functools.cache
def _common() -> Grammar:
    from .lark_syntax import parse_lark

    return parse_lark(COMMON_LARK)


def _rename(node: ir.Node) -> ir.Node:
    if isinstance(node, ir.Ref):
        return ir.Ref(_PREFIX + node.name)
    if isinstance(node, ir.Seq):
        return ir.Seq(tuple(_rename(x) for x in node.items))
    if isinstance(node, ir.Alt):
        return ir.Alt(tuple(_rename(x) for x in node.items))
    if isinstance(node, ir.Repeat):
        return ir.Repeat(_rename(node.item), node.lo, node.hi)
    return node


def common_definition(g: Grammar, name: str, alias: str) -> None:
    """Define `alias` in `g` as common's terminal `name`; its dependencies come along under
    `common__NAME` so they cannot clash with the user's names."""
    common = _common()
    if name not in common.rules:
        raise CfgError(f"%import common.{name}: common has no terminal {name!r} (it has "
                       f"{', '.join(sorted(n for n in common.rules if not n.startswith('_')))})")
    g.define(alias, _rename(common.rules[name]), terminal=True)
    todo = list(ir.refs(common.rules[name]))
    while todo:
        dep = todo.pop()
        if _PREFIX + dep not in g.rules:
            g.define(_PREFIX + dep, _rename(common.rules[dep]), terminal=True)
            todo.extend(ir.refs(common.rules[dep]))
