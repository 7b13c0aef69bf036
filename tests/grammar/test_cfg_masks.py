"""Token masks of CFG parser states: exact allowed sets on a hand-made vocabulary, and on
the real vocabulary the trie walk with cut-stack sharing equals the plain per-token walk."""

from __future__ import annotations

import random

import numpy as np

from tines.grammar import TokenVocabulary
from tines.grammar.cfg import compile_cfg
from tines.grammar.cfg.examples import BENCH, GBNF
from tines.grammar.cfg.trie import VocabTrie
from tines.grammar.token_index import TokenIndex

TOKENS = [b"[", b"]", b",", b"1", b"[[", b"]]", b"],", b" ", b"1,", b"x"]
EOS = len(TOKENS)


def ids(*texts: bytes) -> list[int]:
    return sorted(TOKENS.index(t) for t in texts)


def small_grammar():
    vocab = TokenVocabulary(TOKENS + [None], eos_token_ids=[EOS])
    return compile_cfg('root ::= "[" (v ("," v)*)? "]"\nv ::= root | "1"\n', vocab, "gbnf")


def after(g, *texts: bytes):
    m = g.matcher()
    assert m.accept_tokens([TOKENS.index(t) for t in texts])
    return m


def test_start_allows_only_openers():
    assert after(small_grammar()).allowed_token_ids().tolist() == ids(b"[", b"[[")


def test_top_level_cannot_close_twice():
    assert after(small_grammar(), b"[").allowed_token_ids().tolist() == \
        ids(b"[", b"[[", b"]", b"1", b"1,")


def test_nested_level_may_close_into_the_parent():
    assert after(small_grammar(), b"[[").allowed_token_ids().tolist() == \
        ids(b"[", b"[[", b"]", b"]]", b"],", b"1", b"1,")


def test_end_of_top_level_allows_only_eos():
    m = after(small_grammar(), b"[[", b"]]")
    assert m.allowed_token_ids().tolist() == [EOS]
    assert m.is_terminated()


def test_states_at_different_depths_share_one_cut_walk_and_stay_exact():
    g = small_grammar()
    shallow = after(g, *[b"[["] * 5, b"[", b"1,")
    deep = after(g, *[b"[["] * 6, b"1,")
    assert shallow.state != deep.state
    assert shallow.allowed_token_ids().tolist() == ids(b"[", b"[[", b"1", b"1,")
    hits = g.index.num_cut_hits
    assert deep.allowed_token_ids().tolist() == ids(b"[", b"[[", b"1", b"1,")
    assert g.index.num_cut_hits == hits + 1


def test_tokens_closing_below_the_cut_are_walked_for_real():
    g = small_grammar()
    m = after(g, *[b"[["] * 6, b"1")  # "]]" and "]," close into entries below the cut
    assert m.allowed_token_ids().tolist() == ids(b"]", b"]]", b"],", b",")


def test_trie_and_cut_masks_equal_the_plain_walk_on_the_real_vocabulary(real_vocab):
    rng = random.Random(7)
    grammars = [(GBNF[n], "gbnf") for n in ("nested_lists", "calls", "json", "arithmetic")]
    grammars += [(BENCH[n], "lark") for n in ("nested_lists", "calls", "sql")]
    for text, syntax in grammars:
        g = compile_cfg(text, real_vocab, syntax)
        reference = TokenIndex(g.automaton, real_vocab)
        m = g.matcher()
        for _ in range(20):
            got = g.index.mask(m.state)
            want = reference.mask(m.state)
            assert np.array_equal(got, want), (text, m.num_tokens)
            allowed = [t for t in m.allowed_token_ids().tolist()
                       if t not in real_vocab.eos_token_ids]
            if not allowed:
                break
            short = [t for t in allowed if len(real_vocab.token_bytes[t]) <= 2]  # go deeper
            assert m.accept_token(rng.choice(short or allowed))


def test_trie_subtree_runs_hold_each_nodes_descendant_tokens_and_bytes():
    words = [b"a", b"ab", b"abc", b"abd", b"b", b"ba", b"x,", b"ab", b"c"]  # b"ab" twice
    vocab = TokenVocabulary(words + [None], eos_token_ids=[len(words)])
    trie = VocabTrie(vocab)
    for d in range(1, trie.max_len + 1):
        for i in range(len(trie.byte_l[d])):
            prefix = trie.prefix(d, i)
            below = [t for t, w in enumerate(words) if w.startswith(prefix) and len(w) > d]
            run = trie.sorted_ids[trie.desc_lo[d][i]:trie.sub_hi[d][i]].tolist()
            assert sorted(run) == below, prefix
            bytes_below = {b for w in words if w.startswith(prefix) for b in w[d:]}
            assert trie.sub_bytes_l[d][i] == sum(1 << b for b in bytes_below), prefix


def test_identifier_subtrees_decided_whole_stay_exact():
    words = [b"a", b"ab", b"abc", b"ab,", b"b", b"bb", b",", b" a", b"1", b"c"]
    vocab = TokenVocabulary(words + [None], eos_token_ids=[len(words)])
    g = compile_cfg('start: NAME ("," NAME)*\nNAME: /[a-z]+/\n', vocab)
    m = g.matcher()
    assert m.accept_tokens([words.index(b"a")])
    reference = TokenIndex(g.automaton, vocab)
    assert np.array_equal(g.index.mask(m.state), reference.mask(m.state))
    assert [words[t] for t in m.allowed_token_ids().tolist() if t < len(words)] == \
        [b"a", b"ab", b"abc", b"ab,", b"b", b"bb", b",", b"c"]
