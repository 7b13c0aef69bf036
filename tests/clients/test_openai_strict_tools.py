"""The official `openai` client against a live tines server: `strict` schemas, tool calls
streamed in OpenAI's delta shape, a call cut by `length`."""

from __future__ import annotations

import json

import pytest

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                             "days": {"type": "integer"}},
           "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
ASK = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def client(clients_server):
    return clients_server.openai()


def _json_format(strict: bool | None) -> dict:
    fmt = {"name": "weather", "schema": WEATHER}
    if strict is not None:
        fmt["strict"] = strict
    return {"type": "json_schema", "json_schema": fmt}


def test_strict_response_format_requires_every_property(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=ASK, max_tokens=64, temperature=0,
                                       response_format=_json_format(True))
    assert set(json.loads(r.choices[0].message.content)) == {"city", "days"}


@pytest.mark.parametrize("seed", range(3))
def test_non_strict_schema_takes_no_undeclared_keys(client, model_name, seed):
    r = client.chat.completions.create(model=model_name, messages=ASK, max_tokens=64, seed=seed,
                                       response_format=_json_format(None))
    value = json.loads(r.choices[0].message.content)
    assert "city" in value and set(value) <= {"city", "days"}


def test_strict_tool_requires_every_argument(client, model_name):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER,
                                               "strict": True}}]
    r = client.chat.completions.create(model=model_name, messages=ASK, tools=tools, tool_choice="required",
                                       max_tokens=96, temperature=0)
    [call] = r.choices[0].message.tool_calls[:1]
    assert set(json.loads(call.function.arguments)) == {"city", "days"}


def test_tool_call_streams_name_first_then_argument_fragments(client, model_name):
    stream = client.chat.completions.create(model=model_name, messages=ASK, tools=TOOLS, stream=True,
                                            tool_choice="required", max_tokens=96, temperature=0,
                                            parallel_tool_calls=False)
    deltas, finish = [], None
    for chunk in stream:
        choice = chunk.choices[0]
        deltas += choice.delta.tool_calls or []
        finish = choice.finish_reason or finish
    first, rest = deltas[0], deltas[1:]
    assert (first.index, first.type, first.function.name, first.function.arguments) == \
        (0, "function", "get_weather", "")
    assert first.id.startswith("call_")
    assert len(rest) > 1 and all(d.id is None and d.function.name is None for d in rest)
    assert "city" in json.loads("".join(d.function.arguments for d in rest))
    assert finish == "tool_calls"


def test_streamed_arguments_equal_the_whole_answer(client, model_name):
    kw = dict(model=model_name, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=96,
              temperature=0, parallel_tool_calls=False)
    whole = client.chat.completions.create(**kw).choices[0].message.tool_calls[0]
    pieces = [d.function.arguments for chunk in client.chat.completions.create(stream=True, **kw)
              for d in (chunk.choices[0].delta.tool_calls or []) if chunk.choices]
    assert json.loads("".join(pieces)) == json.loads(whole.function.arguments)


LONG = {"type": "object", "properties": {"text": {"type": "string", "minLength": 200}},
        "required": ["text"], "additionalProperties": False}


def test_call_cut_by_length_is_still_a_tool_call(client, model_name):
    tools = [{"type": "function", "function": {"name": "write", "parameters": LONG}}]
    r = client.chat.completions.create(model=model_name, messages=ASK, tools=tools, tool_choice="required",
                                       max_tokens=30, temperature=0,
                                       extra_body={"close_on_budget": False})
    choice = r.choices[0]
    assert choice.finish_reason == "length" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.function.name == "write" and call.function.arguments.startswith('{"text":')


def test_call_cut_by_length_streams_as_a_tool_call(client, model_name):
    tools = [{"type": "function", "function": {"name": "write", "parameters": LONG}}]
    stream = client.chat.completions.create(model=model_name, messages=ASK, tools=tools, stream=True,
                                            tool_choice="required", max_tokens=30, temperature=0,
                                            extra_body={"close_on_budget": False})
    chunks = [c.choices[0] for c in stream if c.choices]
    calls = [d for c in chunks for d in (c.delta.tool_calls or [])]
    assert calls[0].function.name == "write" and chunks[-1].finish_reason == "length"
    assert not any(c.delta.content for c in chunks)
