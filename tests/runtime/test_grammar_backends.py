"""Grammar backends behind the one matcher protocol (`grammar/backends/`): each installed
backend, driven through the engine's GrammarBridge on the default model's vocabulary, allows
every token of valid outputs, ends accepting, terminates where nothing can follow, copies and
rolls back, and walks at random only into outputs that match. outlines-core's one known
difference (a completeness bug) is pinned down; unsupported constraint kinds are refused
with a ValueError naming the backend."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from tines.grammar.backends import BACKENDS, backend_available
from tines.runtime.engine.config import GRAMMAR_BACKENDS, EngineConfig
from tines.runtime.sampling_params import SamplingParams

INSTALLED = [b for b in BACKENDS if backend_available(b)]
SCHEMA = {"type": "object", "properties": {
    "city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]},
    "days": {"type": "integer", "minimum": 1, "maximum": 14}},
    "required": ["city", "unit", "days"], "additionalProperties": False}
REGEXES = [r"(yes|no|maybe)!{2,4}", r"[0-9]{3}-[0-9]{4}", r"(ab|cd)+e"]


@pytest.fixture(scope="module")
def tokenizer(default_model_path):
    from tines.runtime.tokenizer.tokenizer import Tokenizer

    return Tokenizer.from_file(default_model_path)


@pytest.fixture(scope="module")
def bridges(tokenizer):
    from tines.runtime.engine.grammar_bridge import GrammarBridge
    from tines.runtime.engine.token_vocab import token_vocabulary

    made = {}
    vocab = token_vocabulary(tokenizer, len(tokenizer.token_strings()))

    def get(backend: str) -> GrammarBridge:
        if backend not in made:
            made[backend] = GrammarBridge(tokenizer, vocab, backend)
        return made[backend]

    yield get
    for b in made.values():
        b.close()


def compile_for(bridge, **constraint):
    return bridge.compile_async(SamplingParams(**constraint)).result(timeout=120)


def allowed(matcher, vocab) -> set[int]:
    buf = np.zeros((1, vocab.num_words), dtype=np.int32)
    matcher.fill_bitmask(buf, 0)
    bits = np.unpackbits(buf[0].view(np.uint8), bitorder="little")[:vocab.vocab_size]
    return set(np.flatnonzero(bits).tolist())


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def test_config_names_the_same_backends():
    assert GRAMMAR_BACKENDS == BACKENDS
    with pytest.raises(ValueError, match="grammar_backend"):
        EngineConfig(grammar_backend="guidance")


@pytest.mark.model
@pytest.mark.parametrize("backend", INSTALLED)
def test_valid_instance_is_allowed_token_by_token_and_terminates(bridges, tokenizer, backend):
    bridge = bridges(backend)
    m = compile_for(bridge, json_schema=SCHEMA).matcher()
    text = json.dumps({"city": "Paris", "unit": "celsius", "days": 3}, separators=(",", ":"))
    for t in encode(tokenizer, text):
        assert t in allowed(m, bridge.vocab)
        assert m.accept_token(t)
    assert m.is_accepting() and m.is_terminated()
    assert allowed(m, bridge.vocab) <= set(bridge.vocab.eos_token_ids)


@pytest.mark.model
@pytest.mark.parametrize("backend", INSTALLED)
def test_refuses_a_token_the_grammar_forbids(bridges, tokenizer, backend):
    bridge = bridges(backend)
    m = compile_for(bridge, regex=r"[0-9]{3}-[0-9]{4}").matcher()
    [letter] = encode(tokenizer, "x")
    assert letter not in allowed(m, bridge.vocab)
    assert not m.accept_token(letter) and m.num_tokens == 0


@pytest.mark.model
@pytest.mark.parametrize("backend", INSTALLED)
def test_special_tokens_are_never_allowed_inside_a_string(bridges, tokenizer, backend):
    bridge = bridges(backend)
    m = compile_for(bridge, regex=r'"[^"]*"').matcher()
    assert m.accept_tokens(encode(tokenizer, '"'))
    special = {i for i, b in enumerate(bridge.vocab.token_bytes) if b is None}
    assert special and not special & allowed(m, bridge.vocab)


@pytest.mark.model
@pytest.mark.parametrize("backend", INSTALLED)
def test_copy_and_rollback_keep_the_state(bridges, tokenizer, backend):
    bridge = bridges(backend)
    m = compile_for(bridge, json_schema=SCHEMA).matcher()
    ids = encode(tokenizer, '{"city":"Rome","unit":"')
    assert m.accept_tokens(ids)
    after = allowed(m, bridge.vocab)
    c = m.copy()
    assert c.num_tokens == len(ids) and allowed(c, bridge.vocab) == after
    m.rollback(2)
    assert m.accept_tokens(ids[-2:]) and allowed(m, bridge.vocab) == after
    assert allowed(c, bridge.vocab) == after  # the copy is independent


@pytest.mark.model
@pytest.mark.parametrize("backend", INSTALLED)
@pytest.mark.parametrize("pattern", REGEXES)
def test_random_walks_end_in_a_full_match(bridges, tokenizer, backend, pattern):
    bridge = bridges(backend)
    grammar = compile_for(bridge, regex=pattern)
    eos = bridge.vocab.eos_token_ids
    rng = random.Random(pattern + backend)
    for _ in range(8):
        m, ids = grammar.matcher(), []
        while not m.is_terminated() and len(ids) < 40:
            choices = sorted(allowed(m, bridge.vocab) - eos)
            if not choices or (m.is_accepting() and rng.random() < 0.4):
                break
            ids.append(rng.choice(choices))
            assert m.accept_token(ids[-1])
        assert m.is_accepting()
        assert re.fullmatch(pattern, tokenizer.decode(ids))


@pytest.mark.model
@pytest.mark.parametrize("backend", INSTALLED)
def test_choices_allow_exactly_the_choices(bridges, tokenizer, backend):
    bridge = bridges(backend)
    grammar = compile_for(bridge, choices=["red", "green", "a.b (c)"])
    for word in ("red", "green", "a.b (c)"):
        m = grammar.matcher()
        assert m.accept_tokens(encode(tokenizer, word)) and m.is_accepting()
    m = grammar.matcher()
    assert not m.accept_tokens(encode(tokenizer, "blue"))


@pytest.mark.model
def test_outlines_known_completeness_bug_is_the_difference(bridges, tokenizer):
    """outlines-core 0.2.14 refuses `.` after `mail` in `[a-z]+(\\.[a-z]+)?`, a valid
    continuation (`mail.com`); tines allows it. Both accept `mail` as a full match."""
    if "outlines" not in INSTALLED:
        pytest.skip("outlines-core is not installed")
    pattern = r"[a-z]+(\.[a-z]+)?"
    prefix = encode(tokenizer, "mail")
    [dot] = encode(tokenizer, ".")
    masks = {}
    for backend in ("tines", "outlines"):
        m = compile_for(bridges(backend), regex=pattern).matcher()
        assert m.accept_tokens(prefix) and m.is_accepting()
        masks[backend] = allowed(m, bridges(backend).vocab)
    assert dot in masks["tines"]
    assert dot not in masks["outlines"]


@pytest.mark.model
def test_outlines_dates_take_any_unicode_digit(bridges, tokenizer):
    """outlines-core's second difference: `\\d` in its date regex is Unicode-wide."""
    if "outlines" not in INSTALLED:
        pytest.skip("outlines-core is not installed")
    ids = encode(tokenizer, '"\u0661')  # a quote, then ARABIC-INDIC DIGIT ONE
    accepted = {}
    for backend in ("tines", "outlines"):
        g = compile_for(bridges(backend), json_schema={"type": "string", "format": "date"})
        accepted[backend] = g.matcher().accept_tokens(ids)
    assert accepted == {"tines": False, "outlines": True}


