"""The compiled decode step gives the tokens the eager one gives, in every weight format:
20 greedy sequences of 12 tokens (11 of them from compiled decode steps); and short chunks
after a cached prefix (jump-forward's forced text) run as compiled decode rows, exactly. fp32 and bf16 must
match exactly; the low-bit formats are held to a tolerance, since the fused kernels may round
in another order (measured: identical too)."""

from __future__ import annotations

import pytest

from tines.runtime.engine.engine import Engine
from tines.runtime.sampling_params import SamplingParams

PROMPTS = ["one two three", "a much longer prompt about rivers and stones and maple trees",
           "x", "the quick brown fox jumps"] * 5  # 20 sequences: auto takes both branches
GREEDY = SamplingParams(temperature=0, max_new_tokens=12, ignore_eos=True)
MIN_AGREEMENT = {"fp32": 1.0, "bf16": 1.0, "int8": 0.9, "int4": 0.9, "auto": 0.9}


def token_ids(engine: Engine) -> list[list[int]]:
    return [o.outputs[0].token_ids for o in engine.generate(PROMPTS, GREEDY)]


@pytest.mark.parametrize("weights", list(MIN_AGREEMENT))
def test_compiled_decode_matches_eager(weights, tiny_model_dir):
    with Engine(str(tiny_model_dir), kv_tokens=4096, weights=weights) as eager:
        expected = token_ids(eager)
    with Engine(str(tiny_model_dir), kv_tokens=4096, weights=weights, compile=True) as compiled:
        assert compiled.call(lambda core: core.runner.compiled)
        assert compiled.stats()["steps"] == 0  # the warm-up is not counted
        got = token_ids(compiled)
    same = sum(a == b for a, b in zip(got, expected)) / len(expected)
    assert same >= MIN_AGREEMENT[weights], f"{weights}: {same:.0%} of sequences agree"


def test_short_chunks_after_a_prefix_run_as_decode_rows_and_others_as_extends():
    import torch

    from tines.runtime.engine.model_runner import _as_decode_rows
    from tines.runtime.engine.scheduler import Chunk

    def chunk(start, end, context=None):
        return Chunk(None, start, end, torch.zeros(end - start, dtype=torch.int64), context)

    assert _as_decode_rows(chunk(40, 41)) and _as_decode_rows(chunk(40, 44))  # forced text
    assert not _as_decode_rows(chunk(40, 45))  # longer: one extend chunk
    assert not _as_decode_rows(chunk(0, 3))  # a prompt with nothing cached
    assert not _as_decode_rows(chunk(40, 42, context=torch.zeros(42)))  # a branch


def test_forced_text_through_compiled_decode_rows_gives_the_eager_tokens(tiny_model_dir):
    params = SamplingParams(temperature=0, max_new_tokens=40, seed=0,
                            regex=r'\{"name": "[a-z]{1,6}", "tags": \["[a-z]{1,4}"\], "ok": (true|false)\}')
    prompts = PROMPTS[:8]
    with Engine(str(tiny_model_dir), kv_tokens=4096, weights="fp32") as eager:
        expected = [o.outputs[0].token_ids for o in eager.generate(prompts, params)]
    with Engine(str(tiny_model_dir), kv_tokens=4096, weights="fp32", compile=True) as compiled:
        got = [o.outputs[0].token_ids for o in compiled.generate(prompts, params)]
        assert compiled.stats()["forced_tokens"] > 0  # jump-forward appended short chunks
    assert got == expected
