"""tines.runtime.cache: KV memory. `KVPool` owns the K/V tensors and their free slots,
`SlotTable` maps each running sequence's positions to slots, and `RadixCache` indexes computed
prefixes by token ids so requests that share a prefix share its slots (LRU eviction of unlocked
leaves); `NoCache` has the same interface and keeps nothing (radix cache off). The scheduler is
the only caller."""

from __future__ import annotations

from .kv_pool import KVPool
from .no_cache import NoCache
from .radix_cache import RadixCache


def make_cache(pool: KVPool, radix: bool = True) -> RadixCache | NoCache:
    """The prefix cache over `pool`: a RadixCache, or NoCache when prefix caching is off."""
    return RadixCache(pool) if radix else NoCache(pool)
