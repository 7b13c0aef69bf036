"""NoCache: the radix cache's interface with nothing kept (`disable_radix_cache`).

Every prefix matches nothing, and slots handed to `insert` go straight back to the pool, so a
sequence's KV lives exactly as long as the sequence. The scheduler calls it as it calls
`RadixCache`; no caller branches on which one it holds.
"""

from __future__ import annotations

import torch

from .kv_pool import KVPool
from .radix_cache import MatchResult, TreeNode

_EMPTY = torch.empty(0, dtype=torch.int64)


class NoCache:
    evictable_size = protected_size = total_size = 0
    version = 0  # what is cached never changes

    def __init__(self, pool: KVPool):
        self.pool = pool
        self.root = TreeNode([], _EMPTY, None)
        self.reset()

    def reset(self) -> None:
        self.hit_tokens = self.miss_tokens = self.evicted_tokens = 0

    def match_prefix(self, tokens: list[int]) -> MatchResult:
        return MatchResult(_EMPTY, self.root)

    def record_match(self, num_hit: int, num_total: int) -> None:
        self.miss_tokens += num_total - num_hit

    def insert(self, tokens: list[int], slots: torch.Tensor) -> int:
        """Nothing is kept: the slots are freed."""
        if len(tokens) != slots.numel():
            raise ValueError(f"insert: {len(tokens)} tokens but {slots.numel()} slots")
        self.pool.free(slots)
        return 0

    def share(self, tokens: list[int], slots: torch.Tensor) -> MatchResult | None:
        """None: the running sequence keeps owning its slots."""
        return None

    def lock(self, node: TreeNode) -> None:
        pass

    def unlock(self, node: TreeNode) -> None:
        pass

    def evict(self, num_tokens: int) -> int:
        return 0

    def flush(self) -> bool:
        return True

    def cached_slots(self) -> torch.Tensor:
        return _EMPTY

    def check(self) -> None:
        pass
