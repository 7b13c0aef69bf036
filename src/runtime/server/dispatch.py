"""The one path from an HTTP request to the engine and back.

`Dispatcher.encode` checks a prompt (400 when it cannot fit the context; routes call it on a
worker thread); `start_all` claims the request's id and submits its prompts off the event loop
(raising `APIError` 400 / 409 / 503 before any response byte is sent, so streams can
still fail with a proper status); `Job.events()` yields the engine's deltas and, however it ends
(finished, client gone, server stopping), aborts the request if it still runs, observes its
timings and writes the one log line per request. Every request is streamed from the engine,
even when the client asked for one JSON body, so time-to-first-token is known for all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from fastapi import Request

from ..engine.engine import QueueFullError
from ..outputs import RequestOutput, StreamDelta
from ..sampling_params import SamplingParams
from .errors import APIError, bad_value
from .limits import derived_id
from .metrics import ServerMetrics

if TYPE_CHECKING:
    from ..engine.engine import Engine
    from ..engine.handle import RequestHandle

log = logging.getLogger("tines.server")
T = TypeVar("T")


class Job:
    """One engine request in flight. Iterate `events()` once (or await `result()`)."""

    def __init__(self, dispatcher: Dispatcher, handle: RequestHandle, group: str, endpoint: str,
                 num_prompt: int, arrival: float):
        self.dispatcher, self.handle, self.group, self.endpoint = dispatcher, handle, group, endpoint
        self.request_id = handle.request_id
        self.num_prompt, self.arrival = num_prompt, arrival
        self.first: float | None = None
        self.output: RequestOutput | None = None
        self._failed = False  # the engine already ended it with an error

    async def events(self) -> AsyncIterator[StreamDelta]:
        try:
            async for delta in self.handle:
                if self.first is None and (delta.text or delta.output is not None):
                    self.first = time.perf_counter()
                if delta.output is not None:
                    self.output = delta.output
                yield delta
        except ValueError as e:  # a constraint that failed to compile after submit returned
            self._failed = True
            raise bad_value(e) from None
        except RecursionError:  # a constraint nested too deeply for the compiler
            self._failed = True
            raise APIError(400, "the output constraint nests too deeply to compile") from None
        except BaseException:
            self._failed = self.handle._done
            raise
        finally:
            self.close()

    async def result(self) -> RequestOutput:
        async for _ in self.events():
            pass
        assert self.output is not None  # the last event always carries it
        return self.output

    def close(self) -> None:
        """Done with this request: abort it if it still runs (the consumer left, or never
        started reading), and account for it once. Idempotent."""
        if self.output is None and not self._failed:
            self.dispatcher.engine.abort(self.request_id)  # frees its KV slots and locks now
        self.dispatcher.finished(self)


async def results(jobs: list[Job]) -> list[RequestOutput]:
    """Every job's output; however this ends, no job is left running."""
    try:
        return [await job.result() for job in jobs]
    finally:
        for job in jobs:
            job.close()


