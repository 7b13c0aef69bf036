"""logit_bias: an additive bias on the logits, on both OpenAI routes and native /generate."""

from __future__ import annotations

import httpx
import openai
import pytest


@pytest.fixture(scope="module")
def client(clients_server):
    return clients_server.openai()


@pytest.fixture(scope="module")
def token(clients_server) -> tuple[int, str]:
    tok = clients_server.engine.tokenizer
    tid = tok.encode(" the", add_special_tokens=False)[0]
    return tid, tok.decode([tid])


def test_completions_bias_100_forces_the_token(client, model_name, token):
    tid, text = token
    r = client.completions.create(model=model_name, prompt="Hello", max_tokens=4, temperature=0,
                                  logit_bias={str(tid): 100})
    assert r.choices[0].text == text * 4


def test_chat_bias_100_forces_the_token(client, model_name, token):
    tid, text = token
    r = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": "Hi"}],
                                       max_tokens=3, temperature=0, logit_bias={str(tid): 100})
    assert r.choices[0].message.content == text * 3


def test_bias_minus_100_bans_the_greedy_token(client, model_name, clients_server):
    greedy = httpx.post(clients_server.url + "/generate", timeout=60, json={
        "text": "Hello", "sampling_params": {"max_new_tokens": 1, "temperature": 0}}).json()
    first = greedy["output_ids"][0]
    r = client.completions.create(model=model_name, prompt="Hello", max_tokens=1, temperature=0,
                                  logprobs=1, logit_bias={str(first): -100})
    assert r.choices[0].text != greedy["text"]


def test_native_sampling_params_logit_bias(clients_server, token):
    tid, _ = token
    r = httpx.post(clients_server.url + "/generate", timeout=60, json={
        "text": "Hello", "sampling_params": {"max_new_tokens": 3, "temperature": 0,
                                             "logit_bias": {str(tid): 100}}})
    assert r.json()["output_ids"] == [tid] * 3


@pytest.mark.parametrize("bias, needle", [({"999999999": 1}, "outside the vocabulary"),
                                          ({"5": 101}, "[-100.0, 100.0]"),
                                          ({"x": 1}, "not a token id")])
def test_bad_logit_bias_is_a_400_naming_the_field(client, model_name, bias, needle):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model_name, prompt="Hi", max_tokens=2, logit_bias=bias)
    assert e.value.body["param"] == "logit_bias" and needle in e.value.body["message"]
