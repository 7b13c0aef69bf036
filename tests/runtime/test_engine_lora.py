"""LoRA adapters through the engine: a request picks an adapter by name and gets what
transformers+PEFT gives on the same weights; a batch mixing adapters decodes each request as
alone; the radix cache never hands one adapter's K/V to another."""

from __future__ import annotations

import pytest
import torch

from tests.tiny_models import save_random_adapter
from tines.runtime.engine.engine import Engine
from tines.runtime.sampling_params import SamplingParams

pytest.importorskip("peft")

PROMPTS = ["The river ran past the old mill", "alpha beta gamma", "Hello, my name is"]


def greedy(lora: str | None = None, n: int = 12) -> SamplingParams:
    return SamplingParams(temperature=0, max_new_tokens=n, ignore_eos=True, lora=lora)


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("engine-adapters")
    peft_one = save_random_adapter(tiny_model_dir, root / "one",
                                   ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                    "down_proj"], seed=3)
    save_random_adapter(tiny_model_dir, root / "two", ["q_proj", "v_proj", "up_proj"], seed=4, r=4)
    return root, peft_one


@pytest.fixture(scope="module")
def engine(tiny_model_dir, adapters):
    root, _ = adapters
    e = Engine(str(tiny_model_dir), kv_tokens=4096, weights="fp32",
               lora_adapters=(("one", str(root / "one")), ("two", str(root / "two"))))
    yield e
    e.shutdown()


def tokens(engine: Engine, prompts, params) -> list[list[int]]:
    return [o.outputs[0].token_ids for o in engine.generate(prompts, params)]


def test_an_adapter_decodes_as_transformers_peft(engine, adapters):
    _, peft_model = adapters
    prompt = PROMPTS[0]
    ids = engine.tokenizer.encode(prompt)
    with torch.no_grad():
        reference = peft_model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                                        min_new_tokens=12)[0, len(ids):].tolist()
    assert engine.generate(prompt, greedy("one")).outputs[0].token_ids == reference


def test_each_adapter_changes_the_output(engine):
    base, one, two = (tokens(engine, PROMPTS[:1], greedy(name))[0] for name in (None, "one", "two"))
    assert base != one and base != two and one != two


def test_a_batch_mixing_adapters_equals_each_alone(engine):
    mixed = [engine.submit(p, greedy(name)) for p, name in
             zip(PROMPTS * 2, [None, "one", "two", "one", "two", None])]
    got = [h.result().outputs[0].token_ids for h in mixed]
    alone = [engine.generate(p, greedy(name)).outputs[0].token_ids for p, name in
             zip(PROMPTS * 2, [None, "one", "two", "one", "two", None])]
    assert got == alone


def test_the_cache_keeps_each_adapters_prefixes_apart(engine, tiny_model_dir, adapters):
    root, _ = adapters
    prompt = "A prompt no other test sends, long enough for the radix cache to hold"
    engine.generate(prompt, greedy(None))  # the base model's K/V of the prompt is cached
    before = engine.stats()["cache_hit_tokens"]
    with_one = engine.generate(prompt, greedy("one")).outputs[0].token_ids
    assert engine.stats()["cache_hit_tokens"] == before  # nothing of the base's K/V reused
    fresh = Engine(str(tiny_model_dir), kv_tokens=1024, weights="fp32", disable_radix_cache=True,
                   lora_adapters=(("one", str(root / "one")),))
    try:
        assert fresh.generate(prompt, greedy("one")).outputs[0].token_ids == with_one
    finally:
        fresh.shutdown()
    again = engine.generate(prompt, greedy("one"))
    assert again.num_cached_tokens > 0 and again.outputs[0].token_ids == with_one


def test_an_unknown_adapter_is_refused_by_name(engine):
    with pytest.raises(ValueError, match="lora: unknown adapter 'three'"):
        engine.submit("x", greedy("three"))


def test_adapters_load_and_unload_while_serving(tiny_model_dir, adapters):
    root, _ = adapters
    e = Engine(str(tiny_model_dir), kv_tokens=1024, weights="fp32")
    try:
        assert e.lora_adapters == []
        e.load_lora("late", root / "two")
        assert e.lora_adapters == ["late"]
        late = e.generate(PROMPTS[2], greedy("late")).outputs[0].token_ids
        assert late != e.generate(PROMPTS[2], greedy()).outputs[0].token_ids
        e.unload_lora("late")
        with pytest.raises(ValueError, match="unknown adapter"):
            e.submit(PROMPTS[2], greedy("late"))
    finally:
        e.shutdown()


def test_a_program_picks_an_adapter_per_gen(engine):
    import tines
    from tines.local import LocalBackend

    @tines.program
    def two_voices(s):
        s += PROMPTS[2]
        s += tines.gen("base", max_tokens=6, temperature=0, ignore_eos=True, token_healing=False)
        s += tines.gen("tuned", max_tokens=6, temperature=0, ignore_eos=True, token_healing=False,
                       lora="one")

    state = two_voices.run(backend=LocalBackend(engine))
    expected = engine.generate(PROMPTS[2], greedy(None, 6)).outputs[0].text
    assert state["base"] == expected
    tuned = engine.generate(PROMPTS[2] + state["base"], greedy("one", 6)).outputs[0].text
    assert state["tuned"] == tuned
