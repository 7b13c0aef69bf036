"""The official openai client's `client.responses` against a live tines server."""

from __future__ import annotations

import json

import pytest

from tests.clients.models import Person


@pytest.fixture(scope="module")
def client(clients_server):
    return clients_server.openai()


def test_text_with_instructions(client, model_name):
    r = client.responses.create(model=model_name, input="Say something.", instructions="Be brief.",
                                max_output_tokens=6, temperature=0)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.output_text and r.usage.output_tokens == 6 and r.usage.input_tokens > 0
    assert r.output[0].type == "message" and r.output[0].content[0].type == "output_text"


def test_message_list_input_equals_chat(client, model_name):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}]
    r = client.responses.create(model=model_name, input=messages, max_output_tokens=6, temperature=0)
    chat = client.chat.completions.create(
        model=model_name, max_tokens=6, temperature=0,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert r.output_text == chat.choices[0].message.content


def test_stream_events(client, model_name):
    kw = dict(model=model_name, input="Tell me a story.", max_output_tokens=8, temperature=0)
    whole = client.responses.create(**kw).output_text
    events = list(client.responses.create(stream=True, **kw))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.incomplete"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == whole
    [done] = [e for e in events if e.type == "response.output_text.done"]
    assert done.text == whole and events[-1].response.output_text == whole
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_stream_completed_event(client, model_name):
    events = list(client.responses.create(model=model_name, input="Hi", stream=True,
                                          max_output_tokens=64, temperature=0, text={"format": {
                                              "type": "json_schema", "name": "p", "strict": True,
                                              "schema": Person.model_json_schema()}}))
    assert events[-1].type == "response.completed"
    Person.model_validate_json(events[-1].response.output_text)


def test_json_schema_format_with_parse(client, model_name):
    r = client.responses.parse(model=model_name, input="Invent a person.", text_format=Person,
                               max_output_tokens=64, temperature=0)
    assert isinstance(r.output_parsed, Person) and r.status == "completed"


WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                          "required": ["city"], "additionalProperties": False}, "strict": True}


def test_function_tools_give_function_call_items(client, model_name):
    r = client.responses.create(model=model_name, input="Weather in Oslo?", tools=[WEATHER],
                                tool_choice="required", max_output_tokens=64, temperature=0)
    call = [o for o in r.output if o.type == "function_call"][0]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    assert isinstance(json.loads(call.arguments)["city"], str)


def test_function_call_streams_argument_deltas(client, model_name):
    events = list(client.responses.create(model=model_name, input="Weather in Oslo?", tools=[WEATHER],
                                          tool_choice={"type": "function", "name": "get_weather"},
                                          stream=True, max_output_tokens=64, temperature=0))
    added = [e for e in events if e.type == "response.output_item.added"]
    assert added[0].item.type == "function_call" and added[0].item.name == "get_weather"
    first = added[0].item.id
    deltas = [e.delta for e in events
              if e.type == "response.function_call_arguments.delta" and e.item_id == first]
    [done] = [e for e in events if e.type == "response.function_call_arguments.done" and e.item_id == first]
    assert len(deltas) > 1 and "".join(deltas) == done.arguments


def test_tool_result_round_trip(client, model_name):
    first = client.responses.create(model=model_name, input="Weather in Oslo?", tools=[WEATHER],
                                    tool_choice="required", max_output_tokens=64, temperature=0)
    call = [o for o in first.output if o.type == "function_call"][0]
    follow = [{"role": "user", "content": "Weather in Oslo?"}, call.model_dump(exclude_none=True),
              {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 3}'}]
    r = client.responses.create(model=model_name, input=follow, tools=[WEATHER], tool_choice="none",
                                max_output_tokens=5, temperature=0)
    assert r.output_text and r.usage.input_tokens > first.usage.input_tokens


def test_previous_response_id_is_refused(client, model_name):
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=model_name, input="Hi", previous_response_id="resp_1")
    assert e.value.body["param"] == "previous_response_id"


CALLS = 'start: NAME "(" (NAME ("," NAME)*)? ")"\nNAME: /[a-z]{1,8}/\n'
CALL_TOOL = {"type": "custom", "name": "call", "description": "a function call",
            "format": {"type": "grammar", "syntax": "lark", "definition": CALLS}}


@pytest.fixture(scope="module")
def calls_parser():
    import lark

    return lark.Lark(CALLS)


def test_custom_tool_named_gives_a_custom_tool_call_item(client, model_name, calls_parser):
    r = client.responses.create(model=model_name, input="Call something.", tools=[CALL_TOOL, WEATHER],
                                tool_choice={"type": "custom", "name": "call"},
                                max_output_tokens=40, temperature=1.0, extra_body={"seed": 3})
    [call] = r.output
    assert call.type == "custom_tool_call" and call.name == "call" and call.call_id.startswith("call_")
    calls_parser.parse(call.input)


def test_custom_and_function_tools_required(client, model_name, calls_parser):
    r = client.responses.create(model=model_name, input="Do it.", tools=[CALL_TOOL, WEATHER],
                                tool_choice="required", max_output_tokens=64, temperature=1.0,
                                extra_body={"seed": 8})
    assert r.output and {o.type for o in r.output} <= {"custom_tool_call", "function_call"}
    for item in r.output:
        if item.type == "custom_tool_call":
            calls_parser.parse(item.input)


def test_custom_tool_call_streams_input_deltas(client, model_name):
    kw = dict(model=model_name, input="Call something.", tools=[CALL_TOOL],
              tool_choice={"type": "custom", "name": "call"}, max_output_tokens=40, temperature=1.0,
              extra_body={"seed": 4})
    whole = client.responses.create(**kw).output[0].input
    events = list(client.responses.create(stream=True, **kw))
    [added] = [e for e in events if e.type == "response.output_item.added"]
    assert added.item.type == "custom_tool_call" and added.item.name == "call"
    deltas = [e.delta for e in events if e.type == "response.custom_tool_call_input.delta"]
    [done] = [e for e in events if e.type == "response.custom_tool_call_input.done"]
    assert "".join(deltas) == done.input == whole == events[-1].response.output[0].input
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_custom_tool_result_round_trip(client, model_name):
    first = client.responses.create(model=model_name, input="Call something.", tools=[CALL_TOOL],
                                    tool_choice={"type": "custom", "name": "call"},
                                    max_output_tokens=40, temperature=0)
    call = first.output[0]
    follow = [{"role": "user", "content": "Call something."}, call.model_dump(exclude_none=True),
              {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "ok"}]
    r = client.responses.create(model=model_name, input=follow, tools=[CALL_TOOL], tool_choice="none",
                                max_output_tokens=5, temperature=0)
    assert r.output_text and r.usage.input_tokens > first.usage.input_tokens
