"""Additional members split by the set of `patternProperties` their key matches: only sets of
pairwise intersecting patterns are written, so six anchored patterns with different prefixes
compile (they used to be refused past four patterns), and a key matching two overlapping
patterns gets both value schemas."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest

from tests.grammar.walks import random_output
from tines.grammar import GrammarSpec, UnsupportedSchemaError

PREFIXED = {"type": "object", "additionalProperties": False, "patternProperties": {
    "^a_": {"type": "integer"}, "^b_": {"type": "string"}, "^c_": {"type": "boolean"},
    "^d_": {"type": "null"}, "^e_": {"type": "array"}, "_x$": {"maxLength": 2, "minimum": 3}}}


@pytest.mark.parametrize("text,ok", [
    ('{"a_1":1}', True), ('{"b_1":"s","e_":[]}', True), ('{"a_x":5}', True),
    ('{"b_x":"ab"}', True), ('{"a_x":2}', False), ('{"b_x":"abc"}', False),
    ('{"zz":1}', False), ('{"c_":1}', False)])
def test_members_get_the_schemas_of_every_pattern_their_key_matches(byte_compiler, text, ok):
    g = byte_compiler.compile(GrammarSpec.json_schema(PREFIXED))
    assert g.accepts_text(text) == ok
    assert jsonschema.Draft202012Validator(PREFIXED).is_valid(json.loads(text)) == ok


def test_random_outputs_validate(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.json_schema(PREFIXED))
    rng = random.Random(3)
    for _ in range(40):
        jsonschema.validate(json.loads(random_output(g, rng, 24, '{}[]",:0123456789abcdex_')), PREFIXED)


def test_many_overlapping_patterns_are_still_refused(byte_compiler):
    schema = {"type": "object", "patternProperties": {c: {"type": "integer"} for c in "abcde"}}
    with pytest.raises(UnsupportedSchemaError) as e:
        byte_compiler.compile(GrammarSpec.json_schema(schema))
    assert e.value.keyword == "patternProperties"
