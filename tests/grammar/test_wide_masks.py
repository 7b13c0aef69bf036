"""Masks of wide states (self-loop shortcut, `wide_masks.py`) and of counted repeats
(`generalize.py`) equal the plain walk over every token, token for token."""

from __future__ import annotations

import numpy as np
import pytest

from tines.grammar import CompiledGrammar, GrammarSpec, TokenVocabulary
from tines.grammar.automaton import DEAD
from tines.grammar.bitmask import bitmask_to_bool
from tines.grammar.token_index import SHORT_TOKEN, WIDE_FIRST_BYTES
from tines.grammar.lex_layout import LexLayout
from tines.grammar.wide_masks import RunSplits, WideMasks

# every byte, then multi-byte tokens that stay inside a string, leave it, or escape
EXTRA = [b"ab", b"abc", b'a"', b'"}', b'ab"}', b'"},', b"\\n", b"\\q", b"\xc3\xa9",
         b"x\xc3\xa9", b"\xc3", b'",', b'","', b'":"', b"aaaaaaaa",
         b"x\xc3", b"x\xa9", b"x\xf0\x9f\x98\x80y", b"x\xed\xa0\x80", b"x\xe0\x80\x80",
         b"a" * 20, b"a" * 14 + b'"']  # longer than SHORT_TOKEN


@pytest.fixture(scope="module")
def vocab() -> TokenVocabulary:
    tokens = [bytes([b]) for b in range(256)] + EXTRA + [None]
    return TokenVocabulary(tokens, eos_token_ids=[len(tokens) - 1])


def brute_force_ids(g: CompiledGrammar, sid: int) -> list[int]:
    """The definition of a mask: tokens whose bytes walk from `sid` into a live state."""
    aut = g.automaton
    ids = []
    for t, data in enumerate(g.vocab.token_bytes):
        if data is not None:
            end = aut.walk(sid, data)
            if end != DEAD and aut.is_live(end):
                ids.append(t)
    if aut.accepting[sid]:
        ids.extend(sorted(g.vocab.eos_token_ids))
    return sorted(ids)


def mask_ids(g: CompiledGrammar, sid: int) -> list[int]:
    return np.flatnonzero(bitmask_to_bool(g.index.mask(sid), g.vocab.vocab_size)).tolist()


def state_after(g: CompiledGrammar, text: bytes) -> int:
    return g.automaton.walk(g.automaton.start, text)


def test_lex_layout_orders_tokens_by_bytes_and_records_tail_bytes(vocab):
    lay = vocab.derived(LexLayout)
    keys = [vocab.token_bytes[i] for i in lay.ids.tolist()]
    assert keys == sorted(keys)
    a, b = int(lay.first_start[ord("a")]), int(lay.first_start[ord("a") + 1])
    assert keys[a:b] == [b"a", b'a"', b"aaaaaaaa", b"a" * 14 + b'"', b"a" * 20, b"ab", b'ab"}',
                         b"abc"]
    p = int(lay.pos_of_id[vocab.token_bytes.index(b'ab"}')])
    tail = {w * 64 + i for w in range(4) for i in range(64) if int(lay.tail_bits[w][p]) >> i & 1}
    assert tail == {ord("b"), ord('"'), ord("}")}


def test_free_string_state_is_wide_and_allows_exactly_the_tokens_that_stay_or_close(vocab):
    g = CompiledGrammar(GrammarSpec.json_schema({"type": "array", "items": {"type": "string"}}),
                        vocab)
    sid = state_after(g, b'["')
    assert np.count_nonzero(g.automaton.row(sid)) > WIDE_FIRST_BYTES
    allowed = {vocab.token_bytes[t] for t in mask_ids(g, sid)}
    assert {b"ab", b"abc", b'a"', b"\\n", b"\xc3\xa9", b"x\xc3\xa9", b"\xc3", b'",', b'","',
            b"aaaaaaaa", b"x\xc3", b"x\xf0\x9f\x98\x80y"} <= allowed
    assert not {b'"}', b'ab"}', b'"},', b"\\q", b'":"', b"\n"} & allowed  # '}' cannot close '['
    assert not {b"x\xa9", b"x\xed\xa0\x80", b"x\xe0\x80\x80"} & allowed  # not UTF-8
    assert mask_ids(g, sid) == brute_force_ids(g, sid)


@pytest.mark.parametrize("text", [b'{"', b'{"a', b'{"ab', b'{"abc":"', b'{"abc":"x'])
def test_wide_masks_equal_brute_force_in_keys_and_values(vocab, text):
    schema = {"type": "object", "properties": {"abc": {"type": "string"}, "b": {"type": "integer"}},
              "additionalProperties": {"type": "string"}}
    g = CompiledGrammar(GrammarSpec.json_schema(schema), vocab)
    sid = state_after(g, text)
    assert mask_ids(g, sid) == brute_force_ids(g, sid)


