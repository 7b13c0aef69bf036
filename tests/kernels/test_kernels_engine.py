"""The engine gives the same greedy tokens whether the model's attention is the kernels
package or a naive per-sequence loop written here (the oracle of attention.py), across
prefill chunks, cached prefixes and steps mixing extend chunks with decodes."""

from __future__ import annotations

import random

from tests.kernels.kernel_cases import naive_plan_attention
from tines import kernels
from tines.runtime.engine.engine import Engine
from tines.runtime.sampling_params import SamplingParams

GREEDY = SamplingParams(temperature=0, max_new_tokens=12, ignore_eos=True)


def prompt_batches() -> list[list[str]]:
    rng = random.Random(7)
    words = "alpha beta gamma delta river stone cloud maple orbit lantern quiet brave".split()
    shared = " ".join(rng.choice(words) for _ in range(40))
    fresh = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 50))) for _ in range(5)]
    # The second batch extends the first's shared trunk, which the radix cache now holds.
    return [fresh[:4] + [shared], fresh[4:] + [shared + " one", shared + " two three"]]


def run(model_dir) -> tuple[list[list[int]], int]:
    """Greedy tokens of both batches and the prompt tokens served from the cache."""
    # Small prefill chunks: long prompts span steps that also carry other requests' decodes.
    engine = Engine(str(model_dir), kv_tokens=4096, max_running=8, chunked_prefill_size=24,
                    weights="fp32")
    try:
        outs = [o for batch in prompt_batches() for o in engine.generate(batch, GREEDY)]
        return [o.outputs[0].token_ids for o in outs], engine.stats()["cache_hit_tokens"]
    finally:
        engine.shutdown()


def test_engine_tokens_equal_a_naive_per_sequence_attention(tiny_model_dir, monkeypatch):
    with_kernels, _ = run(tiny_model_dir)
    mixed_steps: list[bool] = []

    def naive(q, k_cache, v_cache, plan, scale):
        mixed_steps.append(plan.extend is not None and plan.decode is not None)
        return naive_plan_attention(q, k_cache, v_cache, plan, scale)

    monkeypatch.setattr(kernels, "attention", naive)
    with_naive, cache_hits = run(tiny_model_dir)
    assert any(mixed_steps) and cache_hits >= 40
    assert with_naive == with_kernels
