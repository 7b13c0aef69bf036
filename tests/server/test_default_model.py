"""The OpenAI API on the real default model (SmolLM2-135M-Instruct), where answers mean
something: a factual chat, streaming, JSON-schema output validated with jsonschema, and
function calling with required / named / auto tool choice and a multi-turn tool conversation.
Few and short: the model decodes at ~20 tokens/s on this machine."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.server.live_server import needs_grammar, needs_tool_grammar

pytestmark = pytest.mark.model

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                            "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"], "additionalProperties": False}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "Current time in a timezone",
                                      "parameters": {"type": "object", "properties": {
                                          "timezone": {"type": "string", "maxLength": 30}},
                                          "required": ["timezone"], "additionalProperties": False}}},
]
ASK_WEATHER = [{"role": "user", "content": "What is the weather like in Paris right now?"}]


@pytest.fixture(scope="module")
def client(default_server):
    return default_server.openai()


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def test_chat_answers_and_streams_the_same_text(client, model):
    kw = dict(model=model, messages=[{"role": "user", "content": "What is the capital of France?"}],
              max_tokens=16, temperature=0)
    whole = client.chat.completions.create(**kw)
    assert "Paris" in whole.choices[0].message.content
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens >= whole.usage.prompt_tokens - 1


@needs_grammar
def test_response_format_json_schema_strict(client, model):
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 150}},
              "required": ["name", "age"], "additionalProperties": False}
    r = client.chat.completions.create(
        model=model, max_tokens=40, temperature=0,
        messages=[{"role": "user", "content": "Describe a person named Alice who is 30 years old as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}})
    data = json.loads(r.choices[0].message.content)
    jsonschema.validate(data, schema)
    assert data["name"] == "Alice" and data["age"] == 30
    obj = client.chat.completions.create(model=model, max_tokens=40, temperature=0, messages=ASK_WEATHER,
                                         response_format={"type": "json_object"})
    if obj.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(obj.choices[0].message.content), dict)


def check_call(call, tool_name: str) -> dict:
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == tool_name
    args = json.loads(call.function.arguments)
    schema = next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == tool_name)
    jsonschema.validate(args, schema)
    return args


@needs_tool_grammar
def test_tool_choice_required_and_streamed_call(client, model):
    kw = dict(model=model, messages=ASK_WEATHER, tools=TOOLS, tool_choice="required", max_tokens=60, temperature=0)
    r = client.chat.completions.create(**kw)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls
    for call in choice.message.tool_calls:
        check_call(call, call.function.name)
    chunks = list(client.chat.completions.create(**kw, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    names = [d.function.name for d in deltas if d.function and d.function.name]
    args = "".join(d.function.arguments or "" for d in deltas if d.index == 0)
    assert names == [tc.function.name for tc in choice.message.tool_calls]
    assert json.loads(args) == json.loads(choice.message.tool_calls[0].function.arguments)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


@needs_tool_grammar
def test_named_tool_choice(client, model):
    r = client.chat.completions.create(model=model, messages=ASK_WEATHER, tools=TOOLS, max_tokens=40, temperature=0,
                                       tool_choice={"type": "function", "function": {"name": "get_time"}})
    calls = r.choices[0].message.tool_calls
    assert calls and all(c.function.name == "get_time" for c in calls)
    check_call(calls[0], "get_time")


@needs_tool_grammar
def test_auto_tool_choice_calls_or_answers_validly(client, model):
    r = client.chat.completions.create(model=model, messages=ASK_WEATHER, tools=TOOLS, tool_choice="auto",
                                       max_tokens=40, temperature=0)
    choice = r.choices[0]
    if choice.message.tool_calls:  # when it calls, the call is well formed and held to the schema
        assert choice.finish_reason == "tool_calls"
        for call in choice.message.tool_calls:
            check_call(call, call.function.name)
    else:
        assert isinstance(choice.message.content, str) and "<tool_call>" not in choice.message.content


@needs_tool_grammar
def test_multi_turn_with_tool_results(client, model):
    first = client.chat.completions.create(model=model, messages=ASK_WEATHER, tools=TOOLS, max_tokens=60,
                                           temperature=0, tool_choice={"type": "function",
                                                                       "function": {"name": "get_weather"}})
    call = first.choices[0].message.tool_calls[0]
    check_call(call, "get_weather")
    messages = ASK_WEATHER + [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 18, "sky": "sunny"})},
    ]
    answer = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, tool_choice="none",
                                            max_tokens=40, temperature=0)
    text = answer.choices[0].message.content
    assert answer.choices[0].message.tool_calls is None and text and text.strip()
    # the earlier turns are a prefix of this prompt: they came from the radix cache
    assert answer.usage.prompt_tokens_details.cached_tokens > first.usage.prompt_tokens // 2


def test_echoed_prompt_logprobs_rank_the_right_answer(client, model):
    def last_token_logprob(prompt: str) -> float:
        r = client.completions.create(model=model, prompt=prompt, max_tokens=1, echo=True,
                                      logprobs=0, temperature=0)
        return r.choices[0].logprobs.token_logprobs[r.usage.prompt_tokens - 1]

    paris = last_token_logprob("The capital of France is Paris")
    assert paris > -3 and paris > last_token_logprob("The capital of France is London") + 1
