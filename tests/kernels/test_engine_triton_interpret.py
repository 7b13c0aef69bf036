"""The engine with `kernels="triton"` runs every Triton kernel the model and sampler call
(under the Triton interpreter, on CPU tensors) and gives the same greedy tokens as with the
torch kernels, over a batch with shared prefixes (radix hits), chunked prefill, steps mixing
prefill chunks with decodes, and a regex grammar (its bitmask applied by the Triton kernel).

The interpreter runs each program instance in Python, so the model is the 2-layer tiny one
and every request makes only a few tokens.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # read when the triton kernels are decorated

import pytest  # noqa: E402

pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("this test runs the Triton kernels under the interpreter", allow_module_level=True)

from tines import kernels  # noqa: E402
from tines.kernels import triton_attention  # noqa: E402
from tines.runtime.engine.engine import Engine  # noqa: E402
from tines.runtime.sampling_params import SamplingParams  # noqa: E402

GREEDY = SamplingParams(temperature=0, max_new_tokens=3, ignore_eos=True)
GRAMMAR = SamplingParams(temperature=0, max_new_tokens=4, regex=r"[a-z]{2,6}")
TRUNK = "the quick brown fox jumps over the lazy dog near a quiet river bank"


def run(model_dir, kernel_choice: str) -> tuple[list[list[int]], int]:
    """Greedy tokens of every request (two batches, then a grammar request) and the prompt
    tokens served from the radix cache."""
    engine = Engine(str(model_dir), kv_tokens=1024, max_running=4, chunked_prefill_size=12,
                    weights="fp32", kernels=kernel_choice)
    try:
        # The first batch's prompts share the trunk; the second extends it (cache hits).
        first = engine.generate([TRUNK + " one", TRUNK + " two", "hi"], GREEDY)
        second = engine.generate([TRUNK + " three four"], GREEDY)
        constrained = engine.generate(["name a colour:"], GRAMMAR)
        outs = first + second + constrained
        return [o.outputs[0].token_ids for o in outs], engine.stats()["cache_hit_tokens"]
    finally:
        engine.shutdown()


def test_triton_kernels_in_the_engine_give_the_torch_kernels_tokens(tiny_model_dir, monkeypatch):
    reached: list[str] = []
    real_module = kernels.triton_module

    def spy_module(name: str):
        reached.append(name)
        return real_module(name)

    for name in ("extend_attention", "decode_attention"):
        real = getattr(triton_attention, name)
        monkeypatch.setattr(triton_attention, name,
                            lambda *a, _real=real, _name=name, **k: (reached.append(_name),
                                                                     _real(*a, **k))[1])
    monkeypatch.setattr(kernels, "triton_module", spy_module)

    with_triton, hits = run(tiny_model_dir, "triton")
    triton_reached = set(reached)
    reached.clear()
    with_torch, torch_hits = run(tiny_model_dir, "torch")

    assert triton_reached == {"norm", "rotary", "kv", "attention", "extend_attention",
                              "decode_attention", "activation", "bitmask"}
    assert not reached  # the torch engine never touched a Triton kernel
    assert hits == torch_hits and hits >= 10
    assert with_triton == with_torch
    assert all(len(ids) >= 1 for ids in with_triton)


def test_an_engine_threads_kernel_choice_stays_on_that_thread():
    import threading

    import torch

    seen: dict[str, bool] = {}

    def engine_thread():
        kernels.set_thread_backend("triton")
        seen["engine"] = kernels.use_triton(torch.zeros(1), "auto")

    worker = threading.Thread(target=engine_thread)
    worker.start()
    worker.join()
    assert seen["engine"] and not kernels.use_triton(torch.zeros(1), "auto")
