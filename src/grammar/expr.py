"""Regular expressions over bytes, hash-consed in a pool, with Brzozowski derivatives.

This is the core of tines' grammar engine. Every constraint (regex, JSON schema, choices)
becomes one expression in an `ExprPool`; the lazy DFA (`automaton.py`) uses expressions as
its states and derivatives as its transitions, so nothing is determinized up front and
compile time is the time to build the expression (milliseconds).

Invariants:
- Nodes are ints; equal (kind, children) means equal id (hash-consing), so structurally
  equal states are one DFA state. `NEVER` (0) matches nothing, `EMPTY` (1) the empty string.
- `BYTES` sets are intersected with the pool's `allowed` bytes (the bytes the vocabulary can
  spell as single tokens), so every byte a state can take is producible by some token.
- Without `AND`/`NOT`, a node other than `NEVER` always denotes a non-empty language (the
  constructors drop `NEVER` branches), so "live" is syntactic. Nodes under `AND`/`NOT`
  (`boolean[e]`) may be empty without being `NEVER`; `automaton.py` checks those by search.
  `FSM` nodes (explicit automata such as "digits divisible by 7") count as boolean too.
- `CAT` is right-nested (`CAT(head, tail)`, head never a `CAT`), `ALT`/`AND` children are
  flattened, de-duplicated and sorted, and `REP` of a nullable body starts at 0: these
  normal forms keep the number of distinct derivatives finite and small.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable
from typing import Protocol

NEVER, EMPTY, BYTES, CAT, ALT, REP, AND, NOT, FSM = range(9)
FULL = (1 << 256) - 1


def byte_mask(lo: int, hi: int) -> int:
    """The 256-bit set of bytes lo..hi (inclusive)."""
    return ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)


class ByteFSM(Protocol):
    """An explicit automaton over bytes with hashable states, stepped lazily."""

    start: Hashable

    def step(self, state: Hashable, byte: int) -> Hashable | None: ...  # None: dead

    def accepting(self, state: Hashable) -> bool: ...


class ExprPool:
    """Hash-consed byte-level regular expressions with derivatives. Not thread-safe: the
    owner (a compiled grammar) serializes mutation."""

    def __init__(self, allowed_bytes: int = FULL):
        self.allowed = allowed_bytes & FULL
        self.kind: list[int] = []
        self.x: list = []  # BYTES: mask; CAT: head; ALT/AND: children; REP/NOT: body
        self.y: list = []  # CAT: tail; REP: (min, max | None)
        self.nullable: list[bool] = []
        self.boolean: list[bool] = []
        self._intern: dict[tuple, int] = {}
        self._deriv: dict[int, int] = {}
        self._bounds: dict[int, int] = {}
        self._first: dict[int, int] = {}
        self.memo: dict = {}  # builder caches (e.g. UTF-8 tries of character classes)
        self.fsms: list = []  # ByteFSM objects referenced by FSM nodes
        self.never = self._node(NEVER, None, None, False, False)
        self.empty = self._node(EMPTY, None, None, True, False)
        self.universe = self._node(NOT, self.never, None, True, True)  # every byte string
        self.anything = self.rep(self.bytes(FULL), 0, None)  # every spellable byte string

    def __len__(self) -> int:
        return len(self.kind)

    def copy(self) -> ExprPool:
        """A pool with the same nodes (same ids) and caches, growing on its own from here:
        a grammar starts from a pool where the pieces every JSON grammar uses are built.
        Builder memos are copied one level deep (their values are ids or dicts of ids)."""
        new = copy.copy(self)
        for name in ("kind", "x", "y", "nullable", "boolean", "fsms"):
            setattr(new, name, list(getattr(self, name)))
        for name in ("_intern", "_deriv", "_bounds", "_first"):
            setattr(new, name, dict(getattr(self, name)))
        new.memo = {k: dict(v) if isinstance(v, dict) else v for k, v in self.memo.items()}
        return new

    def _node(self, kind: int, x, y, nullable: bool, boolean: bool) -> int:
        key = (kind, x, y)
        e = self._intern.get(key)
        if e is None:
            e = len(self.kind)
            self.kind.append(kind)
            self.x.append(x)
            self.y.append(y)
            self.nullable.append(nullable)
            self.boolean.append(boolean)
            self._intern[key] = e
        return e

    # ---- constructors -------------------------------------------------------------------

    def bytes(self, mask: int) -> int:
        mask &= self.allowed
        return self._node(BYTES, mask, None, False, False) if mask else self.never

    def literal(self, data: bytes) -> int:
        return self.cat_all([self.bytes(1 << c) for c in data])

    def cat(self, a: int, b: int) -> int:
        if a == self.never or b == self.never:
            return self.never
        if self.kind[a] != CAT:  # one head (a derivative's usual case): no chain to re-nest
            if a == self.empty:
                return b
            if b == self.empty:
                return a
            e = self._intern.get((CAT, a, b))
            if e is not None:
                return e
            return self._node(CAT, a, b, self.nullable[a] and self.nullable[b],
                              self.boolean[a] or self.boolean[b])
        heads = []
        while self.kind[a] == CAT:
            heads.append(self.x[a])
            a = self.y[a]
        heads.append(a)
        for h in reversed(heads):
            if h == self.never:
                return self.never
            if h != self.empty:
                if b == self.empty:
                    b = h
                else:
                    b = self._node(CAT, h, b, self.nullable[h] and self.nullable[b],
                                   self.boolean[h] or self.boolean[b])
        return b

    def cat_all(self, items: Iterable[int]) -> int:
        out = self.empty
        for e in reversed(list(items)):
            out = self.cat(e, out)
        return out

    def alt(self, items: Iterable[int]) -> int:
        if type(items) is list and len(items) == 1 and self.kind[items[0]] != BYTES:
            return items[0]  # the usual derivative of a chain: nothing to merge
        kids: set[int] = set()
        mask = 0
        stack = list(items)
        while stack:
            e = stack.pop()
            k = self.kind[e]
            if k == ALT:
                stack.extend(self.x[e])
            elif k == BYTES:
                mask |= self.x[e]
            elif k != NEVER:
                kids.add(e)
        if mask:
            kids.add(self.bytes(mask))
        if not kids:
            return self.never
        if len(kids) == 1:
            return kids.pop()
        t = tuple(sorted(kids))
        return self._node(ALT, t, None, any(self.nullable[c] for c in t),
                          any(self.boolean[c] for c in t))

    def opt(self, e: int) -> int:
        return self.alt((e, self.empty))

    def rep(self, e: int, lo: int, hi: int | None) -> int:
        """`e{lo,hi}`; `hi=None` is unbounded."""
        if hi is not None and hi < lo:
            return self.never
        if hi == 0 or e == self.empty:
            return self.empty
        if e == self.never:
            return self.empty if lo == 0 else self.never
        if self.nullable[e]:
            lo = 0
        if lo == 1 and hi == 1:
            return e
        return self._node(REP, e, (lo, hi), lo == 0, self.boolean[e])

    def and_(self, items: Iterable[int]) -> int:
        kids: set[int] = set()
        stack = list(items)
        while stack:
            e = stack.pop()
            if self.kind[e] == AND:
                stack.extend(self.x[e])
            elif e == self.never:
                return self.never
            elif e != self.universe:
                kids.add(e)
        if not kids:
            return self.universe
        if self.empty in kids:
            return self.empty if all(self.nullable[c] for c in kids) else self.never
        if len(kids) == 1:
            return kids.pop()
        t = tuple(sorted(kids))
        return self._node(AND, t, None, all(self.nullable[c] for c in t), True)

    def not_(self, e: int) -> int:
        """Complement. NOT of an expression containing every spellable string is NEVER:
        what is left has unspellable bytes, and NOT is only used under an AND with
        spellable expressions (this keeps finished "no trigger here" branches out of the
        token walk)."""
        if self.kind[e] == NOT:
            return self.x[e]
        if e == self.anything or (self.kind[e] == ALT and self.anything in self.x[e]):
            return self.never
        return self._node(NOT, e, None, not self.nullable[e], True)

    def fsm(self, machine, state=None) -> int:
        """A node for an explicit byte automaton (see `ByteFSM`), at `state` (default: its
        start). Lazy: states are only visited as derivatives reach them."""
        try:
            idx = self.fsms.index(machine)
        except ValueError:
            idx = len(self.fsms)
            self.fsms.append(machine)
        if state is None:
            state = machine.start
        return self._node(FSM, idx, state, machine.accepting(state), True)

    def diff(self, a: int, b: int) -> int:
        """Strings in `a` and not in `b`."""
        return self.and_((a, self.not_(b)))

    def literal_set(self, words: Iterable[bytes]) -> int:
        """An alternation of byte strings, factored as a trie (so derivatives stay cheap)."""
        trie: dict = {}
        for w in words:
            node = trie
            for c in w:
                node = node.setdefault(c, {})
            node[None] = True
        return self._trie(trie)

    def _trie(self, node: dict) -> int:
        branches = [self.cat(self.bytes(1 << c), self._trie(sub))
                    for c, sub in node.items() if c is not None]
        if None in node:
            branches.append(self.empty)
        return self.alt(branches)

    # ---- derivatives --------------------------------------------------------------------

    def _leading(self, e: int) -> list[tuple[int, int | None]]:
        """The elements of a CAT chain that its strings may start in, each with the chain
        after it: up to and including the first element that is not nullable, else through
        the chain's last element (whose rest is None)."""
        out, cur = [], e
        while self.kind[cur] == CAT:
            h = self.x[cur]
            out.append((h, self.y[cur]))
            if not self.nullable[h]:
                return out
            cur = self.y[cur]
        out.append((cur, None))
        return out

    def deriv(self, e: int, b: int) -> int:
        """The expression for `{s : bytes([b]) + s in e}`."""
        key = e << 8 | b
        r = self._deriv.get(key)
        if r is not None:
            return r
        k = self.kind[e]
        if k == BYTES:
            r = self.empty if self.x[e] >> b & 1 else self.never
        elif k == CAT:
            h = self.x[e]
            if not self.nullable[h]:  # the strings start in the head only
                r = self.cat(self.deriv(h, b), self.y[e])
            else:
                r = self.alt([self.deriv(h, b) if rest is None
                              else self.cat(self.deriv(h, b), rest)
                              for h, rest in self._leading(e)])
        elif k == ALT:  # only branches that can start with b (a wide ALT has many)
            first, known = self.first_bytes, self._first
            r = self.alt([self.deriv(c, b) for c in self.x[e]
                          if (known.get(c) if c in known else first(c)) >> b & 1])
        elif k == REP:
            lo, hi = self.y[e]
            body = self.x[e]
            r = self.cat(self.deriv(body, b),
                         self.rep(body, max(lo - 1, 0), None if hi is None else hi - 1))
        elif k == AND:
            r = self.and_([self.deriv(c, b) for c in self.x[e]])
        elif k == NOT:
            r = self.not_(self.deriv(self.x[e], b))
        elif k == FSM:
            nxt = self.fsms[self.x[e]].step(self.y[e], b)
            r = self.never if nxt is None else self.fsm(self.fsms[self.x[e]], nxt)
        else:
            r = self.never
        self._deriv[key] = r
        return r

    def first_bytes(self, e: int) -> int:
        """A superset of the bytes whose derivative of `e` is not NEVER (a 256-bit set):
        exact for plain nodes, all bytes under NOT/FSM and unknown kinds."""
        r = self._first.get(e)
        if r is not None:
            return r
        k = self.kind[e]
        if k == BYTES:
            r = self.x[e]
        elif k in (NEVER, EMPTY):
            r = 0
        elif k == CAT:
            r = 0
            for h, _ in self._leading(e):
                r |= self.first_bytes(h)
        elif k == ALT:
            r = 0
            for c in self.x[e]:
                r |= self.first_bytes(c)
        elif k == AND:
            r = FULL
            for c in self.x[e]:
                r &= self.first_bytes(c)
        elif k == REP:
            r = self.first_bytes(self.x[e])
        else:  # NOT (its derivative is never NEVER), FSM, kinds of subclasses
            r = FULL
        self._first[e] = r
        return r

    def bounds(self, e: int) -> int:
        """Bit set of byte-class starts: bytes in one class have the same derivative.
        Bit 0 is always set."""
        r = self._bounds.get(e)
        if r is not None:
            return r
        k = self.kind[e]
        if k == BYTES:
            m = self.x[e]
            r = ((m ^ (m << 1)) & FULL) | 1
        elif k == CAT:
            r = 1
            for h, _ in self._leading(e):
                r |= self.bounds(h)
        elif k in (ALT, AND):
            r = 1
            for c in self.x[e]:
                r |= self.bounds(c)
        elif k in (REP, NOT):
            r = self.bounds(self.x[e])
        elif k == FSM:
            m, st = self.fsms[self.x[e]], self.y[e]
            r, prev = 1, m.step(st, 0)
            for b in range(1, 256):
                cur = m.step(st, b)
                if cur != prev:
                    r |= 1 << b
                prev = cur
        else:
            r = 1
        self._bounds[e] = r
        return r

    def derivative_classes(self, e: int) -> list[tuple[int, int, int]]:
        """`[(first_byte, last_byte, derivative)]` covering 0..255."""
        starts = self.bounds(e)
        cuts = []
        while starts:
            low = starts & -starts
            cuts.append(low.bit_length() - 1)
            starts ^= low
        cuts.append(256)
        first = self.first_bytes(e)  # bytes outside it lead to NEVER: no derivative to take
        return [(cuts[i], cuts[i + 1] - 1,
                 self.deriv(e, cuts[i]) if first >> cuts[i] & 1 else self.never)
                for i in range(len(cuts) - 1)]

    def matches(self, e: int, data: bytes) -> bool:
        """Whether the byte string is in the language (no liveness search needed)."""
        for b in data:
            e = self.deriv(e, b)
            if e == self.never:
                return False
        return self.nullable[e]
