"""Soundness and completeness on the default model's real 49,152-token vocabulary.

Soundness: for every regex and schema below, 50 random walks must produce text that fully
matches the regex / validates with `jsonschema` (formats checked too). The walks stand in
for a tiny random-weight model: at each step every allowed token gets an i.i.d. random logit
and one is sampled at temperature 1.0 — which picks each allowed token with equal
probability, so the sampler draws uniformly from the mask (same distribution, no 49k-wide
softmax per step). Walks stop at EOS, when the grammar can only end, or after MAX_TOKENS
tokens (counted as incomplete, not invalid); most walks must complete.

Completeness: valid strings, tokenized by the model's own tokenizer, must be allowed token
by token (the mask bit is set) and accepted at the end (EOS allowed).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re

import numpy as np
import pytest

from tines.grammar import GrammarSpec, bitmask_to_bool

MAX_TOKENS = 200
SAMPLES = 50
MIN_COMPLETE = 0.8

REGEXES: list[tuple[str, list[str]]] = [
    (r"[a-z]{1,10}(\.[a-z]{1,10})?", ["mail.com", "mail", "a.b"]),
    (r"[a-z0-9_]{1,12}@[a-z]{1,10}(\.[a-z]{2,10}){1,3}",
     ["bob_42@research.lab.university", "x@y.co"]),
    (r"\d{3}-\d{3}-\d{4}", ["555-123-4567"]),
    (r"(cat|car|cart|dog)s?", ["carts", "dog", "cars"]),
    (r"[A-Z][a-z]{0,9}( [A-Z][a-z]{0,9}){0,2}", ["New York City", "Paris"]),
    (r"(19|20)\d{2}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", ["2024-02-29", "1999-12-31"]),
    (r"#[0-9a-fA-F]{6}", ["#1a2B3c", "#ffffff"]),
    (r"-?(0|[1-9]\d{0,5})(\.\d{1,4})?", ["-12.5", "0", "123456.789"]),
    (r"(true|false)", ["true", "false"]),
    (r"\(\d{1,3}, \d{1,3}\)", ["(12, 7)", "(255, 0)"]),
    (r"[a-z]{1,8}(_[a-z]{1,8}){0,3}", ["max_new_tokens", "top_p"]),
    (r"https?://[a-z]{1,10}\.(com|org|io)(/[a-z]{1,8}){0,3}",
     ["https://example.com/docs/api", "http://tines.io"]),
    (r"(yes|no|maybe)", ["maybe", "no"]),
    (r"[ACGT]{4,20}", ["GATTACA", "ACGTACGTACGT"]),
    (r"\d{1,3}(\.\d{1,3}){3}", ["192.168.0.1", "10.0.0.255"]),
    (r"[01]{8}", ["01010101", "11110000"]),
    (r"(\+|-)?\d{1,4}[eE][+-]?\d{1,2}", ["6e23", "-1E-10"]),
    (r"[a-zA-Z ]{1,30}\.", ["Hello world.", "The end."]),
    (r"Answer: [A-D]", ["Answer: C"]),
    (r"\d{1,2}:\d{2} (AM|PM)", ["10:30 AM", "9:05 PM"]),
    (r"[\w.]{1,10}", ["naïve.x", "über_1"]),
    (r'[^\n"]{0,20}', ["any text, no quotes", "{}[] <> é"]),
    (r"é{1,3}|ü{1,3}", ["éé", "ü"]),
    (r"(ab|a)(bc|c){1,3}", ["abcbc", "acc"]),
    (r"<[a-z]{1,5}>[a-z ]{0,10}</[a-z]{1,5}>", ["<b>bold text</b>", "<i></i>"]),
    (r"\$\d{1,5}\.\d{2}", ["$19.99", "$12345.00"]),
    (r"[A-Z]{2}\d{2} [A-Z0-9]{4}( [A-Z0-9]{4}){1,4}", ["DE89 3704 0044 0532 0130 00"[:24]]),
    (r"(?i)(hello|goodbye) world", ["Hello WORLD", "goodbye world"]),
    (r"[\u4e00-\u9fff]{1,6}", ["你好世界", "中文"]),
    (r"(\d{1,3},)*\d{1,3}", ["1,234,567", "42"]),
    (r"[a-z]{2,5}(-[a-z]{2,5}){0,2}", ["well-known", "state-of-art"]),
    (r"v\d{1,2}\.\d{1,2}\.\d{1,3}(-(alpha|beta|rc)\d?)?", ["v1.2.3-rc1", "v10.0.12"]),
    (r"\s{0,3}[a-z]{1,5}\s{0,3}", [" hi\n", "ok"]),
]

# Unbounded regexes: completeness only (a uniform random walk rarely ends them).
COMPLETENESS_ONLY_REGEXES: list[tuple[str, list[str]]] = [
    (r"[a-z]+(\.[a-z]+)?", ["mail.com", "mail", "research.university"]),
    (r"[a-z]+(\.[a-z]+)*\.[a-z]{2,6}", ["mail.example.com", "a.university.edu", "mail.co"]),
    (r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}",
     ["bob_42@research.lab.university.edu", "first.last@sub.domain.co.uk"]),
    (r"[\s\S]*", ["anything\n at all ✓", ""]),
]

CLOSED_PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 12},
    "age": {"type": "integer", "minimum": 0, "maximum": 150}},
    "required": ["name", "age"], "additionalProperties": False}

SCHEMAS: list[tuple[dict, dict, list]] = [  # (schema, GrammarSpec options, valid instances)
    (CLOSED_PERSON, {}, [{"name": "John Smith", "age": 42}, {"name": "", "age": 0}]),
    ({"type": "string", "enum": ["red", "green", "blue"]}, {}, ["green"]),
    ({"type": "object", "properties": {
        "street": {"type": "string", "maxLength": 20}, "city": {"type": "string", "maxLength": 15},
        "zip": {"type": "string", "pattern": "^\\d{5}$"}},
      "required": ["street", "city", "zip"], "additionalProperties": False}, {},
     [{"street": "1 Main St", "city": "Springfield", "zip": "12345"}]),
    ({"type": "array", "items": {"type": "integer", "minimum": -100, "maximum": 100},
      "maxItems": 5}, {}, [[1, -100, 42], []]),
    ({"$defs": {"person": CLOSED_PERSON}, "type": "object",
      "properties": {"people": {"type": "array", "items": {"$ref": "#/$defs/person"},
                                "maxItems": 3}},
      "required": ["people"], "additionalProperties": False}, {},
     [{"people": [{"name": "Ann", "age": 31}, {"name": "Bo", "age": 7}]}]),
    ({"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer", "minimum": 0, "maximum": 9},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"}, {},
     [{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": []}]}]),
    ({"type": "object", "properties": {"date": {"type": "string", "format": "date"},
                                       "id": {"type": "string", "format": "uuid"}},
      "required": ["date", "id"], "additionalProperties": False}, {},
     [{"date": "2024-02-29", "id": "123e4567-e89b-12d3-a456-426614174000"}]),
    ({"type": "object", "properties": {"at": {"type": "string", "format": "date-time"},
                                       "t": {"type": "string", "format": "time"}},
      "required": ["at"], "additionalProperties": False}, {},
     [{"at": "2024-05-01T12:30:00Z", "t": "08:00:00.5+02:00"},
      {"at": "1999-12-31T23:59:59.999-05:00"}]),
    ({"type": "string", "format": "email", "maxLength": 30}, {},
     ["bob_42@research.lab.edu", "first.last@sub.domain.co.uk"]),
    ({"type": "object", "properties": {"nickname": {"anyOf": [
        {"type": "string", "maxLength": 10}, {"type": "null"}]}},
      "required": ["nickname"], "additionalProperties": False}, {},
     [{"nickname": None}, {"nickname": "Bobby"}]),
    ({"oneOf": [
        {"type": "object", "properties": {"kind": {"const": "circle"},
                                          "r": {"type": "number", "minimum": 0, "maximum": 100}},
         "required": ["kind", "r"], "additionalProperties": False},
        {"type": "object", "properties": {"kind": {"const": "square"},
                                          "side": {"type": "integer", "minimum": 1, "maximum": 50}},
         "required": ["kind", "side"], "additionalProperties": False}]}, {},
     [{"kind": "circle", "r": 2.5}, {"kind": "square", "side": 4}]),
    ({"type": "object", "properties": {"version": {"const": "1.0"}, "ok": {"type": "boolean"}},
      "required": ["version", "ok"], "additionalProperties": False}, {},
     [{"version": "1.0", "ok": True}]),
    ({"type": "number", "minimum": -1.5, "maximum": 2.25}, {}, [-1.5, 0.001, 2.25, 2]),
    ({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 1000}, {}, [1, 999]),
    ({"type": "object", "allOf": [{"properties": {"a": {"type": "integer", "minimum": 0,
                                                            "maximum": 9}},
                 "required": ["a"]},
                {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}]},
     {"strict": True}, [{"a": 3, "b": False}]),
    ({"type": "array", "prefixItems": [{"type": "string", "maxLength": 5}, {"type": "integer"},
                                       {"type": "boolean"}], "items": False}, {},
     [["abc", 12, True], ["", -3]]),
    ({"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 2, "maxItems": 4}, {},
     [["a", "b"], ["c", "c", "a", "b"]]),
    ({"type": "string", "pattern": "^[A-Z]{2}-\\d+$", "maxLength": 8}, {}, ["AB-12345", "XY-0"]),
    ({"type": "object", "patternProperties": {"^x_[a-z]{1,5}$": {"type": "integer"}},
      "additionalProperties": False, "maxProperties": 3}, {}, [{"x_ab": 1, "x_cd": 2}, {}]),
    ({"type": "object", "propertyNames": {"pattern": "^[a-z]{1,6}$"},
      "additionalProperties": {"type": "boolean"}, "maxProperties": 3}, {},
     [{"alpha": True, "beta": False}]),
    ({"type": "object", "properties": {"card": {"type": "string", "maxLength": 8},
                                       "cvv": {"type": "string", "pattern": "^\\d{3}$"}},
      "dependentRequired": {"card": ["cvv"]}, "additionalProperties": False}, {},
     [{"card": "4111", "cvv": "123"}, {"cvv": "999"}, {}]),
    ({"type": "integer", "minimum": -50, "maximum": 50, "if": {"minimum": 0},
      "then": {"multipleOf": 2}, "else": {"multipleOf": 5}}, {}, [48, -45, 0]),
    ({"type": ["integer", "boolean", "null"], "not": {"enum": [0, False]}, "minimum": -100,
      "maximum": 100}, {}, [1, True, None, -100]),
    ({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 20},
      "contains": {"minimum": 10}, "maxItems": 4}, {}, [[1, 12], [10]]),
    ({"type": "number", "minimum": 0, "maximum": 10, "multipleOf": 0.25}, {}, [9.75, 0, 3]),
    ({"type": "object", "properties": {"user": {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "object", "properties": {
            "k": {"type": "string", "maxLength": 4}, "v": {"type": "integer", "maximum": 9,
                                                             "minimum": 0}},
            "required": ["k", "v"], "additionalProperties": False}, "maxItems": 2}},
        "required": ["tags"], "additionalProperties": False}},
      "required": ["user"], "additionalProperties": False}, {},
     [{"user": {"tags": [{"k": "a", "v": 1}, {"k": "bcd", "v": 9}]}}]),
    ({"type": "string", "maxLength": 6}, {}, ['say "h', "a\\b\n", "日本語"]),
    ({"type": "string", "minLength": 1, "maxLength": 4, "pattern": "^[^a-z]+$"}, {},
     ["ÀÉ", "123", "ß"[:0] + "QQ"]),
    (CLOSED_PERSON, {"whitespace": r"[ \n]{0,2}"}, [{"name": "Jo", "age": 5}]),
    (CLOSED_PERSON, {"separators": (", ", ": ")}, [{"name": "Jo", "age": 5}]),
    ({"type": ["string", "integer", "boolean"], "maxLength": 5, "minimum": 0, "maximum": 10},
     {}, ["abc", 7, False]),
    ({"enum": [1, "two", [3], {"four": 4}, None, True, 2.5]}, {}, [1, "two", [3], {"four": 4}]),
    ({"type": "object", "properties": {"host": {"type": "string", "format": "hostname",
                                                "maxLength": 20},
                                       "ip": {"type": "string", "format": "ipv4"}},
      "required": ["host", "ip"], "additionalProperties": False}, {},
     [{"host": "www.example.com", "ip": "192.168.1.1"}]),
    ({"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
                 "additionalProperties": False},
                {"type": "object", "properties": {"b": {"type": "string", "maxLength": 4}},
                 "required": ["b"], "additionalProperties": False}]}, {},
     [{"a": 12}, {"b": "xy"}]),
]


def _pydantic_case():
    from typing import Literal, Optional

    from pydantic import BaseModel, Field

    class Item(BaseModel):
        sku: str = Field(max_length=6)
        qty: int = Field(ge=1, le=99)

    class Order(BaseModel):
        status: Literal["new", "paid", "shipped"]
        items: list[Item] = Field(max_length=2)
        note: Optional[str] = Field(default=None, max_length=8)

    return Order


def _hostname_ok(host: str) -> bool:
    labels = host.split(".")
    return all(0 < len(x) <= 63 and x[0].isalnum() and x[-1].isalnum()
               and all(c.isalnum() and c.isascii() or c == "-" for c in x) for x in labels)


def _format_checker():
    import jsonschema

    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _dt(value):
        if not isinstance(value, str):
            return True
        if not re.search(r"(Z|[+-]\d\d:\d\d)$", value.upper()):
            return False
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        return "T" in value.upper()

    @checker.checks("time", raises=ValueError)
    def _time(value):
        if not isinstance(value, str):
            return True
        if not re.search(r"(Z|[+-]\d\d:\d\d)$", value.upper()):
            return False
        datetime.time.fromisoformat(value.upper().replace("Z", "+00:00"))
        return True

    @checker.checks("hostname")
    def _host(value):
        return not isinstance(value, str) or _hostname_ok(value)

    @checker.checks("email")
    def _email(value):
        if not isinstance(value, str):
            return True
        local, at, domain = value.rpartition("@")
        return bool(at and local and _hostname_ok(domain) and ".." not in local)

    @checker.checks("ipv4", raises=ValueError)
    def _ipv4(value):
        return not isinstance(value, str) or bool(ipaddress.IPv4Address(value))

    return checker


class UniformWalker:
    """Samples uniformly among allowed tokens (= i.i.d. random logits at temperature 1)."""

    def __init__(self, grammar):
        self.grammar = grammar
        self.vocab = grammar.vocab
        self.allowed: dict[int, np.ndarray] = {}

    def walk(self, rng: np.random.Generator) -> tuple[bytes, bool]:
        m = self.grammar.matcher()
        out = []
        for _ in range(MAX_TOKENS):
            if m.is_terminated():
                return b"".join(out), True
            s = m.state
            ids = self.allowed.get(s)
            if ids is None:
                ids = self.allowed[s] = m.allowed_token_ids()
            assert len(ids), "a state with no allowed token"
            t = int(ids[rng.integers(len(ids))])
            assert m.accept_token(t)
            if t in self.vocab.eos_token_ids:
                return b"".join(out), True
            out.append(self.vocab.token_bytes[t])
        return b"".join(out), False


def _walks(grammar, seed: int):
    walker = UniformWalker(grammar)
    rng = np.random.default_rng(seed)
    return [walker.walk(rng) for _ in range(SAMPLES)]


def _check_completion(results, label):
    done = sum(ok for _, ok in results)
    assert done >= MIN_COMPLETE * len(results), f"{label}: only {done}/{len(results)} complete"


@pytest.mark.parametrize("regex,_", REGEXES, ids=[r for r, _ in REGEXES])
def test_regex_samples_match(real_compiler, regex, _):
    assert len(REGEXES) >= 30
    g = real_compiler.compile(GrammarSpec.regex(regex))
    results = _walks(g, seed=hash(regex) & 0xFFFF)
    for text, complete in results:
        if complete:
            assert re.fullmatch(regex, text.decode("utf-8")), (regex, text)
    _check_completion(results, regex)


@pytest.mark.parametrize("case", range(len(SCHEMAS) + 1))
def test_schema_samples_validate(real_compiler, case):
    import jsonschema

    assert len(SCHEMAS) + 1 >= 30
    if case == len(SCHEMAS):
        model = _pydantic_case()
        schema, spec = model.model_json_schema(), GrammarSpec.json_schema(model)
    else:
        schema, options, _ = SCHEMAS[case]
        model, spec = None, GrammarSpec.json_schema(schema, **options)
    validator = jsonschema.Draft202012Validator(schema, format_checker=_format_checker())
    results = _walks(real_compiler.compile(spec), seed=case)
    for text, complete in results:
        if complete:
            value = json.loads(text.decode("utf-8"))
            errors = list(validator.iter_errors(value))
            assert not errors, (schema, text, errors[0].message)
            if model is not None:
                model.model_validate_json(text)
    _check_completion(results, json.dumps(schema)[:80])


def _assert_allowed_token_by_token(grammar, ids, label):
    m = grammar.matcher()
    buf = np.zeros((1, grammar.vocab.num_words), dtype=np.int32)
    for i, t in enumerate(ids):
        m.fill_bitmask(buf, 0)
        assert bitmask_to_bool(buf, grammar.vocab.vocab_size)[0, t], (label, i, t)
        assert m.accept_token(t), (label, i, t)
    eos = min(grammar.vocab.eos_token_ids)
    m.fill_bitmask(buf, 0)
    assert bitmask_to_bool(buf, grammar.vocab.vocab_size)[0, eos], (label, "EOS")
    assert m.accept_token(eos)


@pytest.mark.parametrize("regex,valid", REGEXES + COMPLETENESS_ONLY_REGEXES,
                         ids=[r for r, _ in REGEXES + COMPLETENESS_ONLY_REGEXES])
def test_regex_valid_strings_are_allowed(real_compiler, encode, regex, valid):
    g = real_compiler.compile(GrammarSpec.regex(regex))
    for text in valid:
        assert re.fullmatch(regex, text), text
        _assert_allowed_token_by_token(g, encode(text), text)


def _serialize(value, options) -> str:
    seps = options.get("separators") or (",", ":")
    return json.dumps(value, ensure_ascii=False, separators=seps)


@pytest.mark.parametrize("case", range(len(SCHEMAS)))
def test_schema_valid_instances_are_allowed(real_compiler, encode, case):
    import jsonschema

    schema, options, instances = SCHEMAS[case]
    g = real_compiler.compile(GrammarSpec.json_schema(schema, **options))
    for value in instances:
        jsonschema.validate(value, schema, format_checker=_format_checker())
        text = _serialize(value, options)
        _assert_allowed_token_by_token(g, encode(text), text)


def test_pydantic_instances_are_allowed(real_compiler, encode):
    model = _pydantic_case()
    g = real_compiler.compile(GrammarSpec.json_schema(model))
    value = model(status="paid", items=[{"sku": "AB-1", "qty": 3}], note=None)
    _assert_allowed_token_by_token(g, encode(value.model_dump_json()), "order")
