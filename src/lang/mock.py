"""`MockBackend`: a scripted, deterministic backend for tests of programs.

It records every request (`requests`), answers `gen`s from a script (a list consumed in
order, or a function of the prompt), `select`s from scripted per-token logprobs, and models
a prefix cache over what it has seen, so tests can assert what was sent and shared.

Its "tokens" are characters (token id = `ord(c)`): `max_new_tokens` cuts a reply to that
many characters (finish "length"), a stop string cuts it before the stop (finish "stop").
A reply that breaks the gen's regex raises: a real backend could not have produced it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Union

from tines.backend import ScoreResult
from tines.runtime.outputs import Completion, RequestOutput, StreamDelta, TokenLogprob
from tines.runtime.sampling_params import SamplingParams

CHATML = {role: (f"<|im_start|>{role}\n", "<|im_end|>\n")
          for role in ("system", "user", "assistant")}

Reply = Union[str, list[str], RequestOutput]  # one completion, n completions, or everything
Scores = Union[dict[str, list[float]], tuple[dict[str, list[float]], dict[str, list[float]]],
               ScoreResult]  # per choice logprobs [, unconditional ones]


@dataclass(frozen=True, slots=True)
class MockRequest:
    kind: str  # "generate" | "stream" | "score" | "warm" | "concat_and_append"
    text: str
    params: SamplingParams | None = None
    choices: tuple[str, ...] = ()
    unconditional: bool = False
    branches: tuple[str, ...] = ()


class MockBackend:
    def __init__(self, replies: Iterable[Reply] | Callable[[str, SamplingParams], Reply] = (),
                 *, scores: Iterable[Scores] | Callable[[str, list[str], bool], Scores] = (),
                 markers: dict[str, tuple[str, str]] | None = None,
                 default_system_prompt: str | None = None, token_logprob: float = -1.0,
                 chunk_size: int = 4, latency: float = 0.0) -> None:
        self._replies = replies if callable(replies) else deque(replies)
        self._scores = scores if callable(scores) else deque(scores)
        self._markers = dict(markers or CHATML)
        self._system_prompt = default_system_prompt
        self.token_logprob, self.chunk_size, self.latency = token_logprob, chunk_size, latency
        self.requests: list[MockRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._seen: list[str] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()

    # ---- inspection ----------------------------------------------------------------------

    def requests_of(self, kind: str) -> list[MockRequest]:
        with self._lock:
            return [r for r in self.requests if r.kind == kind]

    # ---- chat ----------------------------------------------------------------------------

    @property
    def default_system_prompt(self) -> str | None:
        return self._system_prompt

    def role_markers(self, role: str) -> tuple[str, str]:
        if role not in self._markers:
            raise ValueError(f"MockBackend: no markers for role {role!r}")
        return self._markers[role]

    # ---- requests ------------------------------------------------------------------------

    def generate(self, text: str, params: SamplingParams) -> RequestOutput:
        with self._busy():
            return self._complete("generate", text, params)

    async def agenerate(self, text: str, params: SamplingParams) -> RequestOutput:
        async with self._abusy():
            return self._complete("generate", text, params)

    def stream(self, text: str, params: SamplingParams) -> Iterator[StreamDelta]:
        with self._busy():
            output = self._complete("stream", text, params)
        yield from self._deltas(output)

    async def astream(self, text: str, params: SamplingParams) -> AsyncIterator[StreamDelta]:
        async with self._abusy():
            output = self._complete("stream", text, params)
        for delta in self._deltas(output):
            await asyncio.sleep(0)  # let readers of the stream run between pieces
            yield delta

    def score(self, text: str, choices: list[str], unconditional: bool = False) -> ScoreResult:
        with self._busy():
            return self._score(text, choices, unconditional)

    async def ascore(self, text: str, choices: list[str],
                     unconditional: bool = False) -> ScoreResult:
        async with self._abusy():
            return self._score(text, choices, unconditional)

    def warm(self, text: str) -> None:
        self._record(MockRequest("warm", text), seen=text)

    async def awarm(self, text: str) -> None:
        self.warm(text)

    def concat_and_append(self, trunk: str, branches: list[str]) -> None:
        self._record(MockRequest("concat_and_append", trunk, branches=tuple(branches)))

    async def aconcat_and_append(self, trunk: str, branches: list[str]) -> None:
        self.concat_and_append(trunk, branches)

    # ---- internals -----------------------------------------------------------------------

    def _record(self, request: MockRequest, seen: str | None = None) -> int:
        """Log the request; return how much of its text the modelled cache already held."""
        with self._lock:
            self.requests.append(request)
            cached = max((len(os.path.commonprefix([request.text, s])) for s in self._seen),
                         default=0)
            if seen is not None:
                self._seen.append(seen)
            return cached

    def _next(self, script: Any, *args: Any) -> Any:
        if callable(script):
            return script(*args)
        with self._lock:
            if not script:
                raise LookupError(f"MockBackend: nothing scripted left for the request on "
                                  f"...{args[0][-60:]!r}")
            return script.popleft()

    def _complete(self, kind: str, text: str, params: SamplingParams) -> RequestOutput:
        reply = self._next(self._replies, text, params)
        if isinstance(reply, RequestOutput):
            self._record(MockRequest(kind, text, params), seen=text)
            return reply
        texts = [reply] * params.n if isinstance(reply, str) else list(reply)
        if len(texts) != params.n:
            raise ValueError(f"MockBackend: {len(texts)} scripted replies for n={params.n}")
        outputs = [self._completion(i, t, params) for i, t in enumerate(texts)]
        cached = self._record(MockRequest(kind, text, params), seen=text + outputs[0].text)
        return RequestOutput(f"mock-{next(self._ids)}", [ord(c) for c in text], outputs, cached)

    def _completion(self, index: int, reply: str, params: SamplingParams) -> Completion:
        text, finish, matched = reply, "stop", None
        cuts = [(reply.find(s), s) for s in params.stop if s in reply]
        if cuts:
            pos, matched = min(cuts)
            text = reply[:pos]
        if len(text) > params.max_new_tokens:
            text, finish, matched = text[: params.max_new_tokens], "length", None
        if finish == "stop" and params.regex is not None and not re.fullmatch(params.regex, text):
            raise ValueError(f"MockBackend: scripted reply {text!r} does not match the gen's "
                             f"regex {params.regex!r}")
        if finish == "stop" and params.json_schema is not None:
            json.loads(text)  # a constrained backend only ever returns JSON
        logprobs = [TokenLogprob(ord(c), c, self.token_logprob,
                                 [(ord(c), c, self.token_logprob)][: params.top_logprobs])
                    for c in text] if params.logprobs else None
        return Completion(index, text, [ord(c) for c in text], finish, matched, logprobs)

    def _deltas(self, output: RequestOutput) -> Iterator[StreamDelta]:
        first = output.outputs[0]
        size = max(1, self.chunk_size)
        pieces = [first.text[i:i + size] for i in range(0, len(first.text), size)] or [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield StreamDelta(output.request_id, 0, piece, [ord(c) for c in piece],
                              finish_reason=first.finish_reason if last else None,
                              output=output if last else None)

    def _score(self, text: str, choices: list[str], unconditional: bool) -> ScoreResult:
        spec = self._next(self._scores, text, choices, unconditional)
        cached = self._record(MockRequest("score", text, choices=tuple(choices),
                                          unconditional=unconditional), seen=text)
        if isinstance(spec, ScoreResult):
            return spec
        cond, uncond = spec if isinstance(spec, tuple) else (spec, None)
        if unconditional and uncond is None:
            raise LookupError("MockBackend: this select needs unconditional logprobs; script "
                              "a (conditional, unconditional) pair")
        missing = [c for c in choices if c not in cond]
        if missing:
            raise LookupError(f"MockBackend: no scripted logprobs for choices {missing}")
        return ScoreResult([_tokens(c, cond[c]) for c in choices],
                           [_tokens(c, uncond[c]) for c in choices] if unconditional else None,
                           num_prompt_tokens=len(text), num_cached_tokens=cached)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @contextmanager
    def _busy(self) -> Iterator[None]:
        self._enter()
        try:
            if self.latency:
                time.sleep(self.latency)
            yield
        finally:
            self._leave()

    @asynccontextmanager
    async def _abusy(self) -> AsyncIterator[None]:
        self._enter()
        try:
            await asyncio.sleep(self.latency)
            yield
        finally:
            self._leave()


def _tokens(choice: str, logprobs: list[float]) -> list[TokenLogprob]:
    return [TokenLogprob(i, f"{choice}#{i}", float(lp)) for i, lp in enumerate(logprobs)]
