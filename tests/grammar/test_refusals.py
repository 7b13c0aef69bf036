"""Schemas real users send that used to be refused: draft-7 `dependencies`, unknown `format`
names, `oneOf` branches told apart by a required-vs-forbidden member, `not {"required"}`,
and `minProperties` met by additional members. Each compiles, accepts what it should, and
never accepts an invalid instance: random outputs (random byte walks finished by the
closing path) validate with `jsonschema`."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest

from tests.grammar.walks import random_output
from tines.grammar import GrammarSpec, UnsupportedSchemaError

DEPENDENCIES = {"type": "object", "properties": {"card": {"type": "string"},
                                                 "billing": {"type": "string"},
                                                 "vip": {"type": "boolean"}},
                "dependencies": {"card": ["billing"],
                                 "vip": {"properties": {"level": {"enum": [1, 2]}},
                                         "required": ["level"]}}}
ONE_OF_CLOSED = {"oneOf": [
    {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"],
     "additionalProperties": False},
    {"type": "object", "properties": {"y": {"type": "string"}}, "required": ["y"],
     "additionalProperties": False}]}
TWO_INTEGERS = {"a": {"type": "integer"}, "b": {"type": "integer"}}
NOT_REQUIRED = {"type": "object", "properties": TWO_INTEGERS, "not": {"required": ["a", "b"]}}
MIN_PROPERTIES = {"type": "object", "properties": {"kind": {"const": "event"}},
                  "required": ["kind"], "minProperties": 3, "maxProperties": 4}

ONE_OF_REQUIRED = {"type": "object", "properties": TWO_INTEGERS,
                   "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}

CASES = [
    (ONE_OF_REQUIRED, jsonschema.Draft202012Validator),
    (DEPENDENCIES, jsonschema.Draft7Validator),
    (ONE_OF_CLOSED, jsonschema.Draft202012Validator),
    (NOT_REQUIRED, jsonschema.Draft202012Validator),
    (MIN_PROPERTIES, jsonschema.Draft202012Validator),
    ({"type": "string", "format": "x-sku"}, jsonschema.Draft202012Validator),
]


def test_draft7_dependencies_become_dependent_required_and_schemas(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.json_schema(DEPENDENCIES))
    assert g.accepts_text('{"card":"4111","billing":"x"}')
    assert not g.accepts_text('{"card":"4111"}')
    assert g.accepts_text('{"vip":true,"level":2}')
    assert not g.accepts_text('{"vip":true}') and not g.accepts_text('{"vip":true,"level":3}')


def test_unknown_format_is_an_annotation_with_a_warning(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.json_schema({"type": "string", "format": "x-sku"}))
    assert g.accepts_text('"anything at all"')
    assert g.warnings and "'x-sku'" in g.warnings[0]


def test_unknown_format_refused_when_asked(byte_compiler):
    spec = GrammarSpec.json_schema({"type": "string", "format": "x-sku"},
                                   refuse_unknown_formats=True)
    with pytest.raises(UnsupportedSchemaError) as e:
        byte_compiler.compile(spec)
    assert e.value.keyword == "format"


def test_one_of_with_a_member_required_by_one_branch_and_forbidden_by_the_other(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.json_schema(ONE_OF_CLOSED))
    assert g.accepts_text('{"x":1}') and g.accepts_text('{"y":"a"}')
    assert not g.accepts_text('{"x":1,"y":"a"}')


def test_one_of_with_open_branches_excludes_objects_matching_both(byte_compiler):
    # was refused; each branch now also lacks the other's required name (json_negation.py)
    schema = {"oneOf": [{"type": "object", "required": ["x"]},
                        {"type": "object", "required": ["y"]}]}
    g = byte_compiler.compile(GrammarSpec.json_schema(schema))
    assert g.accepts_text('{"x":1}') and g.accepts_text('{"y":1,"z":2}')
    assert not g.accepts_text('{"x":1,"y":2}') and not g.accepts_text("{}")


def test_not_required_allows_objects_missing_a_name(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.json_schema(NOT_REQUIRED))
    assert g.accepts_text('{"a":1}') and g.accepts_text('{"b":2}') and g.accepts_text("{}")
    assert not g.accepts_text('{"a":1,"b":2}')


def test_min_properties_met_by_additional_members_with_distinct_keys(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.json_schema(MIN_PROPERTIES))
    assert g.accepts_text('{"kind":"event","a":1,"b":2}')
    assert not g.accepts_text('{"kind":"event","a":1,"a":2}')  # one distinct extra key
    assert not g.accepts_text('{"kind":"event","a":1}')


@pytest.mark.parametrize("index", range(len(CASES)))
def test_random_outputs_validate(byte_compiler, index):
    schema, validator = CASES[index]
    g = byte_compiler.compile(GrammarSpec.json_schema(schema))
    rng = random.Random(index)
    for _ in range(40):
        # prefer JSON punctuation and letters so walks reach members, not just long keys
        text = random_output(g, rng, 30, '{}[]",:0123456789abcxyz')
        validator(schema).validate(json.loads(text))


@pytest.mark.parametrize("text,ok", [
    ("https://example.com/a?b=c#d", True), ("mailto:a@b.c", True), ("urn:isbn:0451450523", True),
    ("file:///etc/hosts", True), ("not a uri", False), ("invalid-uri", False),
    ("http://a:b:c/", False), ("/relative/path", False)])
def test_uri_format_is_rfc3986(byte_compiler, text, ok):
    g = byte_compiler.compile(GrammarSpec.json_schema({"type": "string", "format": "uri"}))
    assert g.accepts_text(json.dumps(text)) == ok


def test_one_of_required_only_branches_exclude_each_other(byte_compiler):
    schema = {"type": "object", "properties": {"side": {"type": "integer"},
                                               "radius": {"type": "integer"}},
              "oneOf": [{"required": ["side"]}, {"required": ["radius"]}]}
    g = byte_compiler.compile(GrammarSpec.json_schema(schema))
    assert g.accepts_text('{"side":1}') and g.accepts_text('{"radius":2}')
    assert not g.accepts_text('{"side":1,"radius":2}') and not g.accepts_text("{}")


def test_one_of_discriminator_counts_within_the_parent_object_type(byte_compiler):
    schema = {"type": "object", "properties": {"grant": {"type": "string"}},
              "oneOf": [{"properties": {"grant": {"enum": ["code"]}}, "required": ["grant"]},
                        {"properties": {"grant": {"enum": ["token"]}}, "required": ["grant"]}]}
    g = byte_compiler.compile(GrammarSpec.json_schema(schema))
    assert g.accepts_text('{"grant":"code"}') and g.accepts_text('{"grant":"token"}')
    assert not g.accepts_text('{"grant":"other"}')
