"""Per-sequence grammar state: which tokens may come next, and advancing by one token.

A matcher is a list of DFA state ids (one per accepted token, so `rollback` is a pop) over a
shared `CompiledGrammar`; creating or copying one is cheap. After EOS is accepted the
matcher is ended: it allows only EOS again (so a row of an ended sequence is never empty)
and `accept_token` returns False for anything else.

Engine loop, per constrained sequence and step:
    matcher.fill_bitmask(bitmask, row)      # before sampling
    ok = matcher.accept_token(sampled_id)   # after sampling (False = a bug upstream)
    if matcher.is_terminated(): finish the sequence

Budget-aware closing (so an output cut at max_tokens still parses): call instead
    matcher.fill_bitmask_within(bitmask, row, remaining)
where `remaining` = tokens the sequence may still emit, this step's included (None: no
limit). Far from the end it is `fill_bitmask` (no search: a structural byte bound is
checked); within `CLOSING_WINDOW` tokens of the shortest completion it is
`fill_budget_bitmask`, which allows exactly the tokens after which the closing path still fits
(1 + min_tokens_to_accept() of the next state <= remaining), so the last token leaves the
matcher accepting. Exact as long as no single freely sampled token raises
`min_tokens_to_accept()` by more than the window (opening an object with many required
members can raise it by ~10 on tool schemas; the window is 32); calling
`fill_budget_bitmask` at every step needs no window at all, at the cost of one successor
walk per new state. Jump-forward text counts against the budget: cut `append_ids` to what
fits (the closing path goes through the forced text anyway). To force the rest instead of
sampling it, `closing_token_ids()` is that path as tokens (greedy longest match over the
vocabulary, each one allowed by the mask).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .automaton import DEAD

if TYPE_CHECKING:
    from .compiler import CompiledGrammar

_EOS = -1
UNCLOSABLE = 1 << 30  # min_tokens_to_accept() of a state with no known closing path
CLOSING_WINDOW = 32  # fill_bitmask_within switches to budget masks this close to the end


class GrammarMatcher:
    __slots__ = ("grammar", "_history")

    def __init__(self, grammar: CompiledGrammar):
        self.grammar = grammar
        self._history: list[int] = [grammar.automaton.start]

    @property
    def state(self) -> int:
        h = self._history
        return h[-1] if h[-1] != _EOS else h[-2]

    @property
    def num_tokens(self) -> int:
        """Tokens accepted so far (EOS included)."""
        return len(self._history) - 1

    def is_ended(self) -> bool:
        return self._history[-1] == _EOS

    def is_accepting(self) -> bool:
        """The output so far is a complete match (EOS would be accepted)."""
        return self.is_ended() or bool(self.grammar.automaton.accepting[self.state])

    def is_terminated(self) -> bool:
        """Nothing but the end can follow: EOS was accepted, or the state is accepting and
        no token can continue it. The engine finishes the sequence here."""
        if self.is_ended():
            return True
        aut = self.grammar.automaton
        s = self.state
        return bool(aut.accepting[s]) and not aut.can_continue(s)

    def fill_bitmask(self, bitmask: np.ndarray, row: int = 0) -> None:
        """Write this sequence's allowed tokens into `bitmask[row]` (int32 [B, W])."""
        if self.is_ended():
            bitmask[row] = self.grammar.eos_only_mask
        else:
            bitmask[row] = self.grammar.index.mask(self.state)

    def min_tokens_to_accept(self) -> int:
        """Tokens on the closing path: the greedy longest-match tokenization of a shortest
        byte string from here to an accepting state (0 when accepting or ended). An upper
        bound on the true minimum, and exactly what following the closing path costs. A
        state whose closing search gave up (only possible with AND/NOT/FSM expressions)
        reports a huge number."""
        if self.is_ended():
            return 0
        n = self.grammar.closing.min_tokens(self.state)
        return UNCLOSABLE if n is None else n

    def closing_bytes(self) -> bytes:
        """A shortest byte string that makes the output so far a complete match."""
        if self.is_ended():
            return b""
        return self.grammar.closing.closing_bytes(self.state) or b""

    def closing_token_ids(self) -> list[int]:
        """The closing path as tokens (`min_tokens_to_accept()` of them); accepting them
        leaves the matcher accepting. Empty when accepting, ended or unclosable."""
        if self.is_ended():
            return []
        return self.grammar.closing.closing_token_ids(self.state) or []

    def fill_budget_bitmask(self, bitmask: np.ndarray, row: int, budget: int) -> None:
        """Like `fill_bitmask`, but only tokens after which the closing path still fits in
        `budget - 1` more tokens (EOS too when accepting). Never empty: when the budget is
        already short, the next closing token alone."""
        if self.is_ended():
            bitmask[row] = self.grammar.eos_only_mask
        else:
            bitmask[row] = self.grammar.closing.budget_mask(self.state, int(budget))

    def fill_bitmask_within(self, bitmask: np.ndarray, row: int, remaining: int | None,
                            window: int = CLOSING_WINDOW) -> None:
        """`fill_bitmask`, or `fill_budget_bitmask` once `remaining` tokens are within
        `window` of the shortest completion (see the module docstring)."""
        if remaining is not None and not self.is_ended():
            bound = self.grammar.closing.tokens_upper_bound(self.state)
            if bound is None or remaining <= bound + window:
                n = self.grammar.closing.min_tokens(self.state)
                if n is not None and remaining <= n + window:
                    self.fill_budget_bitmask(bitmask, row, remaining)
                    return
        self.fill_bitmask(bitmask, row)

    def allowed_token_ids(self) -> np.ndarray:
        """Sorted allowed token ids (plain-Python view of the mask, for tests and tools)."""
        if self.is_ended():
            return np.array(sorted(self.grammar.vocab.eos_token_ids))
        return self.grammar.index.allowed_token_ids(self.state)

    def accept_token(self, token_id: int) -> bool:
        """Advance by one token. Returns False (state unchanged) if it is not allowed."""
        if self.is_ended():
            return False
        token_id = int(token_id)
        s = self.state
        if token_id in self.grammar.vocab.eos_token_ids:
            if not self.grammar.automaton.accepting[s]:
                return False
            self._history.append(_EOS)
            return True
        t = self.grammar.index.next_state(s, token_id)
        if t == DEAD:
            return False
        self._history.append(t)
        return True

    advance = accept_token

    def accept_tokens(self, token_ids) -> bool:
        """Accept all or none: on the first refused token, roll back and return False."""
        return accept_all_or_none(self, token_ids)

    def rollback(self, num_tokens: int) -> None:
        """Undo the last `num_tokens` accepted tokens."""
        if not 0 <= num_tokens <= self.num_tokens:
            raise ValueError(f"cannot roll back {num_tokens} tokens; {self.num_tokens} accepted")
        if num_tokens:
            del self._history[-num_tokens:]

    def reset(self) -> None:
        del self._history[1:]

    def copy(self) -> GrammarMatcher:
        m = GrammarMatcher.__new__(GrammarMatcher)
        m.grammar = self.grammar
        m._history = list(self._history)
        return m

    def started_after(self, data: bytes) -> GrammarMatcher:
        """A new matcher whose start is this one's state after `data` (which the grammar must
        allow): text already written outside the token stream, e.g. a healed prompt's tail.
        Its history begins there, so `rollback` and jump-forward never reach into `data`."""
        if self.is_ended():
            raise ValueError("the matcher has ended: nothing can follow")
        state = self.grammar.automaton.walk(self.state, data)
        if state == DEAD or not self.grammar.automaton.is_live(state):
            raise ValueError(f"the grammar does not allow {data!r} here")
        m = GrammarMatcher.__new__(GrammarMatcher)
        m.grammar = self.grammar
        m._history = [state]
        return m

    def forced_bytes(self, limit: int = 256) -> bytes:
        """Bytes every valid continuation starts with (empty when there is a choice, or
        when the output may end here)."""
        if self.is_ended():
            return b""
        return self.grammar.automaton.forced_bytes(self.state, limit)[0]

    def forced_text(self, limit: int = 256) -> str:
        """`forced_bytes`, cut to whole UTF-8 characters."""
        data = self.forced_bytes(limit)
        return data[:utf8_complete_len(data)].decode("utf-8")


def utf8_complete_len(data: bytes) -> int:
    """Length of the longest prefix of `data` that ends on a UTF-8 character boundary."""
    n = len(data)
    i = n - 1
    while i >= 0 and i > n - 4 and data[i] & 0xC0 == 0x80:
        i -= 1
    if i < 0:
        return 0
    lead = data[i]
    need = 1 if lead < 0x80 else 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else 4
    return n if n - i >= need else i


def accept_all_or_none(matcher: Any, token_ids) -> bool:
    """`matcher.accept_token` over `token_ids`; on the first refused token, the ones already
    taken are rolled back and the answer is False (every matcher's `accept_tokens`)."""
    n = 0
    for t in token_ids:
        if not matcher.accept_token(t):
            matcher.rollback(n)
            return False
        n += 1
    return True
