"""How JSON schemas are closed before they become grammars (json_closing)."""

from __future__ import annotations

import copy

from tines.grammar.json_closing import close_schema

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "tags": {
    "type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}},
    "required": ["name"], "$defs": {"Pet": {"properties": {"legs": {"type": "integer"}}}}}


def test_default_closes_objects_that_list_properties_everywhere():
    out = close_schema(PERSON)
    assert out["additionalProperties"] is False
    assert out["properties"]["tags"]["items"]["additionalProperties"] is False
    assert out["$defs"]["Pet"]["additionalProperties"] is False
    assert out["required"] == ["name"]  # not strict: optional properties stay optional


def test_default_leaves_open_objects_and_explicit_extras_alone():
    assert close_schema({"type": "object"}) == {"type": "object"}
    extra = {"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "integer"}}
    assert close_schema(extra) == extra
    patterned = {"type": "object", "properties": {"a": {}}, "patternProperties": {"^x": {}}}
    assert close_schema(patterned) == patterned


def test_strict_closes_every_object_and_requires_every_property():
    out = close_schema({"anyOf": [PERSON, {"type": "object"}]}, strict=True)
    person, bare = out["anyOf"]
    assert person["required"] == ["name", "tags"] and person["additionalProperties"] is False
    assert person["properties"]["tags"]["items"]["required"] == ["k"]
    assert bare == {"type": "object", "additionalProperties": False}


def test_all_of_parts_are_not_closed():
    schema = {"allOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}}]}
    assert close_schema(schema) == schema


def test_objects_that_need_undeclared_keys_stay_open():
    for schema in ({"type": "object", "properties": {"kind": {}}, "minProperties": 2},
                   {"type": "object", "properties": {"kind": {}}, "required": ["kind", "id"]}):
        assert close_schema(schema) == schema
        strict = close_schema(schema, strict=True)
        assert strict.get("additionalProperties") is None
        assert set(strict.get("required", [])) >= set(schema.get("required", []))


def test_the_input_is_not_modified():
    before = copy.deepcopy(PERSON)
    close_schema(PERSON, strict=True)
    assert PERSON == before
