"""Context-free grammars over HTTP: native `grammar` (Lark, or GBNF as llama.cpp's server takes
it) and `ebnf` (SGLang), OpenAI custom tools with a Lark or regex grammar (driven by the
openai client, streamed and not, named or among function tools), and vLLM's
`structured_outputs`. Outputs at temperature 1.0
from the tiny random model are parsed by the `lark` package."""

from __future__ import annotations

import json
import re

import lark
import pytest

from tines.grammar.cfg.examples import GBNF, LARK

CALLS = LARK["calls"]


@pytest.fixture(scope="module")
def client(tiny_server):
    return tiny_server.openai()


@pytest.fixture(scope="module")
def model(client) -> str:
    return client.models.list().data[0].id


@pytest.fixture(scope="module")
def calls_parser() -> lark.Lark:
    return lark.Lark(CALLS, lexer="dynamic_complete")


def custom_tool(definition: str, syntax: str = "lark") -> dict:
    return {"type": "custom", "custom": {"name": "call", "description": "a function call",
                                         "format": {"type": "grammar", "grammar": {
                                             "syntax": syntax, "definition": definition}}}}


CHOICE = {"type": "custom", "custom": {"name": "call"}}


def finished(texts_and_reasons):
    return [t for t, r in texts_and_reasons if r in ("stop", "tool_calls")]


def test_native_lark_grammar_outputs_parse(tiny_server, calls_parser):
    body = {"text": ["f", "g", "h", "x"], "sampling_params": {
        "grammar": CALLS, "temperature": 1.0, "max_new_tokens": 48, "seed": 5}}
    r = tiny_server.client().post("/generate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    outs = r.json()
    texts = [(o["text"], o["meta_info"]["finish_reason"]["type"]) for o in outs]
    assert len(texts) == 4
    for text, _ in texts:
        calls_parser.parse(text)  # closing on: even a cut output is complete


def test_native_gbnf_through_ebnf_and_grammar_fields(tiny_server):
    parser = lark.Lark(LARK["chess"], lexer="dynamic_complete")
    for field in ("ebnf", "grammar"):  # `grammar` holding GBNF is read as GBNF
        body = {"text": "1.", "sampling_params": {field: GBNF["chess"], "temperature": 1.0,
                                                   "max_new_tokens": 40, "seed": 1}}
        r = tiny_server.client().post("/generate", json=body, timeout=120)
        assert r.status_code == 200, r.text
        parser.parse(r.json()["text"])


def test_bad_grammar_is_a_400_naming_the_rule(tiny_server):
    body = {"text": "x", "sampling_params": {"grammar": "start: call\ncall: name\n"}}
    r = tiny_server.client().post("/generate", json=body, timeout=60)
    assert r.status_code == 400
    assert "name" in r.json()["error"]["message"] and "undefined" in r.json()["error"]["message"]


def test_openai_custom_tool_lark_grammar(tiny_server, client, model, calls_parser):
    resp = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "call something"}],
        tools=[custom_tool(CALLS)], tool_choice=CHOICE, temperature=1.0, max_tokens=48, seed=2, n=3)
    for choice in resp.choices:
        [call] = choice.message.tool_calls
        assert call.type == "custom" and call.custom.name == "call"
        calls_parser.parse(call.custom.input)
        assert choice.finish_reason in ("tool_calls", "length")


def test_openai_custom_tool_streamed_deltas_spell_the_input(tiny_server, client, model, calls_parser):
    kw = dict(model=model, messages=[{"role": "user", "content": "call"}], seed=9,
              tools=[custom_tool(CALLS)], tool_choice=CHOICE, temperature=1.0, max_tokens=40)
    whole = client.chat.completions.create(**kw).choices[0].message.tool_calls[0].custom.input
    pieces, ids = [], []
    for chunk in client.chat.completions.create(stream=True, **kw):
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            assert delta.type in (None, "custom")
            ids += [delta.id] if delta.id else []
            # the client's delta model has no `custom` field yet: it arrives as a plain dict
            pieces.append(delta.model_extra["custom"].get("input") or "")
    assert len(ids) == 1
    assert "".join(pieces) == whole
    calls_parser.parse(whole)


