"""The OpenAI-compatible API on the tiny random model, driven by the official `openai` client.
The model's text is random tokens, so checks are structural: shapes, usage, finish reasons,
and that streamed and whole answers agree under greedy decoding."""

from __future__ import annotations

import json
import re

import jsonschema
import openai
import pytest

from tests.server.live_server import needs_grammar, needs_tool_grammar
from tines.runtime.sampling_params import SamplingParams

CHAT = [{"role": "user", "content": "Say something."}]


@pytest.fixture(scope="module")
def client(tiny_server):
    return tiny_server.openai()


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def test_models_list_and_get(client, model, tiny_server):
    cards = client.models.list().data
    assert [c.id for c in cards] == [model]
    assert client.models.retrieve(model).id == model
    assert cards[0].max_model_len == tiny_server.engine.max_model_len


def test_chat_completion_usage_and_cached_tokens(client, model):
    kw = dict(model=model, messages=CHAT, max_tokens=6, temperature=0, extra_body={"ignore_eos": True})
    first = client.chat.completions.create(**kw)
    again = client.chat.completions.create(**kw)
    choice = first.choices[0]
    assert choice.finish_reason == "length" and choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.tool_calls is None
    assert first.id.startswith("chatcmpl-") and first.object == "chat.completion"
    u = first.usage
    assert u.completion_tokens == 6 and u.total_tokens == u.prompt_tokens + 6
    # the second time the prompt (all but its last token) comes from the radix cache
    assert again.usage.prompt_tokens_details.cached_tokens >= u.prompt_tokens - 1
    assert again.choices[0].message.content == choice.message.content  # greedy


