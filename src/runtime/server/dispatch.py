"""The one path from an HTTP request to the engine and back.

`Dispatcher.encode` checks a prompt (413 when it cannot fit the context); `start` submits it
(raising `APIError` 400 / 413 / 503 before any response byte is sent, so streams can still
fail with a proper status); `Job.events()` yields the engine's deltas and, however it ends
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
        """Token ids of a prompt; 400 for ids outside the vocabulary or an empty prompt, 413
        for a prompt that leaves no room in the context."""
        try:
            if isinstance(prompt, str) and not add_special_tokens:
                ids = self.engine.tokenizer.encode(prompt, add_special_tokens=False)
            else:
                ids = self.engine.encode_prompt(prompt)
        except ValueError as e:
            raise APIError(400, f"{param}: {e}", param) from None
        if not ids:
            raise APIError(400, f"{param}: empty (at least one token is needed)", param)
        limit = self.engine.max_model_len
        if len(ids) >= limit:
            raise APIError(413, f"{param}: {len(ids)} tokens does not fit the model's context of "
                           f"{limit} tokens (at most {limit - 1} prompt tokens)", param,
                           "context_length_exceeded")
        return ids

    def fit(self, params: SamplingParams, requested: int | None, num_prompt: int) -> SamplingParams:
        """`params` with max_new_tokens = what was asked, clipped to the room left in the context
        and the KV pool (everything that room allows when nothing was asked)."""
        room = max(1, min(self.engine.max_model_len, self.engine.pool.num_slots) - num_prompt)
        n = room if requested is None else min(requested, room)
        return replace(params, max_new_tokens=n, min_new_tokens=min(params.min_new_tokens, n))

    def start(self, ids: list[int], params: SamplingParams, *, group: str, endpoint: str,
              request_id: str | None = None, rename: dict[str, str] | None = None,
              constraint_param: str | None = None, arrival: float | None = None) -> Job:
        """Submit one request. Raises APIError: 503 (+ Retry-After) when the queue is full,
        400 for bad parameters or constraints (naming `constraint_param` when the message
        does not name a field), 413 for a prompt too long."""
        loop = asyncio.get_running_loop()
        try:
            handle = self.engine.submit(ids, params, request_id=request_id or group, stream=True,
                                        loop=loop)
        except QueueFullError as e:
            raise APIError(503, str(e), code="queue_full", headers={"Retry-After": "1"}) from None
        except ValueError as e:
            if "does not fit the context" in str(e):
                raise APIError(413, str(e), "prompt", "context_length_exceeded") from None
            raise bad_value(e, rename, constraint_param) from None
        self.groups.setdefault(group, []).append(handle.request_id)
        return Job(self, handle, group, endpoint, len(ids), arrival or time.perf_counter())

    def start_all(self, prompts: list[list[int]], params: list[SamplingParams], *, group: str,
                  endpoint: str, **kw) -> list[Job]:
        """Submit several requests as one group (ids `group-0`, `group-1`, ...); when one
        fails to submit, the ones already submitted are aborted."""
        if len(prompts) == 1:
            return [self.start(prompts[0], params[0], group=group, endpoint=endpoint, **kw)]
        jobs: list[Job] = []
        try:
            for i, (ids, p) in enumerate(zip(prompts, params)):
                jobs.append(self.start(ids, p, group=group, endpoint=endpoint,
                                       request_id=f"{group}-{i}", **kw))
        except APIError:
            for job in jobs:
                job.close()
            raise
        return jobs

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
