"""The grammar side of a step: masks (with budget-aware closing), jump-forward over forced
text, and starting a sequence's matcher once its grammar has compiled.

`GrammarSteps` is part of `EngineCore` (its base class): the methods run on the engine thread
inside a step and use the core's state (`cfg`, `scheduler`, `counters`, `vocab_words`, the
tokenizer) and its per-request helpers (`_isolated`, `_live`, `_remaining`, `_finish`,
`_new_seq`, `_left_queue`, `_maybe_complete`). Only the core owns sequence state; this file
only keeps its grammar logic in one place.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ...grammar.jump_forward import JumpForward, apply_jump_forward, jump_forward
from .healing import HealingMatcher
from .mask_prefetch import reraise
from .request import Sequence, SeqStatus
from .scheduler import Chunk

# Jump-forward checks that the grammar still closes within the budget only this close to it
# (the check walks the closing path; far from the end it always passes).
CLOSING_CHECK_TOKENS = 64


class GrammarSteps:
    def _grammar_masks(self, seqs: list[Sequence],
                       prefetched: dict[int, torch.Tensor | BaseException]
                       ) -> list[torch.Tensor | None]:
        """Each constrained sequence's allowed tokens as an int32 (V/32,) bitmask row (None
        for free ones): the row computed during the forward (`MaskPrefetch`) where there is
        one, else computed now. A matcher that raises fails its own request."""
        masks: list[torch.Tensor | None] = [None] * len(seqs)
        todo = []
        for i, seq in enumerate(seqs):
            if seq.grammar is None or not self._live(seq):
                continue
            row = prefetched.get(id(seq))
            if row is None:
                todo.append(i)
            elif isinstance(row, BaseException):
                self._isolated(seq.request, "grammar mask", reraise, row)
            else:
                masks[i] = row
        if todo:
            t0 = time.perf_counter()
            bitmask = torch.zeros(len(todo), self.vocab_words, dtype=torch.int32)
            buf = bitmask.numpy()
            for j, i in enumerate(todo):
                if self._isolated(seqs[i].request, "grammar mask", self._fill_mask, seqs[i], buf, j):
                    masks[i] = bitmask[j]
            self.counters.grammar_mask_wait_seconds += time.perf_counter() - t0
        return masks

    def _masks_to_prefetch(self, chunks: list[Chunk]) -> list[Sequence]:
        """The constrained sequences that sample after this step's forward (a draft checks
        its own tokens; a branch or prompt-only chunk samples nothing)."""
        overlap = self.cfg.overlap_grammar_masks
        if not (overlap or (overlap is None and self.runner.device.type != "cpu")):
            return []
        return [c.seq for c in chunks
                if c.reaches_end and not c.draft and c.context is None and c.seq.grammar is not None
                and not c.seq.request.prefill_only and self._live(c.seq)]

    def _fill_mask(self, seq: Sequence, buf, row: int) -> None:
        """Budget-aware closing: with `close_on_budget`, a matcher that supports it
        (`fill_bitmask_within`) holds the sequence to tokens after which its shortest
        completion still fits the remaining budget, so a cut output still parses."""
        within = getattr(seq.grammar, "fill_bitmask_within", None)
        if within is not None and seq.request.params.close_on_budget:
            within(buf, row, self._remaining(seq))
        else:
            seq.grammar.fill_bitmask(buf, row)

    def _jump_forward(self, seq: Sequence) -> None:
        """Append the tokens the grammar forces, without sampling them; the next step computes
        them in one chunk. The boundary is re-tokenized as the tokenizer would, which may
        replace the last tokens (only ones the sequence owns, never cached ones)."""
        jf = self._plan_jump_forward(seq)
        if jf is not None:
            self._apply_jump_forward(seq, jf)

    def _plan_jump_forward(self, seq: Sequence) -> JumpForward | None:
        """The forced text `_jump_forward` would append now (None: nothing to do). Not for a
        sequence that reports logprobs: every output token needs its row, so forced tokens
        are sampled (from a one-token mask) like the others."""
        if seq.grammar is None or not self.cfg.jump_forward or seq.logprobs is not None \
                or isinstance(seq.grammar, HealingMatcher):
            return None
        own = len(seq.token_ids) - max(seq.cached_len, seq.prompt_len)
        budget = seq.request.params.max_new_tokens - seq.num_output
        jf = jump_forward(seq.grammar, seq.token_ids[seq.prompt_len:], self._encode,
                          max_retract=min(2, own))
        if jf is None or len(jf.append_ids) - jf.num_retract > budget:
            return None
        return jf if self._closes_after(seq, jf) else None

    def _apply_jump_forward(self, seq: Sequence, jf: JumpForward) -> None:
        apply_jump_forward(seq.grammar, jf)
        cut = len(seq.token_ids) - jf.num_retract
        removed = seq.token_ids[cut:]
        del seq.token_ids[cut:]
        if seq.status is SeqStatus.RUNNING:  # retracted tokens that already have K/V
            self.scheduler.truncate(seq, cut)
        if seq.ngram is not None:
            seq.ngram.truncate(min(len(seq.ngram), cut))
        seq.token_ids += jf.append_ids
        seq.num_forced_tokens += jf.num_saved
        self.counters.forced_tokens += jf.num_saved
        stop = seq.output.replace_tail(seq.token_ids[max(seq.prompt_len, cut - 4):cut], removed,
                                       jf.append_ids)
        if stop is not None:
            self._finish(seq, "stop", stop)
        elif seq.num_output >= seq.request.params.max_new_tokens:  # before the grammar's end,
            self._finish(seq, "length")  # as `_append` checks: a text closed at the budget
        elif seq.grammar.is_terminated():
            self._finish(seq, "stop")

    def _closes_after(self, seq: Sequence, jf: JumpForward) -> bool:
        """Whether the grammar can still be completed within the budget after `jf` (always
        true without `close_on_budget`). Jump-forward tokenizes the way the tokenizer does,
        which may take more tokens than the closing path; near the end, when it would, the
        budget mask samples the forced text instead."""
        if not seq.request.params.close_on_budget or not hasattr(seq.grammar, "min_tokens_to_accept"):
            return True
        left = self._remaining(seq) - jf.num_saved
        if left > CLOSING_CHECK_TOKENS:
            return True
        sim = seq.grammar.copy()
        apply_jump_forward(sim, jf)
        return sim.min_tokens_to_accept() <= left

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _start_grammars(self) -> None:
        """Give waiting sequences whose grammar has compiled their matcher (appending any
        text forced at the very start, so the prefill computes it), or fail the request when
        compilation failed. A grammar that forces the whole answer completes it here."""
        for seq in list(self.scheduler.waiting):
            future = seq.request.grammar_future
            if future is None or seq.grammar is not None or not future.done() or seq.is_finished:
                continue
            if future.exception() is not None:
                self.fail(seq.request, future.exception())
                continue
            self._isolated(seq.request, "grammar start", self._start_grammar, seq, future.result())

    def _start_grammar(self, seq: Sequence, compiled: Any) -> None:
        seq.grammar = compiled.matcher()
        heal = self.healing.get(seq.request.request_id)
        if heal is not None:  # the prompt's tail is re-spelled before the grammar's text
            seq.grammar = self.healing.matcher(heal, seq.grammar)
            return
        self._jump_forward(seq)
        if seq.is_finished:
            self._complete_forced(seq)

    def _complete_forced(self, seq: Sequence) -> None:
        """The grammar forced the whole answer before any token was computed: the request's
        other completions get the same text, and it completes now, prompt never run."""
        req = seq.request
        for i in range(len(req.seqs), 1 if req.prefill_only else req.params.n):
            child = self._new_seq(req, i)
            child.token_ids = list(seq.token_ids)
            child.num_forced_tokens = seq.num_forced_tokens
            child.output.push(seq.token_ids[seq.prompt_len:])
            child.output.finish()
            child.finish_reason, child.matched_stop = seq.finish_reason, seq.matched_stop
            child.status = SeqStatus.FINISHED
        req.first_token_time = time.monotonic()
        self.counters.ttft.observe(req.first_token_time - req.arrival)
        self._left_queue(req)
        self._maybe_complete(req)
