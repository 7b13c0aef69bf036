"""Token healing on the tiny random model (real vocabulary): the prompt is backed up over its
last token, the first generated tokens re-spell it, and the text a caller sees is exactly the
continuation of its prompt. Prompts end in a space, inside a word, and on a character the
tokenizer writes as several byte tokens; healing composes with a grammar and n > 1, and the
DSL turns it on for gen."""

from __future__ import annotations

import re

import pytest

import tines
from tines.runtime.engine.healing import plan_healing
from tines.runtime.engine.token_vocab import token_vocabulary
from tines.runtime.sampling_params import SamplingParams

SAMPLES = 8


@pytest.fixture(scope="module")
def vocab(tiny_engine):
    tok = tiny_engine.tokenizer
    return token_vocabulary(tok, len(tok.token_strings()))


def healed(engine, prompt: str, **kw) -> list:
    params = SamplingParams(temperature=1.0, max_new_tokens=6, token_healing=True, seed=11, **kw)
    return engine.generate([prompt] * SAMPLES, params)


def full_texts_agree(engine, prompt: str, outs) -> None:
    """prompt + text == the decoded tokens: the backed-up text appears exactly once."""
    tok = engine.tokenizer
    for o in outs:
        for c in o.outputs:
            assert tok.decode(o.prompt_token_ids + c.token_ids) == prompt + c.text


def first_tokens(outs) -> list[int]:
    return [c.token_ids[0] for o in outs for c in o.outputs]


def test_prompt_ending_in_a_space_is_backed_up_and_respelled(tiny_engine, vocab):
    prompt = "The capital of France is "
    ids = tiny_engine.tokenizer.encode(prompt, add_special_tokens=True)
    assert plan_healing(ids, vocab).removed == b" "
    outs = healed(tiny_engine, prompt)
    assert all(len(o.prompt_token_ids) == len(ids) - 1 for o in outs)
    full_texts_agree(tiny_engine, prompt, outs)
    firsts = [vocab.token_bytes[t] for t in first_tokens(outs)]
    assert all(b.startswith(b" ") for b in firsts)
    assert any(len(b) > 1 for b in firsts)  # the model wrote " word" in one token


def test_prompt_ending_inside_a_word(tiny_engine, vocab):
    prompt = "I would like a cup of coff"
    outs = healed(tiny_engine, prompt)
    plan = plan_healing(tiny_engine.tokenizer.encode(prompt, add_special_tokens=True), vocab)
    assert prompt.endswith(plan.text) and plan.text.strip()
    full_texts_agree(tiny_engine, prompt, outs)
    for t in first_tokens(outs):  # each first token is a prefix of the removed bytes or extends them
        b = vocab.token_bytes[t]
        assert plan.removed.startswith(b) or b.startswith(plan.removed)


def test_prompt_ending_in_a_multibyte_character_backs_up_whole_characters(tiny_engine, vocab):
    tok = tiny_engine.tokenizer
    # a character this vocabulary writes as more than one token: healing must take all of them
    char = next(c for c in "𝔸🦀ꙮ𓂀" if len(tok.encode(c, add_special_tokens=False)) > 1)
    prompt = "Look: " + char
    ids = tok.encode(prompt, add_special_tokens=True)
    plan = plan_healing(ids, vocab)
    if plan is not None:
        assert plan.num_tokens >= 2 and plan.text.endswith(char)
        plan.removed.decode("utf-8")  # whole characters only
    outs = healed(tiny_engine, prompt)
    full_texts_agree(tiny_engine, prompt, outs)
    for o in outs:
        for c in o.outputs:
            assert char not in c.text[:1]  # never shown twice


def test_prompt_ids_ending_inside_a_character_are_completed(tiny_engine, vocab):
    tok = tiny_engine.tokenizer
    lead = vocab.token_id_of_bytes[b"\xc3"]  # the first byte of "é", "ü", ... on its own
    ids = tok.encode("I love caf", add_special_tokens=True) + [lead]
    plan = plan_healing(ids, vocab)
    assert plan.removed == b"\xc3" and plan.text == ""
    outs = tiny_engine.generate([ids] * SAMPLES, SamplingParams(
        temperature=1.0, max_new_tokens=6, token_healing=True, seed=5))
    for o in outs:
        assert o.prompt_token_ids == ids[:-1]
        c = o.outputs[0]
        first = vocab.token_bytes[c.token_ids[0]]
        assert first.startswith(b"\xc3")
        if len(first) > 1:  # the character is whole in the text the caller sees
            assert c.text.startswith(first.decode("utf-8", errors="ignore")[:1])
        assert tok.decode(o.prompt_token_ids + c.token_ids) == tok.decode(o.prompt_token_ids) + c.text


