"""GrammarCompiler: LRU cache keyed by (spec, vocabulary), async compilation, threads."""

from __future__ import annotations

import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tines.grammar import (CompiledGrammar, GrammarCompiler, GrammarError, GrammarSpec,
                           TokenVocabulary)

from tines.grammar.conformance import full_byte_vocabulary as byte_vocab


def test_same_spec_hits_the_cache():
    c = GrammarCompiler(byte_vocab())
    a = c.compile(GrammarSpec.regex("ab+"))
    assert c.compile(GrammarSpec.regex("ab+")) is a
    assert c.stats()["hits"] == 1 and c.stats()["misses"] == 1


def test_json_schema_forms_share_one_key():
    assert GrammarSpec.json_schema({"type": "integer"}) == GrammarSpec.json_schema(
        '{"type": "integer"}')
    assert GrammarSpec.json_schema({"type": "integer"}) != GrammarSpec.json_schema(
        {"type": "integer"}, whitespace=" ?")


def test_lru_evicts_the_least_recently_used():
    c = GrammarCompiler(byte_vocab(), max_cached=2)
    a = c.compile(GrammarSpec.regex("a"))
    c.compile(GrammarSpec.regex("b"))
    c.compile(GrammarSpec.regex("a"))  # refresh "a"
    c.compile(GrammarSpec.regex("c"))  # evicts "b"
    assert c.compile(GrammarSpec.regex("a")) is a
    assert c.stats()["cached"] == 2 and c.stats()["misses"] == 3  # a, b, c
    c.compile(GrammarSpec.regex("b"))  # was evicted: compiled again
    assert c.stats()["misses"] == 4


def test_different_vocabularies_do_not_share_grammars():
    spec = GrammarSpec.regex("a")
    v2 = TokenVocabulary([b"a", None], [1])
    a = GrammarCompiler(byte_vocab()).compile(spec)
    assert a.vocab is not GrammarCompiler(v2).compile(spec).vocab


def test_compile_async_returns_a_future_and_delivers_errors():
    c = GrammarCompiler(byte_vocab())
    fut = c.compile_async(GrammarSpec.json_schema({"type": "string", "maxLength": 3}))
    assert fut.result(timeout=30).accepts_text('"abc"')
    bad = c.compile_async(GrammarSpec.regex("(?=a)"))
    with pytest.raises(GrammarError):
        bad.result(timeout=30)
    with pytest.raises(GrammarError):  # errors are cached too: a bad request stays cheap
        c.compile(GrammarSpec.regex("(?=a)"))
    c.close()


def test_concurrent_requests_share_one_compilation():
    c = GrammarCompiler(byte_vocab(), max_workers=4)
    spec = GrammarSpec.json_schema({"type": "array", "items": {"type": "integer"}})
    futs = [c.compile_async(spec) for _ in range(8)]
    with ThreadPoolExecutor(8) as ex:
        sync = list(ex.map(lambda _: c.compile(spec), range(8)))
    results = {id(f.result(timeout=30)) for f in futs} | {id(g) for g in sync}
    assert len(results) == 1 and c.stats()["misses"] == 1
    c.close()


def test_matchers_on_one_grammar_from_many_threads():
    regex = r"[a-c]{1,3}(\.[a-c]{1,3}){0,3}@(x|yz)\.(com|org)"
    g = GrammarCompiler(byte_vocab()).compile(GrammarSpec.regex(regex))
    errors = []

    def walk(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(20):
            m = g.matcher()
            out = bytearray()
            while not m.is_terminated():
                t = rng.choice(m.allowed_token_ids().tolist())
                m.accept_token(t)
                if t != 256:
                    out.append(t)
            if not re.fullmatch(regex, out.decode()):
                errors.append(out)

    threads = [threading.Thread(target=walk, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_spec_from_sampling_params():
    from tines.runtime.sampling_params import SamplingParams

    assert GrammarSpec.from_sampling_params(SamplingParams()) is None
    assert GrammarSpec.from_sampling_params(SamplingParams(regex="a+")) == GrammarSpec.regex("a+")
    p = SamplingParams(json_schema={"type": "string"}, json_whitespace=" ?")
    assert GrammarSpec.from_sampling_params(p).json.whitespace == " ?"
    assert GrammarSpec.from_sampling_params(SamplingParams(choices=["x", "y"])).value == ("x", "y")


def _engine_grammar(**params) -> CompiledGrammar:
    from tines.runtime.sampling_params import SamplingParams

    return CompiledGrammar(GrammarSpec.from_sampling_params(SamplingParams(**params)),
                           byte_vocab())


ITEM = {"type": "object", "properties": {"qty": {"type": "integer"}}, "required": ["qty"]}


def test_the_engine_closes_objects_that_declare_properties():
    g = _engine_grammar(json_schema=ITEM)
    assert g.accepts_text('{"qty":3}')
    assert not g.accepts_text('{"qty":3,"name":"x"}')
    assert GrammarSpec.json_schema(ITEM).value != g.spec.value  # the schema as written is open


def test_json_extra_keys_keeps_json_schemas_default_of_open_objects():
    g = _engine_grammar(json_schema=ITEM, json_extra_keys=True)
    assert g.accepts_text('{"qty":3,"name":"x"}')


def test_the_engine_closes_the_schemas_of_a_structural_tag():
    tag = {"structures": [{"begin": "<f>", "schema": ITEM, "end": "</f>"}], "triggers": ["<f>"]}
    g = _engine_grammar(structural_tag=tag)
    assert g.accepts_text('<f>{"qty":3}</f>')
    assert not g.accepts_text('<f>{"qty":3,"name":"x"}</f>')


def test_the_engine_writes_integers_and_enum_numbers_canonically():
    g = _engine_grammar(json_schema={"type": "integer", "minimum": 10, "maximum": 20})
    assert g.accepts_text("12") and not g.accepts_text("12.00")
    g = _engine_grammar(json_schema={"enum": ["red", 3, 2.5]})
    assert [g.accepts_text(t) for t in ("3", "3.000", "2.5", "2.50")] == [True, False, True, False]
    spec_exact = CompiledGrammar(GrammarSpec.json_schema({"type": "integer"}), byte_vocab())
    assert spec_exact.accepts_text("12.00")  # JSON Schema counts it as an integer
