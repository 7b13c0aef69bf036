"""Prompt-lookup speculation: proposals, greedy verification against real grammar matchers,
the per-request policy and the adaptive draft length (engine/speculation.py)."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest
import torch

from tines.grammar import (GrammarCompiler, GrammarSpec, TokenVocabulary, allocate_token_bitmask,
                           bitmask_to_bool, bool_to_bitmask)
from tines.runtime.engine.speculation import (DraftLength, NgramIndex, can_speculate,
                                              grammar_prefix, greedy_pick, propose,
                                              verify_greedy)
from tines.runtime.sampling_params import SamplingParams

# A small vocabulary: printable ASCII bytes, a few multi-byte pieces a JSON record is made
# of (so drafts span several characters per token), then EOS.
PIECES = [b'{"name":"', b'","age":', b'"', b'Al', b'ice', b' Smith', b'ab', b'12', b'}']
TOKENS = [bytes([b]) for b in range(32, 127)] + PIECES + [None]
EOS = len(TOKENS) - 1
V = len(TOKENS)
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name", "age"],
          "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}}}


def reference_propose(tokens: list[int], max_n: int, min_n: int, k: int) -> list[int]:
    """The docstring's loop, literally."""
    L = len(tokens)
    for n in range(min(max_n, L - 1), min_n - 1, -1):
        for e in range(L - 2, n - 2, -1):
            if tokens[e - n + 1:e + 1] == tokens[L - n:]:
                return tokens[e + 1:e + 1 + k]
    return []


# --- proposals ------------------------------------------------------------------------------
def test_propose_continues_the_most_recent_occurrence_of_the_suffix():
    tokens = [7, 1, 2, 3, 9, 1, 2, 4, 5, 1, 2]
    assert propose(tokens, max_ngram=2, min_ngram=1, num_draft=3) == [4, 5, 1]


def test_propose_prefers_a_longer_match_over_a_more_recent_shorter_one():
    tokens = [8, 1, 2, 3, 6, 6, 2, 3, 4, 4, 1, 2, 3]
    assert propose(tokens, max_ngram=3, min_ngram=1, num_draft=2) == [6, 6]


def test_propose_needs_a_match_of_min_ngram_tokens():
    tokens = [5, 1, 2, 9, 3, 2]
    assert propose(tokens, max_ngram=3, min_ngram=1, num_draft=2) == [9, 3]
    assert propose(tokens, max_ngram=3, min_ngram=2, num_draft=2) == []


def test_propose_stops_at_the_end_of_the_sequence():
    tokens = [3, 4, 3, 4, 3]
    assert propose(tokens, max_ngram=2, min_ngram=1, num_draft=5) == [4, 3]  # overlaps itself


def test_propose_matches_the_reference_loop_on_random_sequences():
    rng = random.Random(0)
    for _ in range(300):
        tokens = [rng.randrange(4) for _ in range(rng.randrange(0, 40))]
        max_n, k = rng.randint(1, 5), rng.randint(1, 6)
        min_n = rng.randint(1, max_n)
        assert propose(tokens, max_n, min_n, k) == reference_propose(tokens, max_n, min_n, k)


@pytest.mark.parametrize("prompt_len", [0, 1, 30])
def test_ngram_index_agrees_with_propose_through_extends_and_truncations(prompt_len):
    rng = random.Random(prompt_len)
    tokens = [rng.randrange(5) for _ in range(prompt_len)]
    index = NgramIndex(tokens, max_ngram=3, min_ngram=1)
    assert index.propose(4) == propose(tokens, 3, 1, 4)
    for _ in range(400):
        if tokens and rng.random() < 0.2:
            cut = rng.randrange(max(0, len(tokens) - 3), len(tokens) + 1)  # may cut the prompt
            index.truncate(cut)
            del tokens[cut:]
        else:
            new = [rng.randrange(5) for _ in range(rng.randint(1, 3))]
            index.extend(new)
            tokens += new
        assert len(index) == len(tokens)
        assert index.propose(4) == propose(tokens, 3, 1, 4)


