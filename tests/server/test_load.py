"""Load: 32 concurrent streaming clients x 4 requests each, mixed free and constrained, on the
tiny model. Every request completes with a valid result, no 5xx, and afterwards the KV pool is
back at its idle level (nothing held by requests, nothing locked; only reusable cache)."""

from __future__ import annotations

import asyncio
import json
import re

import jsonschema
import openai
import pytest

from tests.server.live_server import grammar_available
from tests.server.test_native_api import metric

CLIENTS, REQUESTS_PER_CLIENT, MAX_TOKENS = 32, 4, 12
# Finite on purpose: a random model under an open-ended schema (strings, or integers, where
# JSON Schema also admits 2.000...) may run to max_tokens without closing the object.
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}, "size": {"enum": ["s", "m", "l"]}},
          "required": ["ok", "size"], "additionalProperties": False}
REGEX = r"[a-z]{3}-[0-9]{2}"
CHOICES = ["red", "green", "blue"]


async def one_request(client: openai.AsyncOpenAI, model: str, kind: str, i: int) -> None:
    messages = [{"role": "user", "content": f"client request {i}: " + "word " * (i % 7)}]
    common = dict(model=model, max_tokens=MAX_TOKENS, stream=True, stream_options={"include_usage": True})
    if kind == "completion_regex":
        stream = await client.completions.create(prompt=f"Code {i}:", extra_body={"regex": REGEX}, **common)
    else:
        extra = {"free": {}, "json": {"response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": SCHEMA}}}, "choices": {"extra_body": {"choices": CHOICES}}}[kind]
        stream = await client.chat.completions.create(messages=messages, **extra, **common)
    text, finish, usage = "", None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += (c.text if kind == "completion_regex" else c.delta.content) or ""
            finish = c.finish_reason or finish
    assert usage is not None and 1 <= usage.completion_tokens <= MAX_TOKENS, (kind, usage)
    assert finish in ("stop", "length"), (kind, finish)
    if kind == "json":
        assert finish == "stop", text
        jsonschema.validate(json.loads(text), SCHEMA)
    elif kind == "completion_regex":
        assert finish == "stop" and re.fullmatch(REGEX, text), text
    elif kind == "choices":
        assert text in CHOICES, text


@pytest.mark.timeout(120)
def test_32_streaming_clients_x_4_requests(tiny_server):
    kinds = ["free", "json", "completion_regex", "choices"] if grammar_available() else ["free"]
    http = tiny_server.client()
    model = http.get("/v1/models").json()["data"][0]["id"]
    before = http.get("/metrics").text

    async def client_loop(c: int, client: openai.AsyncOpenAI) -> None:
        for r in range(REQUESTS_PER_CLIENT):
            await one_request(client, model, kinds[(c + r) % len(kinds)], c * REQUESTS_PER_CLIENT + r)

    async def main() -> None:
        async with openai.AsyncOpenAI(base_url=tiny_server.v1, api_key="x", max_retries=0, timeout=60) as client:
            await asyncio.gather(*(client_loop(c, client) for c in range(CLIENTS)))

    asyncio.run(main())
    tiny_server.wait_idle()
    after = http.get("/metrics").text
    done = sum(metric(after, f'tines:requests_total{{endpoint="{e}",finish_reason="{f}"}}')
               for e in ("chat", "completions") for f in ("stop", "length")
               if f'tines:requests_total{{endpoint="{e}",finish_reason="{f}"}}' in after)
    done_before = sum(metric(before, f'tines:requests_total{{endpoint="{e}",finish_reason="{f}"}}')
                      for e in ("chat", "completions") for f in ("stop", "length")
                      if f'tines:requests_total{{endpoint="{e}",finish_reason="{f}"}}' in before)
    assert done - done_before == CLIENTS * REQUESTS_PER_CLIENT
    assert not re.search(r'^tines:http_errors_total\{status="5', after, re.M)
    for name in ("tines:num_requests_running", "tines:num_requests_waiting", "tines:kv_slots_request_held",
                 "tines:kv_slots_locked"):
        assert metric(after, name) == 0, name
    assert metric(after, "tines:kv_slots_used") == metric(after, "tines:kv_slots_cached")
    assert http.post("/flush_cache").status_code == 200
    assert metric(http.get("/metrics").text, "tines:kv_slots_used") == 0
    http.close()
