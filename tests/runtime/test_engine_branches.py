"""Scoring k continuations as one request (engine/branches.py): the shared tokens computed
once, every continuation's own tokens in the same step, the same logprobs as each prompt run
on its own in float32."""

from __future__ import annotations

import asyncio

import pytest

from tines.runtime.engine.branches import plan_branches
from tines.runtime.engine.engine import Engine
from tines.runtime.sampling_params import SamplingParams

PREFIX = "The river ran past the old stone mill and the maple trees, and the answer is"


def prompt_logprobs_alone(engine: Engine, ids: list[int], start: int) -> list[float]:
    """The reference: the whole prompt as a plain request asking for its prompt logprobs."""
    out = engine.submit(ids, SamplingParams(max_new_tokens=1, prompt_logprobs=True)).result()
    return [lp.logprob for lp in out.prompt_logprobs[start:]]


def assert_scores_match_alone(engine: Engine, prefix: str, choices: list[str]) -> None:
    scores = engine.score(prefix, choices)
    for score, choice in zip(scores, choices):
        full = engine.tokenizer.encode(prefix + choice)
        start = len(full) - len(score.token_ids)
        assert full[start:] == score.token_ids
        alone = prompt_logprobs_alone(engine, full, start)
        assert score.logprobs == pytest.approx(alone, abs=1e-4)


def test_multi_token_choices_equal_each_prompt_alone(engine_factory):
    engine = engine_factory(disable_radix_cache=True)
    assert_scores_match_alone(engine, PREFIX, [" alpha beta gamma", " river", " stone cloud", " maple"])


def test_choices_that_share_leading_tokens_equal_each_prompt_alone(engine_factory):
    engine = engine_factory(disable_radix_cache=True)
    assert_scores_match_alone(engine, PREFIX, [" river stone", " river stone mill", " river cloud"])


def test_choices_that_merge_with_the_prefix_end_equal_each_prompt_alone(engine_factory):
    engine = engine_factory(disable_radix_cache=True)
    assert_scores_match_alone(engine, "The old mill by the sto", ["ne", "rm", "ry of it"])


def test_single_token_choices_compute_only_the_prefix(engine_factory):
    engine = engine_factory(disable_radix_cache=True)
    choices = [" A", " B", " C", " D"]
    prefix_ids = engine.tokenizer.encode(PREFIX)
    assert all(len(engine.tokenizer.encode(PREFIX + c)) == len(prefix_ids) + 1 for c in choices)
    engine.score(PREFIX, choices)
    stats = engine.stats()
    assert stats["prefill_tokens_computed"] + stats["decode_tokens_computed"] == len(prefix_ids)


def test_a_select_runs_in_one_step(engine_factory):
    engine = engine_factory(disable_radix_cache=True)
    engine.score(PREFIX, [" alpha beta gamma", " river stone", " maple"])
    assert engine.call(lambda core: core.counters.steps) == 1


def test_scores_are_the_same_with_the_radix_cache_on_and_off(engine_factory):
    on, off = engine_factory(), engine_factory(disable_radix_cache=True)
    choices = [" alpha beta", " gamma delta river", " stone"]
    first, again = on.score(PREFIX, choices), on.score(PREFIX, choices)  # again: trunk cached
    plain = off.score(PREFIX, choices)
    assert on.stats()["cache_hit_tokens"] > 0
    for a, b, c in zip(first, again, plain):
        assert a.token_ids == b.token_ids == c.token_ids
        assert a.logprobs == pytest.approx(c.logprobs, abs=1e-4)
        assert b.logprobs == pytest.approx(c.logprobs, abs=1e-4)


def test_concurrent_selects_and_generates_equal_each_alone(engine_factory):
    engine = engine_factory()
    greedy = SamplingParams(temperature=0, max_new_tokens=8, ignore_eos=True)
    selects = [(PREFIX + f" {word}", [" alpha", " beta gamma", " river stone cloud"])
               for word in ("one", "two", "three")]

    async def together():
        scoring = [engine.ascore(p, c) for p, c in selects]
        generating = [engine.agenerate(p, greedy) for p, _ in selects]
        return await asyncio.gather(*scoring), await asyncio.gather(*generating)

    scores, outputs = asyncio.run(together())
    alone = engine_factory(disable_radix_cache=True)
    for (prefix, choices), got in zip(selects, scores):
        for a, b in zip(got, alone.score(prefix, choices)):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    for (prefix, _), out in zip(selects, outputs):
        assert out.outputs[0].token_ids == alone.generate(prefix, greedy).outputs[0].token_ids
    engine.call(lambda core: core.scheduler.check_idle())


def test_branch_slots_are_returned(engine_factory):
    engine = engine_factory()
    engine.score(PREFIX, [" alpha beta gamma delta", " river stone cloud", " maple"])
    engine.call(lambda core: core.scheduler.check_idle())  # free + cached == every slot


def test_continuations_that_cannot_fit_the_pool_are_refused(engine_factory):
    engine = engine_factory(kv_tokens=64, disable_radix_cache=True)
    with pytest.raises(ValueError, match="continuations"):
        engine.score("a b c d", [f" {n} alpha beta gamma delta river stone cloud maple"
                                 for n in range(12)])


def test_a_plan_branches_from_the_tokens_every_continuation_shares():
    plan = plan_branches([([1, 2, 3, 4], 3), ([1, 2, 3, 5, 6], 3), ([1, 2, 7], 2)])
    assert plan.trunk == [1, 2]
    assert plan.branches == [[3, 4], [3, 5, 6], [7]]
    assert plan.logprob_start == 2


def test_continuations_sharing_no_token_are_not_branched():
    assert plan_branches([([1, 2], 1), ([3, 4], 1)]) is None