def test_ngram_index_truncated_into_its_prompt_starts_over_on_the_kept_tokens():
    prompt = [1, 2, 3, 1, 2, 4, 1, 2]
    index = NgramIndex(prompt, max_ngram=2, min_ngram=1)
    index.extend([5, 1, 2])
    index.truncate(4)  # keeps [1, 2, 3, 1]: "1" last seen before the end at 0
    assert index.propose(3) == [2, 3, 1]
    index.extend([2])
    assert index.propose(3) == propose([1, 2, 3, 1, 2], 2, 1, 3) == [3, 1, 2]


def test_bad_ngram_sizes_raise_value_error():
    with pytest.raises(ValueError):
        propose([1, 2, 3], max_ngram=1, min_ngram=2)
    with pytest.raises(ValueError):
        NgramIndex(min_ngram=0)


# --- verification without a grammar --------------------------------------------------------
def one_hot_rows(best: list[int], vocab: int = 10) -> torch.Tensor:
    """Rows whose argmax is `best[r]`."""
    logits = torch.zeros(len(best), vocab)
    logits[torch.arange(len(best)), torch.tensor(best)] = 1.0
    return logits


def test_verify_keeps_the_agreeing_prefix_and_the_models_correction():
    v = verify_greedy(one_hot_rows([4, 5, 7, 2]), [4, 5, 6])
    assert v.token_ids == [4, 5, 7] and v.num_accepted == 2


def test_verify_adds_a_bonus_token_when_every_draft_token_is_accepted():
    v = verify_greedy(one_hot_rows([4, 5, 6, 2]), [4, 5, 6])
    assert v.token_ids == [4, 5, 6, 2] and v.num_accepted == 3


def test_verify_stops_after_an_accepted_end_token():
    v = verify_greedy(one_hot_rows([4, 9, 6, 2]), [4, 9, 6], end_ids=frozenset({9}))
    assert v.token_ids == [4, 9] and v.num_accepted == 2


def test_verify_never_returns_more_than_max_tokens():
    v = verify_greedy(one_hot_rows([4, 5, 6, 2]), [4, 5, 6], max_tokens=2)
    assert v.token_ids == [4, 5] and v.num_accepted == 1


def test_greedy_pick_is_the_samplers_greedy_choice_under_a_mask():
    from tines.runtime.engine.sampler import Sampler, SampleRow

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, V, generator=gen)
    logits[0, :3] = 9.0  # a tie: both take the first maximum
    bitmask = torch.from_numpy(bool_to_bitmask(torch.rand(6, V, generator=gen).numpy() < 0.3))
    rows = [SampleRow(SamplingParams(temperature=0), [1, 2], 1, None, 0, frozenset())] * 6
    expected, _ = Sampler(tokenizer=None).sample(logits.clone(), rows, bitmask)
    assert greedy_pick(logits, bitmask) == expected
    assert greedy_pick(logits[:1], None) == [0]


# --- verification against real grammar matchers ---------------------------------------------
@pytest.fixture(scope="module")
def compiler() -> GrammarCompiler:
    return GrammarCompiler(TokenVocabulary(TOKENS, [EOS]))


def fake_logits(prefix: list[int], vocab: int = V) -> torch.Tensor:
    """A deterministic stand-in for the model: random logits seeded by the whole prefix, so
    the row for a position is the same whether computed alone or in a speculative chunk."""
    seed = zlib.crc32(np.asarray(prefix, dtype=np.int64).tobytes())
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(vocab).astype(np.float32))


def decode_one_at_a_time(matcher, prompt: list[int], budget: int) -> list[int]:
    """Greedy decoding as the engine does it without drafts: mask (budget-aware), argmax,
    stop on EOS, on a terminated grammar or when the budget is spent."""
    out: list[int] = []
    buf = allocate_token_bitmask(1, V)
    while True:
        matcher.fill_bitmask_within(buf, 0, budget - len(out))
        logits = fake_logits(prompt + out).numpy().copy()
        logits[~bitmask_to_bool(buf, V)[0]] = -np.inf
        token = int(np.argmax(logits))
        out.append(token)
        if token == EOS:
            return out
        assert matcher.accept_token(token)
        if matcher.is_terminated() or len(out) >= budget:
            return out


