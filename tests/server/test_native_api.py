"""The native API with httpx on the tiny model: /generate (whole, batched, streamed, logprobs,
constraints), /score, /warm, /health, /model_info, /flush_cache, /abort/{id}, /metrics."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from tests.server.live_server import needs_grammar

GREEDY = {"max_new_tokens": 6, "temperature": 0, "ignore_eos": True}


@pytest.fixture(scope="module")
def http(tiny_server):
    with tiny_server.client() as c:
        yield c


def sse_events(response) -> list:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_generate_text_and_input_ids_agree(http, tiny_server):
    r = http.post("/generate", json={"text": "The cat", "sampling_params": GREEDY})
    assert r.status_code == 200
    body = r.json()
    meta = body["meta_info"]
    assert meta["completion_tokens"] == 6 == len(body["output_ids"])
    assert meta["finish_reason"]["type"] == "length" and meta["id"] == r.headers["x-request-id"]
    ids = tiny_server.engine.tokenizer.encode("The cat")
    same = http.post("/generate", json={"input_ids": ids, "sampling_params": GREEDY}).json()
    assert same["output_ids"] == body["output_ids"] and same["text"] == body["text"]
    assert same["meta_info"]["cached_tokens"] == len(ids) - 1


def test_generate_batch_n_and_logprobs(http):
    r = http.post("/generate", json={"text": ["one", "two"], "return_logprob": True, "top_logprobs_num": 2,
                                     "sampling_params": {**GREEDY, "n": 2}}).json()
    assert isinstance(r, list) and len(r) == 4
    for item in r:
        lps = item["meta_info"]["output_token_logprobs"]
        assert [t for _, t, _ in lps] == item["output_ids"]
        assert all(len(top) == 2 for top in item["meta_info"]["output_top_logprobs"])
    assert r[0]["output_ids"] == r[1]["output_ids"]  # greedy copies


def test_logprobs_asked_for_in_sampling_params_are_answered(http):
    r = http.post("/generate", json={"text": "one", "sampling_params": {
        **GREEDY, "logprobs": True, "top_logprobs": 2}}).json()
    lps = r["meta_info"]["output_token_logprobs"]
    assert [t for _, t, _ in lps] == r["output_ids"]
    assert all(len(top) == 2 for top in r["meta_info"]["output_top_logprobs"])


def test_generate_stream_matches_whole(http):
    whole = http.post("/generate", json={"text": "Stream me", "sampling_params": GREEDY}).json()
    with http.stream("POST", "/generate", json={"text": "Stream me", "stream": True,
                                                "sampling_params": GREEDY}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    last = events[-2]
    assert last["meta_info"]["finish_reason"]["type"] == "length" and last["output_ids"] == whole["output_ids"]
    assert "".join(e["delta"] for e in events[:-1]) == whole["text"] == last["text"]


def test_stop_string_is_cut_and_reported(http):
    text = http.post("/generate", json={"text": "Stop test", "sampling_params": {**GREEDY, "max_new_tokens": 12}}).json()["text"]
    stop = text[len(text) // 2:][:2]
    r = http.post("/generate", json={"text": "Stop test", "sampling_params": {**GREEDY, "max_new_tokens": 12,
                                                                             "stop": stop}}).json()
    assert r["meta_info"]["finish_reason"] == {"type": "stop", "matched": stop}
    assert text.startswith(r["text"]) and stop not in r["text"]


@needs_grammar
def test_generate_with_constraints(http):
    r = http.post("/generate", json={"text": "Date:", "sampling_params": {
        "regex": r"20[0-9]{2}-(0[1-9]|1[0-2])", "max_new_tokens": 20}}).json()
    assert re.fullmatch(r"20[0-9]{2}-(0[1-9]|1[0-2])", r["text"])
    # string enums: a numeric enum also admits 1.000... (equal by value), unbounded for a random model
    schema = {"type": "object", "properties": {"n": {"enum": ["x", "y", "z"]}, "b": {"type": "boolean"}},
              "required": ["n", "b"], "additionalProperties": False}
    r = http.post("/generate", json={"text": "JSON:", "sampling_params": {"json_schema": schema,
                                                                        "max_new_tokens": 20}}).json()
    assert r["meta_info"]["finish_reason"]["type"] == "stop", r
    data = json.loads(r["text"])
    assert data["n"] in ("x", "y", "z") and isinstance(data["b"], bool)
    r = http.post("/generate", json={"text": "Pick:", "sampling_params": {"choices": ["left", "right"]}}).json()
    assert r["text"] in ("left", "right")


def test_score_ranks_choices_and_reuses_the_prefix(http):
    prefix = "Question: which way? Answer:"
    r = http.post("/score", json={"text": prefix, "choices": [" left", " right turn"], "unconditional": True})
    assert r.status_code == 200
    body = r.json()
    assert [c["choice"] for c in body["choices"]] == [" left", " right turn"]
    for c in body["choices"]:
        assert len(c["logprobs"]) == len(c["token_ids"]) >= 1 and all(lp <= 0 for lp in c["logprobs"])
        assert c["sum_logprob"] == pytest.approx(sum(c["logprobs"]))
    assert body["best"] in (0, 1) and body["best_choice"] == body["choices"][body["best"]]["choice"]
    # unconditional scores are of the same token ids, so select can subtract them row by row
    assert [u["token_ids"] for u in body["unconditional"]] == [c["token_ids"] for c in body["choices"]]
    assert all(lp <= 0 for u in body["unconditional"] for lp in u["logprobs"])
    again = http.post("/score", json={"text": prefix, "choices": [" left", " right turn"]}).json()
    assert again["meta_info"]["cached_tokens"] > 0
    assert again["choices"][0]["logprobs"] == pytest.approx(body["choices"][0]["logprobs"], abs=1e-4)


def test_warm_computes_a_prefix_into_the_cache(http):
    text = "A trunk shared by the branches of a fork, warmed once."
    first = http.post("/warm", json={"text": text}).json()
    again = http.post("/warm", json={"text": text}).json()
    assert first["prompt_tokens"] == again["prompt_tokens"] >= 10
    assert again["cached_tokens"] >= first["prompt_tokens"] - 1
    branch = http.post("/generate", json={"text": text + " Branch one:", "sampling_params": GREEDY}).json()
    assert branch["meta_info"]["cached_tokens"] >= first["prompt_tokens"] - 2


def test_health_and_model_info(http, tiny_server):
    assert http.get("/health").json() == {"status": "ok"}
    info = http.get("/model_info").json()
    assert info["max_model_len"] == tiny_server.engine.max_model_len
    tpl = info["chat_template"]
    assert tpl["role_markers"]["user"] == ["<|im_start|>user\n", "<|im_end|>\n"]
    assert tpl["tool_call_markers"] == ["<tool_call>", "</tool_call>"]
    assert info["served_model_name"] == http.get("/v1/models").json()["data"][0]["id"]


def test_abort_a_running_request_by_its_id(http, tiny_server):
    events: list = []

    def consume() -> None:
        with tiny_server.client() as c, c.stream("POST", "/generate", json={
                "text": "long one", "stream": True, "rid": "native-abort-1",
                "sampling_params": {"max_new_tokens": 1500, "ignore_eos": True}}) as r:
            events.extend(sse_events(r))

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.monotonic() + 10
    while http.post("/abort/native-abort-1").status_code == 404:
        assert time.monotonic() < deadline, "the request never showed up"
        time.sleep(0.01)
    t.join(timeout=10)
    final = events[-2]
    assert final["meta_info"]["finish_reason"]["type"] == "abort"
    assert final["meta_info"]["completion_tokens"] < 1500
    assert http.post("/abort/native-abort-1").status_code == 404  # gone now
    tiny_server.wait_idle()


def test_flush_cache_empties_the_radix_tree(http, tiny_server):
    http.post("/generate", json={"text": "fill the cache a little", "sampling_params": GREEDY})
    tiny_server.wait_idle()
    r = http.post("/flush_cache")
    assert r.status_code == 200 and r.json() == {"flushed": True}
    assert tiny_server.engine.stats()["kv_slots_used"] == 0


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return float(m.group(1))


def test_metrics_count_tokens_and_time_requests(http, tiny_server):
    before = http.get("/metrics")
    assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
    b = before.text
    http.post("/generate", json={"text": "metrics please", "sampling_params": GREEDY})
    tiny_server.wait_idle()
    a = http.get("/metrics").text
    assert metric(a, "tines:generation_tokens_total") >= metric(b, "tines:generation_tokens_total") + 6
    assert metric(a, "tines:prompt_tokens_total") > metric(b, "tines:prompt_tokens_total")
    assert metric(a, "tines:time_to_first_token_seconds_count") == metric(b, "tines:time_to_first_token_seconds_count") + 1
    assert metric(a, "tines:time_per_output_token_seconds_count") >= 1
    assert metric(a, "tines:num_requests_running") == 0 and metric(a, "tines:kv_slots_request_held") == 0
    assert metric(a, "tines:kv_slots_total") == tiny_server.engine.pool.num_slots
    assert metric(a, "tines:engine_time_to_first_token_seconds_count") >= 1
    for name in ("tines:num_requests_waiting", "tines:kv_usage_ratio", "tines:cache_hit_rate",
                 "tines:kv_slots_locked", 'tines:requests_total{endpoint="generate",finish_reason="length"}'):
        metric(a, name)
