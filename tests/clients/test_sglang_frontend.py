"""SGLang's own frontend (the real `sglang` package, unmodified) against a live tines server:
`sgl.RuntimeEndpoint(url)` and SGLang programs run as written for SGLang's server.

The tiny model is random, so assertions compare against what the same server answers to a
direct request (greedy decoding is deterministic) or check the shape a constraint imposes.
"""

from __future__ import annotations

import json
import math
import re

import httpx
import pytest

sgl = pytest.importorskip("sglang")

GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def backend(clients_server):
    return sgl.RuntimeEndpoint(clients_server.url)


def _direct(server, text: str, **params) -> str:
    """The text the server's native /generate answers, greedily."""
    body = {"text": text, "sampling_params": {**GREEDY, **params}}
    r = httpx.post(server.url + "/generate", json=body, timeout=60)
    r.raise_for_status()
    return r.json()["text"]


@sgl.function
def complete(s, prompt, **gen_kw):
    s += prompt + sgl.gen("answer", temperature=0, **gen_kw)


def test_gen_equals_direct_generate(backend, clients_server):
    state = complete.run(prompt="The capital of France is", max_tokens=8, backend=backend)
    meta = state.get_meta_info("answer")
    assert state["answer"] == _direct(clients_server, "The capital of France is", max_new_tokens=8)
    assert 1 <= meta["completion_tokens"] <= 8 and meta["prompt_tokens"] > 1
    assert meta["finish_reason"]["type"] in ("length", "stop")


def _stop_piece(text: str) -> str:
    """A 2-character piece from the middle of `text` with no earlier occurrence."""
    for i in range(2, len(text) - 2):
        piece = text[i:i + 2]
        if piece.strip() and text.find(piece) == i:
            return piece
    pytest.skip(f"no usable stop piece in {text!r}")


def test_stop_cuts_before_the_stop_string(backend):
    full = complete.run(prompt="Once upon a time", max_tokens=16, backend=backend)["answer"]
    piece = _stop_piece(full)
    state = complete.run(prompt="Once upon a time", max_tokens=16, stop=piece, backend=backend)
    assert state["answer"] == full[:full.index(piece)]
    assert state.get_meta_info("answer")["finish_reason"] == {"type": "stop", "matched": piece}


def test_stop_regex_cuts_before_the_match(backend):
    full = complete.run(prompt="Once upon a time", max_tokens=16, backend=backend)["answer"]
    piece = _stop_piece(full)
    state = complete.run(prompt="Once upon a time", max_tokens=16, stop_regex=re.escape(piece),
                         backend=backend)
    assert state["answer"] == full[:full.index(piece)]


def test_roles_render_with_the_chat_template(backend):
    @sgl.function
    def chat(s):
        s += sgl.system("You are terse.")
        s += sgl.user("Say hi.")
        s += sgl.assistant(sgl.gen("reply", max_tokens=6, temperature=0))

    state = chat.run(backend=backend)
    roles = [m["role"] for m in state.messages()]
    assert roles == ["system", "user", "assistant"]
    assert state.messages()[-1]["content"] == state["reply"].strip()  # SGLang strips it
    assert "You are terse." in state.text() and "Say hi." in state.text()


def test_run_batch_equals_single_runs(backend):
    prompts = ["Paris is", "The sea is", "Numbers: 1, 2,"]
    batch = complete.run_batch([{"prompt": p, "max_tokens": 6} for p in prompts], backend=backend)
    singles = [complete.run(prompt=p, max_tokens=6, backend=backend)["answer"] for p in prompts]
    assert [s["answer"] for s in batch] == singles


def test_stream_pieces_join_to_the_answer(backend):
    whole = complete.run(prompt="A long story:", max_tokens=12, backend=backend)["answer"]
    state = complete.run(prompt="A long story:", max_tokens=12, stream=True, backend=backend)
    pieces = list(state.text_iter("answer"))
    assert "".join(pieces) == whole and len([p for p in pieces if p]) > 1


CHOICES = ["red", "green", "blue"]


@sgl.function
def pick(s, method):
    s += "My favourite colour is " + sgl.select("colour", CHOICES, choices_method=method)