def decode_with_drafts(matcher, prompt: list[int], budget: int, make_draft) -> list[int]:
    out: list[int] = []
    while True:
        draft = make_draft(prompt + out, len(out))
        context = prompt + out
        rows = torch.stack([fake_logits(context + draft[:r]) for r in range(len(draft) + 1)])
        v = verify_greedy(rows, draft, matcher, end_ids=frozenset({EOS}),
                          max_tokens=budget - len(out), close_on_budget=True)
        assert 1 <= len(v.token_ids) <= len(draft) + 1
        out += v.token_ids
        if out[-1] == EOS or matcher.is_terminated() or len(out) >= budget:
            return out


def drafts_near(reference: list[int], rng: random.Random):
    """Drafts that follow the true greedy output with random mistakes (and random lengths)."""
    def make_draft(context: list[int], pos: int) -> list[int]:
        draft = reference[pos:pos + rng.randint(0, 6)]
        return [t if rng.random() < 0.8 else rng.randrange(V) for t in draft]
    return make_draft


CFG = 'start: item ("," item)*\nitem: "ab" | "a" NUM | "[" start "]"\nNUM: /[0-9]{1,3}/\n'


@pytest.mark.parametrize("spec", [GrammarSpec.json_schema(SCHEMA),
                                  GrammarSpec.regex(r"(ab|[a-c]){2,9}(,[0-9]{1,3}){0,4}"),
                                  GrammarSpec.cfg(CFG)],
                         ids=["json_schema", "regex", "lark"])
def test_greedy_output_with_drafts_equals_one_token_at_a_time(compiler, spec):
    grammar, rng = compiler.compile(spec), random.Random(2)
    for trial in range(25):
        prompt, budget = [rng.randrange(V - 1) for _ in range(5)], rng.randint(3, 40)
        reference = decode_one_at_a_time(grammar.matcher(), prompt, budget)
        matcher = grammar.matcher()
        assert decode_with_drafts(matcher, prompt, budget, drafts_near(reference, rng)) == reference


def test_matcher_ends_advanced_over_exactly_the_returned_tokens(compiler):
    grammar = compiler.compile(GrammarSpec.json_schema(SCHEMA))
    rng = random.Random(3)
    for trial in range(40):
        matcher = grammar.matcher()
        prompt = [rng.randrange(V - 1) for _ in range(4)]
        reference = decode_one_at_a_time(grammar.matcher(), prompt, 30)
        draft = drafts_near(reference, rng)(prompt, 0)
        rows = torch.stack([fake_logits(prompt + draft[:r]) for r in range(len(draft) + 1)])
        v = verify_greedy(rows, draft, matcher, end_ids=frozenset({EOS}))
        replayed = grammar.matcher()
        assert replayed.accept_tokens([t for t in v.token_ids if t != EOS])
        assert (matcher.num_tokens, matcher.state) == (replayed.num_tokens, replayed.state)


def test_ngram_drafts_give_the_same_output_as_one_token_at_a_time(compiler):
    """The proposer's own drafts (which copy the prompt) through the same exactness check."""
    grammar = compiler.compile(GrammarSpec.json_schema(SCHEMA))
    rng = random.Random(4)
    for trial in range(10):
        prompt = [TOKENS.index(p) for p in (b'{"name":"', b'Al', b'ice', b' Smith', b'"')] + \
            [rng.randrange(V - 1) for _ in range(6)]
        reference = decode_one_at_a_time(grammar.matcher(), prompt, 30)
        out = decode_with_drafts(grammar.matcher(), prompt, 30,
                                 lambda context, pos: propose(context, 3, 1, 5))
        assert out == reference


def test_grammar_prefix_cuts_a_draft_at_the_first_refused_token(compiler):
    matcher = compiler.compile(GrammarSpec.regex("[ab]+,[0-9]+")).matcher()
    matcher.accept_token(TOKENS.index(b"a"))
    ab, comma, one, x = (TOKENS.index(t) for t in (b"ab", b",", b"1", b"x"))
    assert grammar_prefix([ab, comma, one, x, one], matcher) == [ab, comma, one]
    assert matcher.num_tokens == 1


