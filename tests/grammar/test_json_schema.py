"""JSON Schema → grammar, keyword by keyword (byte-level acceptance of whole texts)."""

from __future__ import annotations

import json

import pytest

from tines.grammar import (EmptyLanguageError, GrammarError, GrammarSpec,
                           UnsupportedSchemaError)


@pytest.fixture
def accepts(byte_compiler):
    def check(schema, text, **options):
        return byte_compiler.compile(GrammarSpec.json_schema(schema, **options)).accepts_text(text)
    return check


def test_types_and_type_lists(accepts):
    s = {"type": ["string", "null"]}
    assert accepts(s, '"x"') and accepts(s, "null") and not accepts(s, "1")


def test_integer_accepts_zero_fraction_but_not_other_fractions(accepts):
    assert accepts({"type": "integer"}, "12") and accepts({"type": "integer"}, "12.0")
    assert not accepts({"type": "integer"}, "12.5")
    assert not accepts({"type": "integer"}, "012")


def test_draft4_integers_have_no_fraction(accepts):
    draft4 = "http://json-schema.org/draft-04/schema#"
    for schema in ({"$schema": draft4, "type": "integer"},
                   {"$schema": draft4, "type": "integer", "minimum": 0, "maximum": 99}):
        assert accepts(schema, "12") and not accepts(schema, "12.0")


def test_unbounded_number_keeps_exponents(accepts):
    for t in ["1e5", "-2.5E-3", "0", "-0.0"]:
        assert accepts({"type": "number"}, t), t


def test_bounds_are_enforced(accepts):
    s = {"type": "integer", "minimum": -3, "exclusiveMaximum": 250}
    assert accepts(s, "-3") and accepts(s, "249") and not accepts(s, "250")
    n = {"type": "number", "minimum": 0.5, "maximum": 2}
    assert accepts(n, "0.5") and accepts(n, "2.000") and not accepts(n, "2.0001")
    assert not accepts(n, "0.49")


def test_multiple_of(accepts):
    assert accepts({"type": "integer", "multipleOf": 7}, "49")
    assert not accepts({"type": "integer", "multipleOf": 7}, "50")
    assert accepts({"multipleOf": 0.25}, "1.75") and not accepts({"multipleOf": 0.25}, "1.7")


def test_const_and_enum_compare_numbers_by_value(accepts):
    assert accepts({"const": 1}, "1.0") and not accepts({"const": 1}, "true")
    assert accepts({"enum": [None, "a", [1, 2]]}, "[1,2]")
    assert not accepts({"enum": ["a"]}, '"b"')


def test_enum_values_must_satisfy_the_rest(accepts):
    s = {"enum": [1, 5, "x"], "type": "integer", "minimum": 2}
    assert accepts(s, "5") and not accepts(s, "1") and not accepts(s, '"x"')


def test_properties_in_schema_order_with_required(accepts):
    s = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
         "required": ["b"], "additionalProperties": False}
    assert accepts(s, '{"a":1,"b":"x"}') and accepts(s, '{"b":"x"}')
    assert not accepts(s, '{"a":1}') and not accepts(s, '{"b":"x","c":1}')


def test_additional_properties_default_is_open_and_strict_closes(accepts):
    s = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert accepts(s, '{"a":1,"zz":[true,{"k":null}]}')
    assert not accepts(s, '{"a":1,"a":2}')  # a declared key is not an "additional" one
    assert not accepts(s, '{"a":1,"zz":1}', strict=True)


def test_additional_properties_schema(accepts):
    s = {"properties": {"a": {}}, "additionalProperties": {"type": "boolean"}}
    assert accepts(s, '{"a":1,"b":true}') and not accepts(s, '{"a":1,"b":1}')


def test_pattern_and_length_intersect(accepts):
    s = {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 4}
    assert accepts(s, '"ab"') and accepts(s, '"abcd"')
    assert not accepts(s, '"a"') and not accepts(s, '"abcde"') and not accepts(s, '"aB"')


def test_length_counts_code_points_and_escapes_are_canonical(accepts):
    s = {"type": "string", "maxLength": 2}
    assert accepts(s, '"é€"') and accepts(s, '"\\n\\""') and not accepts(s, '"abc"')
    assert not accepts({"type": "string"}, '"a\nb"')  # raw control character
    assert accepts({"type": "string"}, '"\\u0001"')


def test_pattern_applies_to_decoded_characters(accepts):
    s = {"type": "string", "pattern": '^"x$'}
    assert accepts(s, '"\\"x"') and not accepts(s, '"x"')


def test_formats_are_enforced(accepts):
    assert accepts({"format": "date", "type": "string"}, '"2024-02-29"')
    assert not accepts({"format": "date", "type": "string"}, '"2023-02-29"')
    assert accepts({"format": "email"}, '"first.last@sub.domain.co.uk"')
    assert accepts({"format": "date"}, '"nonsense"', assert_formats=False)


