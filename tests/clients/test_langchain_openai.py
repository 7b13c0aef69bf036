"""langchain-openai's ChatOpenAI (unmodified) against a live tines server."""

from __future__ import annotations

import pytest

from tests.clients.models import WEATHER_TOOL, Person

langchain_openai = pytest.importorskip("langchain_openai")


@pytest.fixture(scope="module")
def chat(clients_server, model_name):
    return langchain_openai.ChatOpenAI(base_url=clients_server.v1, api_key="unused",
                                       model=model_name, temperature=0, max_tokens=48,
                                       max_retries=0)


def test_invoke(chat):
    msg = chat.bind(max_tokens=5).invoke("Say something.")
    assert msg.content and msg.usage_metadata["output_tokens"] == 5


def test_stream_joins_to_the_whole_answer(chat):
    short = chat.bind(max_tokens=8)
    whole = short.invoke("Tell me a story.").content
    assert "".join(c.content for c in short.stream("Tell me a story.")) == whole


def test_bind_tools(chat):
    msg = chat.bind_tools([WEATHER_TOOL], tool_choice="get_weather").invoke("Weather in Oslo?")
    [call] = msg.tool_calls[:1]
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_with_structured_output(chat, method):
    person = chat.with_structured_output(Person, method=method).invoke("Invent a person.")
    assert isinstance(person, Person) and len(person.name) <= 10


def test_responses_api(chat, clients_server, model_name):
    responses = langchain_openai.ChatOpenAI(base_url=clients_server.v1, api_key="unused",
                                            model=model_name, temperature=0, max_tokens=8,
                                            use_responses_api=True, max_retries=0)
    msg = responses.invoke("Say something.")
    assert msg.text and msg.usage_metadata["output_tokens"] == 8


def test_streamed_tool_call_chunks_merge_to_the_call(chat):
    bound = chat.bind_tools([WEATHER_TOOL], tool_choice="get_weather", parallel_tool_calls=False)
    chunks = list(bound.stream("Weather in Oslo?"))
    assert sum(1 for c in chunks if c.tool_call_chunks) > 2  # name first, then argument pieces
    merged = chunks[0]
    for c in chunks[1:]:
        merged += c
    assert merged.tool_calls[0]["name"] == "get_weather"
    assert isinstance(merged.tool_calls[0]["args"]["city"], str)
