"""The engine end to end on a tiny random model: batching, radix sharing, memory pressure,
streaming, aborts and scoring, all giving the same tokens as a plain run."""

from __future__ import annotations

import asyncio
import random

import pytest

from tines.runtime.sampling_params import SamplingParams

GREEDY = SamplingParams(temperature=0, max_new_tokens=16, ignore_eos=True)


def mixed_prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = "alpha beta gamma delta river stone cloud maple orbit lantern quiet brave".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 60))) for _ in range(n)]


def token_ids(outputs) -> list[list[int]]:
    return [o.outputs[0].token_ids for o in outputs]


def test_batch_of_16_mixed_lengths_equals_each_request_alone(engine_factory):
    engine = engine_factory(disable_radix_cache=True)
    prompts = mixed_prompts(16)
    batched = token_ids(engine.generate(prompts, GREEDY))
    alone = [engine.generate(p, GREEDY).outputs[0].token_ids for p in prompts]
    assert batched == alone


def test_radix_cache_on_and_off_give_the_same_tokens(engine_factory):
    prompts = mixed_prompts(12, seed=1)
    prompts += [prompts[0] + " and more", prompts[1] + " again"]  # prefixes that will be cached
    on, off = engine_factory(), engine_factory(disable_radix_cache=True)
    first = token_ids(on.generate(prompts, GREEDY))
    second = token_ids(on.generate(prompts, GREEDY))  # now served mostly from the cache
    assert on.stats()["cache_hit_tokens"] > 0
    assert first == second == token_ids(off.generate(prompts, GREEDY))


def test_chunked_prefill_gives_the_same_tokens(engine_factory):
    prompt = mixed_prompts(1, seed=2)[0] * 6
    small = engine_factory(chunked_prefill_size=16, disable_radix_cache=True)
    big = engine_factory(chunked_prefill_size=4096, disable_radix_cache=True)
    out_small = small.generate(prompt, GREEDY)
    assert small.stats()["steps"] > len(out_small.prompt_token_ids) // 16
    assert out_small.outputs[0].token_ids == big.generate(prompt, GREEDY).outputs[0].token_ids


def test_shared_uncached_prefix_of_32_simultaneous_requests_is_computed_once(engine_factory):
    engine = engine_factory(kv_tokens=8192, max_running=64)
    prefix = engine.tokenizer.decode(list(range(1000, 2000)))
    prefix_ids = engine.tokenizer.encode(prefix)
    prompts = [prefix + f" question number {i}?" for i in range(32)]
    suffix_lens = [len(engine.tokenizer.encode(p)) - len(prefix_ids) for p in prompts]
    outs = engine.generate(prompts, SamplingParams(temperature=0, max_new_tokens=2, ignore_eos=True))
    computed = engine.stats()["prefill_tokens_computed"]
    assert len(prefix_ids) >= 990
    # ~ 1,000 + 32 x suffix (a few tokens around the boundary may be recomputed), not 32 x 1,000
    assert computed <= len(prefix_ids) + sum(suffix_lens) + 32 * 3
    assert all(o.num_cached_tokens >= len(prefix_ids) - 3 for o in outs[1:])


def test_memory_pressure_completes_every_request_with_correct_tokens(engine_factory):
    prompts = mixed_prompts(64, seed=3)
    params = SamplingParams(temperature=0, max_new_tokens=24, ignore_eos=True)
    roomy = engine_factory(kv_tokens=8192, max_running=64, disable_radix_cache=True)
    expected = token_ids(roomy.generate(prompts, params))
    demand = sum(len(o.prompt_token_ids) + 24 for o in roomy.generate(prompts, params))
    tight = engine_factory(kv_tokens=600, max_running=64)
    assert demand > 2 * 600
    got = token_ids(tight.generate(prompts, params))
    assert got == expected
    stats = tight.stats()
    assert stats["retractions"] > 0 and stats["evicted_tokens"] > 0
    tight.call(lambda core: core.scheduler.check_idle())
    assert stats["running"] == 0 and stats["waiting"] == 0
    tight.flush_cache()
    assert tight.stats()["kv_slots_used"] == 0


def test_a_request_that_can_never_fit_the_pool_is_refused_with_a_clear_error(engine_factory):
    engine = engine_factory(kv_tokens=64)
    with pytest.raises(ValueError, match="can never fit the KV pool"):
        engine.generate("hello " * 40, SamplingParams(max_new_tokens=40))


def test_n_completions_share_one_prefill(engine_factory):
    engine = engine_factory()
    prompt = mixed_prompts(1, seed=4)[0]
    out = engine.generate(prompt, SamplingParams(n=4, temperature=1.0, seed=7, max_new_tokens=8,
                                                 ignore_eos=True))
    assert [c.index for c in out.outputs] == [0, 1, 2, 3]
    assert len({tuple(c.token_ids) for c in out.outputs}) > 1  # different samples
    assert engine.stats()["prefill_tokens_computed"] == len(out.prompt_token_ids)


