"""KVPool's CPU memory: reserved for every slot, resident only where slots were written, given
back when every slot is free. Read from /proc/self/pagemap (Linux), so the figures are the
kernel's, not the pool's own accounting."""

from __future__ import annotations

import sys

import pytest
import torch

from tines.runtime.cache.kv_pool import KVPool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

PAGE = 4096


def resident_bytes(t: torch.Tensor) -> int:
    """Bytes of `t`'s pages present in RAM (page granularity)."""
    first, last = t.data_ptr() // PAGE, (t.data_ptr() + t.nbytes - 1) // PAGE
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(first * 8)
        raw = f.read((last - first + 1) * 8)
    entries = memoryview(raw).cast("Q")
    return sum(PAGE for e in entries if e >> 63)


def big_pool() -> KVPool:
    # 8 layers x 16384 slots x 256 B: 32 MB per tensor, 2 MB per layer (one huge page each).
    return KVPool(16384, num_layers=8, num_kv_heads=2, head_dim=32, dtype=torch.float32)


def write(pool: KVPool, slots: torch.Tensor) -> None:
    """What a forward does to the cache: every layer's K and V at `slots`."""
    pool.k[:, slots] = 1.0
    pool.v[:, slots] = 1.0


def test_a_new_pool_has_nothing_resident():
    pool = big_pool()
    assert resident_bytes(pool.k) == 0 and resident_bytes(pool.v) == 0


def test_written_slots_make_only_their_own_pages_resident():
    pool = big_pool()
    write(pool, pool.alloc(100))  # 100 x 256 B = 25 KB per layer: 7 pages, 8 where unaligned
    per_layer = resident_bytes(pool.k) / 8
    assert 7 * PAGE <= per_layer <= 8 * PAGE
    assert resident_bytes(pool.v) == resident_bytes(pool.k)


def test_freeing_every_slot_gives_the_pages_back():
    pool = big_pool()
    slots = pool.alloc(3000)
    write(pool, slots)
    assert resident_bytes(pool.k) > 0
    pool.free(slots)
    assert resident_bytes(pool.k) == 0 and resident_bytes(pool.v) == 0


def test_freeing_some_slots_keeps_the_values_of_the_rest():
    pool = big_pool()
    slots = pool.alloc(10)
    pool.k[:, slots] = torch.arange(10, dtype=torch.float32)[None, :, None, None]
    pool.free(slots[:5])
    assert pool.k[3, slots[5:], 1, 7].tolist() == [5.0, 6.0, 7.0, 8.0, 9.0]


def test_copy_moves_every_layer_of_the_slots():
    pool = big_pool()
    src, dst = pool.alloc(4), pool.alloc(4)
    pool.k[:, src] = 2.0
    pool.v[:, src] = 3.0
    pool.copy(dst, src)
    assert bool((pool.k[:, dst] == 2.0).all()) and bool((pool.v[:, dst] == 3.0).all())
