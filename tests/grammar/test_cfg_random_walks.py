"""Random walks over the real vocabulary: at each step a token drawn uniformly from the
budget-aware mask (every allowed token equally likely, as sampling at temperature 1.0 from a
flat distribution), then the closing path once the budget runs short. Every text must be
accepted by the independent `lark` parser with the equivalent Lark grammar."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tines.grammar import bitmask_to_bool
from tines.grammar.cfg import compile_cfg
from tines.grammar.cfg.examples import BENCH, GBNF, LARK

lark = pytest.importorskip("lark")

BUDGET = 40


def walk(grammar, vocab, seed: int) -> tuple[bytes, int]:
    """(text, tokens used): sampled within `BUDGET` tokens, ended on an accepting state."""
    rng = random.Random(seed)
    m = grammar.matcher()
    buf = np.zeros((1, vocab.num_words), dtype=np.int32)
    out, used = [], 0
    while used < BUDGET and not m.is_accepting():
        m.fill_budget_bitmask(buf, 0, BUDGET - used)
        allowed = [t for t in np.flatnonzero(bitmask_to_bool(buf[0], vocab.vocab_size)).tolist()
                   if t not in vocab.eos_token_ids]
        t = rng.choice(allowed)
        assert m.accept_token(t)
        out.append(t)
        used += 1
    assert m.is_accepting(), "the budget mask must leave the walk closable"
    return b"".join(vocab.token_bytes[t] for t in out), used


@pytest.mark.parametrize("name", sorted(GBNF))
@pytest.mark.parametrize("syntax", ["lark", "gbnf"])
def test_random_walks_parse_with_the_lark_package(real_vocab, name, syntax):
    g = compile_cfg(LARK[name] if syntax == "lark" else GBNF[name], real_vocab, syntax)
    parser = lark.Lark(LARK[name], parser="earley", lexer="dynamic_complete")
    for seed in range(3):
        data, used = walk(g, real_vocab, seed)
        assert used <= BUDGET
        parser.parse(data.decode("utf-8"))  # raises on a text lark refuses


@pytest.mark.parametrize("name", sorted(BENCH))
def test_random_walks_with_ignored_whitespace_parse_with_the_lark_package(real_vocab, name):
    g = compile_cfg(BENCH[name], real_vocab)
    parser = lark.Lark(BENCH[name], parser="earley", lexer="dynamic_complete")
    for seed in range(2):
        data, _ = walk(g, real_vocab, seed)
        parser.parse(data.decode("utf-8"))


def test_closing_path_reaches_acceptance_in_min_tokens(real_vocab):
    g = compile_cfg(LARK["nested_lists"], real_vocab)
    m = g.matcher()
    rng = random.Random(3)
    for _ in range(12):
        opener = [t for t in m.allowed_token_ids().tolist()
                  if real_vocab.token_bytes[t] in (b"[", b"[[", b"1", b",")]
        assert m.accept_token(rng.choice(opener))
    n = m.min_tokens_to_accept()
    closing = m.closing_token_ids()
    assert len(closing) == n > 0
    assert m.accept_tokens(closing) and m.is_accepting()
