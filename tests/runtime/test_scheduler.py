"""The scheduler alone, on hand-made sequences (no model): admission order, token budgets,
waiting for a shared prefix, and retraction under memory pressure."""

from __future__ import annotations

import torch

from tines.runtime.engine.config import EngineConfig
from tines.runtime.cache.kv_pool import KVPool
from tines.runtime.cache import make_cache
from tines.runtime.engine.request import Request, Sequence
from tines.runtime.sampling_params import SamplingParams
from tines.runtime.engine.scheduler import Scheduler
from tines.runtime.cache.slot_table import SlotTable


def make(num_slots: int = 4096, **cfg) -> Scheduler:
    config = EngineConfig(**{"max_running": 64, "chunked_prefill_size": 512, **cfg})
    pool = KVPool(num_slots, num_layers=1, num_kv_heads=1, head_dim=2)
    return Scheduler(config, pool, make_cache(pool, radix=not config.disable_radix_cache),
                     SlotTable(2 * config.max_running + 1, 2048))


def seq(tokens: list[int], max_new: int = 8, name: str = "r") -> Sequence:
    req = Request(name, list(tokens), SamplingParams(max_new_tokens=max_new), sink=lambda _: None)
    s = Sequence(req, 0, list(tokens), len(tokens), output=None)
    req.seqs.append(s)
    return s


def run_chunks(sched: Scheduler) -> list:
    """One step without a model: mark the scheduled tokens computed, cache prompts, and give
    every sequence that reached its end a next token (as sampling would)."""
    chunks = sched.schedule()
    for c in chunks:
        c.seq.num_computed = c.end
        if c.length > 1:
            sched.cache_computed(c.seq)
        if c.reaches_end:
            c.seq.token_ids.append(1)
    return chunks


def cache_prompt(sched: Scheduler, tokens: list[int]) -> None:
    s = seq(tokens, name="warm")
    sched.add(s)
    while s.num_computed < len(tokens):
        run_chunks(sched)
    sched.release(s, s.status.FINISHED)
    sched.check_idle()


def test_lpm_admits_the_longest_cached_prefix_first_even_with_a_long_queue():
    sched = make(max_running=1)
    shared = list(range(1000, 1400))
    cache_prompt(sched, shared + [1])
    queue = [seq([5000 + i] * 50, name=f"cold{i}") for i in range(600)]
    hot = seq(shared + [2, 3], name="hot")  # arrives last
    for s in queue + [hot]:
        sched.add(s)
    first = run_chunks(sched)
    assert [c.seq.request.request_id for c in first] == ["hot"]
    assert (first[0].start, first[0].end) == (len(shared), len(shared) + 2)  # prefix reused


def test_fcfs_admits_in_arrival_order():
    sched = make(max_running=1, schedule_policy="fcfs")
    cache_prompt(sched, list(range(100, 200)))
    a, b = seq([7] * 20, name="a"), seq(list(range(100, 200)) + [9], name="b")
    sched.add(a)
    sched.add(b)
    assert [c.seq.request.request_id for c in run_chunks(sched)] == ["a"]


def test_prefill_chunks_respect_the_token_budget():
    sched = make(chunked_prefill_size=64)
    s = seq(list(range(10, 210)))
    sched.add(s)
    sizes = [sum(c.length for c in run_chunks(sched)) for _ in range(4)]
    assert sizes == [64, 64, 64, 8]


def test_a_request_sharing_an_uncached_prefix_waits_for_it_instead_of_recomputing_it():
    sched = make()
    prefix = list(range(300, 700))
    a, b = seq(prefix + [1, 2]), seq(prefix + [3, 4])
    sched.add(a)
    sched.add(b)
    assert [c.seq for c in run_chunks(sched)] == [a]  # b would recompute a's 400 tokens
    chunks = run_chunks(sched)  # a's prompt is cached now: a decodes, b computes its tail
    assert [c.seq for c in chunks] == [a, b]
    assert b.cached_len >= len(prefix)
    assert chunks[1].length <= 3


def test_decode_under_memory_pressure_retracts_instead_of_failing():
    sched = make(num_slots=64)
    a, b = seq(list(range(1, 26)), max_new=10, name="a"), seq(list(range(40, 65)), max_new=10, name="b")
    for s in (a, b):
        sched.add(s)
    assert len(run_chunks(sched)) == 2  # both admitted: 50 of 64 slots
    for _ in range(10):  # both decode a token per step, until the pool runs dry
        run_chunks(sched)
    assert sched.num_retractions >= 1
    assert len(sched.running) >= 1 and (a in sched.waiting or b in sched.waiting)
    held = sum(s.num_computed - s.cached_len for s in sched.running)
    assert sched.pool.num_free + sched.cache.total_size + held == sched.pool.num_slots


def test_release_puts_computed_tokens_in_the_cache_and_idle_state_is_clean():
    sched = make()
    s = seq(list(range(1, 50)))
    sched.add(s)
    run_chunks(sched)
    sched.release(s, s.status.FINISHED)  # its sampled 50th token has no K/V and is not cached
    sched.check_idle()
    assert sched.cache.match_prefix(list(range(1, 50))).length == 49
    assert torch.equal(torch.tensor(sorted(sched.pool.free_slot_set() | set(sched.cache.cached_slots().tolist()))),
                       torch.arange(sched.pool.num_slots))
