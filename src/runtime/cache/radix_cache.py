"""RadixCache: every computed prompt, as a radix tree over token ids whose nodes hold KV slots.

Invariants (checked by `check()`):
- each node's `slots` has one slot per token of its `key`; no slot appears twice in the tree;
- `lock_ref` of a node counts the requests using it or a descendant; a locked node is never
  evicted; `evictable_size` is the token count of unlocked nodes, `protected_size` of locked;
- slots in the tree + free slots in the pool + slots owned by running requests == pool size.

`match_prefix` does not change what is cached (it may split a node so the match ends on a
node boundary, and it refreshes access times). Callers lock the returned node before they use
its slots and unlock it when done. Eviction frees least-recently-used unlocked leaves first.
"""

from __future__ import annotations

import heapq
import itertools
from typing import NamedTuple

import torch

from .kv_pool import KVPool

_EMPTY = torch.empty(0, dtype=torch.int64)


class TreeNode:
    __slots__ = ("key", "slots", "children", "parent", "lock_ref", "last_access")

    def __init__(self, key: list[int], slots: torch.Tensor, parent: TreeNode | None):
        self.key = key
        self.slots = slots
        self.children: dict[int, TreeNode] = {}
        self.parent = parent
        self.lock_ref = 0
        self.last_access = 0

    def __lt__(self, other: TreeNode) -> bool:  # heap order for eviction
        return self.last_access < other.last_access


class MatchResult(NamedTuple):
    slots: torch.Tensor  # (num_matched,) int64
    node: TreeNode  # the deepest matched node (root when nothing matched)

    @property
    def length(self) -> int:
        return self.slots.numel()


