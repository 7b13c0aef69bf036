"""The HTTP backends' wire formats, against scripted servers (`httpx.MockTransport`): what
each request carries, how each answer (and each error) comes back. No model, no sockets.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

import tines
from tines.http import APIStatusError, BadRequestError
from tines.openai_compat import OpenAICompatible
from tines.remote import RemoteBackend
from tines.runtime.sampling_params import SamplingParams

MARKERS = {"system": ["<s>", "</s>\n"], "user": ["<u>", "</u>\n"], "assistant": ["<a>", "</a>\n"]}
MODEL_INFO = {"bos_token": "<bos>", "chat_template": {"role_markers": MARKERS,
                                                      "default_system_prompt": "Be kind."}}


class Server:
    """A scripted server: `routes[(method, path)]` is a JSON body, a (status, body) pair, a
    list of SSE events, or a function of the request's JSON. Every request is recorded."""

    def __init__(self, routes: dict) -> None:
        self.routes, self.requests = routes, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body, request.headers))
        answer = self.routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"error": {"message": "no route"}})
        if callable(answer):
            answer = answer(body)
        if isinstance(answer, tuple):
            return httpx.Response(answer[0], json=answer[1])
        if isinstance(answer, list) and answer and isinstance(answer[0], str):
            sse = "".join(f"data: {e}\n\n" for e in answer)
            return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=answer)

    def bodies(self, path: str) -> list:
        return [b for _, p, b, _ in self.requests if p == path]


def remote(routes: dict, **kw) -> tuple[RemoteBackend, Server]:
    server = Server({("GET", "/model_info"): MODEL_INFO, **routes})
    return RemoteBackend("http://tines", transport=httpx.MockTransport(server), **kw), server


def item(text: str, index: int = 0, **meta) -> dict:
    return {"text": text, "output_ids": [7] * len(text), "index": index,
            "meta_info": {"id": "gen-1", "prompt_tokens": 9, "cached_tokens": 4,
                          "completion_tokens": len(text),
                          "finish_reason": {"type": "stop", "matched": "\n"}, **meta}}


# ---- RemoteBackend -------------------------------------------------------------------------


def test_remote_generate_sends_changed_params_and_reads_every_completion():
    backend, server = remote({("POST", "/generate"): [item("a", 0), item("b", 1)]})
    params = SamplingParams(max_new_tokens=5, temperature=0.0, n=2, regex="[ab]", stop=["\n"])
    out = backend.generate("Q:", params)
    assert server.bodies("/generate") == [{"text": "Q:", "stream": False, "sampling_params": {
        "max_new_tokens": 5, "temperature": 0.0, "n": 2, "regex": "[ab]", "stop": ["\n"]}}]
    assert [c.text for c in out.outputs] == ["a", "b"] and out.request_id == "gen-1"
    assert (out.num_prompt_tokens, out.num_cached_tokens) == (9, 4)
    assert out.outputs[0].finish_reason == "stop" and out.outputs[0].matched_stop == "\n"


def test_remote_reads_token_logprobs():
    logprobs = {"output_token_logprobs": [[-0.5, 7, "a"]],
                "output_top_logprobs": [[[-0.5, 7, "a"], [-1.5, 8, "b"]]]}
    backend, server = remote({("POST", "/generate"): item("a", **logprobs)})
    (lp,) = backend.generate("Q:", SamplingParams(logprobs=True, top_logprobs=2)).outputs[0].logprobs
    (body,) = server.bodies("/generate")  # asked for in SGLang's top-level fields
    assert (body["return_logprob"], body["top_logprobs_num"]) == (True, 2)
    assert (lp.token_id, lp.token, lp.logprob) == (7, "a", -0.5)
    assert lp.top == [(7, "a", -0.5), (8, "b", -1.5)]


def test_remote_bad_input_is_a_value_error_with_the_servers_message():
    refusal = (400, {"error": {"message": "sampling_params.regex: bad regex ("}})
    backend, _ = remote({("POST", "/generate"): refusal})
    with pytest.raises(ValueError, match=r"sampling_params.regex: bad regex \(") as info:
        backend.generate("Q:", SamplingParams(regex="("))
    assert isinstance(info.value, BadRequestError) and info.value.status == 400
    backend, _ = remote({("POST", "/generate"): (503, {"error": {"message": "queue full"}})})
    with pytest.raises(APIStatusError, match="503: queue full") as info:
        backend.generate("Q:", SamplingParams())
    assert not isinstance(info.value, ValueError)


def stream_events(pieces: list[str]) -> list[str]:
    text, events = "", []
    for piece in pieces:
        text += piece
        events.append(json.dumps({"text": text, "delta": piece, "index": 0,
                                  "meta_info": {"id": "gen-1", "finish_reason": None}}))
    events.append(json.dumps({**item(text), "delta": ""}))
    return events + ["[DONE]"]