def test_healing_composes_with_a_regex(tiny_engine):
    prompt = "Visit our website at http:"
    outs = healed(tiny_engine, prompt, regex=r"//[a-z]{1,8}\.(com|org)")
    full_texts_agree(tiny_engine, prompt, outs)
    for o in outs:
        for c in o.outputs:
            assert re.fullmatch(r"//[a-z]{1,8}\.(com|org)", c.text), c.text


def test_healing_with_n_completions_and_a_stop_string(tiny_engine):
    prompt = "Numbers: 1, 2, 3, "
    params = SamplingParams(temperature=1.0, max_new_tokens=8, token_healing=True, n=3,
                            seed=2, stop=[","])
    out = tiny_engine.generate(prompt, params)
    assert len(out.outputs) == 3
    for c in out.outputs:
        assert "," not in c.text
        if c.finish_reason == "length":
            assert tiny_engine.tokenizer.decode(out.prompt_token_ids + c.token_ids) == prompt + c.text


def test_healing_off_keeps_the_whole_prompt(tiny_engine):
    prompt = "The capital of France is "
    ids = tiny_engine.tokenizer.encode(prompt, add_special_tokens=True)
    out = tiny_engine.generate(prompt, SamplingParams(temperature=0, max_new_tokens=3))
    assert out.prompt_token_ids == ids


def test_dsl_gen_asks_for_healing_unless_told_not_to():
    backend = tines.MockBackend(["Paris", "Paris", "Paris"])

    @tines.program
    def prog(s, **kw):
        s += "The capital of France is "
        s += tines.gen("a", max_tokens=4, **kw)

    prog.run(backend=backend)
    prog.run(backend=backend, token_healing=False)  # a run default
    prog.run(backend=backend, **{})
    healing = [r.params.token_healing for r in backend.requests_of("generate")]
    assert healing == [True, False, True]


def test_dsl_text_on_the_engine_is_prompt_plus_variable(tiny_engine):
    from tines.local import LocalBackend

    @tines.program
    def prog(s):
        s += "The capital of France is "
        s += tines.gen("a", max_tokens=4, temperature=0)

    state = prog.run(backend=LocalBackend(tiny_engine))
    assert state.text() == "The capital of France is " + state["a"]


def test_backed_up_prompt_is_served_from_the_radix_cache(tiny_engine):
    prompt = "A prompt long enough to be worth caching, repeated twice with healing on: "
    params = SamplingParams(temperature=0, max_new_tokens=3, token_healing=True)
    first = tiny_engine.generate(prompt, params)
    second = tiny_engine.generate(prompt, params)
    assert second.prompt_token_ids == first.prompt_token_ids
    assert second.num_cached_tokens >= len(second.prompt_token_ids) - 1
    assert second.outputs[0].text == first.outputs[0].text


@pytest.mark.parametrize("rest, spec", [
    (b" ", {"json_schema": {"type": "object", "properties": {"tool": {"enum": ["search", "finish"]}},
                            "required": ["tool"]}}),
    (b"http:", {"regex": r"//[a-z]{1,8}\.(com|org)"}),
    (b" Par", {"regex": r"[a-z]+ is (big|small)\."}),
])
def test_healing_mask_with_a_grammar_equals_the_token_by_token_check(vocab, rest, spec):
    import numpy as np

    from tines.grammar import GrammarSpec
    from tines.grammar.bitmask import ids_to_bitmask
    from tines.grammar.compiler import GrammarCompiler
    from tines.runtime.engine.healing import HealingMatcher

    kind, value = next(iter(spec.items()))
    grammar = GrammarCompiler(vocab).compile(getattr(GrammarSpec, kind)(value))
    healing = HealingMatcher(vocab, rest, grammar.matcher())
    want = ids_to_bitmask(healing.allowed_token_ids(), vocab.vocab_size)
    assert want.any()
    assert healing._grammar_mask() is not None  # the grammar's own mask of "rest, then it"
    buf = np.zeros((1, len(want)), dtype=np.int32)
    healing.fill_bitmask(buf, 0)
    assert np.array_equal(buf[0], want)
