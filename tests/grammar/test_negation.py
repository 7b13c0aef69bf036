"""Negation where a grammar complement is not exact (objects), by De Morgan over flats
(`json_negation.py`), and the keywords real-world schemas needed next: overlapping `oneOf`
of objects, `not` of closed objects and of object enums, double negation, `oneOf` branches
told apart by a required member's values, and `uniqueItems` over a small finite set.
Each schema: instances that must be accepted and ones that must be rejected, then random
outputs (byte walks finished by the closing path) validated with `jsonschema`."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest

from tests.grammar.walks import random_output
from tines.grammar import GrammarSpec, UnsupportedSchemaError

OPEN_ONE_OF = {"oneOf": [{"type": "object", "required": ["x"]},
                         {"type": "object", "required": ["y"]}]}
CLOSED_OPTIONAL_ONE_OF = {"type": "object", "oneOf": [
    {"properties": {"key": {"type": "string", "pattern": "^[a-z]+$"}},
     "additionalProperties": False},
    {"properties": {"keys": {"type": "array", "items": {"type": "string"}}},
     "additionalProperties": False}]}
NOT_CLOSED = {"type": "object", "not": {"properties": {"a": {"type": "integer"}},
                                        "additionalProperties": False}}
NOT_OBJECT_ENUM = {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}},
                             {"not": {"enum": [{"a": 1}, {"a": 2, "b": True}]}}]}
DOUBLE_NOT = {"not": {"not": {"type": "object", "required": ["id"]}}}
NOT_OF_NOTS = {"type": "string", "not": {"allOf": [{"not": {"pattern": "^a"}},
                                                   {"not": {"pattern": "b$"}}]}}
DISCRIMINATED_BY_TYPE = {"oneOf": [
    {"type": "object", "properties": {"v": {"type": "string"}, "p": {"enum": ["x", "y"]}},
     "required": ["v", "p"]},
    {"type": "object", "properties": {"v": {"type": "string"},
                                      "p": {"type": "object", "required": ["re"]}},
     "required": ["v", "p"]}]}
def optional_tags(n: int) -> dict:
    """oneOf of open objects told apart by an optional `kind`: {} matches every branch."""
    return {"type": "object", "oneOf": [
        {"properties": {"kind": {"const": f"k{i}"}, f"p{i}": {"type": "integer"}}}
        for i in range(n)]}


UNKNOWN_FORMAT_ONE_OF = {"type": "string", "oneOf": [{"maxLength": 0},
                                                     {"format": "x-selector", "minLength": 1}]}
UNIQUE_ENUM = {"type": "array", "uniqueItems": True, "minItems": 1,
               "items": {"enum": ["http", "https", "ws", "wss"]}}

CASES = [  # (schema, accepted, rejected)
    (OPEN_ONE_OF, ['{"x":1}', '{"y":2}', '{"x":1,"z":[]}'],
     ['{"x":1,"y":2}', "{}", "[]"]),
    (CLOSED_OPTIONAL_ONE_OF, ['{"key":"ab"}', '{"keys":[]}'],
     ["{}", '{"key":"a","keys":[]}', '{"key":"A"}']),
    (NOT_CLOSED, ['{"b":1}', '{"a":"x"}', '{"a":1,"b":2}'], ["{}", '{"a":1}']),
    (NOT_OBJECT_ENUM, ['{"a":3}', '{"a":2}', '{"a":1,"c":0}', "{}"],
     ['{"a":1}', '{"a":2,"b":true}', '{"a":"1"}']),
    (DOUBLE_NOT, ['{"id":1}', '{"id":null,"x":2}'], ["{}", '"id"', "1"]),
    (NOT_OF_NOTS, ['"ax"', '"xb"', '"ab"'], ['"xx"', '"ba"', "1"]),
    (DISCRIMINATED_BY_TYPE, ['{"v":"1","p":"x"}', '{"v":"1","p":{"re":"."}}'],
     ['{"v":"1","p":"z"}', '{"v":"1","p":{}}', '{"v":"1"}']),
    (optional_tags(4), ['{"kind":"k1"}', '{"kind":"k1","p2":1}', '{"kind":"k0","p0":1}'],
     ["{}", '{"p1":1}', '{"kind":"k9"}']),
    (UNKNOWN_FORMAT_ONE_OF, ['""', '"a"'], ["1"]),
    (UNIQUE_ENUM, ['["http"]', '["wss","http"]', '["http","https","ws","wss"]'],
     ["[]", '["http","http"]', '["ftp"]', '["ws","wss","ws"]']),
]


@pytest.mark.parametrize("index", range(len(CASES)))
def test_accepts_and_rejects(byte_compiler, index):
    schema, accepted, rejected = CASES[index]
    g = byte_compiler.compile(GrammarSpec.json_schema(schema))
    for text in accepted:
        assert g.accepts_text(text), text
        jsonschema.validate(json.loads(text), schema)  # the fixture itself is right
    for text in rejected:
        assert not g.accepts_text(text), text


@pytest.mark.parametrize("index", range(len(CASES)))
def test_random_outputs_validate(byte_compiler, index):
    schema = CASES[index][0]
    g = byte_compiler.compile(GrammarSpec.json_schema(schema))
    rng = random.Random(index)
    for _ in range(30):
        text = random_output(g, rng, 24, '{}[]",:0123456789abkxyz')
        jsonschema.validate(json.loads(text), schema)


def test_not_property_names_of_an_open_object_is_still_refused(byte_compiler):
    # "some member name matches a" needs an existential over keys the grammar cannot write
    schema = {"type": "object", "not": {"propertyNames": {"not": {"pattern": "a"}}}}
    with pytest.raises(UnsupportedSchemaError) as e:
        byte_compiler.compile(GrammarSpec.json_schema(schema))
    assert e.value.keyword == "not"


def test_unique_items_over_an_unbounded_set_is_still_refused(byte_compiler):
    schema = {"type": "array", "uniqueItems": True, "items": {"type": "string"}}
    with pytest.raises(UnsupportedSchemaError) as e:
        byte_compiler.compile(GrammarSpec.json_schema(schema))
    assert e.value.keyword == "uniqueItems"


def test_negations_past_the_budget_are_refused_not_compiled_for_minutes(byte_compiler):
    with pytest.raises(UnsupportedSchemaError) as e:
        byte_compiler.compile(GrammarSpec.json_schema(optional_tags(8)))
    assert e.value.keyword == "oneOf" and "cases" in str(e.value)


def test_a_liveness_search_past_its_budget_takes_the_state_as_live(byte_compiler):
    """Divisibility automata under `not` have no syntactic liveness: the search that decides
    it stops at its budget (counted), and acceptance stays exact."""
    schema = {"type": "number", "allOf": [{"multipleOf": 6.75}, {"multipleOf": 19}],
              "not": {"anyOf": [{"multipleOf": 2}, {"multipleOf": 7}]},
              "exclusiveMinimum": -100000, "exclusiveMaximum": -10000}
    g = byte_compiler.compile(GrammarSpec.json_schema(schema))
    assert g.automaton.num_liveness_overflows >= 1
    assert g.accepts_text("-12825")  # 100 × 128.25, odd, not a multiple of 7
    assert not g.accepts_text("-12826") and not g.accepts_text("-25650")  # even