def test_openai_custom_tool_regex_grammar(tiny_server, client, model):
    resp = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "a date"}], temperature=1.0,
        tools=[custom_tool(r"\d{4}-\d{2}-\d{2}", "regex")], tool_choice=CHOICE, max_tokens=20)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", resp.choices[0].message.tool_calls[0].custom.input)


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_custom_tool_under_auto_is_answered(tiny_server, client, model, calls_parser):
    resp = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "x"}], tools=[custom_tool(CALLS), WEATHER],
        temperature=1.0, max_tokens=48, seed=3, n=4)  # tool_choice left out: "auto"
    assert len(resp.choices) == 4
    for choice in resp.choices:
        for call in choice.message.tool_calls or []:
            if call.type == "custom":
                calls_parser.parse(call.custom.input)


def test_custom_and_function_tools_required_every_call_parses(tiny_server, client, model, calls_parser):
    resp = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "call"}], tools=[custom_tool(CALLS), WEATHER],
        tool_choice="required", temperature=1.0, max_tokens=64, seed=11, n=6)
    kinds = set()
    for choice in resp.choices:
        assert choice.message.tool_calls, choice.message.content
        for call in choice.message.tool_calls:
            kinds.add(call.type)
            if call.type == "custom":
                assert call.custom.name == "call"
                calls_parser.parse(call.custom.input)  # held to the grammar, closed at the budget
            else:
                assert isinstance(json.loads(call.function.arguments)["city"], str)
    assert "custom" in kinds


def test_custom_call_among_tools_streams_its_decoded_input(tiny_server, client, model):
    kw = dict(model=model, messages=[{"role": "user", "content": "call"}], temperature=1.0,
              tools=[custom_tool(CALLS), {"type": "custom", "custom": {"name": "note"}}],
              tool_choice="required", max_tokens=48, seed=5, parallel_tool_calls=False)
    [whole] = client.chat.completions.create(**kw).choices[0].message.tool_calls
    opened, pieces = [], []
    for chunk in client.chat.completions.create(stream=True, **kw):
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            custom = delta.model_extra["custom"]  # not in the client's delta model yet
            if delta.id:
                opened.append((delta.type, custom["name"]))
            pieces.append(custom.get("input") or "")
    assert opened == [("custom", whole.custom.name)]
    assert "".join(pieces) == whole.custom.input


def test_vllm_structured_outputs_grammar(tiny_server, client, model, calls_parser):
    resp = client.completions.create(model=model, prompt="x", temperature=1.0, max_tokens=40,
                                      seed=4, extra_body={"structured_outputs": {"grammar": CALLS}})
    calls_parser.parse(resp.choices[0].text)


def test_token_healing_is_opt_in_on_http(tiny_server, client, model):
    prompt = "The capital of France is "
    sent = {}
    for healing in (False, True):
        body = {"text": prompt, "sampling_params": {"temperature": 0, "max_new_tokens": 4,
                                                     "token_healing": healing}}
        r = tiny_server.client().post("/generate", json=body, timeout=60)
        assert r.status_code == 200, r.text
        sent[healing] = r.json()["meta_info"]["prompt_tokens"]
    assert sent[True] == sent[False] - 1  # the trailing " " token was backed up
    resp = client.completions.create(model=model, prompt=prompt, max_tokens=4, temperature=0,
                                     extra_body={"token_healing": True})
    assert resp.usage.prompt_tokens == sent[True]


@pytest.mark.parametrize("choice", ["auto", "required", CHOICE])
@pytest.mark.parametrize("grammar, words", [
    ("start: call\ncall: name\n", ("name", "undefined")),  # caught when the request is read
    ('start: a\na: b "x" | "y"\nb: a "z"\n', ("a -> b", "left")),  # caught by the compile
])
def test_custom_tool_with_a_bad_grammar_is_a_400_naming_the_rule(tiny_server, model, choice,
                                                                  grammar, words):
    r = tiny_server.client().post("/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": "x"}], "tool_choice": choice,
        "tools": [custom_tool(grammar), WEATHER]})
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert all(w in message for w in words), message
