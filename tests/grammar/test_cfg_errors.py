"""Grammars the CFG front end cannot support fail at compile time with an error naming the
rule (or directive) at fault."""

from __future__ import annotations

import pytest

from tines.grammar import EmptyLanguageError, GrammarError
from tines.grammar.cfg import CfgError, compile_cfg


def error(vocab, text: str, syntax: str = "lark") -> CfgError:
    with pytest.raises(CfgError) as info:
        compile_cfg(text, vocab, syntax)
    return info.value


def test_undefined_rule_names_the_rule_that_uses_it(full_byte_vocab):
    e = error(full_byte_vocab, 'start: item+\nitem: "a" | thing\n')
    assert e.rule == "item"
    assert "'thing'" in str(e)


def test_undefined_gbnf_rule(full_byte_vocab):
    e = error(full_byte_vocab, 'root ::= value\nvalue ::= "[" elems "]"\n', "gbnf")
    assert e.rule == "value" and "'elems'" in str(e)


def test_missing_start_rule(full_byte_vocab):
    assert "start rule 'root'" in str(error(full_byte_vocab, 'start ::= "a"\n', "gbnf"))


def test_unknown_directive_is_named(full_byte_vocab):
    assert "%declare" in str(error(full_byte_vocab, 'start: A\n%declare A\n'))


def test_unsupported_import_module_is_named(full_byte_vocab):
    assert "python" in str(error(full_byte_vocab, 'start: NAME\n%import python.NAME\n'))


def test_unknown_common_terminal_is_named(full_byte_vocab):
    assert "NUMBERS" in str(error(full_byte_vocab, 'start: NUMBERS\n%import common.NUMBERS\n'))


def test_rule_templates_are_refused_by_name(full_byte_vocab):
    e = error(full_byte_vocab, 'start: pair{"a"}\npair{x}: x x\n')
    assert e.rule == "start" and "template" in str(e)
    e = error(full_byte_vocab, 'start: "a"\npair{x}: x x\n')
    assert e.rule == "pair" and "template" in str(e)


def test_indirect_left_recursion_names_the_cycle(full_byte_vocab):
    e = error(full_byte_vocab, 'start: a\na: b "x" | "y"\nb: c? a "z"\nc: "c"\n')
    assert e.rule in ("a", "b")
    assert "a -> b -> a" in str(e) or "b -> a -> b" in str(e)


def test_left_recursion_without_a_base_case(full_byte_vocab):
    assert error(full_byte_vocab, 'start: s\ns: s "a"\n').rule == "s"


def test_recursive_terminal_is_named(full_byte_vocab):
    e = error(full_byte_vocab, 'start: A\nA: "(" A? ")"\n')
    assert e.rule == "A" and "recursive" in str(e)


def test_terminal_using_a_rule_is_named(full_byte_vocab):
    e = error(full_byte_vocab, 'start: A\nA: "x" b\nb: "y"\n')
    assert e.rule == "A"


def test_bad_regex_names_the_rule(full_byte_vocab):
    e = error(full_byte_vocab, 'start: word\nword: /(?<=a)b/\n')
    assert e.rule == "word" and "lookaround" in str(e)


def test_syntax_error_gives_the_line(full_byte_vocab):
    assert "line 2" in str(error(full_byte_vocab, 'start: a\na: "x" )\n'))


def test_grammar_with_no_finite_string_is_an_empty_language(full_byte_vocab):
    with pytest.raises(EmptyLanguageError):
        compile_cfg('root ::= "(" root ")"\n', full_byte_vocab, "gbnf")


def test_errors_are_value_errors(full_byte_vocab):
    assert issubclass(CfgError, GrammarError) and issubclass(CfgError, ValueError)
    with pytest.raises(ValueError):
        compile_cfg("start: ", full_byte_vocab, "yaml")