def test_max_completion_tokens_stop_and_seed(client, model):
    r = client.chat.completions.create(model=model, messages=CHAT, max_completion_tokens=3,
                                       extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 3
    greedy = client.chat.completions.create(model=model, messages=CHAT, max_tokens=12, temperature=0,
                                            extra_body={"ignore_eos": True}).choices[0].message.content
    stop = greedy.strip()[len(greedy.strip()) // 2:][:3]
    cut = client.chat.completions.create(model=model, messages=CHAT, max_tokens=12, temperature=0,
                                         stop=[stop], extra_body={"ignore_eos": True})
    assert cut.choices[0].finish_reason == "stop" and stop not in cut.choices[0].message.content
    assert greedy.startswith(cut.choices[0].message.content)
    sampled = [client.chat.completions.create(model=model, messages=CHAT, max_tokens=8, temperature=1.0,
                                              seed=1234).choices[0].message.content for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_n_choices_and_logprobs(client, model):
    r = client.chat.completions.create(model=model, messages=CHAT, max_tokens=4, n=3, temperature=1.0,
                                       seed=7, logprobs=True, top_logprobs=2,
                                       extra_body={"ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens == 12
    for c in r.choices:
        lps = c.logprobs.content
        assert len(lps) == 4 and all(lp.logprob <= 0 and len(lp.top_logprobs) == 2 for lp in lps)
        assert "".join(lp.token for lp in lps) == c.message.content


def test_streaming_chat_equals_whole_answer_and_reports_usage(client, model):
    kw = dict(model=model, messages=CHAT, max_tokens=10, temperature=0, extra_body={"ignore_eos": True})
    whole = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_streaming_n2_without_usage(client, model):
    chunks = list(client.chat.completions.create(model=model, messages=CHAT, max_tokens=5, n=2, stream=True,
                                                 extra_body={"ignore_eos": True}))
    assert all(c.usage is None for c in chunks)
    by_index = {0: [], 1: []}
    for c in chunks:
        for ch in c.choices:
            by_index[ch.index].append(ch.finish_reason)
    assert all(reasons[-1] == "length" for reasons in by_index.values())


def test_completions_single_batch_tokens_echo(client, model):
    r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=5, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.object == "text_completion" and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    batch = client.completions.create(model=model, prompt=["Once upon a time", "In a galaxy"], max_tokens=5,
                                      temperature=0, n=2, extra_body={"ignore_eos": True})
    assert sorted(c.index for c in batch.choices) == [0, 1, 2, 3]
    assert batch.choices[0].text == batch.choices[1].text == r.choices[0].text  # greedy: n copies
    assert batch.usage.completion_tokens == 20
    ids = client.completions.create(model=model, prompt=[100, 200, 300], max_tokens=3,
                                    extra_body={"ignore_eos": True})
    assert ids.usage.prompt_tokens == 3
    echo = client.completions.create(model=model, prompt="Echo me", max_tokens=2, echo=True,
                                     extra_body={"ignore_eos": True})
    assert echo.choices[0].text.startswith("Echo me") and echo.choices[0].logprobs is None


def test_completions_echo_with_logprobs_scores_the_prompt_tokens(client, model):
    prompt = "The capital of France is Paris"
    r = client.completions.create(model=model, prompt=prompt, max_tokens=2, echo=True, logprobs=1,
                                  temperature=0, extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    n_prompt = r.usage.prompt_tokens
    assert len(lp.tokens) == n_prompt + 2
    assert "".join(lp.tokens[:n_prompt]) == prompt
    assert lp.text_offset[:2] == [0, len(lp.tokens[0])] and lp.text_offset[n_prompt] == len(prompt)
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # nothing precedes it
    assert all(v <= 0 for v in lp.token_logprobs[1:])
    for token, top in zip(lp.tokens[1:], lp.top_logprobs[1:]):  # the top one, and the token
        assert token in top and 1 <= len(top) <= 2
    # a prompt that differs only in its last token: the shared tokens get the same logprobs
    other = client.completions.create(model=model, prompt="The capital of France is London",
                                      max_tokens=1, echo=True, logprobs=0, temperature=0)
    shared = other.choices[0].logprobs.token_logprobs[1:n_prompt - 1]
    assert shared == pytest.approx(lp.token_logprobs[1:n_prompt - 1], abs=1e-3)


def test_completions_echo_only_scores_prompts_that_share_a_context(client, model, tiny_server):
    context = "Question: which river runs past the old stone mill? Answer:"
    prompts = [context + c for c in (" the maple", " the quiet brave river", " stone")]
    r = client.completions.create(model=model, prompt=prompts, max_tokens=0, echo=True, logprobs=2)
    assert [c.text for c in r.choices] == prompts
    assert r.usage.completion_tokens == 0 and all(c.finish_reason == "length" for c in r.choices)
    engine = tiny_server.engine
    for choice, prompt in zip(r.choices, prompts):
        ids = engine.tokenizer.encode(prompt)
        alone = engine.submit(ids, SamplingParams(max_new_tokens=1, prompt_logprobs=True)).result()
        lp = choice.logprobs
        assert "".join(lp.tokens) == prompt and lp.token_logprobs[0] is None
        assert lp.token_logprobs[1:] == pytest.approx(
            [x.logprob for x in alone.prompt_logprobs[1:]], abs=1e-4)
        for token, top in zip(lp.tokens[1:], lp.top_logprobs[1:]):  # the top 2, and the token
            assert token in top and 2 <= len(top) <= 3


def test_completions_max_tokens_0_needs_echo(client, model):
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.completions.create(model=model, prompt="x", max_tokens=0)


def test_completions_default_is_16_tokens_and_streams(client, model):
    r = client.completions.create(model=model, prompt="Hello", extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 16
    chunks = list(client.completions.create(model=model, prompt=["Hello", "Bye"], max_tokens=4, stream=True,
                                            stream_options={"include_usage": True},
                                            extra_body={"ignore_eos": True}))
    texts = {0: "", 1: ""}
    for c in chunks[:-1]:
        texts[c.choices[0].index] += c.choices[0].text
    whole = client.completions.create(model=model, prompt=["Hello", "Bye"], max_tokens=4, temperature=0,
                                      extra_body={"ignore_eos": True})
    assert chunks[-1].usage.completion_tokens == 8 and chunks[-1].choices == []
    assert all(texts[i] for i in texts) and len(whole.choices) == 2


def test_tool_choice_none_answers_without_parsing_and_tool_turns_render(client, model):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    messages = CHAT + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "rainy, 7 C"}]
    r = client.chat.completions.create(model=model, messages=messages, tools=tools, tool_choice="none",
                                       max_tokens=4, extra_body={"ignore_eos": True})
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason == "length"
    plain = client.chat.completions.create(model=model, messages=CHAT, max_tokens=1)
    assert r.usage.prompt_tokens > plain.usage.prompt_tokens + 20  # the call and its result


@needs_grammar
def test_response_format_json_schema_on_the_tiny_model(client, model):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}, "color": {"enum": ["red", "blue"]}},
              "required": ["ok", "color"], "additionalProperties": False}
    r = client.chat.completions.create(model=model, messages=CHAT, max_tokens=40, response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)


@needs_grammar
def test_regex_and_choices_extensions(client, model):
    r = client.completions.create(model=model, prompt="Code:", max_tokens=20,
                                  extra_body={"regex": r"[A-Z]{2}-[0-9]{3}"})
    assert re.fullmatch(r"[A-Z]{2}-[0-9]{3}", r.choices[0].text)
    c = client.chat.completions.create(model=model, messages=CHAT, max_tokens=10,
                                       extra_body={"choices": ["alpha", "beta"]})
    assert c.choices[0].message.content in ("alpha", "beta")


@needs_tool_grammar
def test_required_tool_call_on_the_tiny_model(client, model):
    schema = {"type": "object", "properties": {"unit": {"enum": ["c", "f"]}}, "required": ["unit"],
              "additionalProperties": False}
    tools = [{"type": "function", "function": {"name": "get_temp", "parameters": schema}}]
    r = client.chat.completions.create(model=model, messages=CHAT, tools=tools, tool_choice="required",
                                       max_tokens=60, parallel_tool_calls=False)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_temp" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), schema)


@needs_tool_grammar
def test_several_tool_calls_in_one_answer_whole_and_streamed(client, model):
    schema = {"type": "object", "properties": {"unit": {"enum": ["c", "f"]}}, "required": ["unit"],
              "additionalProperties": False}
    tools = [{"type": "function", "function": {"name": "get_temp", "parameters": schema}},
             {"type": "function", "function": {"name": "get_time"}}]
    kw = dict(model=model, messages=CHAT, tools=tools, tool_choice="required", max_tokens=80, temperature=0)
    whole = client.chat.completions.create(**kw).choices[0]
    calls = whole.message.tool_calls
    assert len(calls) >= 2 and len({c.id for c in calls}) == len(calls)  # the random model keeps calling
    for c in calls:
        args = json.loads(c.function.arguments)
        if c.function.name == "get_temp":
            jsonschema.validate(args, schema)
        else:
            assert c.function.name == "get_time" and args == {}
    chunks = list(client.chat.completions.create(**kw, stream=True))
    deltas = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or []]
    streamed: dict[int, tuple[str, str]] = {}  # index -> (name from the first delta, arguments)
    for d in deltas:
        name, args = streamed.get(d.index, (d.function.name, ""))
        streamed[d.index] = (name, args + (d.function.arguments or ""))
    assert sorted(streamed) == list(range(len(calls)))
    assert [(streamed[i][0], json.loads(streamed[i][1])) for i in sorted(streamed)] == \
        [(c.function.name, json.loads(c.function.arguments)) for c in calls]


@needs_tool_grammar
def test_auto_tool_choice_leaves_free_text_free(client, model):
    tools = [{"type": "function", "function": {"name": "get_time"}}]
    free = client.chat.completions.create(model=model, messages=CHAT, max_tokens=8, temperature=0,
                                          extra_body={"ignore_eos": True})
    r = client.chat.completions.create(model=model, messages=CHAT, tools=tools, max_tokens=8, temperature=0,
                                       extra_body={"ignore_eos": True})
    # the tools change the prompt, so compare shapes: free text, no call, cut by length
    assert free.choices[0].finish_reason == r.choices[0].finish_reason == "length"
    assert r.choices[0].message.tool_calls is None and r.choices[0].message.content


def test_continue_final_message_prefills_the_answer(client, model, tiny_server):
    messages = CHAT + [{"role": "assistant", "content": "The answer is"}]
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=2,
                                       extra_body={"continue_final_message": True, "ignore_eos": True})
    engine = tiny_server.engine
    rendered = engine.chat_template.render(messages, add_generation_prompt=False)
    expected = rendered[:rendered.rfind("The answer is") + len("The answer is")]
    assert r.usage.prompt_tokens == len(engine.tokenizer.encode(expected))