def test_one_extend_chunk_picks_what_one_token_decoding_picked(tiny_engine):
    """The premise of exactness on a real model (fp32): over prompt + a greedy output, the
    greedy token at every position of one extend chunk (how a draft is verified) is the
    token decoding one at a time produced."""
    prompt = tiny_engine.encode_prompt("river stone cloud maple orbit lantern quiet brave " * 3)
    output = tiny_engine.generate(prompt, SamplingParams(temperature=0, max_new_tokens=24,
                                                         ignore_eos=True)).outputs[0].token_ids
    scored = tiny_engine.generate(prompt + output, SamplingParams(
        temperature=0, max_new_tokens=1, prompt_logprobs=True, top_logprobs=1))
    tops = [lp.top[0][0] for lp in scored.prompt_logprobs[len(prompt):]]
    assert tops == output


# --- policy -------------------------------------------------------------------------------
def test_speculation_is_for_greedy_requests_only():
    assert can_speculate(SamplingParams(temperature=0))
    assert can_speculate(SamplingParams(temperature=0.7, top_k=1))
    assert not can_speculate(SamplingParams(temperature=0.7))


def test_no_speculation_with_position_dependent_sampling():
    assert not can_speculate(SamplingParams(temperature=0, repetition_penalty=1.2))
    assert not can_speculate(SamplingParams(temperature=0, frequency_penalty=0.5))
    assert not can_speculate(SamplingParams(temperature=0, logprobs=True))
    assert not can_speculate(SamplingParams(temperature=0, max_new_tokens=8, min_new_tokens=3),
                             num_output=2)
    assert can_speculate(SamplingParams(temperature=0, max_new_tokens=8, min_new_tokens=3),
                         num_output=3)


def test_no_speculation_with_a_matcher_that_cannot_roll_back(compiler):
    class NoRollback:  # like token healing's matcher
        def accept_token(self, token_id: int) -> bool:
            return True

    greedy = SamplingParams(temperature=0)
    assert not can_speculate(greedy, matcher=NoRollback())
    assert can_speculate(greedy, matcher=compiler.compile(GrammarSpec.regex("a+")).matcher())


# --- adaptive draft length -----------------------------------------------------------------
def expected_value(alpha: float, k: int, row_cost: float) -> float:
    return sum(alpha ** i for i in range(k + 1)) / (1 + row_cost * k)


def test_draft_length_maximizes_expected_tokens_per_unit_of_work():
    d = DraftLength(row_cost=0.1, max_len=8, accepted=3.0, rejected=1.0)  # alpha = 0.75
    values = [expected_value(0.75, k, 0.1) for k in range(9)]
    assert d.next() == values.index(max(values)) == 5


def test_draft_length_grows_while_drafts_are_accepted():
    d = DraftLength(row_cost=0.1, max_len=8)
    before = d.next()
    for _ in range(4):
        d.update(d.next(), d.next())
    assert d.next() == 8 > before


def test_draft_length_shrinks_after_rejections():
    d = DraftLength(row_cost=0.1, max_len=8, accepted=3.0, rejected=1.0)
    before = d.next()
    d.update(before, 0)
    assert 0 < d.next() < before


def test_no_drafts_where_they_cannot_win_except_periodic_probes():
    d = DraftLength(row_cost=0.25, probe_every=4)
    for _ in range(6):
        d.update(1, 0)
    assert d.alpha < 0.25
    assert [d.next() for _ in range(8)] == [0, 0, 0, 1, 0, 0, 0, 1]


def test_a_costlier_row_means_shorter_drafts():
    cheap = DraftLength(row_cost=0.02, accepted=3.0, rejected=1.0)
    dear = DraftLength(row_cost=0.3, accepted=3.0, rejected=1.0)
    assert cheap.next() > dear.next() > 0


def test_a_fixed_cost_per_drafting_step_needs_a_higher_acceptance_to_draft():
    assert DraftLength(row_cost=0.1, accepted=1.0, rejected=3.0).next() > 0  # alpha = 0.25
    assert DraftLength(row_cost=0.1, step_cost=0.3, accepted=1.0, rejected=3.0).next() == 0
    assert DraftLength(row_cost=0.1, step_cost=0.3, accepted=3.0, rejected=1.0).next() > 0


def test_a_step_without_a_draft_changes_nothing():
    d = DraftLength(accepted=2.0, rejected=1.0)
    d.update(0, 0)
    assert (d.accepted, d.rejected) == (2.0, 1.0)