@pytest.mark.model
@pytest.mark.parametrize("backend,kind", [("outlines", "grammar"), ("xgrammar", "grammar"),
                                          ("outlines", "structural_tag")])
def test_unsupported_kinds_are_refused_naming_the_backend(bridges, backend, kind):
    if backend not in INSTALLED:
        pytest.skip(f"{backend} is not installed")
    value = {"grammar": 'start: "a"+',
             "structural_tag": {"triggers": ["<t>"], "structures": [
                 {"begin": "<t>", "schema": {"type": "integer"}, "end": "</t>"}]}}[kind]
    with pytest.raises(ValueError, match=backend):
        compile_for(bridges(backend), **{kind: value})


@pytest.mark.model
@pytest.mark.parametrize("backend", INSTALLED)
def test_engine_decodes_with_the_backend(tiny_model_dir, backend):
    """The same regex and choices requests through an Engine built with this backend."""
    from tines.runtime.engine.engine import Engine

    engine = Engine(str(tiny_model_dir), kv_tokens=2048, max_running=8, weights="fp32",
                    grammar_backend=backend)
    try:
        [out] = engine.generate(["x"], SamplingParams(regex=r"(yes|no|maybe)!{2,4}",
                                                      temperature=1.0, seed=0, n=4))
        for c in out.outputs:
            assert re.fullmatch(r"(yes|no|maybe)!{2,4}", c.text), c.text
        [out] = engine.generate(["x"], SamplingParams(choices=["alpha", "beta"], n=3,
                                                      temperature=1.0, seed=1))
        assert {c.text for c in out.outputs} <= {"alpha", "beta"}
        # Token healing (the DSL's default) with this backend: the prompt's last token is
        # re-spelled exactly, then the grammar takes over.
        out = engine.generate("The answer is ", SamplingParams(
            regex=r"(yes|no|maybe)!{2,4}", temperature=1.0, seed=2, token_healing=True))
        assert re.fullmatch(r"(yes|no|maybe)!{2,4}", out.outputs[0].text), out.outputs[0].text
    finally:
        engine.shutdown()