def test_remote_stream_gives_deltas_then_the_whole_output():
    backend, server = remote({("POST", "/generate"): stream_events(["Hel", "lo"])})
    deltas = list(backend.stream("Q:", SamplingParams()))
    assert [d.text for d in deltas if d.index == 0] == ["Hel", "lo", ""]
    assert deltas[-1].index == -1 and deltas[-1].output.text == "Hello"
    assert server.bodies("/generate")[0]["stream"] is True


def test_remote_stream_error_event_raises():
    events = [json.dumps({"error": {"message": "grammar failed", "type": "invalid_request_error"}})]
    backend, _ = remote({("POST", "/generate"): events + ["[DONE]"]})
    with pytest.raises(BadRequestError, match="grammar failed"):
        list(backend.stream("Q:", SamplingParams()))


SCORE = {"choices": [{"token_ids": [1], "tokens": [" yes"], "logprobs": [-0.1]},
                     {"token_ids": [2, 3], "tokens": [" n", "o"], "logprobs": [-2.0, -0.3]}],
         "unconditional": None, "meta_info": {"prompt_tokens": 6, "cached_tokens": 5}}


def test_remote_score_sends_the_choices_once_and_counts_the_prefix_alone():
    backend, server = remote({("POST", "/score"): SCORE})
    result = backend.score("Q:", [" yes", " no"])
    assert server.bodies("/score") == [{"text": "Q:", "choices": [" yes", " no"],
                                        "unconditional": False}]
    assert [[t.token for t in row] for row in result.logprobs] == [[" yes"], [" n", "o"]]
    assert result.unconditional is None
    assert (result.num_prompt_tokens, result.num_cached_tokens) == (5, 5)


def test_remote_without_score_cannot_select():
    backend, _ = remote({})
    with pytest.raises(NotImplementedError, match="no /score endpoint"):
        backend.score("Q:", [" yes", " no"])


def test_remote_warm_falls_back_to_a_one_token_generate_once_without_warm():
    backend, server = remote({("POST", "/generate"): item("x")})
    backend.warm("trunk")
    backend.concat_and_append("trunk", ["a", "b"])
    assert [(m, p) for m, p, _, _ in server.requests] == [
        ("POST", "/warm"), ("POST", "/generate"), ("POST", "/generate")]
    assert [b["text"] for b in server.bodies("/generate")] == ["trunk", "trunkab"]
    assert server.bodies("/generate")[0]["sampling_params"] == {"max_new_tokens": 1,
                                                                 "temperature": 0.0}
    backend, server = remote({("POST", "/warm"): {"cached_tokens": 0}})
    asyncio.run(backend.awarm("trunk"))
    assert server.bodies("/warm") == [{"text": "trunk"}]


def test_remote_roles_come_from_model_info_once_and_the_key_is_sent():
    backend, server = remote({}, api_key="sekrit")
    assert backend.role_markers("user") == ("<u>", "</u>\n")
    assert backend.default_system_prompt == "Be kind."
    assert backend.role_markers("assistant") == ("<a>", "</a>\n")
    assert len(server.requests) == 1 and server.requests[0][3]["authorization"] == "Bearer sekrit"
    with pytest.raises(ValueError, match="no markers for role 'tool'"):
        backend.role_markers("tool")


@tines.program
def yes_no(s, question):
    s += tines.user(question)
    s += tines.assistant(tines.gen("why", max_tokens=8) + tines.select("answer", [" yes", " no"]))


def test_a_program_runs_over_the_remote_backend_sync_and_async():
    backend, server = remote({("POST", "/generate"): item("Because"), ("POST", "/score"): SCORE})
    state = yes_no.run("Is it?", backend=backend)
    expected = "<s>Be kind.</s>\n<u>Is it?</u>\n<a>Because yes</a>\n"
    assert state.text() == expected and state["answer"] == " yes"
    assert server.bodies("/score")[0]["text"] == "<s>Be kind.</s>\n<u>Is it?</u>\n<a>Because"
    state = asyncio.run(yes_no.arun("Is it?", backend=backend))
    assert state.text() == expected


# ---- OpenAICompatible ----------------------------------------------------------------------


def openai(routes: dict, **kw) -> tuple[OpenAICompatible, Server]:
    server = Server({("GET", "/v1/models"): {"data": [{"id": "m1"}]}, **routes})
    backend = OpenAICompatible("http://api/v1", transport=httpx.MockTransport(server), **kw)
    return backend, server


