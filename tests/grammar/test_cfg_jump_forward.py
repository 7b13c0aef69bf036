"""Jump-forward and closing on a recursive grammar (nested function calls) with the real
vocabulary and tokenizer."""

from __future__ import annotations

import numpy as np

from tines.grammar import apply_jump_forward, bitmask_to_bool, jump_forward
from tines.grammar.cfg import compile_cfg

CALLS = r'''
start: call
call: "call" "(" "name" "=" ESCAPED_STRING ", " "args" "=" list ")"
list: "[" [item (", " item)*] "]"
item: list | INT | call
%import common (INT, ESCAPED_STRING)
'''


def text_of(vocab, ids) -> str:
    return b"".join(vocab.token_bytes[t] for t in ids).decode()


def matcher_after(g, encode, text: str):
    m = g.matcher()
    ids = encode(text)
    assert m.accept_tokens(ids), text
    return m, ids


def test_forced_text_inside_a_nested_call(real_vocab):
    g = compile_cfg(CALLS, real_vocab)
    m = g.matcher()
    assert m.forced_text() == 'call(name="'
    m.accept_tokens([real_vocab.token_id_of_bytes[b] for b in
                     (b"call", b"(", b"name", b"=\"", b"x", b"\"")])
    assert m.forced_text() == ", args=["


def test_jump_forward_appends_the_forced_text_as_the_tokenizer_would(real_vocab, encode):
    g = compile_cfg(CALLS, real_vocab)
    prefix = 'call(name="a", args=[1, [2, c'
    m, ids = matcher_after(g, encode, prefix)
    jf = jump_forward(m, ids, encode)
    assert jf is not None and jf.num_saved > 0
    apply_jump_forward(m, jf)
    out = ids[:len(ids) - jf.num_retract] + jf.append_ids
    text = text_of(real_vocab, out)
    assert text.startswith(prefix + "all(name")  # "=" may merge with what follows
    assert (prefix + 'all(name="').startswith(text)
    assert m.accept_tokens(encode('="b", args=[])]])')) and m.is_accepting()


def test_closing_a_deeply_nested_call_closes_every_level(real_vocab, encode):
    g = compile_cfg(CALLS, real_vocab)
    m, _ = matcher_after(g, encode, 'call(name="a", args=[[call(name="b", args=[[1, [')
    assert m.closing_bytes() == b"]]])]])"
    closing = m.closing_token_ids()
    assert len(closing) == m.min_tokens_to_accept()
    assert m.accept_tokens(closing)
    assert m.is_terminated()


def test_budget_mask_keeps_a_nested_call_closable(real_vocab, encode):
    g = compile_cfg(CALLS, real_vocab)
    m, _ = matcher_after(g, encode, 'call(name="a", args=[[1, 2')
    need = m.min_tokens_to_accept()
    buf = np.zeros((1, real_vocab.num_words), dtype=np.int32)
    m.fill_budget_bitmask(buf, 0, need)
    tight = np.flatnonzero(bitmask_to_bool(buf[0], real_vocab.vocab_size)).tolist()
    m.fill_bitmask(buf, 0)
    free = np.flatnonzero(bitmask_to_bool(buf[0], real_vocab.vocab_size)).tolist()
    assert set(tight) < set(free)
    for t in tight:  # every token the tight mask allows still closes in time
        sim = m.copy()
        assert sim.accept_token(t)
        assert 1 + sim.min_tokens_to_accept() <= need
