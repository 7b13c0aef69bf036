"""Prompt-lookup ("n-gram") speculative decoding: propose, verify, decide.

Agent outputs copy from their context (names and emails from the text being extracted, tool
arguments from earlier turns), so the tokens after the sequence's last n tokens are often
the ones that followed the same n tokens earlier. `propose` (stateless, numpy) and
`NgramIndex` (per sequence, O(new tokens) to update, O(max_ngram) to query) return those
tokens as a draft. The step computes [last token, d1..dk] in one extend chunk of k+1
positions; `verify_greedy` keeps the longest draft prefix the model agrees with plus the
model's own next token, so a step yields 1..k+1 tokens and the output is exactly what
decoding one token at a time gives (see `verify_greedy` for the invariants).

`grammar_prefix` cuts a draft to what a constrained sequence's grammar accepts (before the
forward). `can_speculate` says which requests qualify (greedy, nothing position-dependent
in the sampler), and `DraftLength` picks each step's draft length from the sequence's recent
acceptance and the device's cost of a computed row, down to no draft where drafting cannot
win. Where no n-gram matches nothing is drafted, so the cost there is one dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ... import kernels
from ...grammar.bitmask import num_words
from ..sampling_params import SamplingParams

# Replays of json_extraction outputs: min 1 saved 1.36x decode steps against 1.17x for min 2
# (a name is found again from its first piece); drafts past 4 tokens were rarely accepted.
MAX_NGRAM = 4
MIN_NGRAM = 1
MAX_DRAFT = 8


def _check_sizes(max_ngram: int, min_ngram: int) -> None:
    if not 1 <= min_ngram <= max_ngram:
        raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")


def propose(token_ids: Sequence[int] | np.ndarray, max_ngram: int = MAX_NGRAM,
            min_ngram: int = MIN_NGRAM, num_draft: int = MAX_DRAFT) -> list[int]:
    """Up to `num_draft` tokens that followed the most recent earlier occurrence of the
    sequence's last n tokens, for the largest n in [min_ngram, max_ngram] that has one
    (an occurrence may overlap the suffix itself, as in "a a a a"). [] when none does.

    Reference loop: for n in max..min: for end e in L-2 down to n-1: if
    tokens[e-n+1 : e+1] == tokens[L-n:]: return tokens[e+1 : e+1+num_draft]."""
    _check_sizes(max_ngram, min_ngram)
    arr = np.asarray(token_ids, dtype=np.int64)
    L = len(arr)
    if L < 2 or num_draft <= 0:
        return []
    ends = np.flatnonzero(arr[:-1] == arr[-1])  # earlier ends e matching 1 token
    best = ends[-1] if min_ngram == 1 and ends.size else None
    for k in range(1, min(max_ngram, L - 1)):  # extend every surviving match to n = k + 1
        ends = ends[ends >= k]
        ends = ends[arr[ends - k] == arr[L - 1 - k]]
        if not ends.size:
            break
        if k + 1 >= min_ngram:
            best = ends[-1]
    if best is None:
        return []
    return arr[best + 1:best + 1 + num_draft].tolist()


class NgramIndex:
    """One sequence's tokens and where each of their n-grams (n in [min_ngram, max_ngram])
    ends, so `propose` is a few dict lookups instead of a scan.

    The tokens given at construction (the prompt) go into `_base`, gram -> its latest end,
    built in C loops (~1 us a token); appended tokens go into `_ends`, gram -> every end in
    increasing order, so `truncate` can undo them. Invariant: together they hold every end
    e <= len - 2 (the n-grams ending at the last token are the suffix being looked up, never
    an earlier occurrence), every `_ends` entry is later than every `_base` one, and
    `propose(k)` == module `propose(tokens, max_ngram, min_ngram, k)`."""

    __slots__ = ("max_ngram", "min_ngram", "_tokens", "_base", "_ends")

    def __init__(self, token_ids: Iterable[int] = (), max_ngram: int = MAX_NGRAM,
                 min_ngram: int = MIN_NGRAM):
        _check_sizes(max_ngram, min_ngram)
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self._build([int(t) for t in token_ids])

    def _build(self, tokens: list[int]) -> None:
        self._tokens, self._ends = tokens, {}
        self._base: dict[tuple[int, ...], int] = {}
        L = len(tokens)
        for n in range(self.min_ngram, self.max_ngram + 1):
            grams = zip(*(tokens[i:L - n + i] for i in range(n)))  # ending at n-1 .. L-2
            self._base.update(zip(grams, range(n - 1, L - 1)))  # later ends overwrite

    def __len__(self) -> int:
        return len(self._tokens)

    def extend(self, token_ids: Iterable[int]) -> None:
        """Append tokens: O(max_ngram) dict updates per token."""
        t = self._tokens
        for tok in token_ids:
            t.append(int(tok))
            e = len(t) - 2  # the previous last token now ends earlier occurrences
            for n in range(self.min_ngram, min(self.max_ngram, e + 1) + 1):
                self._ends.setdefault(tuple(t[e - n + 1:e + 1]), []).append(e)

    def truncate(self, length: int) -> None:
        """Drop the tokens from `length` on (jump-forward retraction). O(tokens dropped);
        cutting into the tokens given at construction rebuilds the index."""
        t = self._tokens
        if not 0 <= length <= len(t):
            raise ValueError(f"cannot truncate {len(t)} tokens to {length}")
        for e in range(len(t) - 2, max(length - 1, 0) - 1, -1):
            for n in range(self.min_ngram, min(self.max_ngram, e + 1) + 1):
                gram = tuple(t[e - n + 1:e + 1])
                ends = self._ends.get(gram)
                if not ends or ends[-1] != e:  # e is a construction-time end: start over
                    self._build(t[:length])
                    return
                ends.pop()  # e is the latest end of gram: ends are appended in order
                if not ends:
                    del self._ends[gram]
        del t[length:]

    def propose(self, num_draft: int = MAX_DRAFT) -> list[int]:
        """Like the module's `propose` over this sequence's tokens."""
        t = self._tokens
        if num_draft <= 0:
            return []
        for n in range(min(self.max_ngram, len(t) - 1), self.min_ngram - 1, -1):
            gram = tuple(t[-n:])
            ends = self._ends.get(gram)
            e = ends[-1] if ends else self._base.get(gram)
            if e is not None:
                return t[e + 1:e + 1 + num_draft]
        return []


def grammar_prefix(draft: Sequence[int], matcher: Any) -> list[int]:
    """The longest prefix of `draft` the grammar accepts; `matcher` ends where it started.
    Cutting a draft to it before the forward saves computing rows that cannot be accepted
    (the verification would reject them anyway)."""
    n = 0
    for t in draft:
        if not matcher.accept_token(t):
            break
        n += 1
        if matcher.is_terminated():
            break
    matcher.rollback(n)
    return list(draft[:n])


# --- verification ---------------------------------------------------------------------------
Pick = Callable[[torch.Tensor, torch.Tensor | None], list[int]]


def greedy_pick(logits: torch.Tensor, bitmask: torch.Tensor | None) -> list[int]:
    """The sampler's greedy choice per row: the first maximum after the grammar mask.
    logits (R, V) float32 (not modified), bitmask int32 (R, ceil(V/32)) or None."""
    if bitmask is not None:
        logits = logits.clone()
        kernels.apply_token_bitmask(logits, bitmask)
    return logits.max(dim=-1).indices.tolist()


class Verified(NamedTuple):
    token_ids: list[int]  # the accepted draft prefix, then the model's token (if any)
    num_accepted: int  # how many of them are draft tokens


def verify_greedy(logits: torch.Tensor, draft: Sequence[int], matcher: Any = None, *,
                  pick: Pick = greedy_pick, end_ids: frozenset[int] = frozenset(),
                  max_tokens: int | None = None, close_on_budget: bool = False) -> Verified:
    """Check a draft against the model's logits and return the tokens a greedy decoder emits.

    `logits` (>= len(draft) + 1, V): row r was computed after [.., last token, d1..dr], so it
    predicts the token after dr. Row r's token g_r is `pick` over it, masked by the grammar
    state after d1..dr; the result is d1..dj, g_j for the first j with g_j != d(j+1), or
    d1..dk, g_k when all match: what decoding one token at a time emits, provided each row
    equals the one-token decode's logits. Decoding stops where the engine would finish: after
    an end token (`end_ids`), after a token that terminates the grammar, and after
    `max_tokens` tokens (the sequence's remaining budget, this step's token included); with
    `close_on_budget` row r is masked by `fill_bitmask_within(.., max_tokens - r)`, as the
    engine does. Stop strings and jump-forward are the caller's (it appends the tokens one
    by one and drops the rest once the sequence finishes or jump-forward fires).

    `matcher` (the engine's protocol: `fill_bitmask`, `accept_token`, `rollback`,
    `is_terminated`) ends advanced over exactly the returned tokens, except a last end
    token, which the engine never feeds to the matcher."""
    draft = list(draft)
    if max_tokens is not None:
        draft = draft[:max(max_tokens - 1, 0)]
    for i, t in enumerate(draft):
        if t in end_ids:  # nothing follows an end token
            draft = draft[:i + 1]
            break
    ends_in_end = bool(draft) and draft[-1] in end_ids
    num_rows, bitmask, num_advanced = len(draft) + (not ends_in_end), None, 0
    if matcher is not None:
        bitmask = torch.zeros(num_rows, num_words(logits.shape[-1]), dtype=torch.int32)
        buf = bitmask.numpy()  # shares memory with `bitmask`
        within = getattr(matcher, "fill_bitmask_within", None)
        for r in range(num_rows):
            if within is not None and close_on_budget and max_tokens is not None:
                within(buf, r, max_tokens - r)
            else:
                matcher.fill_bitmask(buf, r)
            if r == len(draft):
                break
            t = draft[r]
            # Rows past a draft token that ends the sequence, or that the grammar refuses
            # (so g_r != d(r+1) for sure), can never be reached.
            if t in end_ids or not matcher.accept_token(t):
                num_rows = r + 1
                break
            num_advanced += 1
            if matcher.is_terminated():
                num_rows = r + 1
                break
        bitmask = bitmask[:num_rows]
    picks = pick(logits[:num_rows], bitmask)
    out, num_accepted = [], 0
    for r in range(num_rows):
        out.append(picks[r])
        if r >= len(draft) or picks[r] != draft[r]:
            break
        num_accepted += 1
    if matcher is not None:
        last = out[-1]
        num_fed = num_accepted - (num_accepted == len(out) and last in end_ids)
        if num_fed > num_advanced:  # a foreign matcher's mask allowed a token it refuses
            raise RuntimeError(f"grammar refused draft token {last} its own mask allowed")
        matcher.rollback(num_advanced - num_fed)
        if num_accepted < len(out) and last not in end_ids and not matcher.accept_token(last):
            raise RuntimeError(f"grammar rejected picked token {last}: mask and matcher disagree")
    return Verified(out, num_accepted)


# --- policy ---------------------------------------------------------------------------------
def can_speculate(params: SamplingParams, num_output: int = 0, matcher: Any = None) -> bool:
    """Whether a sequence may decode with drafts now, emitting exactly what it would without.

    Greedy only (temperature 0, or top_k 1 where the sampler picks that row by argmax):
    a sampled token depends on a random draw per position, and accepting drafts under
    sampling needs rejection sampling, which keeps the distribution but not the tokens.
    Not with repetition/frequency/presence penalties (they depend on the tokens before each
    position, so one step's rows would need a different penalty each), nor while
    min_new_tokens still bans end tokens (position-dependent too), nor with logprobs
    (the verification rows would have to report raw logprobs row by row: possible, left out
    for a simpler first path), nor with a matcher that cannot roll back (token healing's).
    logit_bias is fine: it is the same at every position."""
    greedy = params.temperature == 0 or params.top_k == 1
    penalties = params.repetition_penalty != 1.0 or params.frequency_penalty != 0.0 \
        or params.presence_penalty != 0.0
    logprobs = params.logprobs or params.top_logprobs > 0
    rollback = matcher is None or callable(getattr(matcher, "rollback", None))
    return greedy and not penalties and not logprobs and rollback \
        and num_output >= params.min_new_tokens


@dataclass(slots=True)
class DraftLength:
    """One sequence's draft length: the k that maximizes expected tokens per unit of work.

    Model (Leviathan et al. 2023): each draft token is accepted with probability `alpha`
    given the previous one was, so a k-token draft yields 1 + alpha + .. + alpha^k tokens
    for a step that costs 1 + step_cost + row_cost * k decode steps (`row_cost`: one more
    computed row relative to a plain decode step, a constant the engine sets (drafting.py):
    a few percent on a memory-bound GPU batch, more in a large batch, ~15% with tines'
    int4 kernel on an AVX2-only CPU (drafting.py);
    `step_cost`: what a drafting step costs beyond that, e.g. running the eager extend path
    instead of a compiled decode or a CUDA graph). `alpha` is
    accepted / (accepted + rejections) over recent drafts, each count decayed by `decay` per
    draft (decay 0.9 and probe_every 4 came within 0.04x of the best fixed draft length at
    every row cost tried, in replays of json_extraction outputs; 0.5 chased single misses
    and stopped drafting where short drafts still won). k = 0 (no draft) when no k beats a plain decode (without step_cost: when
    alpha <= row_cost); then every `probe_every` steps a 1-token draft re-measures alpha."""

    row_cost: float = 0.1
    step_cost: float = 0.0
    max_len: int = MAX_DRAFT
    decay: float = 0.9
    probe_every: int = 4
    accepted: float = 1.0  # decayed counts; the prior is alpha = 1/2
    rejected: float = 1.0
    idle_steps: int = 0

    @property
    def alpha(self) -> float:
        return self.accepted / (self.accepted + self.rejected)

    def next(self) -> int:
        """Tokens to draft this step (0: a plain decode). Call once per step."""
        alpha, gain, best_k, best = self.alpha, 1.0, 0, 1.0
        term = 1.0
        for k in range(1, self.max_len + 1):
            term *= alpha
            gain += term  # expected tokens from a k-token draft
            value = gain / (1.0 + self.step_cost + self.row_cost * k)
            if value > best:
                best_k, best = k, value
        if best_k == 0:
            self.idle_steps += 1
            if self.idle_steps >= self.probe_every:
                self.idle_steps = 0
                return 1
        return best_k

    def update(self, num_drafted: int, num_accepted: int) -> None:
        """Record a verified draft: `num_accepted` of its `num_drafted` tokens were kept (a
        step without a draft, num_drafted == 0, changes nothing)."""
        if num_drafted <= 0:
            return
        self.accepted = self.decay * self.accepted + num_accepted
        self.rejected = self.decay * self.rejected + (num_accepted < num_drafted)