def test_streamed_chat_logprobs_ride_on_the_chunks_of_their_tokens(client, model):
    kw = dict(model=model, messages=CHAT, max_tokens=6, temperature=0, logprobs=True,
              top_logprobs=1, extra_body={"ignore_eos": True})
    whole = client.chat.completions.create(**kw).choices[0]
    chunks = [c.choices[0] for c in client.chat.completions.create(**kw, stream=True) if c.choices]
    with_text = [c for c in chunks if c.delta.content]
    assert with_text and all(c.logprobs and c.logprobs.content for c in with_text)
    streamed = [e for c in chunks if c.logprobs for e in c.logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in whole.logprobs.content]
    assert [e.logprob for e in streamed] == pytest.approx(
        [e.logprob for e in whole.logprobs.content], abs=1e-3)  # the cache splits steps apart
    raw = bytes(b for e in streamed for b in e.bytes)  # a token's own bytes, split characters too
    assert raw.decode("utf-8", errors="replace") == whole.message.content


def test_streamed_completion_logprobs_ride_on_their_chunks_with_running_offsets(client, model):
    kw = dict(model=model, prompt="Hello", max_tokens=5, temperature=0, logprobs=1,
              extra_body={"ignore_eos": True})
    whole = client.completions.create(**kw).choices[0]
    chunks = [c.choices[0] for c in client.completions.create(**kw, stream=True) if c.choices]
    assert all(c.logprobs for c in chunks if c.text)
    tokens = [t for c in chunks if c.logprobs for t in c.logprobs.tokens]
    offsets = [o for c in chunks if c.logprobs for o in c.logprobs.text_offset]
    assert tokens == whole.logprobs.tokens and offsets == whole.logprobs.text_offset
    assert offsets == sorted(offsets) and offsets[-1] <= len(whole.text)
