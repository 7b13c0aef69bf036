"""Budget-aware closing: shortest accepting continuations and budget masks.

Exact closing paths on the byte vocabulary; then, on the default model's real vocabulary, 34
tool/extraction schemas and some regexes: from random valid prefixes, the closing tokens
reach acceptance in exactly `min_tokens_to_accept()` tokens and the output validates, and
decoding under `fill_budget_bitmask` always ends valid when the budget runs out."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from tines.grammar import GrammarSpec, allocate_token_bitmask, bitmask_to_bool

SCHEMAS = json.loads((Path(__file__).resolve().parents[2] / "bench" / "schemas"
                      / "tool_schemas.json").read_text())
REGEXES = [r"[a-z]+@[a-z]+\.(com|org)", r"\d{3}-\d{4}", r"(yes|no|maybe)!{2,4}",
           r"[A-Z][a-z]{2,8}( [A-Z][a-z]{2,8}){1,2}", r"0x[0-9a-f]{8}"]


def mask_ids(matcher, budget: int | None = None) -> np.ndarray:
    buf = allocate_token_bitmask(1, matcher.grammar.vocab.vocab_size)
    if budget is None:
        matcher.fill_bitmask(buf, 0)
    else:
        matcher.fill_budget_bitmask(buf, 0, budget)
    return np.flatnonzero(bitmask_to_bool(buf, matcher.grammar.vocab.vocab_size)[0])


def output_text(matcher, token_ids) -> str:
    tb = matcher.grammar.vocab.token_bytes
    return b"".join(tb[t] for t in token_ids if tb[t] is not None).decode("utf-8")


def random_prefix(matcher, rng: random.Random, num_tokens: int) -> list[int]:
    """Accept up to `num_tokens` tokens drawn uniformly from the allowed ones (no EOS)."""
    eos = matcher.grammar.vocab.eos_token_ids
    out = []
    for _ in range(num_tokens):
        ids = [t for t in mask_ids(matcher).tolist() if t not in eos]
        if not ids:
            break
        t = rng.choice(ids)
        assert matcher.accept_token(t)
        out.append(t)
    return out


# ---- exact paths on the byte vocabulary ------------------------------------------------

def test_closing_bytes_add_required_members_with_shortest_values(byte_compiler):
    schema = {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"enum": ["celsius", "K"]},
        "days": {"type": "array", "items": {"type": "integer"}, "minItems": 2}},
        "required": ["city", "unit", "days"], "additionalProperties": False}
    m = byte_compiler.compile(GrammarSpec.json_schema(schema)).matcher()
    assert m.closing_bytes() == b'{"city":"","unit":"K","days":[0,0]}'
    assert m.min_tokens_to_accept() == len(m.closing_bytes())


def test_closing_ends_an_open_string_and_number(byte_compiler):
    g = byte_compiler.compile(GrammarSpec.json_schema(
        {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}},
         "required": ["a", "b"], "additionalProperties": False}))
    m = g.matcher()
    assert m.accept_tokens(b'{"a":"hello')
    assert m.closing_bytes() == b'","b":0}'
    m = g.matcher()
    assert m.accept_tokens(b'{"a":"x","b":-12.')
    assert m.closing_bytes() == b'0}'


def test_min_tokens_is_zero_when_accepting_and_drops_by_one_on_the_path(byte_compiler):
    m = byte_compiler.compile(GrammarSpec.regex(r"ab(c|dd)e")).matcher()
    counts = []
    for t in m.closing_token_ids():
        counts.append(m.min_tokens_to_accept())
        assert m.accept_token(t)
    assert counts == [4, 3, 2, 1] and m.min_tokens_to_accept() == 0 and m.is_accepting()


def test_budget_mask_keeps_only_tokens_that_still_close(byte_compiler):
    m = byte_compiler.compile(GrammarSpec.regex(r"a(b|cccc)")).matcher()
    assert m.accept_token(ord("a"))
    assert mask_ids(m, budget=1).tolist() == [ord("b")]
    assert mask_ids(m, budget=4).tolist() == [ord("b"), ord("c")]


def test_budget_mask_allows_eos_when_accepting(byte_compiler):
    m = byte_compiler.compile(GrammarSpec.regex(r"a(bc)?")).matcher()
    assert m.accept_token(ord("a"))
    assert mask_ids(m, budget=1).tolist() == [256]


# ---- real vocabulary, real tokenizer ----------------------------------------------------

def validate(schema, text: str) -> None:
    jsonschema.validate(json.loads(text), schema)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_closing_path_from_random_prefixes_validates(real_compiler, name):
    schema = SCHEMAS[name]
    g = real_compiler.compile(GrammarSpec.json_schema(schema))
    rng = random.Random(name)
    for num_prefix in (0, 3, 9, 20):
        m = g.matcher()
        prefix = random_prefix(m, rng, num_prefix)
        n = m.min_tokens_to_accept()
        closing = m.closing_token_ids()
        assert len(closing) == n
        assert m.accept_tokens(closing) and m.is_accepting()
        validate(schema, output_text(m, prefix + closing))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_budget_masks_end_valid_when_the_budget_runs_out(real_compiler, name):
    schema = SCHEMAS[name]
    g = real_compiler.compile(GrammarSpec.json_schema(schema))
    rng = random.Random(name + "budget")
    m = g.matcher()
    budget = max(48, m.min_tokens_to_accept())
    eos = g.vocab.eos_token_ids
    out = []
    for remaining in range(budget, 0, -1):
        t = int(rng.choice(mask_ids(m, remaining)))
        assert m.accept_token(t)
        if t in eos:
            break
        out.append(t)
        assert m.min_tokens_to_accept() <= remaining - 1
    assert m.is_accepting()
    validate(schema, output_text(m, out))


@pytest.mark.parametrize("pattern", REGEXES)
def test_regex_closing_from_random_prefixes_matches(real_compiler, pattern):
    g = real_compiler.compile(GrammarSpec.regex(pattern))
    rng = random.Random(pattern)
    for num_prefix in (0, 1, 3, 6):
        m = g.matcher()
        prefix = random_prefix(m, rng, num_prefix)
        closing = m.closing_token_ids()
        assert len(closing) == m.min_tokens_to_accept()
        assert m.accept_tokens(closing) and m.is_accepting()
        assert re.fullmatch(pattern, output_text(m, prefix + closing))


def test_closing_tokens_match_the_model_tokenizer_on_plain_text(real_compiler, encode):
    """Greedy longest match over the vocabulary spells the closing text as the model's
    tokenizer does for ordinary JSON punctuation and keys (not required, but the count is
    then the real cost)."""
    m = real_compiler.compile(GrammarSpec.json_schema(SCHEMAS["weather"])).matcher()
    text = m.closing_bytes().decode()
    assert text == '{"city":"","unit":"celsius"}'
    assert len(m.closing_token_ids()) <= len(encode(text)) + 2


def test_within_is_the_plain_mask_far_from_the_end(byte_compiler):
    m = byte_compiler.compile(GrammarSpec.regex(r"a(b|cccc)")).matcher()
    assert m.accept_token(ord("a"))
    buf = allocate_token_bitmask(2, 257)
    m.fill_bitmask_within(buf, 0, remaining=100, window=4)
    m.fill_bitmask(buf, 1)
    assert (buf[0] == buf[1]).all()
    m.fill_bitmask_within(buf, 0, remaining=1, window=4)
    assert np.flatnonzero(bitmask_to_bool(buf, 257)[0]).tolist() == [ord("b")]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_within_window_ends_valid_when_the_budget_runs_out(real_compiler, name):
    """The engine's call: `fill_bitmask_within` at every step, sampling uniformly."""
    schema = SCHEMAS[name]
    g = real_compiler.compile(GrammarSpec.json_schema(schema))
    rng = random.Random(name + "within")
    m = g.matcher()
    budget = max(40, m.min_tokens_to_accept())
    buf = allocate_token_bitmask(1, g.vocab.vocab_size)
    out = []
    for remaining in range(budget, 0, -1):
        m.fill_bitmask_within(buf, 0, remaining)
        t = int(rng.choice(np.flatnonzero(bitmask_to_bool(buf, g.vocab.vocab_size)[0])))
        assert m.accept_token(t)
        if t in g.vocab.eos_token_ids:
            break
        out.append(t)
    assert m.is_accepting()
    validate(schema, output_text(m, out))
