"""PrefixIndex: which replica has seen which prompt prefixes, approximately and cheaply.

A prompt is cut into blocks of `block_chars` characters; block i is keyed by a hash of the
whole text up to its end, so equal keys mean equal prefixes (up to hash collisions, which only
cost a cache miss). Each replica keeps the keys it was sent, most recently used last, at most
`capacity_blocks` of them: the oldest are forgotten first, as the replica's radix cache evicts
least recently used prefixes first. With each key it keeps up to two of the keys that followed
it, enough to tell a prefix several prompts share from one prompt's own history. The index is
an estimate of the replica caches, never a source of truth: a wrong guess costs a recompute,
not a wrong answer.

Invariant (`check()`): every replica's block count is at most `capacity_blocks`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Iterable


def prefix_keys(text: str, block_chars: int) -> list[bytes]:
    """One key per complete block: the digest of the text up to the block's end."""
    h = hashlib.blake2b(digest_size=8)
    keys = []
    for end in range(block_chars, len(text) + 1, block_chars):
        h.update(text[end - block_chars:end].encode("utf-8", "surrogatepass"))
        keys.append(h.copy().digest())
    return keys


class PrefixIndex:
    def __init__(self, block_chars: int = 64, capacity_blocks: int = 4096):
        if block_chars < 1 or capacity_blocks < 1:
            raise ValueError("block_chars and capacity_blocks must be positive")
        self.block_chars = block_chars
        self.capacity_blocks = capacity_blocks
        self._blocks: dict[Hashable, OrderedDict[bytes, None]] = {}

    @property
    def replicas(self) -> list[Hashable]:
        return list(self._blocks)

    def add_replica(self, replica: Hashable) -> None:
        self._blocks.setdefault(replica, OrderedDict())

    def remove_replica(self, replica: Hashable) -> None:
        self._blocks.pop(replica, None)

    def keep_only(self, replicas: Iterable[Hashable]) -> None:
        """Forget replicas that are gone; start empty ones for new replicas."""
        live = set(replicas)
        for gone in [r for r in self._blocks if r not in live]:
            del self._blocks[gone]
        for r in live:
            self.add_replica(r)

    def insert(self, replica: Hashable, text: str) -> None:
        """Record that `replica` computed (and so caches) `text`."""
        blocks = self._blocks.setdefault(replica, OrderedDict())
        keys = prefix_keys(text, self.block_chars)
        # Deepest block first, so a prompt's shorter prefixes are the more recent: eviction
        # takes the tails first and what is left is still a prefix (as in the radix cache).
        for i in range(len(keys) - 1, -1, -1):
            nexts = blocks.get(keys[i]) or frozenset()
            if i + 1 < len(keys) and len(nexts) < 2 and keys[i + 1] not in nexts:
                nexts = nexts | {keys[i + 1]}
            blocks[keys[i]] = nexts
            blocks.move_to_end(keys[i])
        while len(blocks) > self.capacity_blocks:
            blocks.popitem(last=False)

    def match(self, text: str, replicas: Iterable[Hashable]) -> dict[Hashable, int]:
        """For each replica, how many leading characters of `text` it probably has cached."""
        keys = prefix_keys(text, self.block_chars)
        matched = {}
        for r in replicas:
            blocks = self._blocks.get(r, {})
            n = 0
            while n < len(keys) and keys[n] in blocks:
                n += 1
            matched[r] = n * self.block_chars
        return matched

    def branches_after(self, replica: Hashable, text: str, chars: int) -> bool:
        """Whether `replica` has seen prompts go on in two or more ways after `text`'s first
        `chars` characters (a whole number of blocks, as `match` gives): a prefix that
        several prompts share, such as a system prompt, rather than one prompt's own history."""
        n = chars // self.block_chars
        if n <= 0:
            return False
        key = prefix_keys(text[:n * self.block_chars], self.block_chars)[-1]
        return len(self._blocks.get(replica, {}).get(key) or ()) >= 2

    def size(self, replica: Hashable) -> int:
        return len(self._blocks.get(replica, ()))

    def check(self) -> None:
        for r, blocks in self._blocks.items():
            assert len(blocks) <= self.capacity_blocks, (r, len(blocks))
