"""The engine on the default model: batching and the radix cache change nothing in greedy
outputs, and chat answers are coherent."""

from __future__ import annotations

import pytest

from tines.runtime.engine.engine import Engine
from tines.runtime.sampling_params import SamplingParams

QUESTIONS = [
    "What is the capital of France?", "Name three primary colors.", "What is 12 times 11?",
    "Write a haiku about autumn.", "Who wrote Romeo and Juliet?", "Explain gravity in one sentence.",
    "What is the boiling point of water in Celsius?", "Give me a synonym for happy.",
    "Translate 'good morning' into Spanish.", "What is the largest planet?",
    "List two programming languages.", "How many legs does a spider have?",
    "What color is the sky on a clear day?", "Suggest a name for a cat.",
    "What is the opposite of cold?", "Tell me a fun fact about octopuses, in detail please.",
]
GREEDY = SamplingParams(temperature=0, max_new_tokens=24)


@pytest.fixture(scope="module")
def prompts(default_engine) -> list[str]:
    render = default_engine.chat_template.render
    return [render([{"role": "user", "content": q}], add_generation_prompt=True) for q in QUESTIONS]


def test_batch_of_16_equals_each_alone(default_engine, prompts):
    batched = [o.outputs[0].token_ids for o in default_engine.generate(prompts, GREEDY)]
    alone = [default_engine.generate(p, GREEDY).outputs[0].token_ids for p in prompts]
    assert batched == alone


def test_radix_cache_on_and_off_agree(default_engine, default_model_path, prompts):
    on = [o.outputs[0].token_ids for o in default_engine.generate(prompts, GREEDY)]
    assert default_engine.stats()["cache_hit_tokens"] > 0
    with Engine(str(default_model_path), kv_tokens=4096, disable_radix_cache=True,
                weights="fp32") as off:
        assert [o.outputs[0].token_ids for o in off.generate(prompts, GREEDY)] == on


def test_answers_are_coherent(default_engine, prompts):
    outs = default_engine.generate([prompts[0], prompts[4]], SamplingParams(temperature=0,
                                                                            max_new_tokens=32))
    assert "Paris" in outs[0].text
    assert "Shakespeare" in outs[1].text
    assert outs[0].outputs[0].finish_reason == "stop"
