"""Engine: the public face of the runtime. Loads a model and runs EngineCore on its own thread.

Callers on any thread submit requests and block on results (`generate`, `stream`, `score`);
asyncio callers await them (`agenerate`, `astream`, `ascore`) without a thread per request.
Prompts are tokenized and validated on the caller's thread, so bad input fails there, at once.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import queue
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..tokenizer.chat_template import ChatTemplate
from .config import EngineConfig
from .core import EngineCore
from .handle import RequestHandle
from ..cache.kv_pool import KVPool
from ..models.loader import load_model
from .malloc_tuning import keep_step_memory_in_heap
from .model_runner import ModelRunner
from ..models.linear import AUTO_INT4_MAX_TOKENS, activation_dtype
from ..outputs import RequestOutput, StreamDelta
from ..cache.radix_cache import RadixCache
from ..models.registry import resolve_model
from .request import Request
from ..sampling_params import SamplingParams
from .scheduler import Scheduler
from .scoring import ContinuationScore, continuation_requests, score_of
from ..cache.slot_table import SlotTable
from ..tokenizer.tokenizer import Tokenizer

log = logging.getLogger("tines.engine")
Prompt = str | Sequence[int]


_live_engines: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _shutdown_live_engines() -> None:
    # Stop engine threads before the interpreter tears torch down under them.
    for engine in list(_live_engines):
        engine.shutdown()


class QueueFullError(RuntimeError):
    """The waiting queue is at `max_queue`; try again later."""


class Engine:
    def __init__(self, model: str | Path | None = None, config: EngineConfig | None = None,
                 **overrides: Any):
        cfg = config or EngineConfig()
        if model is not None:
            overrides["model"] = str(model)
        self.cfg = cfg = replace(cfg, **overrides)
        self.model_path = resolve_model(cfg.model)
        self._grammars = None
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._ids = itertools.count()
        self._stopping = False
        # Every torch op of the engine, loading included, runs on its own thread: OpenMP keeps
        # one worker team per thread that runs parallel regions, and a second team on a
        # two-core machine made each op up to 2x slower (measured: one decode token 28 ms
        # instead of 12 when the model was loaded on the caller's thread).
        ready: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="tines-engine",
                                        daemon=True)
        self._thread.start()
        error = ready.get()
        if error is not None:
            raise error
        _live_engines.add(self)
        if cfg.compile:
            self._warm_up_compiled_decode()
        else:
            self._warm_up()

    def _build(self) -> None:
        """Load the model and make the engine's parts (on the engine thread)."""
        cfg = self.cfg
        keep_step_memory_in_heap()
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        loaded = load_model(self.model_path, cfg.weights, cfg.max_model_len)
        self.model = loaded.model
        self.model_config = loaded.config
        self.max_model_len = loaded.model.max_positions
        if loaded.gguf is not None:
            self.tokenizer = Tokenizer.from_gguf_metadata(loaded.gguf.metadata)
            self.chat_template = ChatTemplate.from_gguf_metadata(loaded.gguf.metadata, self.tokenizer)
        else:
            self.tokenizer = Tokenizer.from_hf_folder(self.model_path)
            self.chat_template = ChatTemplate.from_hf_folder(self.model_path)
        mc = loaded.config
        pool = KVPool(self._pool_tokens(mc), mc.num_layers, mc.num_kv_heads, mc.head_dim,
                      loaded.model.dtype)
        cache = RadixCache(pool, disabled=cfg.disable_radix_cache)
        table = SlotTable(2 * cfg.max_running + 1, self.max_model_len + 1)
        scheduler = Scheduler(cfg, pool, cache, table)
        self.core = EngineCore(cfg, self.tokenizer, ModelRunner(loaded.model, pool, table),
                               scheduler, self.max_model_len)
        self.pool, self.cache, self.scheduler = pool, cache, scheduler

    def _run(self, ready: queue.SimpleQueue) -> None:
        try:
            self._build()
        except BaseException as e:  # delivered to the constructor, which raises it
            ready.put(e)
            return
        ready.put(None)
        self._loop()

    def _warm_up(self) -> None:
        """One short request at start: the first forward pass pays the libraries' one-time
        set-up (1.6 s for the default model here), which belongs to loading, not to the
        first user request."""
        vocab = self.model_config.vocab_size
        prompt = [1 + i % (vocab - 1) for i in range(2 * AUTO_INT4_MAX_TOKENS)]  # both matmul paths
        self.generate(prompt, SamplingParams(temperature=0, max_new_tokens=2, ignore_eos=True))
        self.call(_reset_after_warm_up)

    def _warm_up_compiled_decode(self) -> None:
        """Compile now, not on the first user request: decode steps of one sequence and of
        several (which makes batch size and context length dynamic), then forget them."""
        self.call(lambda core: self.model.compile_decode())
        greedy = SamplingParams(temperature=0, max_new_tokens=4, ignore_eos=True)
        self.generate([1, 2, 3], greedy)
        self.generate([[1, 2, 3, 4], [5, 6], [7, 8, 9, 10, 11, 12]], greedy)
        # A batch past the auto format's int4 limit: the bf16 branch gets its graph too.
        self.generate([[i, i + 1] for i in range(1, AUTO_INT4_MAX_TOKENS + 3)], greedy)
        self.call(_reset_after_warm_up)
        self.model.decode_warm = True

    def _pool_tokens(self, mc) -> int:
        if self.cfg.kv_tokens:
            return self.cfg.kv_tokens
        per_token = KVPool.bytes_per_token(mc.num_layers, mc.num_kv_heads, mc.head_dim,
                                           activation_dtype(self.cfg.weights))
        return max(1024, min(self.cfg.max_kv_tokens,
                             int(_available_memory() * self.cfg.kv_memory_fraction) // per_token))

    # --- submitting -----------------------------------------------------------------------
    def submit(self, prompt: Prompt, params: SamplingParams | None = None, *,
               request_id: str | None = None, stream: bool = False, prefill_only: bool = False,
               logprob_start: int | None = None,
               loop: asyncio.AbstractEventLoop | None = None) -> RequestHandle:
        """Queue one request; returns its handle at once. Raises ValueError for bad input and
        QueueFullError when the queue is full."""
        handle, req = self._request(prompt, params, request_id, stream, prefill_only,
                                    logprob_start, loop)
        self._send([req])
        return handle

    def submit_batch(self, prompts: Sequence[Prompt], params: SamplingParams | None = None, *,
                     prefill_only: bool = False, logprob_starts: Sequence[int | None] | None = None,
                     loop: asyncio.AbstractEventLoop | None = None) -> list[RequestHandle]:
        """Queue several requests at once: all are validated before any is queued, and the
        engine sees them together (so they are scheduled by its policy, not by arrival
        timing, and a run's batches do not depend on thread timing)."""
        starts = logprob_starts or [None] * len(prompts)
        made = [self._request(p, params, None, False, prefill_only, start, loop)
                for p, start in zip(prompts, starts)]
        self._send([req for _, req in made])
        return [handle for handle, _ in made]

    def _request(self, prompt: Prompt, params: SamplingParams | None, request_id: str | None,
                 stream: bool, prefill_only: bool, logprob_start: int | None,
                 loop: asyncio.AbstractEventLoop | None) -> tuple[RequestHandle, Request]:
        params = params or SamplingParams()
        ids = self.encode_prompt(prompt)
        self._validate(ids, params)
        if params.prompt_logprobs and logprob_start is None:
            logprob_start = 1  # every prompt token after the first (which has no context)
        if len(self.scheduler.waiting) >= self.cfg.max_queue:
            raise QueueFullError(f"the queue is full ({self.cfg.max_queue} waiting requests)")
        handle = RequestHandle(request_id or f"req-{next(self._ids)}-{uuid.uuid4().hex[:8]}", loop)
        req = Request(handle.request_id, ids, params, handle.push, stream, prefill_only,
                      logprob_start, grammar_future=self._compile_grammar(params))
        return handle, req

    def _send(self, reqs: list[Request]) -> None:
        self._inbox.put(("add", reqs))
        self._wake.set()

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenizer.encode(prompt, add_special_tokens=True)
        ids = [int(t) for t in prompt]
        bad = [t for t in ids if not 0 <= t < self.model_config.vocab_size]
        if bad:
            raise ValueError(f"input_ids: token id {bad[0]} is outside the vocabulary "
                             f"[0, {self.model_config.vocab_size})")
        return ids

    def _validate(self, ids: list[int], params: SamplingParams) -> None:
        if not ids:
            raise ValueError("prompt: empty (at least one token is needed)")
        if len(ids) >= self.max_model_len:
            raise ValueError(f"prompt: {len(ids)} tokens does not fit the context of "
                             f"{self.max_model_len} tokens")
        if len(ids) + params.max_new_tokens > self.pool.num_slots:
            raise ValueError(f"prompt ({len(ids)} tokens) + max_new_tokens "
                             f"({params.max_new_tokens}) can never fit the KV pool of "
                             f"{self.pool.num_slots} tokens")

    def _compile_grammar(self, params: SamplingParams) -> Future | None:
        if params.constraint is None:
            return None
        from .grammar_bridge import GrammarBridge  # grammar support loads on first use

        if self._grammars is None:
            self._grammars = GrammarBridge(self.tokenizer, self.model_config.vocab_size)
        return self._grammars.compile_async(params)

    # --- blocking and async results -------------------------------------------------------
    def generate(self, prompt: Prompt | list[Prompt], params: SamplingParams | None = None
                 ) -> RequestOutput | list[RequestOutput]:
        """Run one prompt (-> RequestOutput) or a list of prompts (-> list, same order),
        all submitted at once so they batch together."""
        if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
            return [h.result() for h in self.submit_batch(prompt, params)]
        return self.submit(prompt, params).result()

    def stream(self, prompt: Prompt, params: SamplingParams | None = None,
               request_id: str | None = None) -> Iterator[StreamDelta]:
        handle = self.submit(prompt, params, request_id=request_id, stream=True)
        try:
            yield from handle
        finally:
            if not handle._done:
                self.abort(handle.request_id)

    async def agenerate(self, prompt: Prompt, params: SamplingParams | None = None,
                        request_id: str | None = None) -> RequestOutput:
        handle = self.submit(prompt, params, request_id=request_id, loop=asyncio.get_running_loop())
        try:
            return await handle.aresult()
        finally:
            if not handle._done:
                self.abort(handle.request_id)

    async def astream(self, prompt: Prompt, params: SamplingParams | None = None,
                      request_id: str | None = None) -> AsyncIterator[StreamDelta]:
        handle = self.submit(prompt, params, request_id=request_id, stream=True,
                             loop=asyncio.get_running_loop())
        try:
            async for delta in handle:
                yield delta
        finally:
            if not handle._done:  # the consumer went away: free the request's KV now
                self.abort(handle.request_id)

    def score(self, prefix: Prompt, continuations: Sequence[Prompt]) -> list[ContinuationScore]:
        """Each continuation's token logprobs given the prefix. All are submitted together:
        the prefix is computed once and the others extend it from the radix cache."""
        reqs = continuation_requests(self, prefix, continuations)
        handles = self._submit_scoring(reqs)
        return [score_of(h.result(), start) for h, (_, start) in zip(handles, reqs)]

    async def ascore(self, prefix: Prompt, continuations: Sequence[Prompt]) -> list[ContinuationScore]:
        reqs = continuation_requests(self, prefix, continuations)
        handles = self._submit_scoring(reqs, asyncio.get_running_loop())
        outs = await asyncio.gather(*(h.aresult() for h in handles))
        return [score_of(o, start) for o, (_, start) in zip(outs, reqs)]

    def _submit_scoring(self, reqs: list[tuple[list[int], int]],
                        loop: asyncio.AbstractEventLoop | None = None) -> list[RequestHandle]:
        """Prefill-only requests (ids, first scored position), submitted together."""
        return self.submit_batch([ids for ids, _ in reqs], SamplingParams(max_new_tokens=1),
                                 prefill_only=True, logprob_starts=[s for _, s in reqs], loop=loop)

    def warm(self, prompt: Prompt) -> int:
        """Compute a prompt into the radix cache (a fork trunk, a batch's shared prefix) and
        return how many of its tokens were already cached. Without a radix cache there is
        nothing to keep it in: the prompt is only checked, not computed."""
        if self.cfg.disable_radix_cache:
            self._validate(self.encode_prompt(prompt), SamplingParams(max_new_tokens=1))
            return 0
        return self.submit(prompt, SamplingParams(max_new_tokens=1), prefill_only=True).result().num_cached_tokens

    async def awarm(self, prompt: Prompt) -> int:
        if self.cfg.disable_radix_cache:
            return self.warm(prompt)
        handle = self.submit(prompt, SamplingParams(max_new_tokens=1), prefill_only=True,
                             loop=asyncio.get_running_loop())
        return (await handle.aresult()).num_cached_tokens

    # --- control --------------------------------------------------------------------------
    def abort(self, request_id: str) -> None:
        """Stop a request at the next step boundary; its KV slots and locks are returned."""
        self._inbox.put(("abort", request_id))
        self._wake.set()

    def flush_cache(self) -> bool:
        """Drop the radix cache (refused while requests run). Returns whether it flushed."""
        return self.call(lambda core: core.cache.flush())

    def call(self, fn: Callable[[EngineCore], Any]) -> Any:
        """Run fn(core) on the engine thread between steps and return its result."""
        future: Future = Future()
        self._inbox.put(("call", (fn, future)))
        self._wake.set()
        return future.result()

    def stats(self) -> dict[str, Any]:
        """A snapshot of load and cache figures (read without stopping the engine)."""
        c, cache, pool = self.core.counters, self.cache, self.pool
        looked_up = cache.hit_tokens + cache.miss_tokens
        return {
            "running": len(self.scheduler.running),
            "waiting": len(self.scheduler.waiting),
            "kv_slots_total": pool.num_slots,
            "kv_slots_used": pool.num_used,
            "kv_slots_cached": cache.total_size,
            "kv_slots_protected": cache.protected_size,  # cached slots locked by requests
            "cache_hit_tokens": cache.hit_tokens,
            "cache_hit_rate": cache.hit_tokens / looked_up if looked_up else 0.0,
            "evicted_tokens": cache.evicted_tokens,
            "retractions": self.scheduler.num_retractions,
            "num_requests": c.num_requests,
            "num_finished": c.num_finished,
            "num_aborted": c.num_aborted,
            "prompt_tokens": c.prompt_tokens,
            "prefill_tokens_computed": c.prefill_tokens_computed,
            "decode_tokens_computed": c.decode_tokens_computed,
            "generated_tokens": c.generated_tokens,
            "forced_tokens": c.forced_tokens,
            "steps": c.steps,
        }

    def is_alive(self) -> bool:
        """Whether the engine thread is running (False after shutdown or a crash)."""
        return self._thread.is_alive() and not self._stopping

    def shutdown(self) -> None:
        """Abort what is running and stop the engine thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    # --- the engine thread ----------------------------------------------------------------
    def _loop(self) -> None:
        core = self.core
        while True:
            self._drain_inbox()
            if self._stopping:
                for rid in list(core.requests):
                    core.abort(rid)
                return
            if not self.scheduler.has_work():
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                progressed = core.step()
            except Exception as e:  # a bug, not bad input: fail what was running, keep serving
                log.exception("engine step failed")
                for req in list(core.requests.values()):
                    core.fail(req, RuntimeError(f"engine step failed: {e!r}"))
                continue
            if not progressed:  # e.g. waiting for a grammar to compile
                self._wake.wait(0.002)
                self._wake.clear()

    def _drain_inbox(self) -> None:
        while True:
            try:
                kind, item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "add":
                for req in item:
                    self.core.add(req)
            elif kind == "abort":
                self.core.abort(item)
            elif kind == "call":
                fn, future = item
                try:
                    future.set_result(fn(self.core))
                except Exception as e:
                    future.set_exception(e)


def _reset_after_warm_up(core: EngineCore) -> None:
    core.cache.flush()
    core.cache.hit_tokens = core.cache.miss_tokens = core.cache.evicted_tokens = 0
    core.scheduler.num_retractions = 0
    core.counters = type(core.counters)()


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30
