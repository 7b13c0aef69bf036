"""`OpenAICompatible`: programs run on any server speaking OpenAI's API (vLLM, SGLang,
llama.cpp's server, `tines serve`, ...).

Everything goes through `/v1/completions` with the whole text as the prompt. The frontend
renders chat roles into text itself (through the model's markers), so the text *is* the
prompt; chat completions would re-render it through the server's template and could not
continue a half-written assistant message. Mapping:

  gen      -> prompt, max_tokens, temperature, top_p, n, stop, seed, penalties, logprobs;
              vLLM/SGLang extensions only when used: top_k, min_p, repetition_penalty,
              min_tokens, ignore_eos, stop_token_ids, skip_special_tokens
  regex    -> the `regex` extension field (tines, vLLM and SGLang servers accept it)
  choices  -> the `choices` extension field
  json_schema -> `response_format: {"type": "json_schema", "json_schema": {"schema": ...}}`
  select   -> `echo` + `logprobs` on the prompts text+choice (one request, one prompt per
              choice): the logprobs the server gives for the echoed prompt tokens. A server
              that does not return prompt logprobs raises NotImplementedError saying so.
  warm     -> a one-token completion of the text (servers with prefix caching keep it)

Role markers: an OpenAI server does not expose its template. Pass `chat_template="chatml"`
or a `{role: (begin, end)}` dict (and `default_system_prompt`); without one the backend asks
the server's `/model_info` (a tines server answers it) on first use, and raises ValueError
if there is none. Constraints the API cannot carry (`structural_tag`, `json_whitespace`,
`json_extra_keys`, `prompt_logprobs`) raise ValueError naming the field. Token healing (on by
default for `gen`) is not sent: OpenAI's API has no such field and refuses unknown ones, so
a prompt is continued as written (use RemoteBackend against a tines server to keep it). A
`json_schema` goes as `strict` (every property required, as OpenAI enforces).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from tines.backend import ScoreResult
from tines.http import APIStatusError, BadRequestError, JSONClient
from tines.openai_wire import StreamCollector, completion_body, echo_rows, parse_completion
from tines.runtime.outputs import RequestOutput, StreamDelta
from tines.runtime.sampling_params import SamplingParams

CHATML = {role: (f"<|im_start|>{role}\n", "<|im_end|>\n")
          for role in ("system", "user", "assistant")}


class OpenAICompatible:
    """The Backend protocol over an OpenAI-compatible server. `base_url` is what the openai
    client takes (".../v1"); `model` None uses the first model the server lists."""

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None, *,
                 chat_template: str | dict[str, tuple[str, str]] | None = None,
                 default_system_prompt: str | None = None, bos_token: str | None = None,
                 timeout: float = 600.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = JSONClient(self.base_url, api_key, timeout=timeout, transport=transport)
        self._model = model
        if chat_template == "chatml":
            chat_template = CHATML
        elif isinstance(chat_template, str):
            raise ValueError(f"OpenAICompatible: chat_template must be 'chatml' or a dict of "
                             f"role -> (begin, end), got {chat_template!r}")
        self._markers = dict(chat_template) if chat_template is not None else None
        self._system_prompt = default_system_prompt
        self._bos = bos_token
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAICompatible({self.base_url!r}, model={self._model!r})"

    def close(self) -> None:
        self.http.close()

    @property
    def model(self) -> str:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    listed = self.http.get("/models").get("data") or []
                    if not listed:
                        raise ValueError(f"{self.base_url}: the server lists no models; pass "
                                         f"model=...")
                    self._model = str(listed[0]["id"])
        return self._model

    # ---- chat ----------------------------------------------------------------------------

    def _chat(self) -> dict[str, tuple[str, str]]:
        if self._markers is None:
            with self._lock:
                if self._markers is None:
                    self._fetch_template()
        return self._markers  # type: ignore[return-value]

    def _fetch_template(self) -> None:
        root = self.base_url.removesuffix("/v1")
        try:
            info = self.http.get(root + "/model_info")
            template = info["chat_template"]
            markers = {r: tuple(p) for r, p in template["role_markers"].items() if p}
        except (APIStatusError, httpx.HTTPError, KeyError, TypeError) as e:
            raise ValueError(f"OpenAICompatible: {self.base_url} does not say how its model "
                             f"renders chat roles ({e}); pass chat_template='chatml' or "
                             f"chat_template={{role: (begin, end)}}") from None
        self._system_prompt = self._system_prompt or template.get("default_system_prompt")
        self._bos = self._bos if self._bos is not None else info.get("bos_token")
        self._markers = markers

    @property
    def default_system_prompt(self) -> str | None:
        self._chat()
        return self._system_prompt

    def role_markers(self, role: str) -> tuple[str, str]:
        markers = self._chat()
        if role not in markers:
            raise ValueError(f"OpenAICompatible: no chat markers for role {role!r}")
        return markers[role]

    # ---- requests ------------------------------------------------------------------------

    def generate(self, text: str, params: SamplingParams) -> RequestOutput:
        return parse_completion(self.http.post("/completions", self._body(text, params)))

    async def agenerate(self, text: str, params: SamplingParams) -> RequestOutput:
        return parse_completion(await self.http.apost("/completions", self._body(text, params)))

    def stream(self, text: str, params: SamplingParams) -> Iterator[StreamDelta]:
        collect = StreamCollector(params.n)
        for chunk in self.http.events("/completions", self._body(text, params, stream=True)):
            yield from collect.push(chunk)
        yield collect.final()

    async def astream(self, text: str, params: SamplingParams) -> AsyncIterator[StreamDelta]:
        collect = StreamCollector(params.n)
        async for chunk in self.http.aevents("/completions",
                                             self._body(text, params, stream=True)):
            for delta in collect.push(chunk):
                yield delta
        yield collect.final()

    def score(self, text: str, choices: list[str], unconditional: bool = False) -> ScoreResult:
        body = self._echo(text, choices)
        rows, num_prompt = self._rows(body, text, choices)
        uncond = None
        if unconditional:
            prefix, texts = self._unconditional(rows)
            uncond, _ = self._rows(self._echo(prefix, texts), prefix, texts)
        return _result(rows, uncond, num_prompt, body, len(choices))

    async def ascore(self, text: str, choices: list[str],
                     unconditional: bool = False) -> ScoreResult:
        body = await self._aecho(text, choices)
        rows, num_prompt = self._rows(body, text, choices)
        uncond = None
        if unconditional:
            prefix, texts = self._unconditional(rows)
            uncond, _ = self._rows(await self._aecho(prefix, texts), prefix, texts)
        return _result(rows, uncond, num_prompt, body, len(choices))

    def warm(self, text: str) -> None:
        if text:
            self.http.post("/completions", self._body(text, _ONE_TOKEN))

    async def awarm(self, text: str) -> None:
        if text:
            await self.http.apost("/completions", self._body(text, _ONE_TOKEN))

    def concat_and_append(self, trunk: str, branches: list[str]) -> None:
        self.warm(trunk + "".join(branches))

    async def aconcat_and_append(self, trunk: str, branches: list[str]) -> None:
        await self.awarm(trunk + "".join(branches))

    # ---- internals -----------------------------------------------------------------------

    def _body(self, text: str, params: SamplingParams, stream: bool = False) -> dict[str, Any]:
        return completion_body(self.model, text, params, stream)

    def _echo_body(self, prefix: str, choices: list[str]) -> dict[str, Any]:
        return {"model": self.model, "prompt": [prefix + c for c in choices], "max_tokens": 1,
                "temperature": 0.0, "echo": True, "logprobs": 0}

    def _echo(self, prefix: str, choices: list[str]) -> dict[str, Any]:
        try:
            return self.http.post("/completions", self._echo_body(prefix, choices))
        except BadRequestError as e:
            raise _refused_echo(self.base_url, e) from None

    async def _aecho(self, prefix: str, choices: list[str]) -> dict[str, Any]:
        try:
            return await self.http.apost("/completions", self._echo_body(prefix, choices))
        except BadRequestError as e:
            raise _refused_echo(self.base_url, e) from None

    def _rows(self, body: dict[str, Any], prefix: str, choices: list[str]) -> tuple[list, int]:
        try:
            return echo_rows(body, prefix, choices)
        except LookupError as e:
            raise _no_prompt_logprobs(self.base_url, str(e)) from None

    def _unconditional(self, rows: list[list[Any]]) -> tuple[str, list[str]]:
        """The text of the choices' own tokens again, after only the start-of-document token
        (`bos_token`, or the one a tines server's /model_info names; without it the first
        token has no context, and the logprob the server leaves out counts as 0.0)."""
        if self._bos is None and self._markers is None:
            try:
                self._chat()  # a tines server's /model_info names the BOS text too
            except ValueError:
                pass
        return self._bos or "", ["".join(t.token for t in row) for row in rows]


_ONE_TOKEN = SamplingParams(max_new_tokens=1, temperature=0.0)


def _no_prompt_logprobs(url: str, why: str) -> NotImplementedError:
    return NotImplementedError(
        f"OpenAICompatible: select needs the logprobs of prompt tokens (`echo: true` with "
        f"`logprobs` on /v1/completions), and {url} does not give them ({why}). Use a server "
        f"that does (vLLM does; a tines server does through RemoteBackend's /score)")


def _refused_echo(url: str, error: BadRequestError) -> Exception:
    """A refusal of the echo request: NotImplementedError when it is about echo or logprobs
    (the server cannot score), the error itself otherwise (e.g. a prompt too long)."""
    message = error.message.lower()
    return _no_prompt_logprobs(url, error.message) if "echo" in message or "logprob" in message \
        else error


def _result(rows: list, uncond: list | None, num_prompt: int, body: dict[str, Any],
            num_choices: int) -> ScoreResult:
    """`num_cached_tokens`: the server reports one figure for all the choices' prompts;
    this is its mean per prompt."""
    details = (body.get("usage") or {}).get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) // max(1, num_choices)
    return ScoreResult(rows, uncond, num_prompt_tokens=num_prompt, num_cached_tokens=cached)

