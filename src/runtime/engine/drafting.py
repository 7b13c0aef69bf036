"""Drafting: which sequences speculate in a step, their drafts, and checking a draft against
the step's logits (the policy and the pure parts are in speculation.py; the core appends the
tokens a check keeps, `EngineCore._verify_draft`).

A sequence drafts while few sequences decode (`speculation_max_batch`): a drafted token is one
more row of the step, nearly free while the step is bound by reading the weights, not when
it is bound by arithmetic. Its n-gram index and draft-length policy live on the sequence,
made on its first drafted step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .config import EngineConfig
from .healing import HealingMatcher
from .request import Sequence
from .sampler import Sampler, SampleRow
from .speculation import (DraftLength, NgramIndex, Verified, can_speculate, grammar_prefix,
                          verify_greedy)

# speculation.DraftLength's cost model: one more computed row costs about this share of a
# decode step, and a drafted step runs the same compiled decode as a plain one (its tokens as
# decode rows, model_runner.run). Measured on an AVX2-only EPYC, default model, weights auto:
# a layer's int4 matmuls take 361 µs for one row and 1031 µs for eight (bench/kernel_ops.py),
# ~2.9 ms a row over 30 layers against a ~19 ms step. At 0.05 the json_extraction drafts
# lost (0.89x speculation off, bench/speculation.py); at 0.15 they win (1.09x).
DRAFT_ROW_COST = 0.15
DRAFT_STEP_COST = 0.0


class Drafter:
    def __init__(self, cfg: EngineConfig, sampler: Sampler):
        self.cfg, self.sampler = cfg, sampler

    def candidates(self, running: list[Sequence]) -> list[Sequence]:
        """The decoding sequences that may draft this step (none in a big batch)."""
        if not self.cfg.speculation:
            return []
        decoding = [s for s in running if s.num_output and s.num_pending]
        return decoding if len(decoding) <= self.cfg.speculation_max_batch else []

    def draft(self, seq: Sequence, remaining: int) -> None:
        """Set `seq.draft` (empty when it may not or need not draft). `remaining`: tokens the
        sequence may still append, its pending one included."""
        seq.draft = []
        if not can_speculate(seq.request.params, seq.num_output, seq.grammar) \
                or isinstance(seq.grammar, HealingMatcher):
            return
        if seq.draft_length is None:
            seq.ngram = NgramIndex(seq.token_ids)
            seq.draft_length = DraftLength(row_cost=DRAFT_ROW_COST, step_cost=DRAFT_STEP_COST)
        else:
            seq.ngram.extend(seq.token_ids[len(seq.ngram):])
        k = min(seq.draft_length.next(), remaining - 1)
        draft = seq.ngram.propose(k) if k > 0 else []
        if draft and seq.grammar is not None:  # the matcher has taken the pending token
            draft = grammar_prefix(draft, seq.grammar)
        seq.draft = draft

    def verify(self, seq: Sequence, draft: list[int], logits: torch.Tensor, end_ids: frozenset[int],
               remaining: int) -> Verified:
        """The tokens greedy decoding emits over the draft's rows (speculation.verify_greedy,
        picked by the sampler itself), with the matcher rolled back to where it was: the core
        feeds it the kept tokens one by one."""
        verified = verify_greedy(logits, draft, seq.grammar, pick=self._greedy_pick(seq, end_ids),
                                 end_ids=end_ids, max_tokens=remaining,
                                 close_on_budget=seq.request.params.close_on_budget)
        tokens = verified.token_ids
        if seq.grammar is not None:
            seq.grammar.rollback(len(tokens) - (tokens[-1] in end_ids))
        seq.draft_length.update(len(draft), verified.num_accepted)
        return verified

    def _greedy_pick(self, seq: Sequence, end_ids: frozenset[int]
                     ) -> Callable[[torch.Tensor, torch.Tensor | None], list[int]]:
        """The sampler's own pick for `seq`'s rows (logit bias, masks and all)."""
        row = SampleRow(seq.request.params, seq.token_ids, seq.prompt_len, seq.seed, seq.index, end_ids)

        def pick(logits: torch.Tensor, bitmask: torch.Tensor | None) -> list[int]:
            return self.sampler.sample(logits.clone(), [row] * len(logits), bitmask)[0]
        return pick
