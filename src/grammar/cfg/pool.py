"""Context-free grammars as expressions: `ExprPool` plus a `REF` node (a rule reference).

Parsing is by derivatives. The derivative of `REF(r)` is the derivative of r's body, so
the derivative of `CAT(REF(r), tail)` is `CAT(d(body_r), tail)`: the right-nested `CAT`
chain *is* the parser's stack of continuations, and an `ALT` of chains is the set of
stacks an ambiguous prefix leaves (a graph-structured stack, shared by hash-consing).
Structurally equal stacks are one node, hence one state of the lazy automaton
(`automaton.py`), so token masks (`token_index.py`) are computed once per distinct stack.

Invariants (established by `build.py`):
- no rule reaches itself through leftmost positions (`analysis.check_left_recursion`), so
  expanding `REF`s while deriving terminates;
- every rule behind a `REF` is productive, and `nullable` of a `REF` is its rule's, so a
  non-`NEVER` node still denotes a non-empty language and liveness stays syntactic.
"""

from __future__ import annotations

from ..expr import ALT, BYTES, CAT, EMPTY, FULL, REP, ExprPool

REF = 9
HOLE = 10  # stands for a cut-off stack bottom: takes any byte, forever (see `index.py`)
_PRINTABLE = (1 << 0x7F) - (1 << 0x20)  # prefer ' '..'~' when a closing picks a byte


class CfgPool(ExprPool):
    """An `ExprPool` whose expressions may reference rules by index."""

    def __init__(self, allowed_bytes: int):
        super().__init__(allowed_bytes)
        self.rule_names: list[str] = []
        self.rule_body: list[int] = []
        self._ref_nodes: list[int] = []
        self._short: dict[int, bytes | None] = {}
        self._rule_short: list[bytes | None] = []
        self.hole = self._node(HOLE, None, None, True, False)

    def new_rule(self, name: str, nullable: bool) -> int:
        """A `REF` node for a rule whose body is set later with `set_body`."""
        idx = len(self.rule_names)
        self.rule_names.append(name)
        self.rule_body.append(self.never)
        self._ref_nodes.append(self._node(REF, idx, None, nullable, False))
        return self._ref_nodes[-1]

    def set_body(self, ref: int, body: int) -> None:
        self.rule_body[self.x[ref]] = body

    def deriv(self, e: int, b: int) -> int:
        k = self.kind[e]
        if k == HOLE:
            return self.hole if self.allowed >> b & 1 else self.never
        if k != REF:
            return super().deriv(e, b)
        key = e << 8 | b
        r = self._deriv.get(key)
        if r is None:
            r = self._deriv[key] = self.deriv(self.rule_body[self.x[e]], b)
        return r

    def bounds(self, e: int) -> int:
        k = self.kind[e]
        if k == HOLE:
            return ((self.allowed ^ (self.allowed << 1)) & FULL) | 1
        if k != REF:
            return super().bounds(e)
        r = self._bounds.get(e)
        if r is None:
            r = self._bounds[e] = self.bounds(self.rule_body[self.x[e]])
        return r

    def truncate(self, e: int, depth: int) -> int:
        """`e` with every stack (top-level `CAT` chain) cut after its first `depth`
        non-nullable entries (nullable ones in between are kept) and ended by `hole`;
        `e` itself when no stack is that deep."""
        k = self.kind[e]
        if k == ALT:
            return self.alt([self.truncate(c, depth) for c in self.x[e]])
        if k != CAT:
            return e
        heads = []
        cur, solid = e, 0
        while self.kind[cur] == CAT and solid < depth:
            heads.append(self.x[cur])
            solid += not self.nullable[self.x[cur]]
            cur = self.y[cur]
        if solid < depth:
            return e
        out = self.hole
        for h in reversed(heads):
            out = self.cat(h, out)
        return out

    def entered_hole(self, e: int) -> bool:
        """Whether a walk from a truncated state got past the cut (`hole` persists once
        entered, as a top-level alternative)."""
        return e == self.hole or (self.kind[e] == ALT and self.hole in self.x[e])

    def rule_min_lens(self) -> dict[int, int]:
        """`REF` node -> length of its rule's shortest string (after `solve_shortest`)."""
        return {self._ref_nodes[i]: len(s) for i, s in enumerate(self._rule_short) if s is not None}

    # ---- shortest completions -----------------------------------------------------------

    def solve_shortest(self) -> None:
        """Shortest string of every rule (Bellman-Ford style: iterate until stable)."""
        self._rule_short = [None] * len(self.rule_names)
        changed = True
        while changed:
            changed = False
            self._short.clear()
            for i, body in enumerate(self.rule_body):
                s = self.shortest(body)
                old = self._rule_short[i]
                if s is not None and (old is None or len(s) < len(old)):
                    self._rule_short[i] = s
                    changed = True
        self._short.clear()

    def shortest(self, e: int) -> bytes | None:
        """A shortest byte string in `e`'s language (None: none found). Deterministic: a
        byte class contributes its lowest printable byte."""
        if e in self._short:
            return self._short[e]
        k = self.kind[e]
        if k == EMPTY:
            r = b""
        elif k == BYTES:
            m = self.x[e]
            pick = m & _PRINTABLE or m
            r = bytes([(pick & -pick).bit_length() - 1])
        elif k == CAT:  # iterative: a deep stack is a long chain
            chain, cur = [], e
            while self.kind[cur] == CAT and cur not in self._short:
                chain.append(cur)
                cur = self.y[cur]
            acc = self.shortest(cur)
            for c in reversed(chain):
                h = self.shortest(self.x[c])
                acc = None if acc is None or h is None else h + acc
                self._short[c] = acc
            r = acc
        elif k == ALT:
            opts = [s for s in map(self.shortest, self.x[e]) if s is not None]
            r = min(opts, key=lambda s: (len(s), s)) if opts else None
        elif k == REP:
            s = self.shortest(self.x[e])
            r = None if s is None else s * self.y[e][0]
        elif k == REF:
            r = self._rule_short[self.x[e]] if self._rule_short else None
        else:  # NEVER, and AND/NOT/FSM, which grammar terminals never produce
            r = None
        self._short[e] = r
        return r
