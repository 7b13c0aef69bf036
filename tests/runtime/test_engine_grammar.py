"""Constrained decoding inside the engine: the sampler masks with the grammar every step, and
jump-forward appends forced text. Soundness is drawn from the tiny random model (it wanders
far) with the real vocabulary, plus a few greedy answers of the default model."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from pydantic import BaseModel

from tines.grammar import UnsupportedSchemaError
from tines.runtime.engine.engine import Engine
from tines.runtime.sampling_params import SamplingParams

REGEXES = [
    r"[0-9]{3}-[0-9]{4}",
    r"(yes|no|maybe)",
    r"[a-z]{1,8}@[a-z]{1,8}\.(com|org|net)",
    r"-?(0|[1-9][0-9]{0,5})(\.[0-9]{1,3})?",
    r"\((\d{3})\) \d{3}-\d{4}",
    r"[A-Z][a-z]{2,8}( [A-Z][a-z]{2,8}){0,2}",
]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
        "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10},
                                                     "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                    "required": ["city", "zip"], "additionalProperties": False},
        "score": {"type": ["number", "null"], "minimum": -1, "maximum": 1},
    },
    "required": ["name", "age", "role", "tags", "address", "score"],
    "additionalProperties": False,
}
SCHEMAS = [
    PERSON,
    {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 99}, "minItems": 2, "maxItems": 4},
    {"type": "object", "properties": {"ok": {"type": "boolean"}, "when": {"type": "string", "format": "date"}},
     "required": ["ok", "when"], "additionalProperties": False},
    {"$defs": {"leaf": {"type": "object", "properties": {"v": {"const": 1}}, "required": ["v"],
                        "additionalProperties": False}},
     "anyOf": [{"$ref": "#/$defs/leaf"}, {"type": "string", "enum": ["none"]}]},
]


class Weather(BaseModel):
    city: str
    celsius: int


def sample(engine: Engine, params: SamplingParams, n: int = 8, prompt: str = "Answer:") -> list:
    outs = engine.generate([prompt] * n, params)
    return [c for o in outs for c in o.outputs]


@pytest.mark.parametrize("regex", REGEXES)
def test_random_model_samples_match_the_regex(tiny_engine, regex):
    params = SamplingParams(regex=regex, temperature=1.0, max_new_tokens=64)
    done = [c for c in sample(tiny_engine, params, n=12) if c.finish_reason == "stop"]
    assert len(done) >= 9  # a random walk may run out of tokens inside a long run
    for c in done:
        assert re.fullmatch(regex, c.text), c.text


@pytest.mark.parametrize("schema", SCHEMAS, ids=["person", "int-array", "date", "ref-anyof"])
def test_random_model_samples_validate_against_the_schema(tiny_engine, schema):
    params = SamplingParams(json_schema=schema, temperature=1.0, max_new_tokens=200)
    done = [c for c in sample(tiny_engine, params, n=12) if c.finish_reason == "stop"]
    assert len(done) >= 9  # a random walk may run out of tokens inside a long string
    checker = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for c in done:
        checker.validate(json.loads(c.text))


def test_choices_pick_exactly_one_choice(tiny_engine):
    choices = ["red", "green", "blue violet"]
    outs = sample(tiny_engine, SamplingParams(choices=choices, temperature=1.0, max_new_tokens=16))
    assert {c.text for c in outs} <= set(choices)


def test_n_completions_each_follow_the_grammar(tiny_engine):
    out = tiny_engine.generate("x", SamplingParams(regex=r"[0-9]{4}", n=4, temperature=1.0, seed=3))
    assert len(out.outputs) == 4
    assert all(re.fullmatch(r"[0-9]{4}", c.text) for c in out.outputs)


def test_jump_forward_saves_forward_passes_and_keeps_outputs_valid(tiny_model_dir):
    schema = {"type": "object", "properties": {"first_name": {"enum": ["ann", "bob"]},
                                               "last_name": {"enum": ["lee", "kim"]}},
              "required": ["first_name", "last_name"], "additionalProperties": False}
    params = SamplingParams(json_schema=schema, temperature=0, max_new_tokens=40)
    with Engine(str(tiny_model_dir), kv_tokens=2048, jump_forward=True, weights="fp32") as on, \
            Engine(str(tiny_model_dir), kv_tokens=2048, jump_forward=False, weights="fp32") as off:
        a, b = on.generate("go", params), off.generate("go", params)
        assert on.stats()["forced_tokens"] > 0 and off.stats()["forced_tokens"] == 0
        assert on.stats()["steps"] < off.stats()["steps"]
    for out in (a, b):
        obj = json.loads(out.text)
        assert obj["first_name"] in ("ann", "bob") and obj["last_name"] in ("lee", "kim")


def test_every_output_token_has_a_logprob_where_the_grammar_forces_text(tiny_engine):
    schema = {"type": "object", "properties": {"first_name": {"enum": ["ann", "bob"]}},
              "required": ["first_name"], "additionalProperties": False}
    params = SamplingParams(json_schema=schema, temperature=0, max_new_tokens=40, logprobs=True)
    (c,) = tiny_engine.generate("go", params).outputs
    assert json.loads(c.text)["first_name"] in ("ann", "bob")
    assert [lp.token_id for lp in c.logprobs] == c.token_ids


def test_bad_regex_fails_at_submit_with_a_clear_error(tiny_engine):
    with pytest.raises(ValueError, match="regex"):
        tiny_engine.submit("x", SamplingParams(regex="(unclosed"))


def test_unsupported_schema_keyword_is_named(tiny_engine):
    schema = {"type": "object", "properties": {"a": {"type": "object", "unevaluatedProperties": False}}}
    with pytest.raises(UnsupportedSchemaError) as err:
        tiny_engine.generate("x", SamplingParams(json_schema=schema))
    assert "unevaluatedProperties" in str(err.value) and "/properties/a" in str(err.value)


def test_engine_is_idle_and_leak_free_after_constrained_work(tiny_engine):
    tiny_engine.call(lambda core: core.scheduler.check_idle())


@pytest.mark.parametrize("schema", [PERSON, Weather.model_json_schema()], ids=["person", "pydantic"])
def test_default_model_answers_validate(default_engine, schema):
    prompt = default_engine.chat_template.render(
        [{"role": "user", "content": "Describe a person (or the weather in Paris) as JSON."}])
    out = default_engine.generate(prompt, SamplingParams(json_schema=schema, temperature=0,
                                                         max_new_tokens=160))
    assert out.outputs[0].finish_reason == "stop"
    jsonschema.validate(json.loads(out.text), schema)


def test_default_model_regex_field(default_engine):
    prompt = default_engine.chat_template.render(
        [{"role": "user", "content": "What year did World War II end? Reply with the year."}])
    out = default_engine.generate(prompt, SamplingParams(regex=r"(19|20)[0-9]{2}", temperature=0))
    assert re.fullmatch(r"(19|20)[0-9]{2}", out.text)