def _score(server, prefix: str) -> list[list[float]]:
    r = httpx.post(server.url + "/score", json={"text": prefix, "choices": CHOICES}, timeout=60)
    return [c["logprobs"] for c in r.json()["choices"]]


def test_select_token_length_normalized(backend, clients_server):
    state = pick.run(method=sgl.token_length_normalized, backend=backend)
    meta = state.get_meta_info("colour")
    scores = meta["normalized_prompt_logprobs"]
    assert state["colour"] == CHOICES[max(range(3), key=lambda i: scores[i])]
    # the logprobs SGLang reads are the ones tines scores the choices by
    for row, own in zip(meta["input_token_logprobs"], _score(clients_server, "My favourite colour is ")):
        assert [lp for lp, _, _ in row[-len(own):]] == pytest.approx(own, abs=1e-4)


def test_select_greedy_token_selection(backend):
    state = pick.run(method=sgl.greedy_token_selection, backend=backend)
    assert state["colour"] in CHOICES


def test_select_unconditional_likelihood_normalized(backend):
    state = pick.run(method=sgl.unconditional_likelihood_normalized, backend=backend)
    meta = state.get_meta_info("colour")
    scores = meta["normalized_unconditional_prompt_logprobs"]
    assert state["colour"] == CHOICES[max(range(3), key=lambda i: scores[i])]
    assert [len(u) for u in meta["unconditional_token_logprobs"]] == \
        [len(c) for c in meta["input_token_logprobs"]]


def test_regex(backend):
    state = complete.run(prompt="Code:", regex=r"[0-9]{3}-[a-z]{2}", max_tokens=16, backend=backend)
    assert re.fullmatch(r"[0-9]{3}-[a-z]{2}", state["answer"])


def test_json_schema(backend):
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                               "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    state = complete.run(prompt="Person:", json_schema=json.dumps(schema), max_tokens=48,
                         backend=backend)
    value = json.loads(state["answer"])
    # JSON Schema's integer is a number with no fraction (so -0.0 is one)
    assert set(value) == {"name", "age"} and float(value["age"]).is_integer()


def test_gen_int(backend):
    @sgl.function
    def count(s):
        s += "How many? " + sgl.gen_int("n", max_tokens=6)

    state = count.run(backend=backend)
    assert re.fullmatch(r"-?[0-9]+", state["n"])


def test_fork_join(backend, clients_server):
    @sgl.function
    def branches(s):
        s += "Two ideas:"
        forks = s.fork(2)
        for i, f in enumerate(forks):
            f += f" idea {i}:" + sgl.gen("idea", max_tokens=5, temperature=0)
        s += " first:" + forks[0]["idea"] + " second:" + forks[1]["idea"]

    state = branches.run(backend=backend)
    for i in range(2):
        expected = _direct(clients_server, f"Two ideas: idea {i}:", max_new_tokens=5)
        assert f"{['first', 'second'][i]}:{expected}" in state.text()


def test_return_logprob(backend):
    state = complete.run(prompt="Hello", max_tokens=5, return_logprob=True, top_logprobs_num=2,
                         backend=backend)
    meta = state.get_meta_info("answer")
    rows, tops = meta["output_token_logprobs"], meta["output_top_logprobs"]
    assert len(rows) == len(tops) == meta["completion_tokens"]
    for (lp, token_id, _), top in zip(rows, tops):
        assert lp <= 0 and len(top) == 2
        assert top[0][1] == token_id and math.isclose(top[0][0], lp, abs_tol=1e-4)  # greedy


def test_cache_prefix_then_generate_hits_the_cache(backend, clients_server):
    prefix = "A prefix worth caching, long enough to fill a page or two of tokens. " * 3
    backend.cache_prefix(prefix)
    r = httpx.post(clients_server.url + "/generate", timeout=60, json={
        "text": prefix + "More", "sampling_params": {"max_new_tokens": 2}})
    assert r.json()["meta_info"]["cached_tokens"] > 0


def test_server_info_and_health_generate(backend, clients_server):
    info = backend.get_server_info()
    assert info["context_length"] > 0
    assert httpx.get(clients_server.url + "/health_generate", timeout=60).status_code == 200
    assert backend.get_model_name() == backend.model_info["model_path"]