@pytest.mark.parametrize("text", [b'["', b'["ab', b'["\\', b'["\xc3', b'["a"', b'["a",'])
def test_self_loop_test_decides_like_brute_force_on_every_run(vocab, text):
    g = CompiledGrammar(GrammarSpec.json_schema({"type": "array", "items": {"type": "string"}}),
                        vocab)
    sid = state_after(g, text)
    wide = WideMasks(g.automaton, vocab, small_run=0, max_walk=vocab.vocab_size)
    got = np.flatnonzero(bitmask_to_bool(wide.mask(sid), vocab.vocab_size)).tolist()
    assert got == [t for t in brute_force_ids(g, sid) if t not in vocab.eos_token_ids]
    assert wide.num_walked < vocab.vocab_size // 2  # most tokens were decided by L(t)


def test_run_splits_are_shared_across_grammars_and_their_masks_stay_exact(vocab):
    """A string inside an array and one inside an object loop on the same bytes: the second
    grammar reuses the first one's splits, and walks the tokens that leave the string from
    its own state ('"}' closes the object, not the array)."""
    runs = RunSplits(vocab)
    in_array = CompiledGrammar(GrammarSpec.json_schema({"type": "array", "items": {"type": "string"}}),
                               vocab)
    in_object = CompiledGrammar(GrammarSpec.json_schema(
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
         "additionalProperties": False}), vocab)
    masks = []
    for g, text in ((in_array, b'["'), (in_object, b'{"a":"')):
        sid = state_after(g, text)
        wide = WideMasks(g.automaton, vocab, small_run=0, max_walk=vocab.vocab_size)
        wide.runs = runs
        masks.append(np.flatnonzero(bitmask_to_bool(wide.mask(sid), vocab.vocab_size)).tolist())
        assert masks[-1] == [t for t in brute_force_ids(g, sid) if t not in vocab.eos_token_ids]
    assert runs.num_hits > 0
    ids = {vocab.token_bytes.index(x) for x in (b'"}', b'",')}
    assert ids & set(masks[0]) == {vocab.token_bytes.index(b'",')}
    assert ids & set(masks[1]) == {vocab.token_bytes.index(b'"}')}


def test_long_counted_strings_share_one_mask_across_lengths(vocab):
    g = CompiledGrammar(GrammarSpec.json_schema({"type": "string", "maxLength": 300}), vocab)
    s1, s2 = state_after(g, b'"ab'), state_after(g, b'"abc')
    assert s1 != s2  # the count differs ...
    general = g.index._counts.general
    max_len = vocab.layout.max_len
    assert general(s1, max_len) == general(s2, max_len)  # ... the mask does not
    m1 = mask_ids(g, s1)
    computed = g.index.num_computed
    assert mask_ids(g, s2) == m1 == brute_force_ids(g, s2)
    assert g.index.num_computed == computed


def test_a_length_bound_beside_a_pattern_shares_one_mask_across_lengths(vocab):
    g = CompiledGrammar(GrammarSpec.json_schema(
        {"type": "string", "maxLength": 300, "pattern": "^[a-z ]+$"}), vocab)
    s1, s2 = state_after(g, b'"ab'), state_after(g, b'"abc')
    general = g.index._counts.general
    max_len = vocab.layout.max_len
    assert s1 != s2 and general(s1, max_len) == general(s2, max_len)
    m1 = mask_ids(g, s1)
    computed = g.index.num_computed
    assert mask_ids(g, s2) == m1 == brute_force_ids(g, s2)
    assert g.index.num_computed == computed


def test_a_length_bound_near_its_end_is_kept_exact(vocab):
    """Lifting needs room for the longest token and the pattern's completion: with fewer
    characters left the state is its own generalization."""
    g = CompiledGrammar(GrammarSpec.json_schema(
        {"type": "string", "maxLength": 24, "pattern": "^a*b?$"}), vocab)
    max_len = vocab.layout.max_len
    lifted = [g.index._counts.general(s, max_len) != s
              for s in (state_after(g, b'"' + b"a" * n) for n in range(6))]
    assert lifted[0] and not lifted[-1]


def test_a_short_length_bound_beside_a_pattern_shares_a_mask_for_short_tokens(vocab):
    g = CompiledGrammar(GrammarSpec.json_schema(
        {"type": "string", "maxLength": 18, "pattern": "^a*b?$"}), vocab)
    states = [state_after(g, b'"' + b"a" * n) for n in range(4)]  # counts 18..15
    assert len({g.index._counts.general(s, vocab.layout.max_len) for s in states}) == 4
    assert len({g.index._counts.general_short(s, SHORT_TOKEN) for s in states}) == 1


