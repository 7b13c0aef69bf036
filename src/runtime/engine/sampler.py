"""Sampler: picks the next token of every sampling row at once.

Order of operations on a row's logits: raw logprobs are taken first (what `logprobs` reports);
then penalties (repetition over prompt + output, frequency / presence over the output), the
additive `logit_bias`, the min-new-tokens ban on end tokens, the grammar's token mask; then greedy rows take the argmax
and the others are sampled from softmax(logits / temperature) after top-k, top-p and min-p.

Sampling draws one uniform number per row and inverts the row's cumulative distribution. For a
request with a seed, that number is a hash of (seed, completion index, token index), so the
same seed gives the same tokens whatever else shares the batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ... import kernels
from ..outputs import TokenLogprob
from ..sampling_params import SamplingParams
from ..tokenizer.tokenizer import Tokenizer

_MASK64 = (1 << 64) - 1


@dataclass(slots=True)
class SampleRow:
    """What the sampler needs to know about one row."""

    params: SamplingParams
    token_ids: list[int]  # prompt + output so far (not copied)
    prompt_len: int
    seed: int | None  # None: draw from the engine's generator
    index: int  # completion index, part of the seeded hash
    end_ids: frozenset[int]  # tokens banned while fewer than min_new_tokens were produced

    @property
    def num_output(self) -> int:
        return len(self.token_ids) - self.prompt_len

    @property
    def output_ids(self) -> list[int]:
        return self.token_ids[self.prompt_len:]


class Sampler:
    def __init__(self, tokenizer: Tokenizer, seed: int = 0):
        self.tokenizer = tokenizer
        self._rng = random.Random(seed)

    @torch.inference_mode()
    def sample(self, logits: torch.Tensor, rows: list[SampleRow],
               bitmask: torch.Tensor | None = None,
               bitmask_rows: torch.Tensor | None = None) -> tuple[list[int], list[TokenLogprob | None]]:
        """logits (B, V) float32, modified in place. Returns B token ids and, per row, a
        TokenLogprob when the row asked for logprobs."""
        want_lp = [i for i, r in enumerate(rows) if r.params.logprobs or r.params.top_logprobs]
        raw_lp = torch.log_softmax(logits[want_lp], dim=-1) if want_lp else None
        self._apply_penalties(logits, rows)
        self._apply_logit_bias(logits, rows)
        self._ban_end_tokens(logits, rows)
        if bitmask is not None:
            kernels.apply_token_bitmask(logits, bitmask, bitmask_rows)
        tokens = self._pick(logits, rows)
        logprobs: list[TokenLogprob | None] = [None] * len(rows)
        for j, i in enumerate(want_lp):
            logprobs[i] = self.token_logprob(raw_lp[j], tokens[i], rows[i].params.top_logprobs)
        return tokens, logprobs

    def sample_each(self, logits: torch.Tensor, logit_rows: list[int], rows: list[SampleRow],
                    masks: list[torch.Tensor | None]
                    ) -> list[tuple[int, TokenLogprob | None] | Exception]:
        """(token, logprob) per row from one batched `sample` over `logits[logit_rows]`, each
        row masked by its bitmask row (None: free). When the batch raises, every row is
        sampled alone from the untouched `logits`, so only the rows that raise get their
        exception in place of a token (one bad request never fails the others)."""
        try:
            tokens, logprobs = self.sample(logits[logit_rows], rows, *_stack_masks(masks))
            return list(zip(tokens, logprobs))
        except Exception:
            pass
        picked: list[tuple[int, TokenLogprob | None] | Exception] = []
        for row, logit_row, mask in zip(rows, logit_rows, masks):
            try:
                tokens, logprobs = self.sample(logits[[logit_row]], [row], *_stack_masks([mask]))
                picked.append((tokens[0], logprobs[0]))
            except Exception as e:
                picked.append(e)
        return picked

    def prompt_logprobs(self, logits: torch.Tensor, tokens: list[int], top: int) -> list[TokenLogprob]:
        """The logprob of each prompt token from the logits of the position before it:
        logits (N, V), tokens N ids."""
        lp = torch.log_softmax(logits, dim=-1)
        if top:
            return [self.token_logprob(lp[j], tok, top) for j, tok in enumerate(tokens)]
        return [TokenLogprob(tok, "", float(lp[j, tok])) for j, tok in enumerate(tokens)]

    def token_logprob(self, row_lp: torch.Tensor, token: int, top: int) -> TokenLogprob:
        """A token's logprob from a (V,) log-softmax row, with the `top` best alternatives."""
        alts: list[tuple[int, str, float]] = []
        if top:
            values, ids = row_lp.topk(top)
            alts = [(i, self.tokenizer.decode([i]), v) for i, v in zip(ids.tolist(), values.tolist())]
        return TokenLogprob(token, self.tokenizer.decode([token]), float(row_lp[token]), alts)

    def _apply_penalties(self, logits: torch.Tensor, rows: list[SampleRow]) -> None:
        for i, r in enumerate(rows):  # only rows that asked; most rows have no penalty
            p = r.params
            if p.frequency_penalty or p.presence_penalty:
                if r.num_output:
                    ids, counts = torch.tensor(r.output_ids).unique(return_counts=True)
                    logits[i, ids] -= p.frequency_penalty * counts + p.presence_penalty
            if p.repetition_penalty != 1.0:
                ids = torch.tensor(r.token_ids).unique()
                seen = logits[i, ids]
                logits[i, ids] = torch.where(seen > 0, seen / p.repetition_penalty,
                                             seen * p.repetition_penalty)

    @staticmethod
    def _apply_logit_bias(logits: torch.Tensor, rows: list[SampleRow]) -> None:
        """logits[i, t] += bias for every (t, bias) of row i's logit_bias, in one op."""
        row_ids, token_ids, biases = [], [], []
        for i, r in enumerate(rows):
            for t, bias in r.params.logit_bias.items():
                row_ids.append(i)
                token_ids.append(t)
                biases.append(bias)
        if biases:
            logits.index_put_((torch.tensor(row_ids, device=logits.device),
                               torch.tensor(token_ids, device=logits.device)),
                              torch.tensor(biases, dtype=logits.dtype, device=logits.device),
                              accumulate=True)

    @staticmethod
    def _ban_end_tokens(logits: torch.Tensor, rows: list[SampleRow]) -> None:
        for i, r in enumerate(rows):
            if r.num_output < r.params.min_new_tokens and r.end_ids:
                logits[i, list(r.end_ids)] = float("-inf")

    def _pick(self, logits: torch.Tensor, rows: list[SampleRow]) -> list[int]:
        tokens = logits.max(dim=-1).indices  # the first maximum, as argmax; 2x faster here
        sampled = [i for i, r in enumerate(rows) if not r.params.greedy]
        if sampled:
            tokens[sampled] = self._sample_rows(logits[sampled], [rows[i] for i in sampled])
        return tokens.tolist()

    def _sample_rows(self, logits: torch.Tensor, rows: list[SampleRow]) -> torch.Tensor:
        temp = torch.tensor([r.params.temperature for r in rows])[:, None]
        probs = torch.softmax(logits / temp, dim=-1)  # (S, V)
        u = torch.tensor([self._uniform(r) for r in rows], dtype=torch.float64)
        V = probs.shape[-1]
        filtered = any(r.params.top_k > 0 or r.params.top_p < 1 or r.params.min_p > 0 for r in rows)
        if not filtered:
            return _invert_cdf(probs, u)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        top_k = torch.tensor([r.params.top_k if r.params.top_k > 0 else V for r in rows])
        top_p = torch.tensor([r.params.top_p for r in rows])
        min_p = torch.tensor([r.params.min_p for r in rows])
        drop = torch.arange(V)[None, :] >= top_k[:, None]
        drop |= (sorted_p.cumsum(-1) - sorted_p) > top_p[:, None]  # mass before this token
        drop |= sorted_p < min_p[:, None] * sorted_p[:, :1]
        drop[:, 0] = False  # the most likely token always survives
        choice = _invert_cdf(sorted_p.masked_fill(drop, 0.0), u)
        return order.gather(1, choice[:, None])[:, 0]

    def _uniform(self, r: SampleRow) -> float:
        if r.seed is None:
            return self._rng.random()
        return _hash_uniform(r.seed, r.index, r.num_output)


def _stack_masks(masks: list[torch.Tensor | None]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-row bitmask rows (None: unconstrained) -> (bitmask, row indices) for `sample`."""
    rows = [i for i, m in enumerate(masks) if m is not None]
    if not rows:
        return None, None
    return torch.stack([masks[i] for i in rows]), torch.tensor(rows, dtype=torch.int64)


def _invert_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One index per row with P(index) proportional to probs; u (S,) uniform in [0, 1)."""
    cdf = probs.double().cumsum(-1)  # (S, V)
    target = (u * cdf[:, -1])[:, None]
    return torch.searchsorted(cdf, target, right=True)[:, 0].clamp_(max=probs.shape[-1] - 1)


def _hash_uniform(seed: int, index: int, step: int) -> float:
    """A uniform number in [0, 1) from (seed, index, step): splitmix64 over the three."""
    x = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + step * 0x94D049BB133111EB) & _MASK64
    for _ in range(2):
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return (x >> 11) / float(1 << 53)
