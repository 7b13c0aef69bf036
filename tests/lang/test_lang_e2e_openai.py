"""`OpenAICompatible` against the tines server's OpenAI-compatible API on the default model:
text through /v1/completions, constraints through `regex` and `response_format`, n > 1,
streaming, and select through echoed prompt logprobs where the server gives them.
"""

from __future__ import annotations

import json
import re

import httpx
import jsonschema
import pytest
from pydantic import BaseModel

import tines
from tines.openai_compat import OpenAICompatible

pytestmark = pytest.mark.model

FEW_SHOT_QA = (
    "Question: What is the capital of France?\nAnswer: Paris\n\n"
    "Question: What is the capital of Germany?\nAnswer: Berlin\n\n"
)


@pytest.fixture(scope="module")
def openai_backend(lang_server):
    backend = OpenAICompatible(lang_server.url + "/v1")
    yield backend
    backend.close()


@tines.program
def capital(s, country):
    s += FEW_SHOT_QA + "Question: What is the capital of " + country + "?\nAnswer:"
    s += tines.gen("answer", stop="\n", max_tokens=8)


def test_gen_and_roles_from_the_server(openai_backend, local_backend, lang_server):
    listed = httpx.get(lang_server.url + "/v1/models").json()["data"]
    assert openai_backend.model == listed[0]["id"]  # no model named: the server's first
    for role in ("system", "user", "assistant"):
        assert openai_backend.role_markers(role) == local_backend.role_markers(role)
    assert openai_backend.default_system_prompt == local_backend.default_system_prompt
    state = capital.run("Italy", backend=openai_backend, temperature=0)
    assert state["answer"] == " Rome"
    meta = state.get_meta_info("answer")
    assert meta.finish_reason == "stop" and meta.prompt_tokens > 30


class Person(BaseModel):
    name: str
    age: int
    city: str


@tines.program
def record(s):
    s += tines.user("Extract the person as JSON: Alice is 30 years old and lives in Paris.")
    s += tines.assistant(tines.gen("person", json_schema=Person, max_tokens=48))
    s += "Date: " + tines.gen("date", regex=r"\d{4}-\d{2}-\d{2}")


def test_constraints_travel_as_response_format_and_regex(openai_backend):
    state = record.run(backend=openai_backend, temperature=0)
    assert state["person"] == Person(name="Alice", age=30, city="Paris")
    jsonschema.validate(json.loads(state.get_meta_info("person").output.text),
                        Person.model_json_schema())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", state["date"])


@tines.program
def names(s):
    s += tines.user("Write a name for a cat.")
    s += tines.assistant(tines.gen("names", max_tokens=8, n=3))


def test_n_3_and_streaming(openai_backend, local_backend):
    # The OpenAI wire does not carry token healing (OpenAI-compatible servers lack it), so
    # the local run is compared without it.
    state = names.run(backend=openai_backend, temperature=0.9, seed=7)
    local = names.run(backend=local_backend, temperature=0.9, seed=7, token_healing=False)
    assert state["names"] == local["names"] and len(state["names"]) == 3
    plain = capital.run("Japan", backend=openai_backend, temperature=0)
    streamed = capital.run("Japan", backend=openai_backend, temperature=0, stream=True)
    assert "".join(streamed.text_iter()) == plain.text() and plain["answer"] == " Tokyo"


@tines.program
def city(s):
    s += "The capital of France is" + tines.select("city", [" London", " Paris", " Berlin"])


def test_select_through_echoed_prompt_logprobs(openai_backend):
    state = city.run(backend=openai_backend)
    assert state["city"] == " Paris"
    scores = state.get_meta_info("city")["scores"]
    assert len(scores) == 3 and scores[1] == max(scores)