def test_worst_completion_bounds_every_derivative():
    from tines.grammar.expr import ExprPool
    from tines.grammar.lengths import worst_completion
    from tines.grammar.regex import regex_expr

    pool = ExprPool()
    assert worst_completion(pool, regex_expr(pool, "ab*c")) == 2  # "ac" from the start
    assert worst_completion(pool, regex_expr(pool, "(?:xyz)+")) == 3
    assert worst_completion(pool, regex_expr(pool, "a{3}")) == 3
    assert worst_completion(pool, pool.and_([regex_expr(pool, "a+"),
                                             regex_expr(pool, "a{2}")])) is None


def test_counts_below_the_longest_token_share_a_mask_for_short_tokens(vocab):
    g = CompiledGrammar(GrammarSpec.json_schema({"type": "string", "maxLength": 18}), vocab)
    states = [state_after(g, b'"' + b"a" * n) for n in range(6)]  # counts 18..13
    assert len({g.index._counts.general(s, vocab.layout.max_len) for s in states}) == 6
    assert len({g.index._counts.general_short(s, SHORT_TOKEN) for s in states}) == 1
    for n, sid in enumerate(states):  # 20 a's: too long from the start; 14 a's + '"' not
        assert mask_ids(g, sid) == brute_force_ids(g, sid), n


@pytest.mark.parametrize("schema", [
    {"type": "string", "maxLength": 9},  # shorter than the longest token: not generalized
    {"type": "string", "minLength": 200, "maxLength": 250},
    {"type": "string", "maxLength": 300, "pattern": "^a*b?$"},  # a pattern beside: lifted
    {"type": "string", "maxLength": 24, "pattern": "^a*b?$"},  # lifted, then near the end not
    {"type": "string", "maxLength": 18, "pattern": "^a*b?$"},  # lifted for short tokens only
])
def test_counted_string_masks_equal_brute_force_at_every_length(vocab, schema):
    g = CompiledGrammar(GrammarSpec.json_schema(schema), vocab)
    for n in range(0, 12):
        sid = state_after(g, b'"' + b"a" * n)
        if sid == DEAD:
            break
        assert mask_ids(g, sid) == brute_force_ids(g, sid), n


SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string"}, "city": {"type": "string",
     "maxLength": 255}, "code": {"type": "string", "maxLength": 20}}, "required": ["name"]},
    {"type": "object", "additionalProperties": {"type": "string"}},
    {"type": "object", "properties": {"id": {"type": "string", "pattern": "^[a-z-]+$",
     "minLength": 3, "maxLength": 255}, "tags": {"type": "array", "items": {"type": "string"}}}},
]
INSTANCES = [
    '{"name":"Zoë \\"Z\\" Smith","city":"New York, NY","code":"US-10001"}',
    '{"alpha":"one two","beta":"naïve café","gamma":"x\\ny"}',
    '{"id":"my-index-name","tags":["a","b c","d\\"e"]}',
]


@pytest.mark.parametrize("schema,instance", list(zip(SCHEMAS, INSTANCES)))
def test_masks_on_the_real_vocabulary_equal_the_flat_walk(real_vocab, encode, schema, instance):
    g = CompiledGrammar(GrammarSpec.json_schema(schema), real_vocab)
    m = g.matcher()
    num_wide = 0
    for tok in encode(instance):
        sid = m.state
        want = g.index._walk(sid, want_states=False)[0].tolist()
        if g.automaton.accepting[sid]:
            want += sorted(real_vocab.eos_token_ids)
        assert mask_ids(g, sid) == sorted(want), real_vocab.token_bytes[tok]
        num_wide += np.count_nonzero(g.automaton.row(sid)) > WIDE_FIRST_BYTES
        assert m.accept_token(tok)
    assert num_wide >= 3  # the shortcut was exercised


def test_a_length_bound_beside_two_conjuncts_is_kept_whole(vocab):
    """A pattern and a format can each finish soon but not together: no bound on their
    common completion, so the count is not lifted."""
    g = CompiledGrammar(GrammarSpec.json_schema(
        {"type": "string", "maxLength": 300, "pattern": "^[0-9a-f-]*$", "format": "uuid"}),
        vocab)
    sid = state_after(g, b'"12')
    assert g.index._counts.general(sid, vocab.layout.max_len) == sid
    assert mask_ids(g, sid) == brute_force_ids(g, sid)
