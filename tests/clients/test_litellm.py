"""litellm (unmodified, as an `openai/` provider) against a live tines server."""

from __future__ import annotations

import json

import pytest

from tests.clients.models import WEATHER_TOOL, Person

litellm = pytest.importorskip("litellm")
ASK = [{"role": "user", "content": "Say something."}]


@pytest.fixture(scope="module")
def kw(clients_server, model_name):
    return {"model": f"openai/{model_name}", "api_base": clients_server.v1, "api_key": "unused",
            "temperature": 0, "max_tokens": 48}


def test_chat(kw):
    r = litellm.completion(messages=ASK, **{**kw, "max_tokens": 5})
    assert r.choices[0].message.content and r.usage.completion_tokens == 5


def test_stream_joins_to_the_whole_answer(kw):
    whole = litellm.completion(messages=ASK, **{**kw, "max_tokens": 8}).choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in
              litellm.completion(messages=ASK, stream=True, **{**kw, "max_tokens": 8})]
    assert "".join(pieces) == whole


def test_tools(kw):
    r = litellm.completion(messages=ASK, tools=[WEATHER_TOOL], tool_choice="required", **kw)
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)


def test_structured_output(kw):
    r = litellm.completion(messages=ASK, response_format=Person, **kw)
    person = Person.model_validate_json(r.choices[0].message.content)
    assert 0 <= person.age <= 120


def test_streamed_tool_call_arrives_in_fragments(kw):
    chunks = list(litellm.completion(messages=ASK, tools=[WEATHER_TOOL], tool_choice="required",
                                     stream=True, parallel_tool_calls=False, **kw))
    calls = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_weather" and len(calls) > 2
    assert "city" in json.loads("".join(d.function.arguments or "" for d in calls))
