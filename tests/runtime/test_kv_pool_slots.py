"""KVPool's slot order: freed slots are handed out before never-used ones, so the slots ever
handed out since the pool was last empty are [0, high_water), high_water being the most slots
in use at once; and check() holds under random alloc/free sequences."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tines.runtime.cache import make_cache
from tines.runtime.cache.kv_pool import KVPool


def small_pool(num_slots: int = 64) -> KVPool:
    return KVPool(num_slots, num_layers=1, num_kv_heads=1, head_dim=2)


def test_fresh_slots_are_handed_out_lowest_first():
    pool = small_pool()
    assert pool.alloc(3).tolist() == [0, 1, 2]
    assert pool.alloc(2).tolist() == [3, 4]
    assert pool.high_water == 5


def test_freed_slots_are_reused_before_the_high_water_mark_moves():
    pool = small_pool()
    first = pool.alloc(10)
    pool.free(first[2:6])
    again = pool.alloc(4)
    assert sorted(again.tolist()) == [2, 3, 4, 5]
    assert pool.high_water == 10


def test_an_alloc_larger_than_the_freed_slots_takes_them_all_then_fresh_ones():
    pool = small_pool()
    first = pool.alloc(6)
    pool.free(first[:2])
    out = pool.alloc(5)
    assert sorted(out.tolist()) == [0, 1, 6, 7, 8]
    assert pool.high_water == 9


def test_freeing_every_slot_resets_the_high_water_mark():
    pool = small_pool()
    a, b = pool.alloc(7), pool.alloc(5)
    pool.free(a)
    assert pool.high_water == 12
    pool.free(b)
    assert pool.high_water == 0 and pool.num_free == 64
    assert pool.alloc(2).tolist() == [0, 1]


def test_flushing_the_radix_cache_resets_the_high_water_mark():
    pool = small_pool()
    cache = make_cache(pool, radix=True)
    cache.insert([1, 2, 3, 4], pool.alloc(4))
    cache.insert([1, 2, 9], pool.alloc(3))
    assert pool.high_water == 7
    cache.evict(cache.evictable_size)
    assert pool.num_free == 64 and pool.high_water == 0


def test_check_reports_a_slot_freed_twice():
    pool = small_pool()
    slots = pool.alloc(4)
    pool.free(slots[:1])
    pool.free(slots[:1])  # the caller's bug: the count still fits, the set does not
    with pytest.raises(AssertionError, match="free twice"):
        pool.check()


def test_touched_bytes_follow_the_high_water_mark():
    pool = KVPool(100, num_layers=2, num_kv_heads=1, head_dim=4, dtype=torch.float32)
    pool.alloc(25)
    assert pool.touched_bytes == pool.nbytes // 4 == 25 * pool.bytes_per_token(2, 1, 4, torch.float32)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_high_water_is_the_most_slots_in_use_at_once(seed):
    rng = random.Random(seed)
    pool = small_pool(48)
    held: list[torch.Tensor] = []
    peak = 0
    for _ in range(40):
        if held and (rng.random() < 0.45 or pool.num_free == 0):
            pool.free(held.pop(rng.randrange(len(held))))
        else:
            held.append(pool.alloc(rng.randint(1, max(1, min(8, pool.num_free)))))
        in_use = sum(t.numel() for t in held)
        peak = 0 if in_use == 0 else max(peak, in_use)
        pool.check()
        assert pool.num_used == in_use
        assert pool.high_water == peak
        live = [s for t in held for s in t.tolist()]
        assert len(set(live)) == len(live) and all(s < pool.high_water for s in live)
        assert not set(live) & pool.free_slot_set()
