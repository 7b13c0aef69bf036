"""Budget-aware closing over HTTP: on by default on the native and OpenAI APIs (a JSON output
cut by max_tokens still parses, finish_reason "length"), off with `close_on_budget: false`.
The tiny random model never closes a string by itself, so a small budget always cuts it."""

from __future__ import annotations

import json

import pytest

SCHEMA = {"type": "object", "properties": {"note": {"type": "string"}},
          "required": ["note"], "additionalProperties": False}


def native(tiny_server, **params) -> list[tuple[str, str]]:
    body = {"text": ["a", "b", "c", "d"], "sampling_params": {
        "json_schema": SCHEMA, "temperature": 1.0, "max_new_tokens": 10, "seed": 3, **params}}
    r = tiny_server.client().post("/generate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return [(o["text"], o["meta_info"]["finish_reason"]["type"]) for o in r.json()]


def parses(text: str) -> bool:
    try:
        return isinstance(json.loads(text)["note"], str)
    except (json.JSONDecodeError, KeyError, TypeError):
        return False


def test_native_closes_by_default(tiny_server):
    outs = native(tiny_server)
    assert all(parses(t) for t, _ in outs), outs
    assert any(r == "length" for _, r in outs)


def test_native_close_on_budget_false_cuts_anywhere(tiny_server):
    outs = native(tiny_server, close_on_budget=False)
    assert not all(parses(t) for t, _ in outs), outs


@pytest.mark.parametrize("close", [None, False])
def test_openai_response_format_closes_unless_turned_off(tiny_server, close):
    client = tiny_server.openai()
    model = client.models.list().data[0].id
    extra = {} if close is None else {"close_on_budget": close}
    texts = []
    for seed in range(4):
        r = client.completions.create(
            model=model, prompt="x", max_tokens=10, temperature=1.0, seed=seed,
            extra_body={"response_format": {"type": "json_schema", "json_schema": {
                "name": "n", "schema": SCHEMA}}, **extra})
        texts.append(r.choices[0].text)
    if close is None:
        assert all(parses(t) for t in texts), texts
    else:
        assert not all(parses(t) for t in texts), texts


def test_dsl_openai_wire_sends_close_on_budget_only_when_off():
    from tines.openai_wire import completion_body
    from tines.runtime.sampling_params import SamplingParams

    on = completion_body("m", "x", SamplingParams(json_schema=SCHEMA))
    off = completion_body("m", "x", SamplingParams(json_schema=SCHEMA, close_on_budget=False))
    assert "close_on_budget" not in on
    assert off["close_on_budget"] is False
