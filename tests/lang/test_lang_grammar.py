"""`gen(grammar=...)`: Lark and GBNF text, and grammars composed in Python from select / regex /
gen fragments through `@rule` functions (recursive, left recursion included). Programs run on
the tiny random model at temperature 1.0; every output is parsed by the `lark` package."""

from __future__ import annotations

import lark
import pytest

import tines
from tines.grammar.cfg.examples import GBNF, LARK
from tines.grammars import one_or_more, optional, regex, repeat, rule


@rule
def expr():
    return select_of(term(), expr() + select_of("+", "-") + term())  # left recursive


@rule
def term():
    return select_of(number(), "(" + expr() + ")")


@rule
def number():
    return tines.gen(regex=r"[0-9]{1,3}")


def select_of(*options):
    return tines.select(list(options))


@rule
def call(depth):
    args = [regex(r"[a-z]{1,4}"), regex(r"[0-9]{1,2}")] + ([call(depth - 1)] if depth else [])
    return regex(r"[a-z_]{1,6}") + "(" + optional(tines.select(args) + repeat(", " + tines.select(args), 0, 2)) + ")"


@pytest.fixture(scope="module")
def backend(tiny_engine):
    from tines.local import LocalBackend

    return LocalBackend(tiny_engine)


def run_gen(backend, grammar, n: int = 6, max_tokens: int = 40) -> list[str]:
    @tines.program
    def prog(s, seed):
        s += "Output: "
        s += tines.gen("out", grammar=grammar, max_tokens=max_tokens, temperature=1.0, seed=seed)

    states = prog.run_batch([{"seed": i} for i in range(n)], backend=backend)
    return [st["out"] for st in states]


@pytest.mark.parametrize("name", ["calls", "nested_lists", "arithmetic"])
def test_lark_text_outputs_parse(backend, name):
    parser = lark.Lark(LARK[name], lexer="dynamic_complete")
    for text in run_gen(backend, LARK[name]):
        parser.parse(text)


def test_gbnf_text_outputs_parse(backend):
    parser = lark.Lark(LARK["chess"], lexer="dynamic_complete")
    for text in run_gen(backend, GBNF["chess"], n=4):
        parser.parse(text)


def test_composed_recursive_grammar_is_lark_and_outputs_parse(backend):
    grammar = expr()
    text = grammar.to_lark()
    assert "expr: " in text and "term: " in text and "number: " in text
    parser = lark.Lark(text, lexer="dynamic_complete")  # the lark package reads what we wrote
    outs = run_gen(backend, grammar)
    for out in outs:
        parser.parse(out)


def test_rule_with_arguments_is_one_rule_per_argument(backend):
    text = call(2).to_lark()
    assert text.count(": ") == 4  # start + call(2), call(1), call(0)
    parser = lark.Lark(text, lexer="dynamic_complete")
    for out in run_gen(backend, call(2), n=4):
        parser.parse(out)


def test_fragments_compose_with_plus_and_repetition():
    g = "[" + one_or_more(tines.select(["a", "b"]) + ";") + "]"
    parser = lark.Lark(g.to_lark(), lexer="dynamic_complete")
    parser.parse("[a;b;a;]")
    with pytest.raises(lark.exceptions.LarkError):
        parser.parse("[]")


def test_bad_grammar_fails_at_the_gen_call_naming_the_rule():
    with pytest.raises(ValueError, match="missing"):
        tines.gen("x", grammar="start: a missing\na: \"x\"\n")


def test_grammar_and_regex_together_are_refused():
    with pytest.raises(ValueError, match="only one of"):
        tines.gen("x", grammar=LARK["calls"], regex="[a-z]+")


def test_non_fragment_in_a_grammar_is_a_type_error():
    with pytest.raises(TypeError, match="cannot use"):
        ("a" + regex("b") + tines.gen("named", regex="c")).to_lark()


def test_openai_compatible_backends_get_the_grammar_as_vllm_structured_outputs():
    from tines.openai_wire import completion_body
    from tines.runtime.sampling_params import SamplingParams

    body = completion_body("m", "x", SamplingParams(grammar=LARK["calls"], token_healing=True))
    assert body["structured_outputs"] == {"grammar": LARK["calls"]}
    assert "token_healing" not in body  # a hint these servers do not take; the text goes whole
