"""Jump-forward: append the text the grammar forces without sampling it.

When every continuation of a sequence starts with the same characters (`"name":"` after
`{` in compact JSON), decoding them one token per forward pass is wasted work. This module
computes which tokens to append instead, tokenized the way the model's tokenizer would
tokenize the text:

1. `forced` = the bytes the grammar forces from the current state, cut to whole UTF-8
   characters.
2. Re-tokenize across the boundary: the last `max_retract` tokens (if they start on a
   character boundary) are decoded from the vocabulary's bytes, joined with `forced` and
   encoded again. Tokens shared with the old tail stay; the rest of the old tail is
   retracted and replaced. So `{` + `"name":"` becomes `{"`, `name`, `":"` rather than
   `{`, `"`, `name`... — the split the model saw in training.
3. The end is left open where the text could merge with what follows: while the last
   appended token is a proper prefix of another token the grammar allows in its place,
   it is dropped (the model samples that part next step, and may pick the longer token).
4. The result is verified on a copy of the matcher; the caller applies it.

`JumpForward.num_saved` counts the forward passes saved: appended minus retracted tokens
(each would otherwise have cost one decode step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from .matcher import GrammarMatcher, utf8_complete_len


class JumpForward(NamedTuple):
    num_retract: int  # tokens to remove from the end of the sequence (and the matcher)
    append_ids: list[int]  # tokens to append without sampling
    text: str  # what the appended tokens spell (may re-spell retracted text)

    @property
    def num_saved(self) -> int:
        return len(self.append_ids) - self.num_retract


def jump_forward(matcher: GrammarMatcher, token_ids: Sequence[int],
                 encode: Callable[[str], list[int]],
                 decode: Callable[[list[int]], str] | None = None, *,
                 max_retract: int = 2, max_bytes: int = 256) -> JumpForward | None:
    """The jump-forward for `matcher`, whose accepted tokens end with `token_ids`.

    `encode(text)` must tokenize without special tokens. `decode` is accepted for symmetry
    but not needed: token bytes come from the grammar's vocabulary (exact even when a token
    holds half a character). Returns None when nothing is forced or nothing would be
    saved. Does not modify `matcher`; apply with `apply_jump_forward`.
    """
    if matcher.is_ended():
        return None
    forced = matcher.forced_bytes(max_bytes)
    forced = forced[:utf8_complete_len(forced)]
    if not forced:
        return None
    vocab = matcher.grammar.vocab
    r = min(max_retract, matcher.num_tokens, len(token_ids))
    while r > 0:
        tail = [vocab.token_bytes[t] for t in token_ids[len(token_ids) - r:]]
        if all(b is not None for b in tail) and not (tail[0][0] & 0xC0 == 0x80):
            try:
                (b"".join(tail) + forced).decode("utf-8")
                break
            except UnicodeDecodeError:
                pass
        r -= 1
    for window in ((r, 0) if r else (0,)):
        jf = _plan(matcher, list(token_ids[len(token_ids) - window:]) if window else [],
                   forced, encode)
        if jf is not None:
            return jf
    return None


def _plan(matcher: GrammarMatcher, window: list[int], forced: bytes,
          encode: Callable[[str], list[int]]) -> JumpForward | None:
    vocab = matcher.grammar.vocab
    prev = b"".join(vocab.token_bytes[t] for t in window)
    new_ids = list(encode((prev + forced).decode("utf-8")))
    c = 0
    while c < min(len(window), len(new_ids)) and window[c] == new_ids[c]:
        c += 1
    retract, append = len(window) - c, new_ids[c:]
    sim = matcher.copy()
    sim.rollback(retract)
    if not sim.accept_tokens(append):
        return None
    while append and _extendable(sim, append[-1]):
        sim.rollback(1)
        append.pop()
    if len(append) <= retract:
        return None
    text = b"".join(vocab.token_bytes[t] for t in append)
    return JumpForward(retract, append, text.decode("utf-8", errors="replace"))


def _extendable(sim: GrammarMatcher, last: int) -> bool:
    """Whether a longer token than `last`, starting with its bytes, is allowed where
    `last` stands (`sim` has just accepted `last`)."""
    vocab = sim.grammar.vocab
    data = vocab.token_bytes[last]
    sim.rollback(1)
    try:
        longer = [t for t in vocab.ids_with_prefix(data) if t != last]
        if not longer:
            return False
        mask = sim.grammar.index.mask(sim.state)
        return any(mask[t >> 5] >> (t & 31) & 1 for t in longer)
    finally:
        sim.accept_token(last)


def apply_jump_forward(matcher: GrammarMatcher, jf: JumpForward) -> None:
    """Roll back the retracted tokens and accept the appended ones."""
    matcher.rollback(jf.num_retract)
    if not matcher.accept_tokens(jf.append_ids):
        raise ValueError("jump-forward tokens were not accepted; was the matcher advanced "
                         "since the plan was made?")
