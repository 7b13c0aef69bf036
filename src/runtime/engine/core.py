"""EngineCore: one step of the engine, single-threaded. `Engine` drives it from its own thread.

A step: the scheduler picks chunks; the runner computes them; prompt logprobs are recorded;
computed prompts go into the radix cache; each sequence that reached its end gets a token
(n > 1 requests fork here, on their first token); tokens are checked against stop conditions
and the grammar, which may force more text (jump-forward; near max_new_tokens the mask also
keeps the sequence able to complete its grammar within the budget: `_fill_mask`; the grammar
side of a step is in grammar_steps.py, this class's base); finished
sequences give their resources back, and every listener hears of new text.

A request with `token_healing` starts with its prompt backed up over its last token(s); its
first tokens are held to re-spelling them (`healing.py`), then to its own constraint.

A greedy sequence may carry a draft (`speculation.py`): tokens that followed its last n-gram
earlier in its own text, computed after its pending token in the same chunk; the longest
prefix the model agrees with, plus the model's next token, is appended one token at a time as
decoding would (`_verify_draft`). A scoring request (`branches.py`) computes its shared tokens
once and its continuations as branch chunks of the same step.

Failures are isolated per request: a request whose own prompt logprobs, fork, grammar mask,
sampling row, token acceptance, jump-forward or text raises is failed alone (its handle gets a
RequestError naming the request and the cause) and the rest of the batch goes on. Only the
shared forward pass (`runner.run`) raising fails the batch (the engine loop does that).

Events for listeners are queued during a step and handed out by `deliver()`, which the engine
loop calls after publishing the step's stats: a caller holding a result sees stats that count it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from collections.abc import Callable
from typing import Any

import torch

from ..sampling_params import SamplingParams
from .admission import Admission
from .branches import record_branch_logprobs
from .drafting import Drafter
from .config import EngineConfig
from .handle import RequestError
from .healing import HealedTextOutput, HealingMatcher, HealingPlans
from .mask_prefetch import MaskPrefetch, reraise
from .model_runner import ModelRunner, StepLogits
from ..outputs import StreamDelta, TokenLogprob
from .events import request_output, stream_delta
from .grammar_steps import GrammarSteps
from .request import Request, Sequence, SeqStatus
from .sampler import Sampler, SampleRow
from .scheduler import Chunk, Scheduler
from .stats import Counters
from .token_vocab import EngineVocabulary
from .text_output import TextOutput
from ..tokenizer.tokenizer import Tokenizer

log = logging.getLogger("tines.engine")


class EngineCore(GrammarSteps):
    def __init__(self, cfg: EngineConfig, tokenizer: Tokenizer, runner: ModelRunner,
                 scheduler: Scheduler, max_model_len: int, vocab: EngineVocabulary,
                 admission: Admission | None = None):
        self.cfg, self.tokenizer, self.runner, self.scheduler = cfg, tokenizer, runner, scheduler
        self.cache = scheduler.cache
        self.max_model_len = max_model_len
        self.admission = admission or Admission(cfg.max_queue)
        self.sampler = Sampler(tokenizer, cfg.seed)
        self.drafter = Drafter(cfg, self.sampler)
        self.requests: dict[str, Request] = {}
        self.counters = Counters()
        self.vocab_size = runner.model.cfg.vocab_size
        self.vocab_words = (self.vocab_size + 31) // 32
        self.mask_prefetch = MaskPrefetch(self.vocab_words, self._fill_mask)
        self._events: list[tuple[Callable[[Any], None], Any]] = []
        self.healing = HealingPlans(vocab)

    def reset_stats(self) -> None:
        """Forget the cache and every counter (after the warm-up requests)."""
        self.cache.flush()
        self.cache.hit_tokens = self.cache.miss_tokens = self.cache.evicted_tokens = 0
        self.scheduler.num_retractions = 0
        self.counters = Counters()

    def run_now(self, prompts: list[list[int]], params: SamplingParams) -> None:
        """Run requests to completion on this thread (the warm-up, before the loop starts)."""
        errors: list[BaseException] = []
        for i, ids in enumerate(prompts):
            self.add(Request(f"warm-up-{i}", ids, params, lambda item: errors.append(item)
                             if isinstance(item, BaseException) else None, queued=False))
        while self.scheduler.has_work():
            self.step()
        self.deliver()
        if errors:
            raise errors[0]

    def deliver(self) -> None:
        """Hand the queued events to their listeners (after the stats are published)."""
        events, self._events = self._events, []
        for sink, item in events:
            sink(item)

    # --- requests in and out --------------------------------------------------------------
    def add(self, req: Request) -> None:
        if req.params.token_healing and not req.prefill_only:
            healed = self.healing.plan(req.request_id, req.prompt_ids)
            if healed:  # the re-spelled tokens get budget of their own
                req.params = replace(req.params,
                                     max_new_tokens=req.params.max_new_tokens + healed)
        self.requests[req.request_id] = req
        self.counters.num_requests += 1
        self.counters.prompt_tokens += len(req.prompt_ids)
        if req.params.lora is not None and not self._isolated(req, "lora", self._resolve_lora, req):
            return  # the adapter was unloaded since the request was checked
        self.scheduler.add(self._new_seq(req, 0))

    def _resolve_lora(self, req: Request) -> None:
        adapters = self.runner.adapters
        if adapters is None:
            raise ValueError(f"lora: unknown adapter {req.params.lora!r} (none loaded)")
        req.lora_id = adapters.id_of(req.params.lora)

    def unload_lora(self, name: str) -> None:
        """Drop a LoRA adapter no request uses (engine thread)."""
        adapters = self.runner.adapters
        adapter_id = adapters.id_of(name) if adapters is not None else None
        if adapter_id is None:
            raise ValueError(f"lora: unknown adapter {name!r} (none loaded)")
        if any(r.lora_id == adapter_id for r in self.requests.values()):
            raise ValueError(f"lora: adapter {name!r} is in use by running requests")
        adapters.remove(name)

    def _new_seq(self, req: Request, index: int) -> Sequence:
        p = req.params
        heal = self.healing.get(req.request_id)
        output = TextOutput(self.tokenizer, p.stop, req.prompt_ids, p.skip_special_tokens) \
            if heal is None else \
            HealedTextOutput(self.tokenizer, heal.text, p.stop, req.prompt_ids, p.skip_special_tokens)
        seq = Sequence(req, index, list(req.prompt_ids), len(req.prompt_ids), output)
        if heal is not None and req.grammar_future is None:
            seq.grammar = self.healing.matcher(heal, None)
        seq.seed = None if p.seed is None else p.seed + index * 7919
        seq.logprobs = [] if (p.logprobs or p.top_logprobs) else None
        req.seqs.append(seq)
        return seq

    def abort(self, request_id: str) -> bool:
        req = self.requests.get(request_id)
        if req is None:
            return False
        req.aborted = True
        for seq in req.seqs:
            if not seq.is_finished:
                self._finish(seq, "abort")
        self._maybe_complete(req)
        return True

    def fail(self, req: Request, error: BaseException) -> None:
        """End a request with `error`, giving back what its sequences hold (no-op once the
        request has ended)."""
        if self.requests.get(req.request_id) is not req:
            return
        for seq in req.seqs:
            if seq.status is SeqStatus.RUNNING:
                self.scheduler.release(seq, SeqStatus.FINISHED)
            elif seq.status is SeqStatus.WAITING:
                self.scheduler.remove_waiting(seq)
        del self.requests[req.request_id]
        self.healing.forget(req.request_id)
        self._left_queue(req)
        self.counters.num_failed += 1
        self._events.append((req.sink, error))

    def _isolated(self, req: Request, stage: str, fn: Callable[..., Any], *args: Any) -> bool:
        """Run one request's own part of the step; when it raises, fail that request alone."""
        try:
            fn(*args)
            return True
        except Exception as e:
            log.exception("request %s failed in %s", req.request_id, stage)
            self.fail(req, RequestError(f"request {req.request_id} failed in {stage}: {e!r}"))
            return False

    def _left_queue(self, req: Request) -> None:
        if req.queued:
            req.queued = False
            self.admission.leave()

    @staticmethod
    def _live(seq: Sequence) -> bool:
        return not seq.is_finished

    # --- one step -------------------------------------------------------------------------
    def step(self) -> bool:
        """Run one step; False when nothing could be scheduled."""
        self._start_grammars()
        drafted = self._propose_drafts()
        chunks = self.scheduler.schedule()
        for seq in drafted:  # the chunks hold their drafts now
            seq.draft = []
        if not chunks:
            return False
        for c in chunks:
            self._left_queue(c.seq.request)
        branches = [c for c in chunks if c.context is not None]
        self.mask_prefetch.start(self._masks_to_prefetch(chunks))
        t0 = time.perf_counter()
        try:
            chunks, out = self.runner.run(chunks)
        finally:  # a branch's slots are its step's alone, whatever happens in the forward
            for c in branches:
                self.scheduler.free_branch(c)
            t1 = time.perf_counter()
            masks = self.mask_prefetch.collect()  # the worker lets go of the matchers
        self.counters.grammar_mask_wait_seconds += time.perf_counter() - t1
        self.counters.grammar_masks_overlapped += len(masks)
        self.counters.forward_seconds += t1 - t0
        self.counters.steps += 1
        for c in chunks:
            c.seq.num_computed = c.end
            if c.length > 1 and not c.draft:
                self.counters.prefill_tokens_computed += c.length
            else:
                self.counters.decode_tokens_computed += c.length
        if branches:
            chunks = [c for c in chunks if c.context is None]
        for c in chunks:
            rows = out.prompt_rows.get(id(c.seq))
            if rows is not None:
                self._isolated(c.seq.request, "prompt logprobs", self._record_prompt_logprobs,
                               c.seq.request, out, rows)
        for c in chunks:
            if not self._live(c.seq):
                continue
            if c.length > 1 and not c.draft:
                self.scheduler.cache_computed(c.seq)
            if c.reaches_end and c.seq.request.prefill_only:
                if c.seq.request.branches is not None:
                    self._isolated(c.seq.request, "branch logprobs", record_branch_logprobs,
                                   c.seq.request, c.seq, out, branches, self.sampler)
                if self._live(c.seq):
                    self._finish(c.seq, "stop")
        self._sample(chunks, out, masks)
        for req in {id(c.seq.request): c.seq.request for c in chunks}.values():
            self._isolated(req, "output", self._emit, req)
        return True

    def _record_prompt_logprobs(self, req: Request, out: StepLogits,
                                rows: tuple[int, int, int]) -> None:
        first, count, pos = rows
        if req.prompt_logprobs is None:
            req.prompt_logprobs = [None] * len(req.prompt_ids)
        req.prompt_logprobs[pos:pos + count] = self.sampler.prompt_logprobs(
            out.logits[first:first + count], req.prompt_ids[pos:pos + count], req.params.top_logprobs)

    def _sample(self, chunks: list[Chunk], out: StepLogits,
                prefetched: dict[int, torch.Tensor | BaseException]) -> None:
        seqs: list[Sequence] = []
        logit_rows: list[int] = []
        for c in chunks:
            row = out.sample_row.get(id(c.seq))
            if row is None or not self._live(c.seq):
                continue
            if c.draft:
                self._isolated(c.seq.request, "draft verification", self._verify_draft, c,
                               out.logits[row:row + len(c.draft) + 1])
                continue
            group = [c.seq]
            if not self._isolated(c.seq.request, "fork", lambda: group.extend(self._fork_siblings(c.seq))):
                continue
            seqs += group
            logit_rows += [row] * len(group)
        masks = self._grammar_masks(seqs, prefetched)
        keep = [i for i, s in enumerate(seqs) if self._live(s)]
        seqs, logit_rows = [seqs[i] for i in keep], [logit_rows[i] for i in keep]
        masks = [masks[i] for i in keep]
        if not seqs:
            return
        rows = [SampleRow(s.request.params, s.token_ids, s.prompt_len, s.seed, s.index,
                          self._end_ids(s)) for s in seqs]
        picked = self.sampler.sample_each(out.logits, logit_rows, rows, masks)
        now = time.monotonic()
        for seq, result in zip(seqs, picked):
            if isinstance(result, Exception):
                self._isolated(seq.request, "sampling", reraise, result)
            elif self._live(seq):
                self._isolated(seq.request, "token acceptance", self._accept, seq, *result, now)

    def _accept(self, seq: Sequence, token: int, lp: TokenLogprob | None, now: float) -> None:
        req = seq.request
        if req.first_token_time is None:
            req.first_token_time = now
            self.counters.ttft.observe(now - req.arrival)
        seq.num_sampled += 1
        self._append(seq, token, lp)
        if not seq.is_finished:
            self._jump_forward(seq)

    def _fork_siblings(self, seq: Sequence) -> list[Sequence]:
        """On the first token of an n > 1 request, start its other n-1 sequences on the
        computed prompt (they sample from the same logits this step). Text the grammar forced
        before the first token is copied too."""
        req = seq.request
        if seq.index != 0 or len(req.seqs) >= req.params.n or seq.num_sampled:
            return []
        started = []
        for i in range(1, req.params.n):
            child = self._new_seq(req, i)
            child.token_ids = list(seq.token_ids)
            child.output.push(seq.token_ids[seq.prompt_len:])
            child.grammar = None if seq.grammar is None else seq.grammar.copy()
            if self.scheduler.fork(seq, child):
                started.append(child)
        return started

    def _end_ids(self, seq: Sequence) -> frozenset[int]:
        p = seq.request.params
        ends = set(p.stop_token_ids)
        if not p.ignore_eos:
            ends |= self.tokenizer.eos_token_ids
        return frozenset(ends)

    def _remaining(self, seq: Sequence) -> int:
        """Tokens `seq` may still append, the one sampled this step included."""
        return min(seq.request.params.max_new_tokens - seq.num_output,
                   self.max_model_len - len(seq.token_ids))

    # --- speculation (drafting.py) --------------------------------------------------------
    def _propose_drafts(self) -> list[Sequence]:
        """Give each sequence that may draft this step its draft; the ones that got one."""
        drafted = []
        for seq in self.drafter.candidates(self.scheduler.running):
            if self._isolated(seq.request, "drafting", self.drafter.draft, seq,
                              self._remaining(seq)) and seq.draft:
                drafted.append(seq)
        return drafted

    def _verify_draft(self, chunk: Chunk, logits: torch.Tensor) -> None:
        """Append what greedy decoding emits over the draft's rows one token at a time, as
        decoding would: a stop ends it, and where the grammar forces text after a token,
        jump-forward takes over there. The K/V of accepted draft tokens is kept; the rest is
        freed."""
        seq, draft = chunk.seq, chunk.draft
        verified = self.drafter.verify(seq, draft, logits, self._end_ids(seq), self._remaining(seq))
        tokens, accepted = verified.token_ids, verified.num_accepted
        self.counters.draft_tokens += len(draft)
        self.counters.draft_tokens_accepted += accepted
        self.scheduler.truncate(seq, len(seq.token_ids) + accepted)  # pending + accepted drafts
        for i, token in enumerate(tokens):
            seq.num_sampled += 1
            self._append(seq, token, None)
            if seq.is_finished or i == len(tokens) - 1:
                break
            jf = self._plan_jump_forward(seq)
            if jf is not None:  # decoding would jump here: drop the draft's K/V past this token
                self.scheduler.truncate(seq, len(seq.token_ids))
                self._apply_jump_forward(seq, jf)
                return
        if not seq.is_finished:
            self._jump_forward(seq)

    # --- tokens, stops, finishing ---------------------------------------------------------
    def _append(self, seq: Sequence, token: int, lp: TokenLogprob | None) -> None:
        p = seq.request.params
        seq.token_ids.append(token)
        self.counters.generated_tokens += 1
        if lp is not None and seq.logprobs is not None:
            seq.logprobs.append(lp)
        if token in p.stop_token_ids or (not p.ignore_eos and token in self.tokenizer.eos_token_ids):
            return self._finish(seq, "stop", token)
        if seq.grammar is not None and not seq.grammar.accept_token(token):
            raise RuntimeError(f"grammar rejected sampled token {token}: mask and matcher disagree")
        if isinstance(seq.grammar, HealingMatcher) and seq.grammar.done:
            seq.grammar = seq.grammar.inner  # healed: the request's own constraint, if any
        stop = seq.output.push([token])
        if stop is not None:
            return self._finish(seq, "stop", stop)
        if seq.num_output >= p.max_new_tokens or len(seq.token_ids) >= self.max_model_len:
            return self._finish(seq, "length")
        if seq.grammar is not None and seq.grammar.is_terminated():
            return self._finish(seq, "stop")

    def _finish(self, seq: Sequence, reason: str, matched: str | int | None = None) -> None:
        seq.finish_reason, seq.matched_stop = reason, matched
        seq.output.finish()
        if seq.status is SeqStatus.RUNNING:
            self.scheduler.release(seq, SeqStatus.FINISHED)
        elif seq.status is SeqStatus.WAITING:
            self.scheduler.remove_waiting(seq)

    # --- listeners ------------------------------------------------------------------------
    def _emit(self, req: Request) -> None:
        if self.requests.get(req.request_id) is not req:  # failed earlier in the step
            return
        if not self._maybe_complete(req) and req.stream:
            for seq in req.seqs:
                delta = seq.output.take_delta(final=False)
                if delta:
                    self._events.append((req.sink, stream_delta(seq, delta)))

    def _maybe_complete(self, req: Request) -> bool:
        """Deliver the final events once every sequence of the request is done."""
        if self.requests.get(req.request_id) is not req or not req.all_finished:
            return False
        output = request_output(req)  # may raise (detokenizing): nothing is changed yet
        events = []
        for seq in req.seqs:
            delta = seq.output.take_delta(final=True)
            if req.stream and (delta or seq.finish_reason):
                events.append((req.sink, stream_delta(seq, delta, seq.finish_reason)))
        events.append((req.sink, StreamDelta(req.request_id, -1, "", [], None, None, output)))
        del self.requests[req.request_id]
        self.healing.forget(req.request_id)
        self._left_queue(req)
        self.counters.num_finished += 1
        self.counters.num_aborted += req.aborted
        self._events += events
        return True
