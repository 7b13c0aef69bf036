"""Programs on the default model, in-process and over HTTP (the `backend` fixture runs each
test on both). The model is small, so answers are held to what it can do reliably: few-shot
patterns, constrained decoding, choices; every test asserts values and structure.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from pydantic import BaseModel

import tines

pytestmark = pytest.mark.model

FEW_SHOT_QA = (
    "Question: What is the capital of France?\nAnswer: Paris\n\n"
    "Question: What is the capital of Germany?\nAnswer: Berlin\n\n"
    "Question: What is the capital of Spain?\nAnswer: Madrid\n\n"
)


@tines.program
def capital(s, country):
    s += FEW_SHOT_QA + "Question: What is the capital of " + country + "?\nAnswer:"
    s += tines.gen("answer", stop="\n", max_tokens=8)


def test_few_shot_qa(backend):
    answers = {c: capital.run(c, backend=backend, temperature=0)["answer"].strip()
               for c in ("Italy", "Japan", "Russia")}
    assert answers == {"Italy": "Rome", "Japan": "Tokyo", "Russia": "Moscow"}


@tines.program
def chat(s):
    s += tines.system("You are a helpful assistant.")
    s += tines.user("What is the capital of France?")
    s += tines.assistant(tines.gen("first", max_tokens=24, stop="\n"))
    s += tines.user("What is the capital of Italy?")
    s += tines.assistant(tines.gen("second", max_tokens=24, stop="\n"))


def test_multi_turn_chat_with_roles(backend):
    state = chat.run(backend=backend, temperature=0)
    messages = state.messages()
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[2]["content"] == state["first"] and messages[4]["content"] == state["second"]
    assert "Paris" in state["first"] and "Rome" in state["second"]
    user_begin, user_end = backend.role_markers("user")
    assert state.text().count(user_begin) == 2 and user_end in state.text()
    assert backend.default_system_prompt not in state.text()  # the program gave its own
    first, second = state.get_meta_info("first"), state.get_meta_info("second")
    # The second turn's prompt starts with the whole first turn: found in the cache.
    assert second.cached_tokens >= first.prompt_tokens


@tines.program
def city(s, method=tines.token_length_normalized):
    s += "The capital of France is"
    s += tines.select("city", [" London", " Paris", " Berlin"], choices_method=method)


@pytest.mark.parametrize("method", [tines.token_length_normalized,
                                    tines.greedy_token_selection,
                                    tines.unconditional_likelihood_normalized])
def test_select(backend, method):
    state = city.run(method, backend=backend)
    meta = state.get_meta_info("city")
    assert state["city"] == " Paris" and meta.index == 1
    assert state.text() == "The capital of France is Paris"
    assert meta.method == method.name and len(meta.scores) == 3
    assert max(range(3), key=meta.scores.__getitem__) == 1
    assert ["".join(t.token for t in row) for row in meta.logprobs] == list(meta.choices)
    assert all(t.logprob <= 0 for row in meta.logprobs for t in row)
    if method.requires_unconditional:
        assert [len(r) for r in meta.unconditional] == [len(r) for r in meta.logprobs]
    assert meta.prompt_tokens == 5  # "The capital of France is"


@tines.program
def add(s, a, b):
    s += tines.user("What is " + a + " plus " + b + "?")
    s += tines.assistant("The answer is " + tines.gen("n", dtype=int, max_tokens=4))


def test_decoding_an_int(backend):
    state = add.run("10", "5", backend=backend, temperature=0)
    assert state["n"] == 15 and isinstance(state["n"], int)
    assert state.text().endswith("The answer is 15" + backend.role_markers("assistant")[1])
    assert add.run("2", "3", backend=backend, temperature=0)["n"] == 5


class Person(BaseModel):
    name: str
    age: int
    city: str


@tines.program
def extract(s, text):
    s += tines.user("Extract the person as JSON: " + text)
    s += tines.assistant(tines.gen("person", json_schema=Person, max_tokens=48))


@tines.program
def extract_dict(s, text, schema):
    s += tines.user("Extract the person as JSON: " + text)
    s += tines.assistant(tines.gen("person", json_schema=schema, max_tokens=48))


def test_json_that_validates(backend):
    state = extract.run("Alice is 30 years old and lives in Paris.", backend=backend,
                        temperature=0)
    assert state["person"] == Person(name="Alice", age=30, city="Paris")
    schema = {"type": "object", "additionalProperties": False,
              "required": ["name", "age"],
              "properties": {"name": {"type": "string", "maxLength": 12},
                             "age": {"type": "integer", "minimum": 0, "maximum": 120}}}
    state = extract_dict.run("Bob is 41 years old and lives in Rome.", schema, backend=backend,
                             temperature=0)
    value = json.loads(state["person"])
    jsonschema.validate(value, schema)
    assert value == {"name": "Bob", "age": 41}


FIELDS = {"date": r"\d{4}-\d{2}-\d{2}", "phone": r"\d{3}-\d{3}-\d{4}",
          "email": r"[a-z]+@[a-z]+\.com", "zip": r"[0-9]{5}"}


@tines.program
def record(s):
    s += tines.user("Make up a user record.")
    with s.assistant():
        for name, pattern in FIELDS.items():
            s += name.capitalize() + ": " + tines.gen(name, regex=pattern, max_tokens=16) + "\n"


def test_regex_constrained_fields(backend):
    state = record.run(backend=backend, temperature=0)
    for name, pattern in FIELDS.items():
        assert re.fullmatch(pattern, state[name]), (name, state[name])
        assert state.get_meta_info(name).finish_reason == "stop"
    assert state.messages()[-1]["content"] == "".join(
        f"{n.capitalize()}: {state[n]}\n" for n in FIELDS)


@tines.program
def typed(s):
    s += "Number of legs of a cat: " + tines.gen("legs", dtype=int, max_tokens=4)
    s += "\nPrice in euros: " + tines.gen("price", dtype=float, max_tokens=6)
    s += "\nIs the sky blue (True or False)? " + tines.gen("blue", dtype=bool, max_tokens=3)
    s += "\nName of the cat, in quotes: " + tines.gen("name", dtype=str, max_tokens=10)


def test_dtype_gen(backend):
    state = typed.run(backend=backend, temperature=0)
    assert type(state["legs"]) is int and type(state["price"]) is float
    assert type(state["blue"]) is bool and type(state["name"]) is str
    text = state.text()
    assert f"cat: {state['legs']}\n" in text and f"(True or False)? {state['blue']}\n" in text
    assert f'in quotes: "{state["name"]}"' in text


@tines.program
def short_reply(s, min_tokens):
    s += tines.user("Reply with one word: is the sky blue?")
    s += tines.assistant(tines.gen("reply", max_tokens=32, min_tokens=min_tokens))


def test_min_tokens_honoured(backend):
    free = short_reply.run(0, backend=backend, temperature=0).get_meta_info("reply")
    assert free.finish_reason == "stop" and free.completion_tokens < 16
    held = short_reply.run(16, backend=backend, temperature=0).get_meta_info("reply")
    assert held.completion_tokens >= 16


@tines.program
def cat_names(s, n):
    s += tines.user("Write a name for a cat.")
    s += tines.assistant(tines.gen("names", max_tokens=8, n=n))


def test_gen_with_n_3(backend):
    state = cat_names.run(3, backend=backend, temperature=0.9, seed=7)
    names, meta = state["names"], state.get_meta_info("names")
    assert isinstance(names, list) and len(names) == 3 and all(isinstance(x, str) for x in names)
    assert [c.text for c in meta.completions] == names and len(set(names)) > 1
    assert state.text().endswith(names[0] + backend.role_markers("assistant")[1])
    greedy = cat_names.run(3, backend=backend, temperature=0)["names"]
    assert len(greedy) == 3 and len(set(greedy)) == 1  # greedy copies decode alike


@tines.program
def story(s):
    s += tines.user("Tell me a one-sentence story about a dragon.")
    s += tines.assistant(tines.gen("story", max_tokens=16))
    s += "\nRating: " + tines.select("rating", ["good", "bad"])


def test_streaming_yields_the_same_text(backend):
    plain = story.run(backend=backend, temperature=0)
    streamed = story.run(backend=backend, temperature=0, stream=True)
    pieces = list(streamed.text_iter())
    assert len(pieces) > 3 and "".join(pieces) == plain.text() == streamed.text()
    assert streamed["story"] == plain["story"] and streamed["rating"] == plain["rating"]
    again = story.run(backend=backend, temperature=0, stream=True)
    assert "".join(again.text_iter("story")) == plain["story"]
