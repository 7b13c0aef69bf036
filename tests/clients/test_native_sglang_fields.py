"""Native /generate with SGLang's request fields, checked on the wire (what RuntimeEndpoint
relies on): prefill-only requests, logprob_start_len, stop_regex, nulls as unset."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="module")
def post(clients_server):
    def call(body: dict) -> httpx.Response:
        return httpx.post(clients_server.url + "/generate", json=body, timeout=60)
    return call


def test_prefill_only_generates_nothing(post):
    meta = post({"text": "Hello there", "sampling_params": {"max_new_tokens": 0}}).json()["meta_info"]
    assert meta["completion_tokens"] == 0 and meta["finish_reason"] == {"type": "length", "length": 0}


def test_logprob_start_len_lists_prompt_tokens_from_there(post, clients_server):
    ids = clients_server.engine.tokenizer.encode("one two three four")
    for start in (0, 2):
        item = post({"input_ids": ids, "sampling_params": {"max_new_tokens": 0},
                     "return_logprob": True, "logprob_start_len": start}).json()
        rows = item["meta_info"]["input_token_logprobs"]
        assert [r[1] for r in rows] == ids[start:]
        assert (rows[0][0] is None) == (start == 0) and all(r[0] <= 0 for r in rows[1:])


def test_stop_regex_cuts_text_and_output_ids(post, clients_server):
    full = post({"text": "Count:", "sampling_params": {"max_new_tokens": 12, "temperature": 0}}).json()
    cut_at = full["text"][4:6]
    item = post({"text": "Count:", "sampling_params": {"max_new_tokens": 12, "temperature": 0,
                                                       "stop_regex": [cut_at.replace("\\", "\\\\")]}}).json()
    assert item["text"] == full["text"][:full["text"].index(cut_at)]
    decoded = clients_server.engine.tokenizer.decode(item["output_ids"])
    assert item["text"].startswith(decoded) and item["meta_info"]["finish_reason"]["type"] == "stop"


@pytest.mark.parametrize("params, stream", [({"stop_regex": "("}, False), ({"stop_regex": "x"}, True),
                                            ({"spaces_between_special_tokens": 3}, False)])
def test_bad_sglang_fields_are_400_naming_them(post, params, stream):
    r = post({"text": "Hi", "sampling_params": params, "stream": stream})
    assert r.status_code == 400 and r.json()["error"]["param"] == f"sampling_params.{next(iter(params))}"


def test_nulls_mean_unset(post):
    r = post({"text": "Hi", "sampling_params": {"max_new_tokens": 2, "json_schema": None, "regex": None,
                                                "stop_regex": None, "top_k": None}, "top_logprobs_num": None})
    assert r.status_code == 200 and r.json()["meta_info"]["completion_tokens"] == 2


def test_sglang_info_routes(clients_server):
    with clients_server.client() as c:
        assert c.get("/get_model_info").json()["model_path"] == str(clients_server.engine.model_path)
        info = c.get("/get_server_info").json()
        assert set(c.get("/server_info").json()) == set(info) and info["context_length"] > 0
        assert c.get("/health_generate").json() == {"status": "ok"}


def test_negative_max_new_tokens_is_still_a_400(post):
    r = post({"text": "Hi", "sampling_params": {"max_new_tokens": -1}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "sampling_params.max_new_tokens"
