"""The sampler on hand-made logits, and stop strings on hand-made text."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from tines.runtime.engine.sampler import Sampler, SampleRow
from tines.runtime.sampling_params import SamplingParams
from tines.runtime.engine.text_output import TextOutput


class FakeTokenizer:
    """Token i decodes to chr(ord('a') + i)."""

    eos_token_ids = frozenset({0})

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(ord("a") + i) for i in ids)


def row(params: SamplingParams, output=(), prompt=(9,), seed=None, index=0, end_ids=frozenset()):
    return SampleRow(params, list(prompt) + list(output), len(prompt), seed, index, end_ids)


def draw(logits: list[float], params: SamplingParams, n: int = 2000, **kw) -> Counter:
    sampler = Sampler(FakeTokenizer(), seed=0)
    rows = [row(params, seed=None, **kw) for _ in range(n)]
    tokens, _ = sampler.sample(torch.tensor([logits] * n), rows)
    return Counter(tokens)


def test_temperature_zero_is_argmax():
    counts = draw([0.1, 2.0, 1.9, -1.0], SamplingParams(temperature=0), n=5)
    assert counts == Counter({1: 5})


def test_sampling_follows_the_softmax():
    counts = draw([0.0, math.log(3.0)], SamplingParams(temperature=1.0), n=4000)
    assert counts[1] / 4000 == pytest.approx(0.75, abs=0.03)


def test_top_k_keeps_only_the_k_best():
    counts = draw([3.0, 2.9, 2.8, 2.7, 2.6], SamplingParams(top_k=2))
    assert set(counts) == {0, 1}


def test_top_p_keeps_the_smallest_set_reaching_p():
    # probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps the first two
    logits = [math.log(p) for p in (0.5, 0.3, 0.15, 0.05)]
    counts = draw(logits, SamplingParams(top_p=0.7))
    assert set(counts) == {0, 1}


def test_min_p_drops_tokens_far_below_the_best():
    logits = [math.log(p) for p in (0.6, 0.3, 0.08, 0.02)]
    counts = draw(logits, SamplingParams(min_p=0.2))  # keeps p >= 0.12
    assert set(counts) == {0, 1}


def test_frequency_and_presence_penalties_lower_repeated_tokens():
    sampler = Sampler(FakeTokenizer())
    logits = torch.tensor([[0.0, 5.0, 4.5]])
    params = SamplingParams(temperature=0, frequency_penalty=0.4, presence_penalty=0.2)
    tokens, _ = sampler.sample(logits, [row(params, output=[1, 1])])
    assert tokens == [2]  # 5.0 - 2*0.4 - 0.2 = 4.0 < 4.5
    assert logits[0, 1].item() == pytest.approx(4.0)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    sampler = Sampler(FakeTokenizer())
    logits = torch.tensor([[2.0, -1.0, 1.5]])
    sampler.sample(logits, [row(SamplingParams(temperature=0, repetition_penalty=2.0),
                                prompt=[0], output=[1])])
    assert logits[0].tolist() == pytest.approx([1.0, -2.0, 1.5])


def test_min_new_tokens_bans_end_tokens_until_reached():
    sampler = Sampler(FakeTokenizer())
    params = SamplingParams(temperature=0, min_new_tokens=2)
    tokens, _ = sampler.sample(torch.tensor([[9.0, 1.0]]), [row(params, output=[1], end_ids=frozenset({0}))])
    assert tokens == [1]
    tokens, _ = sampler.sample(torch.tensor([[9.0, 1.0]]), [row(params, output=[1, 1], end_ids=frozenset({0}))])
    assert tokens == [0]


def test_seeded_rows_are_reproducible_and_independent_of_the_batch():
    sampler = Sampler(FakeTokenizer(), seed=1)
    logits = torch.zeros(1, 50)
    params = SamplingParams(temperature=1.0)
    alone, _ = sampler.sample(logits.clone(), [row(params, seed=42)])
    others = [row(params, seed=s) for s in (1, 2, 3)]
    batch, _ = sampler.sample(torch.zeros(4, 50), others[:2] + [row(params, seed=42)] + others[2:])
    assert batch[2] == alone[0]


def test_logprobs_are_raw_model_logprobs_with_top_alternatives():
    sampler = Sampler(FakeTokenizer())
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    params = SamplingParams(temperature=0, logprobs=True, top_logprobs=2, frequency_penalty=1.0)
    tokens, lps = sampler.sample(logits.clone(), [row(params, output=[1])])
    expected = torch.log_softmax(torch.tensor([1.0, 3.0, 2.0]), -1)
    assert lps[0].token_id == tokens[0]
    assert lps[0].logprob == pytest.approx(expected[tokens[0]].item())
    assert [t[0] for t in lps[0].top] == [1, 2]
    assert lps[0].top[0][1] == "b"


def test_grammar_bitmask_limits_the_choice():
    sampler = Sampler(FakeTokenizer())
    bitmask = torch.tensor([[0b100]], dtype=torch.int32)  # only token 2 allowed
    tokens, _ = sampler.sample(torch.tensor([[5.0, 4.0, 1.0]]), [row(SamplingParams(temperature=0))],
                               bitmask, torch.tensor([0]))
    assert tokens == [2]


# --- stop strings ------------------------------------------------------------------------------
class CharTokenizer:
    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids)


def push_text(out: TextOutput, text: str) -> str | None:
    stop = None
    for ch in text:
        stop = out.push([ord(ch)])
        if stop:
            break
    return stop


def test_stop_string_across_token_boundaries_is_cut_from_the_output():
    out = TextOutput(CharTokenizer(), stop=["END"])
    assert push_text(out, "hello ENDING") == "END"
    assert out.text == "hello "


def test_earliest_stop_string_wins():
    out = TextOutput(CharTokenizer(), stop=["xyz", "b"])
    push_text(out, "abxyz")
    assert out.text == "a"


def test_stream_holds_back_a_possible_stop_prefix():
    out = TextOutput(CharTokenizer(), stop=["STOP"])
    push_text(out, "go ST")
    assert out.take_delta(final=False) == "go "
    push_text(out, "AR")  # "STAR" is not the stop string
    assert out.take_delta(final=False) == "STAR"
    out.finish()
    assert out.take_delta(final=True) == ""
