"""Tensor parallelism over torch.distributed (gloo, CPU): ranks started for real as processes.

Greedy outputs with tp_size=2 equal tp_size=1 in fp32: over prompts that share a prefix
(radix hits), a prompt longer than the prefill chunk, n > 1 (forked KV), and a grammar.
A rank that dies stops the engine with an error naming it."""

from __future__ import annotations

import pytest

from tines.runtime.engine.engine import Engine
from tines.runtime.parallel.group import RankDied
from tines.runtime.parallel.sharding import columns_of, kv_heads_of
from tines.runtime.sampling_params import SamplingParams

GREEDY = SamplingParams(temperature=0, max_new_tokens=12, ignore_eos=True)
SHARED = "The history of the lighthouse on the northern cape begins with a storm. "
PROMPTS = [SHARED + "The keeper", SHARED + "In the morning the village", SHARED * 6 + "Finally,",
           "A short one"]


def test_heads_split_by_kv_group_as_evenly_as_the_count_allows():
    assert [list(kv_heads_of(r, 2, 3)) for r in range(2)] == [[0], [1, 2]]
    assert [list(kv_heads_of(r, 2, 2)) for r in range(2)] == [[0], [1]]
    assert [list(columns_of(r, 2, 10)) for r in range(2)] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    with pytest.raises(ValueError, match="tp_size"):
        kv_heads_of(0, 4, 3)


def _options(model) -> dict:
    return dict(model=str(model), weights="fp32", kv_tokens=2048, chunked_prefill_size=32,
                max_running=8)


@pytest.fixture(scope="module")
def tiny_outputs(tiny_model_dir):
    """tp_size=1 answers of the tiny model (2 layers, 4 heads over 2 KV heads)."""
    with Engine(**_options(tiny_model_dir)) as engine:
        return _run_all(engine)


def _run_all(engine: Engine) -> dict:
    return {
        "batch": [o.outputs[0].token_ids for o in engine.generate(PROMPTS, GREEDY)],
        "again": [o.outputs[0].token_ids for o in engine.generate(PROMPTS[:2], GREEDY)],  # radix hits
        "n3": [c.token_ids for c in engine.generate(
            SHARED, SamplingParams(temperature=0, max_new_tokens=6, n=3)).outputs],
        "regex": engine.generate(SHARED + "Year: ", SamplingParams(
            temperature=0, max_new_tokens=8, regex=r"1[89][0-9]{2}")).text,
        "cached": engine.generate(PROMPTS[0], GREEDY).num_cached_tokens,
    }


def test_tp2_equals_tp1_on_the_tiny_model(tiny_model_dir, tiny_outputs):
    with Engine(**_options(tiny_model_dir), tp_size=2) as engine:
        assert _run_all(engine) == tiny_outputs
        assert tiny_outputs["cached"] > len(SHARED) // 8  # the prefix came from the cache


def test_tp2_equals_tp1_on_the_default_model(default_model_path):
    """SmolLM2-135M: 9 query heads over 3 KV heads, split 1 + 2."""
    opts = _options(default_model_path)
    with Engine(**opts) as engine:
        expected = [o.outputs[0].token_ids for o in engine.generate(PROMPTS, GREEDY)]
    with Engine(**opts, tp_size=2) as engine:
        assert [o.outputs[0].token_ids for o in engine.generate(PROMPTS, GREEDY)] == expected


def test_more_ranks_than_kv_heads_is_refused_before_any_rank_starts(tiny_model_dir):
    import multiprocessing

    with pytest.raises(ValueError, match="tp_size: 3 ranks need at least 3 KV heads"):
        Engine(**_options(tiny_model_dir), tp_size=3)
    assert not multiprocessing.active_children()


def test_a_dead_rank_stops_the_engine_with_an_error_naming_it(tiny_model_dir):
    engine = Engine(**_options(tiny_model_dir), tp_size=2)
    try:
        engine.generate("warm", GREEDY)
        worker = engine.tp_group.workers[0]
        worker.kill()
        worker.join(timeout=10)
        with pytest.raises((RankDied, RuntimeError), match="rank 1"):
            engine.generate("after the rank died", GREEDY)
        assert not engine.is_alive()
    finally:
        engine.shutdown()


def test_serve_tp2_answers_then_exits_1_when_a_rank_dies(tiny_model_dir):
    """`tines serve --tp 2`: answers like one rank; killing a worker rank takes the server
    down with exit code 1 and a log line naming the rank."""
    import os
    import signal

    import httpx
    import psutil

    from tests.server.live_server import start_serve_process

    proc, url = start_serve_process("--model", str(tiny_model_dir), "--tp", "2", "--weights",
                                    "fp32", "--no-compile", "--kv-tokens", "2048")
    try:
        with Engine(**_options(tiny_model_dir)) as engine:
            expected = engine.generate(SHARED, GREEDY).text
        r = httpx.post(url + "/generate", timeout=60, json={
            "text": SHARED, "sampling_params": {"temperature": 0, "max_new_tokens": 12,
                                                "ignore_eos": True}})
        assert r.status_code == 200 and r.json()["text"] == expected
        worker = next(p for p in psutil.Process(proc.pid).children()
                      if "spawn_main" in " ".join(p.cmdline()))
        os.kill(worker.pid, signal.SIGKILL)
        httpx.post(url + "/generate", timeout=60, json={"text": "after"})  # notices at once
        assert proc.wait(timeout=60) == 1
        assert "rank 1 exited" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
