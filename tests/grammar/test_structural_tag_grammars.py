"""Structural tags whose bodies are grammars (Lark, GBNF, regex), written raw or as the
contents of a JSON string: how a custom tool's call sits among function calls."""

from __future__ import annotations

import json

import pytest

from tines.grammar.cfg import CfgGrammar
from tines.grammar.compiler import CompiledGrammar, GrammarSpec, compile_spec
from tines.grammar.errors import GrammarError

ARITH = ('start: expr\nexpr: term (("+" | "-") term)*\n'
         'term: NUMBER | "(" expr ")" | "\\"" /[a-z]+/ "\\""\n%import common.NUMBER\n'
         '%ignore " "\n')
CALC_BEGIN = '<tool_call>{"name": "calc", "arguments": {"input": "'
CALC_END = '"}}</tool_call>'
WEATHER = {"begin": '<tool_call>{"name": "weather", "arguments": ',
           "schema": {"type": "object", "properties": {"city": {"type": "string"}},
                      "required": ["city"], "additionalProperties": False},
           "end": "}</tool_call>"}


def tag(*structures, mode="auto") -> GrammarSpec:
    return GrammarSpec.structural_tag({"triggers": ["<tool_call>"], "mode": mode,
                                       "structures": list(structures)})


def calc(syntax="lark", definition=ARITH, json_string=True) -> dict:
    return {"begin": CALC_BEGIN, "grammar": {"syntax": syntax, "definition": definition},
            "json_string": json_string, "end": CALC_END}


def calc_call(expression: str) -> str:
    """A call as a model writes it: the input JSON-encoded inside the arguments object."""
    return CALC_BEGIN + json.dumps(expression)[1:-1] + CALC_END


@pytest.fixture(scope="module")
def auto(full_byte_vocab):
    return compile_spec(tag(calc(), WEATHER), full_byte_vocab)


def test_a_lark_body_compiles_context_free(auto):
    assert isinstance(auto, CfgGrammar)


@pytest.mark.parametrize("expression", ["1", "(1 + 2) - 3", '"abc" + (4 - "x")', "((((7))))"])
def test_auto_accepts_text_around_a_call_whose_input_the_grammar_holds(auto, expression):
    assert auto.accepts_text("Let me compute. " + calc_call(expression) + " Done.")


@pytest.mark.parametrize("expression", ["1 +", "(1", '"ABC"', "1 * 2"])
def test_auto_refuses_a_call_whose_decoded_input_breaks_the_grammar(auto, expression):
    assert not auto.accepts_text(calc_call(expression))


def test_quotes_inside_the_input_must_be_escaped(auto):
    raw = CALC_BEGIN + '"abc"' + CALC_END  # the grammar's quote written unescaped
    assert not auto.accepts_text(raw)
    assert auto.accepts_text(CALC_BEGIN + '\\"abc\\"' + CALC_END)


def test_schema_structures_and_plain_text_still_work(auto):
    assert auto.accepts_text('Hi <tool_call>{"name": "weather", "arguments": {"city":"Oslo"}}'
                             '</tool_call>')
    assert auto.accepts_text("no call at all")


def test_closing_from_inside_the_input_finishes_the_grammar_then_the_call(auto):
    m = auto.matcher().started_after((CALC_BEGIN + "(1 + ").encode())
    closing = m.closing_bytes()
    assert closing.endswith(CALC_END.encode())
    assert json.loads('"' + closing[:-len(CALC_END)].decode() + '"')  # a valid JSON tail
    assert auto.accepts_bytes((CALC_BEGIN + "(1 + ").encode() + closing)


def test_a_raw_body_is_the_grammar_text_itself(full_byte_vocab):
    g = compile_spec(tag(calc(json_string=False), mode="required"), full_byte_vocab)
    assert g.accepts_text(CALC_BEGIN + '"ab" + 1' + CALC_END)
    assert not g.accepts_text(CALC_BEGIN + '\\"ab\\" + 1' + CALC_END)


def test_gbnf_body(full_byte_vocab):
    g = compile_spec(tag(calc("gbnf", 'root ::= "(" root ")" | [0-9]+\n'), mode="required"),
                     full_byte_vocab)
    assert g.accepts_text(calc_call("((42))")) and not g.accepts_text(calc_call("((42)"))


def test_regex_body_needs_no_context_free_compile(full_byte_vocab):
    g = compile_spec(tag(calc("regex", r'say "\w+"\n'), mode="required"), full_byte_vocab)
    assert isinstance(g, CompiledGrammar)
    assert g.accepts_text(calc_call('say "hi"\n'))
    assert not g.accepts_text(CALC_BEGIN + 'say "hi"\n' + CALC_END)


def test_a_bad_grammar_body_names_the_structure_and_rule(full_byte_vocab):
    with pytest.raises(GrammarError, match=r"structure 0.*expr"):
        compile_spec(tag(calc(definition="start: expr\n")), full_byte_vocab)


def test_a_structure_needs_exactly_one_body(full_byte_vocab):
    both = {**calc(), "schema": {"type": "string"}}
    with pytest.raises(GrammarError, match="one of 'schema' or 'grammar'"):
        compile_spec(tag(both), full_byte_vocab)
