"""Engine: the public face of the runtime. Loads a model and runs EngineCore on its own thread.

Callers on any thread submit requests and block on results (`generate`, `stream`, `score`);
asyncio callers await them (`agenerate`, `astream`, `ascore`) without a thread per request.
Prompts are tokenized and validated on the caller's thread, so bad input fails there, at once.

The engine thread alone owns the engine's state (core, scheduler, pool, cache, model): it builds
them (`build_core`), steps them, and after each step and each inbox drain publishes an
immutable stats snapshot. Callers' threads see only that snapshot, the inbox, their request
handles, the admission counter, and facts fixed at build (tokenizer, chat template, model
config, context length, pool size).
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
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..models.registry import resolve_model
from ..outputs import RequestOutput, StreamDelta
from ..sampling_params import SamplingParams
from .admission import Admission, QueueFullError
from .build import build_core
from .config import EngineConfig
from .core import EngineCore
from .handle import EngineFatalError, RequestError, RequestHandle
from .malloc_tuning import release_freed_heap
from .intake import RequestIntake
from .request import Request
from .score_requests import ScoringEntryPoints
from .scoring import Prompt, start_token
from .stats import process_rss_bytes, snapshot

__all__ = ["Engine", "Prompt", "QueueFullError"]

log = logging.getLogger("tines.engine")


_live_engines: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _shutdown_live_engines() -> None:
    # Stop engine threads before the interpreter tears torch down under them.
    for engine in list(_live_engines):
        engine.shutdown()


class Engine(ScoringEntryPoints):
    def __init__(self, model: str | Path | None = None, config: EngineConfig | None = None,
                 **overrides: Any):
        cfg = config or EngineConfig()
        if model is not None:
            overrides["model"] = str(model)
        self.cfg = cfg = replace(cfg, **overrides)
        self.model_path = resolve_model(cfg.model)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._ids = itertools.count()
        self._stopping = False
        self._fatal: EngineFatalError | None = None
        self._admission = Admission(cfg.max_queue)
        self._stats: Mapping[str, Any] = MappingProxyType({})
        # Every torch op of the engine, loading included, runs on its own thread: OpenMP keeps
        # one worker team per thread that runs parallel regions, and a second team on a
        # two-core machine made each op up to 2x slower (measured: one decode token 28 ms
        # instead of 12 when the model was loaded on the caller's thread).
        ready: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="tines-engine",
                                        daemon=True)
        self._thread.start()
        built = ready.get()
        if isinstance(built, BaseException):
            raise built
        # Fixed at build, safe to read on any thread.
        self.tokenizer = built.tokenizer
        self.chat_template = built.chat_template
        self.model_config = built.model_config
        self.max_model_len = built.max_model_len
        self.pool = built.pool  # KVPoolInfo: num_slots, nbytes
        self.tp_group = built.tp_group
        self.start_token_id = start_token(built.tokenizer)
        self._intake = RequestIntake(built.tokenizer, built.vocab, built.max_model_len,
                                     built.pool.num_slots, cfg.grammar_backend)
        self._lora_names = frozenset(name for name, _ in cfg.lora_adapters)
        _live_engines.add(self)

    def _run(self, ready: queue.SimpleQueue) -> None:
        try:
            built = build_core(self.cfg, self.model_path, self._admission)
        except BaseException as e:  # delivered to the constructor, which raises it
            ready.put(e)
            return
        self._publish(built.core)
        ready.put(built._replace(core=None))
        self._loop(built.core)

    # --- submitting -----------------------------------------------------------------------
    def submit(self, prompt: Prompt, params: SamplingParams | None = None, *,
               request_id: str | None = None, stream: bool = False, prefill_only: bool = False,
               logprob_start: int | None = None,
               loop: asyncio.AbstractEventLoop | None = None) -> RequestHandle:
        """Queue one request; returns its handle at once. Raises ValueError for bad input and
        QueueFullError when the queue is full."""
        handle, req = self._request(prompt, params, request_id, stream, prefill_only,
                                    logprob_start, loop)
        self._admission.enter(1)
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
        self._admission.enter(len(made))
        self._send([req for _, req in made])
        return [handle for handle, _ in made]

    def _request(self, prompt: Prompt, params: SamplingParams | None, request_id: str | None,
                 stream: bool, prefill_only: bool, logprob_start: int | None,
                 loop: asyncio.AbstractEventLoop | None) -> tuple[RequestHandle, Request]:
        if self._fatal is not None:
            raise RequestError(f"engine stopped: {self._fatal}")
        params = params or SamplingParams()
        ids = self._intake.encode_prompt(prompt)
        self._intake.validate(ids, params)
        if params.lora is not None and params.lora not in self._lora_names:
            raise ValueError(f"lora: unknown adapter {params.lora!r} (loaded: "
                             f"{sorted(self._lora_names)})")
        if params.prompt_logprobs and logprob_start is None:
            logprob_start = 1  # every prompt token after the first (which has no context)
        handle = RequestHandle(request_id or f"req-{next(self._ids)}-{uuid.uuid4().hex[:8]}", loop)
        req = Request(handle.request_id, ids, params, handle.push, stream, prefill_only,
                      logprob_start, grammar_future=self._intake.compile_grammar(params))
        return handle, req

    def _send(self, reqs: list[Request]) -> None:
        self._inbox.put(("add", reqs))
        self._wake.set()

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt (text or ids); ValueError for bad input."""
        return self._intake.encode_prompt(prompt)

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

    def warm(self, prompt: Prompt) -> int:
        """Compute a prompt into the radix cache (a fork trunk, a batch's shared prefix) and
        return how many of its tokens were already cached. Without a radix cache there is
        nothing to keep it in: the prompt is only checked, not computed."""
        if self.cfg.disable_radix_cache:
            self._intake.validate(self.encode_prompt(prompt), SamplingParams(max_new_tokens=1))
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

    @property
    def lora_adapters(self) -> list[str]:
        """The names of the LoRA adapters requests may choose (`SamplingParams.lora`)."""
        return sorted(self._lora_names)

    def load_lora(self, name: str, path: str | Path) -> None:
        """Load a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) as
        `name`, between steps; ValueError naming what the model cannot apply."""
        self.call(lambda core: core.runner.load_lora(name, str(path)))
        self._lora_names = self._lora_names | {name}

    def unload_lora(self, name: str) -> None:
        """Drop an adapter no running request uses (ValueError otherwise). Its cached
        prefixes stay until evicted; no later request can reach them."""
        self.call(lambda core: core.unload_lora(name))
        self._lora_names = self._lora_names - {name}

    def flush_cache(self) -> bool:
        """Drop the radix cache (refused while requests run). Returns whether it flushed."""
        return self.call(lambda core: core.scheduler.cache.flush())

    def call(self, fn: Callable[[EngineCore], Any]) -> Any:
        """Run fn(core) on the engine thread between steps and return its result."""
        future: Future = Future()
        self._inbox.put(("call", (fn, future)))
        self._wake.set()
        return future.result()

    def stats(self) -> dict[str, Any]:
        """Load, memory and cache figures: the snapshot the engine thread published after its
        last step or inbox drain (a request whose result you hold is counted in it), plus
        this process's resident memory."""
        stats = dict(self._stats)
        stats["rss_bytes"] = process_rss_bytes()
        return stats

    @property
    def fatal_error(self) -> EngineFatalError | None:
        """Why the engine stopped by itself (a tensor-parallel rank died), or None."""
        return self._fatal

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
    def _publish(self, core: EngineCore) -> None:
        """Publish the stats, then hand out the events they count (engine thread)."""
        self._stats = snapshot(core)
        core.deliver()

    def _loop(self, core: EngineCore) -> None:
        busy = False
        while True:
            self._drain_inbox(core)
            if self._stopping:
                for req in list(core.requests.values()):
                    if self._fatal is None:
                        core.abort(req.request_id)
                    else:
                        core.fail(req, RequestError(f"engine stopped: {self._fatal}"))
                self._publish(core)
                core.runner.close()
                core.mask_prefetch.close()
                return
            if not core.scheduler.has_work():
                if busy:  # going idle: hand the step buffers kept for reuse back to the OS
                    release_freed_heap()
                    busy = False
                self._wake.wait()
                self._wake.clear()
                continue
            busy = True
            try:
                progressed = core.step()
            except EngineFatalError as e:  # nothing can run any more: fail everything, stop
                log.error("engine stopped: %s", e)
                self._fatal = e
                self._stopping = True
                for req in list(core.requests.values()):
                    core.fail(req, RequestError(f"engine stopped: {e}"))
                progressed = True
            except Exception as e:  # the shared forward pass: fail what was running, keep serving
                log.exception("engine step failed")
                for req in list(core.requests.values()):
                    core.fail(req, RequestError(f"engine step failed: {e!r}"))
                progressed = True
            self._publish(core)
            if not progressed:  # e.g. waiting for a grammar to compile
                self._wake.wait(0.002)
                self._wake.clear()

    def _drain_inbox(self, core: EngineCore) -> None:
        drained = False
        while True:
            try:
                kind, item = self._inbox.get_nowait()
            except queue.Empty:
                break
            drained = True
            if kind == "add":
                for req in item:
                    core.add(req)
            elif kind == "abort":
                core.abort(item)
            elif kind == "call":
                fn, future = item
                try:
                    result = fn(core)
                except Exception as e:
                    self._publish(core)
                    future.set_exception(e)
                else:
                    self._publish(core)
                    future.set_result(result)
        if drained:
            self._publish(core)
