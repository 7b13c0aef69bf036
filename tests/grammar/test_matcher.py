"""GrammarMatcher: per-sequence state, rollback, copy, termination."""

from __future__ import annotations

import pytest

from tines.grammar import GrammarCompiler, GrammarSpec, TokenVocabulary, allocate_token_bitmask

TOKENS = [b"a", b"b", b"ab", b"{", b"}", None]
EOS = 5


@pytest.fixture(scope="module")
def grammar():
    return GrammarCompiler(TokenVocabulary(TOKENS, [EOS])).compile(GrammarSpec.regex("a+b?"))


def test_accept_refuses_disallowed_tokens_without_moving(grammar):
    m = grammar.matcher()
    assert not m.accept_token(1)
    assert m.num_tokens == 0
    assert m.accept_token(0) and m.num_tokens == 1


def test_eos_only_when_accepting_and_it_ends_the_matcher(grammar):
    m = grammar.matcher()
    assert not m.accept_token(EOS)
    assert m.accept_token(0) and m.is_accepting()
    assert m.accept_token(EOS)
    assert m.is_ended() and m.is_terminated()
    assert not m.accept_token(0)
    assert m.allowed_token_ids().tolist() == [EOS]


def test_terminated_when_only_the_end_can_follow(grammar):
    m = grammar.matcher()
    m.accept_token(2)  # "ab": nothing may follow "b"
    assert m.is_accepting() and m.is_terminated() and not m.is_ended()
    m2 = grammar.matcher()
    m2.accept_token(0)  # "a": accepting, but more "a"s or a "b" may follow
    assert m2.is_accepting() and not m2.is_terminated()


def test_rollback_restores_previous_states(grammar):
    m = grammar.matcher()
    m.accept_tokens([0, 0, 1])
    assert m.is_terminated()
    m.rollback(1)
    assert set(m.allowed_token_ids().tolist()) == {0, 1, 2, EOS}
    m.accept_token(EOS)
    m.rollback(1)
    assert not m.is_ended()
    with pytest.raises(ValueError):
        m.rollback(5)


def test_accept_tokens_is_all_or_nothing(grammar):
    m = grammar.matcher()
    assert not m.accept_tokens([0, 1, 0])
    assert m.num_tokens == 0


def test_copy_is_independent(grammar):
    m = grammar.matcher()
    m.accept_token(0)
    c = m.copy()
    c.accept_token(1)
    assert m.num_tokens == 1 and c.num_tokens == 2


def test_fill_bitmask_rows_for_a_batch(grammar):
    buf = allocate_token_bitmask(3, len(TOKENS))
    a, b = grammar.matcher(), grammar.matcher()
    b.accept_token(2)
    a.fill_bitmask(buf, 0)
    b.fill_bitmask(buf, 2)
    assert buf[0, 0] == (1 << 0) | (1 << 2)
    assert buf[1, 0] == -1  # untouched row: everything allowed
    assert buf[2, 0] == 1 << EOS


def test_forced_text():
    g = GrammarCompiler(TokenVocabulary([bytes([b]) for b in range(256)] + [None], [256]))
    m = g.compile(GrammarSpec.regex(r'\{"name": "[a-z]+"\}')).matcher()
    assert m.forced_text() == '{"name": "'
    m = g.compile(GrammarSpec.regex("(cat|car)s?")).matcher()
    assert m.forced_text() == "ca"
    m.accept_tokens(b"cat")
    assert m.forced_text() == ""  # accepting: ending is an option


def test_forced_text_stops_at_whole_characters():
    g = GrammarCompiler(TokenVocabulary([bytes([b]) for b in range(256)] + [None], [256]))
    m = g.compile(GrammarSpec.regex("é[ab]")).matcher()
    assert m.forced_bytes() == "é".encode()
    assert m.forced_text() == "é"
    m2 = g.compile(GrammarSpec.regex("[éè]x")).matcher()
    assert m2.forced_bytes() == b"\xc3" and m2.forced_text() == ""


def test_started_after_begins_in_the_state_after_the_text(grammar):
    m = grammar.matcher()
    assert m.accept_token(0)  # "a"
    started = m.started_after(b"a")  # "aa" written outside the token stream
    assert started.num_tokens == 0
    assert started.allowed_token_ids().tolist() == [0, 1, 2, EOS]  # more a's, a b, or the end
    assert started.accept_token(1) and started.is_terminated()  # "aab"
    with pytest.raises(ValueError):
        started.rollback(2)  # its history begins after the text
    assert m.num_tokens == 1  # the original is unchanged


def test_started_after_refuses_text_the_grammar_does_not_allow(grammar):
    m = grammar.matcher()
    with pytest.raises(ValueError, match="does not allow"):
        m.started_after(b"b")  # the regex needs an "a" first
