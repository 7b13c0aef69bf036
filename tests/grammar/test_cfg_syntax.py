"""Both CFG front ends (Lark, GBNF) on llama.cpp's example grammars, re-expressed, checked
against the independent `lark` parser (Earley, dynamic_complete lexer)."""

from __future__ import annotations

import pytest

from tines.grammar.cfg import compile_cfg, parse_grammar
from tines.grammar.cfg.examples import GBNF, LARK, SAMPLES

lark = pytest.importorskip("lark")

NAMES = sorted(GBNF)


def lark_accepts(grammar: str, text: str) -> bool:
    parser = lark.Lark(grammar, parser="earley", lexer="dynamic_complete")
    try:
        parser.parse(text)
        return True
    except lark.exceptions.LarkError:
        return False


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("syntax", ["gbnf", "lark"])
def test_example_accepts_its_sample_and_refuses_the_near_miss(full_byte_vocab, name, syntax):
    text = GBNF[name] if syntax == "gbnf" else LARK[name]
    g = compile_cfg(text, full_byte_vocab, syntax)
    good, bad = SAMPLES[name]
    assert g.accepts_text(good)
    assert not g.accepts_text(bad)


@pytest.mark.parametrize("name", NAMES)
def test_lark_package_agrees_on_the_samples(name):
    good, bad = SAMPLES[name]
    assert lark_accepts(LARK[name], good)
    assert not lark_accepts(LARK[name], bad)


@pytest.mark.parametrize("name", NAMES)
def test_gbnf_and_lark_versions_agree_on_every_prefix(full_byte_vocab, name):
    gg = compile_cfg(GBNF[name], full_byte_vocab, "gbnf")
    gl = compile_cfg(LARK[name], full_byte_vocab, "lark")
    good, bad = SAMPLES[name]
    for text in (good, bad):
        data = text.encode()
        for i in range(len(data) + 1):
            assert gg.accepts_bytes(data[:i]) == gl.accepts_bytes(data[:i]), data[:i]


def test_lark_left_recursion_is_rewritten_to_the_same_language(full_byte_vocab):
    g = compile_cfg('start: sum\nsum: sum "+" INT | sum "-" INT | INT\n%import common.INT\n',
                    full_byte_vocab)
    assert [g.accepts_text(t) for t in ["1", "1+2-3", "+1", "1+", "12-0+7"]] == \
        [True, True, False, False, True]


def test_lark_features_ignore_ranges_repeats_case_insensitive(full_byte_vocab):
    g = compile_cfg(r'''
start: "select"i ITEM ~ 2..3 [TAIL] CHAR{2}
ITEM: "a".."c"
TAIL: /x+/
CHAR: "0".."1"
%ignore " "
''', full_byte_vocab)
    assert g.accepts_text("SeLeCt a b01")
    assert g.accepts_text("select abc xx 1 0 ")
    assert not g.accepts_text("select a01")  # ~ 2..3: at least two items
    assert not g.accepts_text("select abcc01")  # at most three


def test_common_imports_have_lark_common_languages(full_byte_vocab):
    g = compile_cfg('start: NUMBER "," ESCAPED_STRING "," CNAME\n'
                    '%import common (NUMBER, ESCAPED_STRING, CNAME)\n', full_byte_vocab)
    assert g.accepts_text('1.5e-3,"a \\" b",_x1')
    assert not g.accepts_text('1.5e,"a",x')
    assert not g.accepts_text('1,"a,1x')


def test_gbnf_classes_escapes_and_bounds(full_byte_vocab):
    g = compile_cfg(r'root ::= [^a-c\]] "\x41\u00e9" [a-]{1,2} "\\"' + "\n",
                    full_byte_vocab, "gbnf")
    assert g.accepts_text("]Aé-\\") is False  # ']' is excluded
    assert g.accepts_text("zAéa-\\")
    assert not g.accepts_text("aAéa\\")
    assert not g.accepts_text("zAéa--\\")


def test_ebnf_is_the_gbnf_dialect():
    assert parse_grammar('root ::= "a"', "ebnf").rules == parse_grammar('root ::= "a"', "gbnf").rules


def test_lark_rule_prefixes_and_postfix_question_mark(full_byte_vocab):
    g = compile_cfg('?start: a?b\n!a: "a"\nb: "b" -> bee\n', full_byte_vocab)
    assert [g.accepts_text(t) for t in ("ab", "b", "a")] == [True, True, False]


def test_deep_nesting_is_matched_and_closed(full_byte_vocab):
    g = compile_cfg('start: list\nlist: "[" [list ("," list)*] "]"\n', full_byte_vocab)
    m = g.matcher()
    assert m.accept_tokens([ord("[")] * 1000)
    assert m.closing_bytes() == b"]" * 1000
    assert m.accept_tokens(list(b"]" * 1000)) and m.is_terminated()


@pytest.mark.parametrize("text,syntax", [('start: "a" | b\nb: "b"', "lark"),
                                         ('root ::= "a" | b\nb ::= "b"', "gbnf")])
def test_grammar_text_without_a_final_newline(full_byte_vocab, text, syntax):
    assert compile_cfg(text, full_byte_vocab, syntax).accepts_text("b")