def test_same_seed_gives_the_same_sample_whatever_the_batch(engine_factory):
    engine = engine_factory()
    params = SamplingParams(temperature=1.0, seed=123, max_new_tokens=12, ignore_eos=True)
    alone = engine.generate("tell me something", params).outputs[0].token_ids
    batch = engine.generate(["tell me something"] + mixed_prompts(7, seed=5), params)
    assert batch[0].outputs[0].token_ids == alone
    other = engine.generate("tell me something", SamplingParams(temperature=1.0, seed=124,
                                                                max_new_tokens=12, ignore_eos=True))
    assert other.outputs[0].token_ids != alone


def test_stream_deltas_add_up_to_the_final_text(engine_factory):
    engine = engine_factory()
    params = SamplingParams(temperature=0, max_new_tokens=40, ignore_eos=True)
    deltas = list(engine.stream("stream this please", params))
    final = deltas[-1].output
    assert "".join(d.text for d in deltas) == final.text
    assert sum(1 for d in deltas if d.text) > 5
    assert "\ufffd" not in "".join(d.text for d in deltas) or "\ufffd" in final.text


def test_async_stream_and_generate(engine_factory):
    engine = engine_factory()
    params = SamplingParams(temperature=0, max_new_tokens=10, ignore_eos=True)

    async def run():
        text = "".join([d.text async for d in engine.astream("async please", params)])
        outs = await asyncio.gather(*(engine.agenerate("async please", params) for _ in range(3)))
        return text, outs

    text, outs = asyncio.run(run())
    assert all(o.text == text for o in outs)


def test_abort_frees_the_requests_slots(engine_factory):
    engine = engine_factory()
    params = SamplingParams(temperature=0, max_new_tokens=2000, ignore_eos=True)
    handle = engine.submit("a long one", params, stream=True)
    for i, _ in enumerate(handle):
        if i == 3:
            engine.abort(handle.request_id)
    final_stats = engine.stats()
    assert final_stats["running"] == 0 and final_stats["num_aborted"] == 1
    engine.call(lambda core: core.scheduler.check_idle())


def test_breaking_out_of_a_stream_aborts_the_request(engine_factory):
    engine = engine_factory()
    params = SamplingParams(temperature=0, max_new_tokens=2000, ignore_eos=True)
    for i, _ in enumerate(engine.stream("walk away", params)):
        if i == 2:
            break
    engine.call(lambda core: None)  # one round trip: the abort has been handled
    engine.call(lambda core: None)
    assert engine.stats()["running"] == 0
    engine.call(lambda core: core.scheduler.check_idle())


def test_score_computes_the_prefix_once_and_gives_per_token_logprobs(engine_factory):
    engine = engine_factory()
    prefix = " ".join(mixed_prompts(3, seed=6))
    choices = [" alpha beta", " gamma", " river stone cloud", " maple"]
    scores = engine.score(prefix, choices)
    assert [len(s.logprobs) for s in scores] == [len(s.token_ids) for s in scores]
    assert all(lp <= 0 for s in scores for lp in s.logprobs)
    prefix_len = len(engine.tokenizer.encode(prefix))
    # each continuation computed only its own tokens (plus one boundary token) after the first
    assert engine.stats()["prefill_tokens_computed"] <= prefix_len + sum(
        len(s.token_ids) + 1 for s in scores)
    # the same logprobs as scoring each continuation on its own, from scratch
    fresh = engine_factory(disable_radix_cache=True)
    for s, c in zip(scores, choices):
        alone = fresh.score(prefix, [c])[0]
        assert alone.token_ids == s.token_ids
        assert alone.logprobs == pytest.approx(s.logprobs, abs=1e-4)


def test_flush_cache_empties_the_tree(engine_factory):
    engine = engine_factory()
    engine.generate("cache me", GREEDY)
    assert engine.stats()["kv_slots_cached"] > 0
    assert engine.flush_cache() is True
    assert engine.stats()["kv_slots_cached"] == 0 and engine.stats()["kv_slots_used"] == 0


def test_warm_computes_into_the_cache_and_is_free_without_one(engine_factory):
    on, off = engine_factory(), engine_factory(disable_radix_cache=True)
    assert on.warm("a trunk to keep") == 0
    assert on.stats()["kv_slots_cached"] > 0 and on.warm("a trunk to keep") > 0
    assert off.warm("a trunk to keep") == 0
    assert off.stats()["prefill_tokens_computed"] == 0  # nowhere to keep it: nothing computed
    with pytest.raises(ValueError, match="empty"):
        off.warm([])
