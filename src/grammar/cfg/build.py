"""`Grammar` IR → one expression in a `CfgPool` (terminals inlined, rules as `REF`s).

Order: check names, rewrite direct left recursion, build every terminal (regular, by the
existing regex machinery), solve nullable/productive rules, refuse other left recursion,
then build rule bodies. `%ignore`d text may stand before every terminal occurrence inside a
rule and at the very end, so exactly one ignore slot separates two adjacent terminals
(the scannerless reading of Lark's `%ignore`, as its Earley parser reads it).

With `json_string=True` the expression spells each string of the grammar as the contents of
a JSON string (`json.dumps(ensure_ascii=False)` without the quotes: `"`, `\\` and control
characters escaped), as a tool call's `{"input": "..."}` carries it: every literal, character
class and regex terminal is encoded character by character (`json_strings.py`), and since
each character has one encoding the parse is the same.
"""

from __future__ import annotations

import re

from ..errors import EmptyLanguageError, GrammarError
from ..json_strings import encode_string, json_chars
from ..regex import char_expr, regex_expr
from . import analysis, ir
from .ir import CfgError, Grammar
from .pool import CfgPool

_REGEX_FLAGS = set("imsx")


class _Builder:
    def __init__(self, g: Grammar, pool: CfgPool, json_string: bool):
        self.g = g
        self.pool = pool
        self.json_string = json_string
        self.terms: dict[str, int] = {}
        self.refs: dict[str, int] = {}
        self.ignore = pool.empty
        self.rule: str | None = None

    def leaf(self, n: ir.Node) -> int:
        p = self.pool
        chars = (lambda r: json_chars(p, r)) if self.json_string else None
        try:
            if isinstance(n, ir.Lit):
                if n.ci:
                    return regex_expr(p, "(?i:" + re.escape(n.text) + ")", chars=chars)
                if self.json_string:
                    return p.literal(encode_string(n.text)[1:-1])
                return p.literal(n.text.encode("utf-8"))
            if isinstance(n, ir.Chars):
                return chars(n.ranges) if chars else char_expr(p, n.ranges)
            bad = set(n.flags) - _REGEX_FLAGS - {"u"}
            if bad:
                raise CfgError(f"regex flag(s) {''.join(sorted(bad))!r} are not supported",
                               self.rule)
            flags = "".join(sorted(set(n.flags) & _REGEX_FLAGS))
            return regex_expr(p, f"(?{flags}:{n.pattern})" if flags else n.pattern, chars=chars)
        except CfgError:
            raise
        except GrammarError as e:
            raise CfgError(str(e), self.rule) from None

    def terminal(self, name: str, path: tuple[str, ...] = ()) -> int:
        e = self.terms.get(name)
        if e is None:
            if name in path:
                raise CfgError("terminal is recursive through " + " -> ".join(path + (name,)) +
                               " (use a rule for recursion)", name)
            saved, self.rule = self.rule, name
            e = self.terms[name] = self.expr(self.g.rules[name], path + (name,), in_rule=False)
            self.rule = saved
        return e

    def expr(self, n: ir.Node, path: tuple[str, ...], in_rule: bool) -> int:
        p = self.pool
        if isinstance(n, ir.Ref):
            if n.name in self.g.terminals:
                t = self.terminal(n.name, path)
                return p.cat(self.ignore, t) if in_rule else t
            return self.refs[n.name]
        if isinstance(n, ir.Seq):
            return p.cat_all([self.expr(x, path, in_rule) for x in n.items])
        if isinstance(n, ir.Alt):
            return p.alt([self.expr(x, path, in_rule) for x in n.items])
        if isinstance(n, ir.Repeat):
            return p.rep(self.expr(n.item, path, in_rule), n.lo, n.hi)
        e = self.leaf(n)
        return p.cat(self.ignore, e) if in_rule else e


def build(g: Grammar, pool: CfgPool, json_string: bool = False) -> int:
    """The expression for the whole grammar (start rule, then optional ignored text),
    spelled as JSON string contents with `json_string`. Raises `CfgError` (a
    `GrammarError`) naming the rule at fault."""
    analysis.check_names(g)
    analysis.remove_direct_left_recursion(g)
    b = _Builder(g, pool, json_string)
    for name in sorted(g.terminals):
        b.terminal(name)
    if g.ignore:
        b.ignore = pool.rep(pool.alt([b.terms[t] for t in g.ignore]), 0, None)
    leaf_cache: dict[ir.Node, int] = {}

    def leaf(n: ir.Node) -> int:
        if n not in leaf_cache:
            leaf_cache[n] = b.leaf(n)
        return leaf_cache[n]

    for name, body in g.rules.items():  # build every leaf first, so errors name its rule
        if name not in g.terminals:
            b.rule = name
            stack = [body]
            while stack:
                n = stack.pop()
                if isinstance(n, (ir.Lit, ir.Chars, ir.Regex)):
                    leaf(n)
                stack.extend(ir.children(n))
    b.rule = None

    terms_null = {t: bool(pool.nullable[e]) for t, e in b.terms.items()}
    terms_prod = {t: e != pool.never for t, e in b.terms.items()}
    nullable = analysis.fixpoint(g, lambda n: bool(pool.nullable[leaf(n)]), terms_null, True)
    productive = analysis.fixpoint(g, lambda n: leaf(n) != pool.never, terms_prod, False)
    analysis.check_left_recursion(g, nullable, lambda n: bool(pool.nullable[leaf(n)]))
    rules = [n for n in g.rules if n not in g.terminals]
    for name in rules:
        b.refs[name] = pool.new_rule(name, nullable[name]) if productive[name] else pool.never
    for name in rules:
        if productive[name]:
            b.rule = name
            pool.set_body(b.refs[name], b.expr(g.rules[name], (), in_rule=True))
    b.rule = None
    start = ir.Ref(g.start)
    root = pool.cat(b.expr(start, (), in_rule=True), b.ignore)
    if root == pool.never:
        raise EmptyLanguageError(f"start rule {g.start!r} derives no string this vocabulary "
                                 f"can spell (every alternative recurses or uses an "
                                 f"unspellable terminal)")
    pool.solve_shortest()
    return root
