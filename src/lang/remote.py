"""`RemoteBackend`: programs run on a `tines serve` server through its native API.

Every request carries the whole text so far; the server's radix cache finds what it has
already computed, so a remote program shares prefixes exactly as an in-process one does.
Endpoints used (shapes in the server's `native.py` / `admin.py`):

  GET  /model_info   role markers and default system prompt (fetched once, on first use)
  POST /generate     {"text", "sampling_params": SamplingParams fields, "stream"}: one
                     object {"text", "output_ids", "index", "meta_info"} (a list for n > 1);
                     streamed as SSE events with the new `delta` of completion `index`
  POST /score        {"text", "choices", "unconditional"}: token logprobs of each choice
                     after the text, which is computed once
  POST /warm         {"text"}: prefill into the radix cache. A server without it gets a
                     one-token /generate instead (the prompt is computed and cached all the
                     same; the token is thrown away)

On a server with several models (`tines serve --model A --model B`), `RemoteBackend(url,
model="B")` sends `"model": "B"` in every POST body and `?model=B` on GETs; without `model` the
server's first model answers.

Constraints (regex, json_schema, choices, structural_tag) travel inside `sampling_params`
and are enforced by the server's engine exactly as in-process; one it refuses raises
`BadRequestError` (a ValueError) with the server's message.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx

from tines.backend import ScoreResult
from tines.http import APIStatusError, JSONClient
from tines.native_wire import StreamCollector, parse_generate, parse_score, wire_params
from tines.runtime.outputs import RequestOutput, StreamDelta
from tines.runtime.sampling_params import SamplingParams


class RemoteBackend:
    """The Backend protocol over a tines server at `url` (e.g. "http://127.0.0.1:30000").
    `model` picks one of the server's models by name (None: its first). `api_key` is sent as
    `Authorization: Bearer ...`. Thread-safe; async calls use one keep-alive client per event
    loop."""

    def __init__(self, url: str, api_key: str | None = None, *, model: str | None = None,
                 timeout: float = 600.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.http = JSONClient(self.url, api_key, timeout=timeout, transport=transport)
        self._info: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._has_warm = True  # until the server answers 404

    def __repr__(self) -> str:
        model = "" if self.model is None else f", model={self.model!r}"
        return f"RemoteBackend({self.url!r}{model})"

    def close(self) -> None:
        self.http.close()

    # ---- chat ----------------------------------------------------------------------------

    @property
    def model_info(self) -> dict[str, Any]:
        """The server's /model_info, fetched once."""
        if self._info is None:
            with self._lock:
                if self._info is None:
                    query = "" if self.model is None else "?" + urlencode({"model": self.model})
                    self._info = self.http.get("/model_info" + query)
        return self._info

    @property
    def default_system_prompt(self) -> str | None:
        return (self.model_info.get("chat_template") or {}).get("default_system_prompt")

    def role_markers(self, role: str) -> tuple[str, str]:
        markers = (self.model_info.get("chat_template") or {}).get("role_markers") or {}
        pair = markers.get(role)
        if not pair:
            raise ValueError(f"{self.url}: the model's chat template has no markers for role "
                             f"{role!r}")
        return pair[0], pair[1]

    # ---- requests ------------------------------------------------------------------------

    def generate(self, text: str, params: SamplingParams) -> RequestOutput:
        return parse_generate(self.http.post("/generate", self._body(text, params)))

    async def agenerate(self, text: str, params: SamplingParams) -> RequestOutput:
        return parse_generate(await self.http.apost("/generate", self._body(text, params)))

    def stream(self, text: str, params: SamplingParams) -> Iterator[StreamDelta]:
        collect = StreamCollector()
        for event in self.http.events("/generate", self._body(text, params, stream=True)):
            yield from collect.push(event)
        yield collect.final()

    async def astream(self, text: str, params: SamplingParams) -> AsyncIterator[StreamDelta]:
        collect = StreamCollector()
        async for event in self.http.aevents("/generate", self._body(text, params, stream=True)):
            for delta in collect.push(event):
                yield delta
        yield collect.final()

    def score(self, text: str, choices: list[str], unconditional: bool = False) -> ScoreResult:
        body = self._with_model({"text": self._text(text), "choices": choices,
                                 "unconditional": unconditional})
        try:
            return parse_score(self.http.post("/score", body))
        except APIStatusError as e:
            raise self._no_score(e) from None

    async def ascore(self, text: str, choices: list[str],
                     unconditional: bool = False) -> ScoreResult:
        body = self._with_model({"text": self._text(text), "choices": choices,
                                 "unconditional": unconditional})
        try:
            return parse_score(await self.http.apost("/score", body))
        except APIStatusError as e:
            raise self._no_score(e) from None

    def warm(self, text: str) -> None:
        if not text:
            return
        if self._has_warm:
            try:
                self.http.post("/warm", self._with_model({"text": text}))
                return
            except APIStatusError as e:
                if e.status != 404:
                    raise
                self._has_warm = False
        self.generate(text, _ONE_TOKEN)

    async def awarm(self, text: str) -> None:
        if not text:
            return
        if self._has_warm:
            try:
                await self.http.apost("/warm", self._with_model({"text": text}))
                return
            except APIStatusError as e:
                if e.status != 404:
                    raise
                self._has_warm = False
        await self.agenerate(text, _ONE_TOKEN)

    def concat_and_append(self, trunk: str, branches: list[str]) -> None:
        """Prefill the joined text on the server now (see LocalBackend for what is reused)."""
        self.warm(trunk + "".join(branches))

    async def aconcat_and_append(self, trunk: str, branches: list[str]) -> None:
        await self.awarm(trunk + "".join(branches))

    # ---- internals -----------------------------------------------------------------------

    def _text(self, text: str) -> str:
        """An empty text becomes the model's start-of-document token (it needs one input)."""
        return text or self.model_info.get("bos_token") or self.model_info.get("eos_token") or ""

    def _no_score(self, error: APIStatusError) -> Exception:
        if error.status == 404:
            return NotImplementedError(f"{self.url} has no /score endpoint, which select needs "
                                       f"(a tines server older than its native scoring API?)")
        return error

    def _body(self, text: str, params: SamplingParams, stream: bool = False) -> dict[str, Any]:
        body = {"text": self._text(text), "sampling_params": wire_params(params), "stream": stream}
        if params.logprobs or params.top_logprobs:  # SGLang's top-level spelling
            body.update(return_logprob=True, top_logprobs_num=params.top_logprobs)
        return self._with_model(body)

    def _with_model(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body, naming the server model this backend talks to (when one was chosen)."""
        if self.model is not None:
            body["model"] = self.model
        return body


_ONE_TOKEN = SamplingParams(max_new_tokens=1, temperature=0.0)
