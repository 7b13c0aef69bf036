"""Checks and rewrites on the grammar IR before it is built: names, left recursion,
nullable and productive rules.

The parser (derivatives of a right-nested continuation stack, see `pool.py`) expands a
rule where it stands first, so a rule that can reach itself without consuming a byte
(left recursion) would expand forever. Direct left recursion, `a: a x | y`, is rewritten to
the same language `a: y (x)*`; any other cycle through leftmost positions is a `CfgError`
naming the rules on it.
"""

from __future__ import annotations

from collections.abc import Callable

from . import ir
from .ir import CfgError, Grammar


def check_names(g: Grammar) -> None:
    """Every reference is defined; terminals use terminals only; the start rule exists."""
    if g.start not in g.rules:
        raise CfgError(f"the grammar has no start rule {g.start!r}"
                       + (" (GBNF grammars start at `root ::=`)" if g.syntax == "gbnf" else ""))
    for name, body in g.rules.items():
        for r in sorted(ir.refs(body)):
            if r not in g.rules:
                raise CfgError(f"refers to undefined {'terminal' if r.isupper() else 'rule'} "
                               f"{r!r}", name)
            if name in g.terminals and r not in g.terminals:
                raise CfgError(f"terminal refers to rule {r!r} (terminals are regular: they "
                               f"may use terminals only)", name)
    for name in g.ignore:
        if name not in g.rules:
            raise CfgError(f"%ignore names undefined terminal {name!r}")


def remove_direct_left_recursion(g: Grammar) -> None:
    """Rewrite `a: a x1 | a x2 | y1 | y2` as `a: (y1 | y2) (x1 | x2)*` (same language)."""
    for name, body in list(g.rules.items()):
        if name in g.terminals:
            continue
        branches = body.items if isinstance(body, ir.Alt) else (body,)
        loops, bases = [], []
        for b in branches:
            if b == ir.Ref(name):
                continue  # `a: a` adds nothing
            if isinstance(b, ir.Seq) and b.items and b.items[0] == ir.Ref(name):
                loops.append(ir.seq(list(b.items[1:])))
            else:
                bases.append(b)
        if len(bases) == len(branches):
            continue
        if not bases:
            raise CfgError("is left-recursive with no alternative to start from", name)
        g.rules[name] = ir.seq([ir.alt(bases), ir.Repeat(ir.alt(loops), 0, None)]) \
            if loops else ir.alt(bases)


def fixpoint(g: Grammar, leaf: Callable[[ir.Node], bool], known: dict[str, bool],
             nullable_mode: bool) -> dict[str, bool]:
    """Least fixpoint of a per-rule property: nullable (`nullable_mode`) or productive.
    `leaf` answers for literals, classes and regexes; `known` seeds terminals."""
    val = dict(known)
    for name in g.rules:
        val.setdefault(name, False)

    def ev(n: ir.Node) -> bool:
        if isinstance(n, ir.Ref):
            return val[n.name]
        if isinstance(n, ir.Seq):
            return all(ev(x) for x in n.items)
        if isinstance(n, ir.Alt):
            return any(ev(x) for x in n.items)
        if isinstance(n, ir.Repeat):
            return n.lo == 0 or ev(n.item)
        return leaf(n)

    changed = True
    while changed:
        changed = False
        for name, body in g.rules.items():
            if name not in known and not val[name] and ev(body):
                val[name] = changed = True
    return val


def leftmost_refs(n: ir.Node, nullable: dict[str, bool], leaf_nullable: Callable) -> set[str]:
    """Names that can be expanded at `n`'s first position."""
    if isinstance(n, ir.Ref):
        return {n.name}
    if isinstance(n, ir.Alt):
        return set().union(*(leftmost_refs(x, nullable, leaf_nullable) for x in n.items))
    if isinstance(n, ir.Repeat):
        return leftmost_refs(n.item, nullable, leaf_nullable)
    if isinstance(n, ir.Seq):
        out: set[str] = set()
        for x in n.items:
            out |= leftmost_refs(x, nullable, leaf_nullable)
            if not _nullable(x, nullable, leaf_nullable):
                break
        return out
    return set()


def _nullable(n: ir.Node, nullable: dict[str, bool], leaf_nullable: Callable) -> bool:
    if isinstance(n, ir.Ref):
        return nullable[n.name]
    if isinstance(n, ir.Seq):
        return all(_nullable(x, nullable, leaf_nullable) for x in n.items)
    if isinstance(n, ir.Alt):
        return any(_nullable(x, nullable, leaf_nullable) for x in n.items)
    if isinstance(n, ir.Repeat):
        return n.lo == 0 or _nullable(n.item, nullable, leaf_nullable)
    return leaf_nullable(n)


def check_left_recursion(g: Grammar, nullable: dict[str, bool], leaf_nullable: Callable) -> None:
    """Raise `CfgError` on a cycle of rules through leftmost positions."""
    graph = {name: sorted(r for r in leftmost_refs(body, nullable, leaf_nullable)
                          if r not in g.terminals)
             for name, body in g.rules.items() if name not in g.terminals}
    state: dict[str, int] = {}  # 1 on the DFS path, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        path.append(name)
        for nxt in graph[name]:
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise CfgError("is left-recursive through " + " -> ".join(cycle) +
                               " (only direct left recursion `a: a x | y` is rewritten)", nxt)
            if nxt not in state:
                visit(nxt, path)
        path.pop()
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
