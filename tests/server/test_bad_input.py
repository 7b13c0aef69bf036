"""Bad requests get OpenAI-style errors with the right status and the field named, and never
hurt the server: a good request right after each one still succeeds."""

from __future__ import annotations

import threading
import time

import pytest

from tests.server.live_server import needs_grammar, start_server
from tines.runtime.engine.engine import Engine

TEXT = "<|im_start|>user\nhi<|im_end|>\n"


@pytest.fixture(scope="module")
def http(tiny_server):
    with tiny_server.client() as c:
        yield c


@pytest.fixture(scope="module")
def model(http):
    return http.get("/v1/models").json()["data"][0]["id"]


def chat(model: str, **kw):
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **kw}


def expect_error(r, status: int, param: str | None = None, words: tuple[str, ...] = ()) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param, err
    for w in words:
        assert w in err["message"], err
    return err


def still_serving(http, model: str) -> None:
    r = http.post("/v1/chat/completions", json=chat(model))
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1


BAD_OPENAI = [
    # (description, path, body, status, param, words in message)
    ("unknown field", "/v1/chat/completions", {"temprature": 0.5}, 400, "temprature", ("unknown field",)),
    ("wrong type", "/v1/chat/completions", {"temperature": "hot"}, 400, "temperature", ()),
    ("wrong type in a message", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": 5}]}, 400, None, ("messages",)),
    ("unknown role", "/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, 400, None, ()),
    ("no messages", "/v1/chat/completions", {"messages": []}, 400, "messages", ()),
    ("zero max_tokens", "/v1/chat/completions", {"max_tokens": 0}, 400, "max_tokens", ("positive",)),
    ("negative max_completion_tokens", "/v1/chat/completions", {"max_completion_tokens": -3}, 400,
     "max_completion_tokens", ("positive",)),
    ("zero max_tokens, completions", "/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens", ()),
    ("top_p out of range", "/v1/chat/completions", {"top_p": 1.5}, 400, "top_p", ()),
    ("n = 0", "/v1/chat/completions", {"n": 0}, 400, "n", ()),
    ("unknown model", "/v1/chat/completions", {"model": "gpt-17"}, 404, "model", ("gpt-17",)),
    ("json_schema without schema", "/v1/chat/completions",
     {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, 400,
     "response_format.json_schema.schema", ()),
    ("two constraints", "/v1/chat/completions",
     {"response_format": {"type": "json_object"}, "regex": "a+"}, 400, "response_format", ("combined",)),
    ("named tool that does not exist", "/v1/chat/completions",
     {"tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, 400, "tool_choice.function.name", ()),
    ("image content", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]}, 400,
     "messages[0].content[0]", ("text",)),
    ("null content", "/v1/chat/completions", {"messages": [{"role": "user", "content": None}]}, 400,
     "messages[0].content", ("required",)),
    ("assistant without content or calls", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": None}]}, 400,
     "messages[1].content", ("tool_calls",)),
    ("stream_options without stream", "/v1/chat/completions",
     {"stream_options": {"include_usage": True}}, 400, "stream_options", ("stream",)),
    ("logit_bias", "/v1/completions", {"prompt": "x", "logit_bias": {"5": 101}}, 400, "logit_bias", ()),
    ("token id outside the vocabulary", "/v1/completions", {"prompt": [1, 10 ** 7]}, 400, "prompt", ("vocabulary",)),
]


@pytest.mark.parametrize("case", BAD_OPENAI, ids=[c[0] for c in BAD_OPENAI])
def test_bad_openai_requests(http, model, case):
    _, path, body, status, param, words = case
    base = chat(model) if path.endswith("chat/completions") else {"model": model, "prompt": "x", "max_tokens": 2}
    expect_error(http.post(path, json={**base, **body}), status, param, words)
    still_serving(http, model)


def test_null_for_an_optional_field_is_its_default(http, model):
    body = chat(model, n=None, stream=None, logprobs=None, parallel_tool_calls=None, top_p=None)
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200 and len(r.json()["choices"]) == 1
    r = http.post("/v1/completions", json={"model": model, "prompt": "x", "max_tokens": 2,
                                           "echo": None, "n": None})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] >= 1
    expect_error(http.post("/v1/chat/completions", json=chat(model, messages=None)), 400, "messages")


def test_bodies_that_are_not_json_objects(http, model):
    for raw in (b"{not json", b"[1, 2]", b""):
        r = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
        expect_error(r, 400)
        still_serving(http, model)
    err = expect_error(http.post("/v1/chat/completions", content=b'{"model": "x",',
                                 headers={"content-type": "application/json"}), 400)
    assert "JSON" in err["message"]


def test_prompt_longer_than_the_context_is_400_context_length_exceeded(http, model, tiny_server):
    limit = tiny_server.engine.max_model_len
    long_text = "hello " * (limit + 10)
    err = expect_error(http.post("/v1/chat/completions", json=chat(model, messages=[
        {"role": "user", "content": long_text}])), 400, "messages", ("context",))
    assert err["code"] == "context_length_exceeded"
    expect_error(http.post("/v1/completions", json={"model": model, "prompt": [5] * limit}), 400, "prompt")
    expect_error(http.post("/generate", json={"text": long_text}), 400, "text")
    still_serving(http, model)


def test_bad_native_requests(http, model):
    cases = [
        ({"text": "x", "sampling_params": {"max_new_tokens": -1}}, "sampling_params.max_new_tokens"),
        ({"text": "x", "sampling_params": {"temperature": "warm"}}, "sampling_params.temperature"),
        ({"text": "x", "sampling_params": {"beam_width": 4}}, "sampling_params.beam_width"),
        ({"input_ids": [-1]}, "input_ids"),
        ({"text": "x", "input_ids": [1]}, "text"),
        ({"text": "x", "unknown": 1}, "unknown"),
    ]
    for body, param in cases:
        expect_error(http.post("/generate", json=body), 400, param)
        still_serving(http, model)
    expect_error(http.post("/score", json={"text": "x", "choices": []}), 400, "choices")
    expect_error(http.post("/abort/no-such-request"), 404, "request_id")
    expect_error(http.get("/no/such/route"), 404)


@needs_grammar
def test_bad_constraints_are_400(http, model):
    err = expect_error(http.post("/v1/completions", json={"model": model, "prompt": "x", "regex": "[a-"}),
                       400, "regex", ("regex",))
    still_serving(http, model)
    schema = {"type": "object", "properties": {"d": {"type": "array", "uniqueItems": True}}}
    err = expect_error(http.post("/v1/chat/completions", json=chat(model, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})), 400, "response_format")
    assert "uniqueItems" in err["message"]
    still_serving(http, model)
    expect_error(http.post("/generate", json={"text": "x", "sampling_params": {"regex": "(unclosed"}}),
                 400, "sampling_params.regex")
    still_serving(http, model)


def test_api_key(tiny_server_engine):
    live = start_server(tiny_server_engine, api_key="s3cret")
    try:
        with live.client() as c:
            body = {"model": c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).json()["data"][0]["id"],
                    "prompt": "x", "max_tokens": 1}
            err = expect_error(c.post("/v1/completions", json=body), 401)
            assert err["code"] == "invalid_api_key"
            expect_error(c.post("/v1/completions", json=body, headers={"Authorization": "Bearer wrong"}), 401)
            expect_error(c.post("/generate", json={"text": "x"}), 401)
            expect_error(c.get("/metrics"), 401)
            assert c.get("/health").status_code == 200  # probes need no key
            ok = c.post("/v1/completions", json=body, headers={"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200
        client = live.openai(api_key="s3cret")
        assert client.completions.create(**body).usage.completion_tokens == 1
    finally:
        live.stop()


def test_full_queue_is_503_with_retry_after(tiny_model_dir):
    engine = Engine(str(tiny_model_dir), kv_tokens=4096, max_running=1, max_queue=1)
    live = start_server(engine)
    long = {"text": "x", "sampling_params": {"max_new_tokens": 2000, "ignore_eos": True}}
    threads = []
    try:
        with live.client() as c:
            for i in range(2):  # one runs, one waits
                t = threading.Thread(target=lambda i=i: live.client().post("/generate", json={**long, "rid": f"q{i}"}))
                t.start()
                threads.append(t)
                deadline = time.monotonic() + 10
                while engine.stats()["running"] + engine.stats()["waiting"] < i + 1:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
            r = c.post("/generate", json={"text": "y"})
            err = expect_error(r, 503, words=("queue",))
            assert err["code"] == "queue_full" and int(r.headers["retry-after"]) >= 1
            assert c.post("/abort/q0").status_code == 200 and c.post("/abort/q1").status_code == 200
            for t in threads:
                t.join(timeout=10)
            assert c.post("/generate", json={"text": "y", "sampling_params": {"max_new_tokens": 2}}).status_code == 200
        live.wait_idle()
    finally:
        live.stop()
        engine.shutdown()