def test_arrays(accepts):
    s = {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"},
         "minItems": 2, "maxItems": 3}
    assert accepts(s, '["a",1]') and accepts(s, '["a",1,2]')
    assert not accepts(s, '["a"]') and not accepts(s, '["a",1,2,3]') and not accepts(s, '[1,1]')


def test_contains_counts_matches(accepts):
    s = {"type": "array", "contains": {"type": "integer"}, "minContains": 2, "maxContains": 3}
    assert accepts(s, '[1,"a",2]') and not accepts(s, '[1,"a"]') and not accepts(s, "[1,2,3,4]")


def test_refs_and_recursion_depth(accepts):
    s = {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer"}, "next": {"$ref": "#/$defs/node"}},
        "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"}
    assert accepts(s, '{"v":1,"next":{"v":2,"next":{"v":3}}}')
    assert not accepts(s, '{"v":1,"next":{"v":2,"next":{"v":3,"next":{"v":4}}}}')
    assert accepts(s, '{"v":1,"next":{"v":2,"next":{"v":3,"next":{"v":4}}}}', max_recursion=4)


def layered_diamonds(depth: int) -> dict:
    """Two definitions per layer, each referring to both of the next layer's: a definition
    in layer k is reached through 2**k different reference chains."""
    defs = {}
    for k in range(depth):
        for side in "ab":
            nxt = {"x": {"$ref": f"#/$defs/l{k + 1}a"}, "y": {"$ref": f"#/$defs/l{k + 1}b"}}
            defs[f"l{k}{side}"] = {"type": "object", "properties": nxt if k + 1 < depth else {
                "id": {"type": "string", "format": "uuid"}}, "additionalProperties": False}
    return {"$defs": defs, "$ref": "#/$defs/l0a"}


def test_a_definition_reached_through_many_reference_chains_compiles_once(accepts):
    s = layered_diamonds(12)  # 2**12 chains to the last layer: unrolled per chain, > 8,000
    leaf = '{"id":"123e4567-e89b-12d3-a456-426614174000"}'
    text = leaf
    for _ in range(11):
        text = '{"y":' + text + "}"
    assert accepts(s, text, max_subschemas=100)
    assert not accepts(s, text.replace("123e4567", "not-uuid"), max_subschemas=100)


def test_recursion_depth_counts_only_the_recursive_reference(accepts):
    """`wrap` on the way to `node` does not count against `node`'s depth."""
    node = {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}},
            "additionalProperties": False}
    s = {"type": "object", "properties": {"a": {"$ref": "#/$defs/node"},
                                          "b": {"$ref": "#/$defs/wrap"}},
         "$defs": {"node": node, "wrap": {"$ref": "#/$defs/node"}}}
    for key in "ab":
        assert accepts(s, '{"%s":{"next":{}}}' % key, max_recursion=2)
        assert not accepts(s, '{"%s":{"next":{"next":{}}}}' % key, max_recursion=2)


def test_unconstrained_values_nest_eight_levels_by_default(accepts):
    def nested(levels: int) -> str:
        return '{"a":' * (levels - 1) + "[1]" + "}" * (levels - 1)

    assert accepts({"type": "object"}, nested(8))
    assert not accepts({"type": "object"}, nested(9))
    assert accepts({"type": "object"}, nested(9), any_depth=9)


def test_all_of_merges_per_clause(accepts):
    s = {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                   {"properties": {"b": {"type": "string"}}, "required": ["b"]}]}
    assert accepts(s, '{"a":1,"b":"x"}') and not accepts(s, '{"a":1}')
    closed = {"allOf": [{"properties": {"a": {}}}, {"additionalProperties": False}]}
    assert accepts(closed, "{}") and not accepts(closed, '{"a":1}')


def test_any_of_and_nullable(accepts):
    s = {"anyOf": [{"type": "string", "maxLength": 1}, {"type": "null"}]}
    assert accepts(s, '"a"') and accepts(s, "null") and not accepts(s, '"ab"')


def test_one_of_disjoint_branches(accepts):
    s = {"oneOf": [{"type": "object", "properties": {"kind": {"const": "a"}, "x": {}},
                    "required": ["kind"]},
                   {"type": "object", "properties": {"kind": {"const": "b"}},
                    "required": ["kind"]}]}
    assert accepts(s, '{"kind":"a","x":1}') and accepts(s, '{"kind":"b"}')


def test_one_of_overlapping_scalars_excludes_the_overlap(accepts):
    s = {"oneOf": [{"type": "integer"}, {"minimum": 2}]}
    assert accepts(s, "1") and accepts(s, "2.5") and not accepts(s, "3")


