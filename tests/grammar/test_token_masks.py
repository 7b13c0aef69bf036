"""Allowed-token sets on hand-made vocabularies of a few tokens, checked exactly."""

from __future__ import annotations

import numpy as np
import pytest

from tines.grammar import (EmptyLanguageError, GrammarCompiler, GrammarSpec, TokenVocabulary,
                           bitmask_to_bool)

#          0      1      2       3       4      5     6
TOKENS = [b"a", b"b", b"ab", b"abc", b"c", b"ba", None]
EOS = 6


@pytest.fixture(scope="module")
def compiler():
    return GrammarCompiler(TokenVocabulary(TOKENS, eos_token_ids=[EOS]))


def allowed(compiler, regex, prefix=()):
    m = compiler.compile(GrammarSpec.regex(regex)).matcher()
    assert m.accept_tokens(prefix)
    return set(m.allowed_token_ids().tolist())


def test_start_allows_every_token_that_can_begin_a_match(compiler):
    assert allowed(compiler, "a(bc)*") == {0, 2, 3}


def test_multi_byte_token_must_fit_entirely(compiler):
    assert allowed(compiler, "ab") == {0, 2}  # "abc" overshoots, "a" and "ab" fit


def test_eos_only_in_accepting_states(compiler):
    assert allowed(compiler, "a(bc)*", [0]) == {1, EOS}  # after "a": "b..." or the end
    assert allowed(compiler, "a(bc)*", [0, 1]) == {4}  # after "ab": only "c"


def test_token_crossing_an_accepting_point_is_allowed(compiler):
    # "abc" passes the accepting point "a" and ends in one: allowed (outlines-core's bug
    # class: tokens that end just past a point where the regex could have matched).
    assert allowed(compiler, "a(bc)?") == {0, 2, 3}


def test_token_leading_into_a_dead_end_is_refused():
    # "c" can only be followed by "d", and no token spells "d": "c" is never allowed.
    c = GrammarCompiler(TokenVocabulary([b"a", b"c", b"cd", None], eos_token_ids=[3]))
    m = c.compile(GrammarSpec.regex("a|cd")).matcher()
    assert set(m.allowed_token_ids().tolist()) == {0}


def test_grammar_no_token_can_spell_raises(compiler):
    with pytest.raises(EmptyLanguageError):
        compiler.compile(GrammarSpec.regex("x"))


def test_special_tokens_are_never_allowed():
    c = GrammarCompiler(TokenVocabulary([b"a", None, None], eos_token_ids=[2]))
    m = c.compile(GrammarSpec.regex("a*")).matcher()
    assert set(m.allowed_token_ids().tolist()) == {0, 2}


def test_mask_bits_match_allowed_ids(compiler):
    g = compiler.compile(GrammarSpec.regex("(ab|ba)c?"))
    m = g.matcher()
    buf = np.zeros((3, 1), dtype=np.int32)
    m.fill_bitmask(buf, row=1)
    assert np.flatnonzero(bitmask_to_bool(buf, 7)[1]).tolist() == m.allowed_token_ids().tolist()
    assert (buf[[0, 2]] == 0).all()  # other rows untouched


def test_choices_allow_exactly_the_strings(compiler):
    g = compiler.compile(GrammarSpec.choices(["ab", "ba", "c"]))
    assert set(g.matcher().allowed_token_ids().tolist()) == {0, 1, 2, 4, 5}
    assert g.accepts_tokens([2, EOS]) and g.accepts_tokens([0, 1, EOS])
    assert not g.accepts_tokens([3]) and not g.accepts_tokens([0, EOS])
