"""Prompt-lookup speculation in the engine (speculation.py, EngineCore._verify_draft): greedy
outputs are the same with it on and off in float32, with grammars, stops and budgets, and
every slot comes back."""

from __future__ import annotations

import pytest

from tines.runtime.engine.engine import Engine
from tines.runtime.sampling_params import SamplingParams

# Text that repeats itself, so the n-gram lookup finds drafts, and a random model's greedy
# output (which loops) gives them a chance to be accepted.
PROMPTS = [
    "name: Ada Lovelace, email: ada@example.com. Again: name: Ada Lovelace, email:",
    "alpha beta gamma delta alpha beta gamma delta alpha beta gamma",
    "the river the stone the river the stone the river",
    "one two three four five one two three four five one two",
]
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
          "required": ["name", "email"], "additionalProperties": False}


@pytest.fixture(scope="module")
def engines(tiny_model_dir):
    on = Engine(str(tiny_model_dir), kv_tokens=4096, weights="fp32", speculation=True)
    off = Engine(str(tiny_model_dir), kv_tokens=4096, weights="fp32", speculation=False)
    yield on, off
    on.shutdown()
    off.shutdown()


def run_each(engine: Engine, params: SamplingParams) -> list[tuple[list[int], str, str]]:
    """One request at a time, as batch-1 decoding (where speculation runs)."""
    outs = [engine.generate(p, params).outputs[0] for p in PROMPTS]
    return [(o.token_ids, o.text, o.finish_reason) for o in outs]


def drafted(engine: Engine) -> tuple[int, int]:
    stats = engine.stats()
    return stats["draft_tokens"], stats["draft_tokens_accepted"]


def test_greedy_outputs_are_the_same_with_speculation_on_and_off(engines):
    on, off = engines
    params = SamplingParams(temperature=0, max_new_tokens=48, ignore_eos=True)
    before = drafted(on)
    assert run_each(on, params) == run_each(off, params)
    num_drafted, num_accepted = (a - b for a, b in zip(drafted(on), before))
    assert num_drafted > 0 and num_accepted > 0  # it did speculate, and some drafts held
    assert drafted(off) == (0, 0)


def test_a_batch_decodes_the_same_with_speculation(engines):
    on, off = engines
    params = SamplingParams(temperature=0, max_new_tokens=32, ignore_eos=True)
    got = [o.outputs[0].token_ids for o in on.generate(PROMPTS[:3], params)]
    assert got == [o.outputs[0].token_ids for o in off.generate(PROMPTS[:3], params)]


def test_constrained_outputs_are_the_same_with_speculation(engines):
    on, off = engines
    params = SamplingParams(temperature=0, max_new_tokens=64, json_schema=PERSON)
    assert run_each(on, params) == run_each(off, params)


def test_stops_and_budgets_end_drafts_where_decoding_would(engines):
    on, off = engines
    for params in (SamplingParams(temperature=0, max_new_tokens=7, ignore_eos=True),
                   SamplingParams(temperature=0, max_new_tokens=40, stop=[" beta", "stone"])):
        assert run_each(on, params) == run_each(off, params)


def test_sampled_requests_are_never_drafted(engines):
    on, _ = engines
    before = drafted(on)
    on.generate(PROMPTS, SamplingParams(temperature=0.8, max_new_tokens=16, seed=3))
    assert drafted(on) == before


def test_every_slot_comes_back_after_drafting(engines):
    on, _ = engines
    run_each(on, SamplingParams(temperature=0, max_new_tokens=24, ignore_eos=True))
    on.call(lambda core: core.scheduler.check_idle())


def test_drafts_run_through_the_compiled_decode_step_unchanged(tiny_model_dir, engines):
    _, off = engines
    compiled = Engine(str(tiny_model_dir), kv_tokens=4096, weights="fp32", compile=True)
    try:
        params = SamplingParams(temperature=0, max_new_tokens=32, ignore_eos=True)
        assert run_each(compiled, params) == run_each(off, params)
        assert drafted(compiled)[1] > 0
    finally:
        compiled.shutdown()
