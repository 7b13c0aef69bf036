"""EngineCore: one step of the engine, single-threaded. `Engine` drives it from its own thread.

A step: the scheduler picks chunks; the runner computes them; prompt logprobs are recorded;
computed prompts go into the radix cache; each sequence that reached its end gets a token
(n > 1 requests fork here, on their first token); tokens are checked against stop conditions
and the grammar, which may force more text (jump-forward); finished sequences give their
resources back, and every listener hears of new text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ...grammar.jump_forward import apply_jump_forward, jump_forward
from .config import EngineConfig
from .model_runner import ModelRunner, StepLogits
from ..outputs import Completion, RequestOutput, StreamDelta, TokenLogprob
from ..cache.radix_cache import RadixCache
from .request import Request, Sequence, SeqStatus
from .sampler import Sampler, SampleRow
from .scheduler import Chunk, Scheduler
from .text_output import TextOutput
from ..tokenizer.tokenizer import Tokenizer


@dataclass(slots=True)
class Counters:
    num_requests: int = 0
    num_finished: int = 0
    num_aborted: int = 0
    prompt_tokens: int = 0  # prompt tokens of admitted requests
    prefill_tokens_computed: int = 0  # tokens run through the model in chunks longer than 1
    decode_tokens_computed: int = 0  # tokens run as single-token decodes
    generated_tokens: int = 0
    forced_tokens: int = 0  # appended by jump-forward
    steps: int = 0
    forward_seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)  # drained by metrics readers


class EngineCore:
    def __init__(self, cfg: EngineConfig, tokenizer: Tokenizer, runner: ModelRunner,
                 scheduler: Scheduler, max_model_len: int, stream_listeners: bool = True):
        self.cfg, self.tokenizer, self.runner, self.scheduler = cfg, tokenizer, runner, scheduler
        self.cache: RadixCache = scheduler.cache
        self.max_model_len = max_model_len
        self.sampler = Sampler(tokenizer, cfg.seed)
        self.requests: dict[str, Request] = {}
        self.counters = Counters()
        self.vocab_words = (runner.model.cfg.vocab_size + 31) // 32

    # --- requests in and out --------------------------------------------------------------
    def add(self, req: Request) -> None:
        self.requests[req.request_id] = req
        self.counters.num_requests += 1
        self.counters.prompt_tokens += len(req.prompt_ids)
        self.scheduler.add(self._new_seq(req, 0))

    def _new_seq(self, req: Request, index: int) -> Sequence:
        p = req.params
        seq = Sequence(req, index, list(req.prompt_ids), len(req.prompt_ids),
                       TextOutput(self.tokenizer, p.stop, req.prompt_ids, p.skip_special_tokens))
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
        for seq in req.seqs:
            if seq.status is SeqStatus.RUNNING:
                self.scheduler.release(seq, SeqStatus.FINISHED)
            elif seq.status is SeqStatus.WAITING:
                self.scheduler.remove_waiting(seq)
        self.requests.pop(req.request_id, None)
        req.sink(error)

    # --- one step -------------------------------------------------------------------------
    def step(self) -> bool:
        """Run one step; False when nothing could be scheduled."""
        self._start_grammars()
        chunks = self.scheduler.schedule()
        if not chunks:
            return False
        t0 = time.perf_counter()
        chunks, out = self.runner.run(chunks)
        self.counters.forward_seconds += time.perf_counter() - t0
        self.counters.steps += 1
        for c in chunks:
            c.seq.num_computed = c.end
            if c.length > 1:
                self.counters.prefill_tokens_computed += c.length
            else:
                self.counters.decode_tokens_computed += 1
        self._record_prompt_logprobs(chunks, out)
        for c in chunks:
            if c.length > 1:
                self.scheduler.cache_computed(c.seq)
            if c.reaches_end and c.seq.request.prefill_only:
                self._finish(c.seq, "stop")
        self._sample(chunks, out)
        for req in {id(c.seq.request): c.seq.request for c in chunks}.values():
            self._emit(req)
        return True

    def _record_prompt_logprobs(self, chunks: list[Chunk], out: StepLogits) -> None:
        for c in chunks:
            rows = out.prompt_rows.get(id(c.seq))
            if rows is None:
                continue
            first, count, pos = rows
            req = c.seq.request
            if req.prompt_logprobs is None:
                req.prompt_logprobs = [None] * len(req.prompt_ids)
            lp = torch.log_softmax(out.logits[first:first + count], dim=-1)
            tokens = req.prompt_ids[pos:pos + count]
            for j, tok in enumerate(tokens):
                req.prompt_logprobs[pos + j] = self.sampler.token_logprob(
                    lp[j], tok, req.params.top_logprobs) if req.params.top_logprobs else \
                    TokenLogprob(tok, "", float(lp[j, tok]))

    def _sample(self, chunks: list[Chunk], out: StepLogits) -> None:
        seqs: list[Sequence] = []
        logit_rows: list[int] = []
        for c in chunks:
            row = out.sample_row.get(id(c.seq))
            if row is None or c.seq.is_finished:
                continue
            group = [c.seq] + self._fork_siblings(c.seq)
            seqs += group
            logit_rows += [row] * len(group)
        if not seqs:
            return
        logits = out.logits[logit_rows]
        bitmask, bitmask_rows = self._grammar_masks(seqs)
        rows = [SampleRow(s.request.params, s.token_ids, s.prompt_len, s.seed, s.index,
                          self._end_ids(s)) for s in seqs]
        tokens, logprobs = self.sampler.sample(logits, rows, bitmask, bitmask_rows)
        now = time.monotonic()
        for seq, token, lp in zip(seqs, tokens, logprobs):
            req = seq.request
            if req.first_token_time is None:
                req.first_token_time = now
                self.counters.ttft.append(now - req.arrival)
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

    def _grammar_masks(self, seqs: list[Sequence]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        rows = [i for i, seq in enumerate(seqs) if seq.grammar is not None]
        if not rows:
            return None, None
        bitmask = torch.zeros(len(rows), self.vocab_words, dtype=torch.int32)
        buf = bitmask.numpy()
        for j, i in enumerate(rows):
            seqs[i].grammar.fill_bitmask(buf, j)
        return bitmask, torch.tensor(rows, dtype=torch.int64)

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
        stop = seq.output.push([token])
        if stop is not None:
            return self._finish(seq, "stop", stop)
        if seq.num_output >= p.max_new_tokens or len(seq.token_ids) >= self.max_model_len:
            return self._finish(seq, "length")
        if seq.grammar is not None and seq.grammar.is_terminated():
            return self._finish(seq, "stop")

    def _jump_forward(self, seq: Sequence) -> None:
        """Append the tokens the grammar forces, without sampling them; the next step computes
        them in one chunk. The boundary is re-tokenized as the tokenizer would, which may
        replace the last tokens (only ones the sequence owns, never cached ones)."""
        if seq.grammar is None or not self.cfg.jump_forward:
            return
        own = len(seq.token_ids) - max(seq.cached_len, seq.prompt_len)
        budget = seq.request.params.max_new_tokens - seq.num_output
        jf = jump_forward(seq.grammar, seq.token_ids[seq.prompt_len:], self._encode,
                          max_retract=min(2, own))
        if jf is None or len(jf.append_ids) - jf.num_retract > budget:
            return
        apply_jump_forward(seq.grammar, jf)
        cut = len(seq.token_ids) - jf.num_retract
        removed = seq.token_ids[cut:]
        del seq.token_ids[cut:]
        if seq.num_computed > cut:  # retracted tokens that already have K/V: free their slots
            self.scheduler.pool.free(self.scheduler.table.read(seq.row, seq.num_computed)[cut:].clone())
            seq.num_computed = cut
        seq.token_ids += jf.append_ids
        seq.num_forced_tokens += jf.num_saved
        self.counters.forced_tokens += jf.num_saved
        stop = seq.output.replace_tail(seq.token_ids[max(seq.prompt_len, cut - 4):cut], removed,
                                       jf.append_ids)
        if stop is not None:
            self._finish(seq, "stop", stop)
        elif seq.grammar.is_terminated():
            self._finish(seq, "stop")
        elif seq.num_output >= seq.request.params.max_new_tokens:
            self._finish(seq, "length")

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _finish(self, seq: Sequence, reason: str, matched: str | int | None = None) -> None:
        seq.finish_reason, seq.matched_stop = reason, matched
        seq.output.finish()
        if seq.status is SeqStatus.RUNNING:
            self.scheduler.release(seq, SeqStatus.FINISHED)
        elif seq.status is SeqStatus.WAITING:
            self.scheduler.remove_waiting(seq)

    def _start_grammars(self) -> None:
        """Give waiting sequences whose grammar has compiled their matcher (appending any
        text forced at the very start, so the prefill computes it), or fail the request when
        compilation failed."""
        for seq in list(self.scheduler.waiting):
            future = seq.request.grammar_future
            if future is None or seq.grammar is not None or not future.done():
                continue
            if future.exception() is not None:
                if seq.request.request_id in self.requests:
                    self.fail(seq.request, future.exception())
                continue
            seq.grammar = future.result().matcher()
            self._jump_forward(seq)

    # --- listeners ------------------------------------------------------------------------
    def _emit(self, req: Request) -> None:
        if not self._maybe_complete(req) and req.stream:
            for seq in req.seqs:
                delta = seq.output.take_delta(final=False)
                if delta:
                    req.sink(self._delta(seq, delta))

    @staticmethod
    def _delta(seq: Sequence, text: str, finish_reason: str | None = None) -> StreamDelta:
        """A stream event with the text and the tokens (and logprobs) new since the last."""
        tokens = seq.token_ids[seq.prompt_len + seq.num_streamed:]
        logprobs = None
        if seq.logprobs is not None:
            logprobs = seq.logprobs[seq.num_streamed_logprobs:]
            seq.num_streamed_logprobs = len(seq.logprobs)
        seq.num_streamed += len(tokens)
        return StreamDelta(seq.request.request_id, seq.index, text, tokens, finish_reason, logprobs)

    def _maybe_complete(self, req: Request) -> bool:
        """Deliver the final events once every sequence of the request is done."""
        if req.request_id not in self.requests or not req.all_finished:
            return False
        del self.requests[req.request_id]
        self.counters.num_finished += 1
        self.counters.num_aborted += req.aborted
        output = self.output_of(req)
        for seq in req.seqs:
            delta = seq.output.take_delta(final=True)
            if req.stream and (delta or seq.finish_reason):
                req.sink(self._delta(seq, delta, seq.finish_reason))
        req.sink(StreamDelta(req.request_id, -1, "", [], None, None, output))
        return True

    @staticmethod
    def output_of(req: Request) -> RequestOutput:
        completions = [Completion(s.index, s.output.text, s.token_ids[s.prompt_len:],
                                  s.finish_reason or "abort", s.matched_stop, s.logprobs)
                       for s in sorted(req.seqs, key=lambda s: s.index)]
        return RequestOutput(req.request_id, list(req.prompt_ids), completions,
                             req.num_cached_tokens, req.prompt_logprobs)