def test_not_if_then_else(accepts):
    not_string = {"not": {"type": "string"}}
    assert accepts(not_string, "1") and not accepts(not_string, '"a"')
    s = {"if": {"type": "integer"}, "then": {"minimum": 10}, "else": {"type": "string"}}
    assert accepts(s, "12") and not accepts(s, "3") and accepts(s, '"x"') and not accepts(s, "null")


def test_dependent_required_and_schemas(accepts):
    s = {"dependentRequired": {"a": ["b"]}}
    assert accepts(s, '{"a":1,"b":2}') and not accepts(s, '{"a":1}') and accepts(s, '{"b":1}')
    d = {"dependentSchemas": {"a": {"properties": {"b": {"type": "integer"}}}}}
    assert accepts(d, '{"a":1,"b":2}') and not accepts(d, '{"a":1,"b":"x"}')
    assert accepts(d, '{"b":"x"}')


def test_whitespace_policies(accepts):
    s = {"type": "object", "properties": {"a": {"type": "array"}}}
    assert not accepts(s, '{"a": [1]}')
    assert accepts(s, '{ "a" : [ 1 ] }', whitespace=r"[ \n]{0,2}")
    assert accepts(s, '{"a": [1]}', separators=(", ", ": "))
    with pytest.raises(ValueError):
        accepts(s, "{}", whitespace=r"[ x]?")


def test_pydantic_model_and_json_text(byte_compiler):
    pydantic = pytest.importorskip("pydantic")

    class Point(pydantic.BaseModel):
        x: int
        label: str | None = None

    g = byte_compiler.compile(GrammarSpec.json_schema(Point))
    assert g.accepts_text('{"x":1,"label":null}') and g.accepts_text('{"x":1}')
    Point.model_validate_json('{"x":1,"label":null}')
    g2 = byte_compiler.compile(GrammarSpec.json_schema(json.dumps({"type": "boolean"})))
    assert g2.accepts_text("true")


@pytest.mark.parametrize("schema,keyword,pointer", [
    ({"type": "array", "uniqueItems": True}, "uniqueItems", ""),
    ({"properties": {"a": {"pattern": "(?=x)"}}}, "pattern", "/properties/a"),
    ({"$ref": "https://example.com/s.json"}, "$ref", ""),
    ({"items": {"$dynamicRef": "#x"}}, "$dynamicRef", "/items"),
    ({"not": {"type": "object", "propertyNames": {"pattern": "^a"}}}, "not", "/not"),
])
def test_unsupported_keywords_name_keyword_and_pointer(byte_compiler, schema, keyword, pointer):
    with pytest.raises(UnsupportedSchemaError) as e:
        byte_compiler.compile(GrammarSpec.json_schema(schema))
    assert (e.value.keyword, e.value.pointer) == (keyword, pointer)
    assert keyword in str(e.value)


def test_invalid_schemas_raise_grammar_errors(byte_compiler):
    for bad in ['{"type": "strin"}', "[1]", "{nope", '{"minLength": -1}']:
        with pytest.raises(GrammarError):
            byte_compiler.compile(GrammarSpec.json_schema(bad))
    with pytest.raises(EmptyLanguageError):
        byte_compiler.compile(GrammarSpec.json_schema(False))


TOOL_TAG = {"triggers": ["<tool_call>"], "structures": [
    {"begin": '<tool_call>{"name": "get_weather", "arguments": ',
     "schema": {"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"], "additionalProperties": False},
     "end": "}</tool_call>"}]}


def test_structural_tag_auto_mode(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.structural_tag(TOOL_TAG))
    call = '<tool_call>{"name": "get_weather", "arguments": {"city":"Paris"}}</tool_call>'
    assert g.accepts_text("Let me check. " + call + " Done.")
    assert g.accepts_text("no tools needed") and g.accepts_text("")
    assert not g.accepts_text("<tool_call>{oops}</tool_call>")
    assert not g.accepts_text(call.replace("Paris", "") .replace('"city":""', '"town":1'))


def test_structural_tag_required_mode(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.structural_tag({**TOOL_TAG, "mode": "required"}))
    call = '<tool_call>{"name": "get_weather", "arguments": {"city":"Rome"}}</tool_call>'
    assert g.accepts_text(call) and g.accepts_text(call + call)
    assert not g.accepts_text("hi " + call) and not g.accepts_text("")
    m = g.matcher()
    assert m.forced_text() == '<tool_call>{"name": "get_weather", "arguments": {"city":"'


def test_structural_tag_from_sampling_params():
    from tines.runtime.sampling_params import SamplingParams

    spec = GrammarSpec.from_sampling_params(SamplingParams(structural_tag=TOOL_TAG))
    assert spec.kind == "structural_tag"