COMPLETION = {"id": "cmpl-1", "choices": [{"index": 0, "text": "Rome", "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 12, "completion_tokens": 1,
                        "prompt_tokens_details": {"cached_tokens": 8}}}


def test_openai_body_maps_params_constraints_and_extensions():
    backend, server = openai({("POST", "/v1/completions"): COMPLETION}, chat_template="chatml")
    schema = {"type": "object"}
    params = SamplingParams(max_new_tokens=9, temperature=0.0, stop=["\n"], seed=3,
                            min_new_tokens=2, top_k=5, json_schema=schema, logprobs=True)
    out = backend.generate("Q:", params)
    assert server.bodies("/v1/completions") == [{
        "model": "m1", "prompt": "Q:", "max_tokens": 9, "temperature": 0.0, "top_p": 1.0,
        "n": 1, "stop": ["\n"], "seed": 3, "logprobs": 0, "top_k": 5, "min_tokens": 2,
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "output", "strict": True, "schema": schema}}}]
    assert out.text == "Rome" and (out.num_prompt_tokens, out.num_cached_tokens) == (12, 8)
    backend.generate("Q:", SamplingParams(regex="[0-9]+"))
    assert server.bodies("/v1/completions")[1]["regex"] == "[0-9]+"


def test_openai_refuses_what_completions_cannot_carry():
    backend, _ = openai({}, chat_template="chatml")
    tag = {"triggers": ["<t>"], "structures": [{"begin": "<t>", "schema": {}, "end": "</t>"}]}
    with pytest.raises(ValueError, match="structural_tag: cannot be sent"):
        backend.generate("Q:", SamplingParams(structural_tag=tag))


def echo_answer(prefix_tokens: list[str], rows: list[list[str]]) -> dict:
    """A completions answer echoing each prompt's tokens with logprob -1 each (None first)."""
    choices = []
    for i, row in enumerate(rows):
        tokens = prefix_tokens + row + ["!"]
        offsets = [sum(len(t) for t in tokens[:j]) for j in range(len(tokens))]
        values = [None] + [-1.0] * (len(tokens) - 1)
        choices.append({"index": i, "text": "".join(tokens), "finish_reason": "length",
                        "logprobs": {"tokens": tokens, "token_logprobs": values,
                                     "text_offset": offsets, "top_logprobs": None}})
    return {"id": "c", "choices": choices, "usage": {"prompt_tokens": 10}}


def test_openai_select_reads_the_echoed_tokens_covering_each_choice():
    # " Paris" merges with the prefix's trailing space: the straddling token is the choice's.
    answer = echo_answer(["The", " capital", " is"], [[" Paris"], [" Lon", "don"]])
    backend, server = openai({("POST", "/v1/completions"): answer}, chat_template="chatml")
    result = backend.score("The capital is ", ["Paris", "London"])
    assert [[t.token for t in row] for row in result.logprobs] == [[" Paris"], [" Lon", "don"]]
    assert result.num_prompt_tokens == 3
    (body,) = server.bodies("/v1/completions")
    assert body["prompt"] == ["The capital is Paris", "The capital is London"]
    assert body["echo"] is True and body["logprobs"] == 0


def test_openai_select_without_prompt_logprobs_says_what_is_missing():
    answer = {"id": "c", "choices": [
        {"index": i, "text": t, "finish_reason": "length",
         "logprobs": {"tokens": ["!"], "token_logprobs": [-1.0], "text_offset": [len(t)]}}
        for i, t in enumerate(["Q: a", "Q: b"])]}
    backend, _ = openai({("POST", "/v1/completions"): answer}, chat_template="chatml")
    with pytest.raises(NotImplementedError, match="echo: true"):
        backend.score("Q:", [" a", " b"])
    refusing, _ = openai({("POST", "/v1/completions"): (400, {"error": {"message": "no echo"}})},
                         chat_template="chatml")
    with pytest.raises(NotImplementedError, match="no echo"):
        refusing.score("Q:", [" a", " b"])


def test_openai_chat_markers_from_model_info_or_given_or_a_clear_error():
    backend, server = openai({("GET", "/model_info"): MODEL_INFO})
    assert backend.role_markers("user") == ("<u>", "</u>\n")
    assert backend.default_system_prompt == "Be kind."
    assert ("GET", "/model_info") in [(m, p) for m, p, _, _ in server.requests]
    assert openai({}, chat_template="chatml")[0].role_markers("user") == \
        ("<|im_start|>user\n", "<|im_end|>\n")
    bare, _ = openai({})
    with pytest.raises(ValueError, match="pass chat_template='chatml'"):
        bare.role_markers("user")


def test_openai_stream_collects_chunks_and_usage():
    chunks = [json.dumps({"id": "c", "choices": [{"index": 0, "text": t, "finish_reason": f}]})
              for t, f in (("Ro", None), ("me", None), ("", "stop"))]
    chunks.append(json.dumps({"id": "c", "choices": [], "usage": {"prompt_tokens": 7}}))
    backend, server = openai({("POST", "/v1/completions"): chunks + ["[DONE]"]},
                             chat_template="chatml")
    deltas = list(backend.stream("Q:", SamplingParams(max_new_tokens=4)))
    assert "".join(d.text for d in deltas) == "Rome"
    final = deltas[-1].output
    assert final.text == "Rome" and final.outputs[0].finish_reason == "stop"
    assert final.num_prompt_tokens == 7
    body = server.bodies("/v1/completions")[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
