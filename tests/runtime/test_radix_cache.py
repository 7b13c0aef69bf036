"""RadixCache over a KVPool: matching, inserting, locking, LRU eviction, and the invariants
under random operation sequences."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tines.runtime.cache.kv_pool import KVPool, OutOfSlots
from tines.runtime.cache import make_cache
from tines.runtime.cache.radix_cache import RadixCache


def make(num_slots: int = 64, disabled: bool = False) -> tuple[KVPool, RadixCache]:
    pool = KVPool(num_slots, num_layers=1, num_kv_heads=1, head_dim=2)
    return pool, make_cache(pool, radix=not disabled)


def insert_new(pool: KVPool, cache: RadixCache, tokens: list[int]) -> torch.Tensor:
    slots = pool.alloc(len(tokens))
    cache.insert(tokens, slots)
    return slots


def test_pool_alloc_and_free_account_exactly():
    pool = KVPool(8, 1, 1, 2)
    a = pool.alloc(5)
    assert pool.num_free == 3 and len(set(a.tolist())) == 5
    try:
        pool.alloc(4)
        raise AssertionError("alloc beyond the free count must raise")
    except OutOfSlots:
        pass
    pool.free(a[:2])
    assert pool.num_free == 5


def test_match_returns_longest_cached_prefix_and_its_slots():
    pool, cache = make()
    slots = insert_new(pool, cache, [1, 2, 3, 4])
    m = cache.match_prefix([1, 2, 3, 9, 9])
    assert m.length == 3
    assert m.slots.tolist() == slots[:3].tolist()
    assert cache.match_prefix([7, 1, 2]).length == 0


def test_insert_splits_nodes_and_shares_the_common_prefix():
    pool, cache = make()
    insert_new(pool, cache, [1, 2, 3, 4])
    insert_new(pool, cache, [1, 2, 5, 6])
    assert cache.total_size == 6  # [1, 2] stored once, then [3, 4] and [5, 6]
    assert pool.num_free == 64 - 6  # the duplicate slots of [1, 2] were freed
    cache.check()


def test_insert_keeps_the_trees_own_slots_and_frees_duplicates():
    pool, cache = make()
    first = insert_new(pool, cache, [1, 2, 3])
    m = cache.match_prefix([1, 2, 3])
    extra = pool.alloc(2)
    already = cache.insert([1, 2, 3, 4, 5], torch.cat((m.slots, extra)))
    assert already == 3
    assert cache.match_prefix([1, 2, 3, 4, 5]).slots[:3].tolist() == first.tolist()
    assert pool.num_free + cache.total_size == 64
    cache.check()


def test_locked_nodes_are_never_evicted():
    pool, cache = make()
    insert_new(pool, cache, [1, 2, 3])
    insert_new(pool, cache, [4, 5, 6])
    node = cache.match_prefix([1, 2, 3]).node
    cache.lock(node)
    assert cache.evict(100) == 3
    assert cache.match_prefix([1, 2, 3]).length == 3
    assert cache.match_prefix([4, 5, 6]).length == 0
    cache.unlock(node)
    assert cache.evict(100) == 3
    assert cache.total_size == 0 and pool.num_free == 64


def test_eviction_takes_least_recently_used_leaves_first():
    pool, cache = make()
    insert_new(pool, cache, [1, 1])
    insert_new(pool, cache, [2, 2])
    insert_new(pool, cache, [3, 3])
    cache.match_prefix([1, 1])  # touch: [2, 2] is now the oldest
    cache.evict(2)
    assert cache.match_prefix([2, 2]).length == 0
    assert cache.match_prefix([1, 1]).length == 2
    assert cache.match_prefix([3, 3]).length == 2


def test_evicting_a_leaf_exposes_its_parent_for_eviction():
    pool, cache = make()
    insert_new(pool, cache, [1, 2, 3, 4])
    insert_new(pool, cache, [1, 2, 5, 6])
    assert cache.evict(6) == 6
    assert cache.total_size == 0


def test_hit_and_miss_counters():
    pool, cache = make()
    cache.record_match(3, 10)
    cache.record_match(0, 5)
    assert (cache.hit_tokens, cache.miss_tokens) == (3, 12)


def test_disabled_cache_matches_nothing_and_frees_what_is_inserted():
    pool, cache = make(disabled=True)
    insert_new(pool, cache, [1, 2, 3])
    assert cache.match_prefix([1, 2, 3]).length == 0
    assert pool.num_free == 64


def test_flush_is_refused_while_locked():
    pool, cache = make()
    insert_new(pool, cache, [1, 2])
    node = cache.match_prefix([1, 2]).node
    cache.lock(node)
    assert cache.flush() is False
    cache.unlock(node)
    assert cache.flush() is True and pool.num_free == 64


# --- randomized: the invariants hold after every operation -----------------------------------
ops = st.lists(st.tuples(st.sampled_from(["insert", "match_lock", "unlock", "evict"]),
                         st.lists(st.integers(0, 3), min_size=1, max_size=8),
                         st.integers(1, 20)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_random_operations_keep_the_invariants(operations):
    pool, cache = make(48)
    locked: list[tuple[object, list[int], torch.Tensor]] = []  # (node, tokens, slots) in use
    running_own = 0  # slots a "running request" holds outside the tree
    for op, tokens, n in operations:
        if op == "insert":
            m = cache.match_prefix(tokens)
            need = len(tokens) - m.length
            if need > pool.num_free:
                cache.evict(need - pool.num_free)
            if need > pool.num_free:
                continue
            cache.insert(tokens, torch.cat((m.slots, pool.alloc(need))))
        elif op == "match_lock":
            m = cache.match_prefix(tokens)
            # the match is the longest prefix that was inserted and not evicted
            assert m.length <= len(tokens)
            if m.length < len(tokens):
                longer = cache.match_prefix(tokens[:m.length + 1])
                assert longer.length == m.length
            cache.lock(m.node)
            own = pool.alloc(min(2, pool.num_free))
            running_own += own.numel()
            locked.append((m.node, tokens[:m.length], own))
        elif op == "unlock" and locked:
            node, prefix, own = locked.pop(n % len(locked))
            cache.unlock(node)
            pool.free(own)
            running_own -= own.numel()
        elif op == "evict":
            protected = {id(node) for node, _, _ in locked}
            cache.evict(n)
            for node, prefix, _ in locked:  # locked prefixes survive any eviction
                assert cache.match_prefix(prefix).length == len(prefix)
            assert protected == {id(node) for node, _, _ in locked}
        cache.check()
        assert pool.num_free + cache.total_size + running_own == pool.num_slots
    for node, _, own in locked:
        cache.unlock(node)
        pool.free(own)
    cache.evict(cache.total_size)
    assert pool.num_free == pool.num_slots