class Dispatcher:
    def __init__(self, engine: Engine, metrics: ServerMetrics):
        self.engine, self.metrics = engine, metrics
        self.groups: dict[str, list[str]] = {}  # client-visible id -> engine request ids running

    def encode(self, prompt: str | list[int], param: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of a prompt; 400 for ids outside the vocabulary, an empty prompt or one
        that leaves no room in the context (code `context_length_exceeded`, as OpenAI and
        vLLM answer it)."""
        try:
            if isinstance(prompt, str):
                # the batch call releases the GIL (plain `encode` holds it throughout), so the
                # event loop keeps running while a long text is tokenized on a worker thread
                ids = self.engine.tokenizer.encode_batch([prompt], add_special_tokens)[0]
            else:
                ids = self.engine.encode_prompt(prompt)
        except (ValueError, TypeError) as e:
            head, sep, rest = str(e).partition(": ")  # the engine's own field name, replaced
            message = rest if sep and head in ("input_ids", "prompt", "text") else str(e)
            raise APIError(400, f"{param}: {message}", param) from None
        if not ids:
            raise APIError(400, f"{param}: empty (at least one token is needed)", param)
        limit = self.engine.max_model_len
        if len(ids) >= limit:
            raise APIError(400, f"{param}: {len(ids)} tokens does not fit the model's context of "
                           f"{limit} tokens (at most {limit - 1} prompt tokens)", param,
                           "context_length_exceeded")
        return ids

    def fit(self, params: SamplingParams, requested: int | None, num_prompt: int) -> SamplingParams:
        """`params` with max_new_tokens = what was asked, clipped to the room left in the context
        and the KV pool (everything that room allows when nothing was asked)."""
        room = max(1, min(self.engine.max_model_len, self.engine.pool.num_slots) - num_prompt)
        n = room if requested is None else min(requested, room)
        return replace(params, max_new_tokens=n, min_new_tokens=min(params.min_new_tokens, n))

    def reserve(self, group: str, param: str | None = None) -> None:
        """Claim a client-visible id for a request about to be submitted; 409 while a request
        with that id is live. Runs on the event loop, so two requests cannot both claim it."""
        if group in self.groups:
            raise APIError(409, f"{param or 'id'}: a request with this id is already running",
                           param, "duplicate_request_id")
        self.groups[group] = []

    def release(self, group: str) -> None:
        """Give back a claimed id that got no running request."""
        if not self.groups.get(group, True):
            del self.groups[group]

    async def start_all(self, prompts: list[list[int]], params: list[SamplingParams], *,
                        group: str, endpoint: str, rename: dict[str, str] | None = None,
                        constraint_param: str | None = None, arrival: float | None = None,
                        id_param: str | None = None, prefill_only: bool = False,
                        logprob_starts: list[int | None] | None = None) -> list[Job]:
        """Submit several requests as one group: one prompt runs under the id `group`, several
        as `group~0`, `group~1`, ... (ids no client may choose). The submit (grammar
        compilation included) runs on a worker thread, so the event loop keeps serving.
        When one fails to submit, those already submitted are aborted. Raises APIError: 409
        for a live `group`, 503 (+ Retry-After) when the queue is full, 400 for bad
        parameters or constraints (naming `constraint_param` when the message names no
        field) or a prompt too long. `prefill_only` / `logprob_starts` (one per
        prompt) are Engine.submit's."""
        self.reserve(group, id_param)
        loop = asyncio.get_running_loop()
        rids = [group] if len(prompts) == 1 else [derived_id(group, i) for i in range(len(prompts))]
        starts = logprob_starts or [None] * len(prompts)
        work = loop.run_in_executor(None, self._submit, prompts, params, rids, loop, rename,
                                    constraint_param, prefill_only, starts)
        try:
            handles = await asyncio.shield(work)
        except asyncio.CancelledError:  # the client left: abort what the thread still submits
            work.add_done_callback(self._abort_submitted)
            self.release(group)
            raise
        except BaseException:
            self.release(group)
            raise
        self.groups[group].extend(h.request_id for h in handles)
        t0 = arrival or time.perf_counter()
        return [Job(self, h, group, endpoint, len(ids), t0) for h, ids in zip(handles, prompts)]

    def _submit(self, prompts: list[list[int]], params: list[SamplingParams], rids: list[str],
                loop: asyncio.AbstractEventLoop, rename: dict[str, str] | None,
                constraint_param: str | None, prefill_only: bool = False,
                starts: list[int | None] | None = None) -> list[RequestHandle]:
        """On a worker thread: submit every prompt, or none (aborting those already queued)."""
        handles: list[RequestHandle] = []
        try:
            for ids, p, rid, start in zip(prompts, params, rids, starts or [None] * len(prompts)):
                handles.append(self.engine.submit(ids, p, request_id=rid, stream=True, loop=loop,
                                                  prefill_only=prefill_only, logprob_start=start))
        except BaseException as e:
            for h in handles:
                self.engine.abort(h.request_id)
            raise _submit_error(e, rename, constraint_param) from None
        return handles

    def _abort_submitted(self, work: asyncio.Future) -> None:
        if not work.cancelled() and work.exception() is None:
            for h in work.result():
                self.engine.abort(h.request_id)

    def abort(self, request_id: str) -> bool:
        """Abort a running request by the id its client saw (or an engine request id)."""
        ids = self.groups.get(request_id) or [
            rid for rids in self.groups.values() for rid in rids if rid == request_id]
        for rid in ids:
            self.engine.abort(rid)
        return bool(ids)

    def abort_all(self) -> int:
        """Abort every running request (shutdown); returns how many."""
        ids = [rid for rids in self.groups.values() for rid in rids]
        for rid in ids:
            self.engine.abort(rid)
        return len(ids)

    def finished(self, job: Job) -> None:
        if job.request_id not in self.groups.get(job.group, ()):
            return  # already accounted for
        rids = self.groups[job.group]
        rids.remove(job.request_id)
        if not rids:
            del self.groups[job.group]
        now = time.perf_counter()
        out = job.output
        # without an output the client left (or the request failed): its counts are unknown
        reason = ",".join(sorted({c.finish_reason for c in out.outputs})) if out else "abort"
        num_out = out.num_completion_tokens if out else 0
        ttft = job.first - job.arrival if job.first is not None else None
        decode = now - job.first if job.first is not None and out and len(out.outputs) == 1 else None
        self.metrics.observe(job.endpoint, reason, ttft, now - job.arrival, num_out, decode)
        self.metrics.drain_engine()
        log.info("%s %s in=%d cached=%s out=%s ttft=%s time=%.3fs finish=%s", job.request_id,
                 job.endpoint, job.num_prompt, out.num_cached_tokens if out else "-",
                 num_out if out else "-", f"{ttft:.3f}s" if ttft is not None else "-",
                 now - job.arrival, reason)


def _submit_error(e: BaseException, rename: dict[str, str] | None,
                  constraint_param: str | None) -> BaseException:
    """Engine.submit's refusals as API errors: 503 (+ Retry-After) for a full queue, 400 for
    a prompt too long (`context_length_exceeded`) or a bad value (a schema too deep to
    compile included)."""
    if isinstance(e, QueueFullError):
        return APIError(503, str(e), code="queue_full", headers={"Retry-After": "1"})
    if isinstance(e, RecursionError):
        return APIError(400, f"{constraint_param or 'sampling_params'}: nests too deeply to "
                        "compile", constraint_param)
    if isinstance(e, ValueError):
        if "does not fit the context" in str(e):
            return APIError(400, str(e), "prompt", "context_length_exceeded")
        return bad_value(e, rename, constraint_param)
    return e


async def until_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """Await `work` unless the client disconnects first; then `work` is cancelled (which
    aborts its engine requests) and None is returned (nobody is left to answer)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


async def _wait_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