class RadixCache:
    def __init__(self, pool: KVPool):
        self.pool = pool
        self._clock = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        self.root = TreeNode([], _EMPTY, None)
        self.root.lock_ref = 1  # the root is never evicted
        self.evictable_size = 0
        self.protected_size = 0
        self.version = 0  # bumped whenever what is cached changes
        self.hit_tokens = 0
        self.miss_tokens = 0
        self.evicted_tokens = 0

    @property
    def total_size(self) -> int:
        return self.evictable_size + self.protected_size

    # --- lookup -------------------------------------------------------------------------
    def match_prefix(self, tokens: list[int]) -> MatchResult:
        """The longest cached prefix of `tokens`: its slots and the node it ends on."""
        if not tokens:
            return MatchResult(_EMPTY, self.root)
        node, pos, parts = self.root, 0, []
        now = next(self._clock)
        while pos < len(tokens):
            child = node.children.get(tokens[pos])
            if child is None:
                break
            n = _common_len(child.key, tokens, pos)
            if n < len(child.key):
                child = self._split(child, n)
            child.last_access = now
            parts.append(child.slots)
            node, pos = child, pos + n
        slots = torch.cat(parts) if parts else _EMPTY
        return MatchResult(slots, node)

    def record_match(self, num_hit: int, num_total: int) -> None:
        """Count a request's prompt as hit/miss tokens (done once per request, at admission)."""
        self.hit_tokens += num_hit
        self.miss_tokens += num_total - num_hit

    # --- insert -------------------------------------------------------------------------
    def insert(self, tokens: list[int], slots: torch.Tensor) -> int:
        """Cache `tokens` with their `slots`; returns how many leading tokens were already
        cached. Where the tree already holds a token, the caller's slot for it is a duplicate
        and is freed here (unless it is the tree's own slot)."""
        if len(tokens) != slots.numel():
            raise ValueError(f"insert: {len(tokens)} tokens but {slots.numel()} slots")
        node, pos = self.root, 0
        now = next(self._clock)
        while pos < len(tokens):
            child = node.children.get(tokens[pos])
            if child is None:
                leaf = TreeNode(tokens[pos:], slots[pos:].clone(), node)
                leaf.last_access = now
                node.children[tokens[pos]] = leaf
                self.evictable_size += len(leaf.key)
                self.version += 1
                return pos
            n = _common_len(child.key, tokens, pos)
            if n < len(child.key):
                child = self._split(child, n)
            dup = slots[pos:pos + n]
            self.pool.free(dup[dup != child.slots])
            child.last_access = now
            node, pos = child, pos + n
        return pos

    def share(self, tokens: list[int], slots: torch.Tensor) -> MatchResult | None:
        """Cache the computed `tokens` of a sequence that keeps running on them, and return
        the match the sequence switches to (lock it, write its slots, unlock the old node)."""
        self.insert(tokens, slots)
        return self.match_prefix(tokens)

    def _split(self, child: TreeNode, n: int) -> TreeNode:
        """Cut `child` after its first n tokens; returns the new upper node."""
        upper = TreeNode(child.key[:n], child.slots[:n], child.parent)
        upper.lock_ref = child.lock_ref
        upper.last_access = child.last_access
        upper.children[child.key[n]] = child
        child.parent.children[child.key[0]] = upper
        child.parent = upper
        child.key, child.slots = child.key[n:], child.slots[n:]
        return upper

    # --- locking ------------------------------------------------------------------------
    def lock(self, node: TreeNode) -> None:
        """Protect `node` and its ancestors from eviction (reference counted)."""
        while node is not self.root:
            if node.lock_ref == 0:
                self.evictable_size -= len(node.key)
                self.protected_size += len(node.key)
            node.lock_ref += 1
            node = node.parent

    def unlock(self, node: TreeNode) -> None:
        while node is not self.root:
            if node.lock_ref <= 0:
                raise RuntimeError("unlock of a node that is not locked")
            node.lock_ref -= 1
            if node.lock_ref == 0:
                self.evictable_size += len(node.key)
                self.protected_size -= len(node.key)
            node = node.parent

    # --- eviction -----------------------------------------------------------------------
    def evict(self, num_tokens: int) -> int:
        """Free at least `num_tokens` slots from unlocked leaves, least recently used first
        (fewer if not enough are evictable). Returns the number freed."""
        heap = [n for n in self._nodes() if not n.children and n.lock_ref == 0]
        heapq.heapify(heap)
        freed = 0
        while freed < num_tokens and heap:
            leaf = heapq.heappop(heap)
            self.pool.free(leaf.slots)
            freed += len(leaf.key)
            self.evictable_size -= len(leaf.key)
            parent = leaf.parent
            del parent.children[leaf.key[0]]
            if parent is not self.root and not parent.children and parent.lock_ref == 0:
                heapq.heappush(heap, parent)
        if freed:
            self.version += 1
            self.evicted_tokens += freed
        return freed

    def flush(self) -> bool:
        """Drop everything cached; refused (False) while any node is locked."""
        if self.protected_size:
            return False
        self.evict(self.evictable_size)
        return True

    # --- checks -------------------------------------------------------------------------
    def _nodes(self) -> list[TreeNode]:
        out, stack = [], list(self.root.children.values())
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.children.values())
        return out

    def cached_slots(self) -> torch.Tensor:
        nodes = self._nodes()
        return torch.cat([n.slots for n in nodes]) if nodes else _EMPTY

    def check(self) -> None:
        """Raise AssertionError when an invariant is broken (for tests and idle checks)."""
        nodes = self._nodes()
        evictable = sum(len(n.key) for n in nodes if n.lock_ref == 0)
        protected = sum(len(n.key) for n in nodes if n.lock_ref > 0)
        if (evictable, protected) != (self.evictable_size, self.protected_size):
            raise AssertionError(f"size accounting off: counted {evictable}/{protected}, "
                                 f"recorded {self.evictable_size}/{self.protected_size}")
        for n in nodes:
            if len(n.key) != n.slots.numel() or not n.key:
                raise AssertionError("node key/slots length mismatch")
            if n.parent.children.get(n.key[0]) is not n:
                raise AssertionError("parent/child link broken")
            if any(c.lock_ref > n.lock_ref for c in n.children.values()):
                raise AssertionError("a child is locked more than its parent")
        slots = self.cached_slots().tolist()
        if len(set(slots)) != len(slots):
            raise AssertionError("a slot appears twice in the tree")
        if set(slots) & self.pool.free_slot_set():
            raise AssertionError("a cached slot is also free in the pool")


def _common_len(key: list[int], tokens: list[int], start: int) -> int:
    """Length of the common prefix of key and tokens[start:]."""
    n = min(len(key), len(tokens) - start)
    if key[:n] == tokens[start:start + n]:
        return n
    for i in range(n):
        if key[i] != tokens[start + i]:
            return i
    return n
