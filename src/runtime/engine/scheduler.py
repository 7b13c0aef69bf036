"""Scheduler: decides which tokens of which sequences one step computes, and owns their memory.

Each step: every running sequence with one pending token decodes it; longer pending runs
(prompts, recomputed retractions, jump-forward text) are computed in chunks under a shared
token budget; then waiting sequences are admitted in policy order while budget, rows and
memory last. When the pool runs dry, unlocked cache is evicted first; if decoding still
cannot proceed, the running sequence with the least progress is retracted to the queue (its
computed KV goes to the radix cache, so most of it is reused when it returns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .branches import branch_chunk_len
from .config import EngineConfig
from ..cache.kv_pool import KVPool
from ..cache.no_cache import NoCache
from ..cache.radix_cache import RadixCache
from .request import Sequence, SeqStatus
from ..cache.slot_table import SlotTable

# While a queue waits, admission keeps this share of the running sequences' remaining decode
# tokens free; it relaxes step by step and tightens again after a retraction.
RESERVE_RATIO_INIT, RESERVE_RATIO_MIN, RESERVE_RATIO_DECAY = 0.5, 0.05, 0.002
# A request's remaining decode counted at most this much: clients that leave max_tokens at
# the whole context rarely use it.
RESERVE_CAP = 4096
# How many waiting sequences get their cached-prefix length refreshed per step (lpm).
LPM_REFRESH_PER_STEP = 256
# Radix keys of a LoRA request's tokens are token id + adapter id * this (beyond any vocabulary).
LORA_KEY_STRIDE = 1 << 32


@dataclass(slots=True)
class Chunk:
    """Positions [start, end) of `seq` are computed this step into `slots`. A branch chunk
    (branches.py) also carries `context`: the slots of its positions [0, end), trunk's and its
    own, which attention reads instead of a slot-table row."""

    seq: Sequence
    start: int
    end: int
    slots: torch.Tensor
    context: torch.Tensor | None = None
    # A decode with a speculative draft (speculation.py): the draft's tokens follow the
    # sequence's pending one in this chunk; the core keeps the K/V of those it accepts.
    draft: list[int] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def reaches_end(self) -> bool:
        return self.end == len(self.seq.token_ids)


class Scheduler:
    def __init__(self, cfg: EngineConfig, pool: KVPool, cache: RadixCache | NoCache,
                 table: SlotTable):
        self.cfg, self.pool, self.cache, self.table = cfg, pool, cache, table
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []
        self.reserve_ratio = RESERVE_RATIO_INIT
        self.num_retractions = 0
        self._match_len: dict[int, tuple[int, int]] = {}  # id(seq) -> (cache version, length)

    # --- queue --------------------------------------------------------------------------
    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> list[Chunk]:
        budget = self.cfg.chunked_prefill_size
        chunks = self._schedule_decodes()
        for seq in [s for s in self.running if s.num_pending > 1]:
            n = min(seq.num_pending, budget)
            draft = seq.draft if n == seq.num_pending else []  # after jump-forward's text
            if n <= 0 or not self._make_room(n + len(draft)):
                break
            chunks.append(self._chunk(seq, n + len(draft)))
            chunks[-1].draft = draft
            budget -= n
        if budget > 0:
            chunks += self._admit(budget, [s for s in self.running if s.num_pending > 1])
        self.reserve_ratio = max(RESERVE_RATIO_MIN, self.reserve_ratio - RESERVE_RATIO_DECAY)
        return self._with_branches(chunks)

    def _schedule_decodes(self) -> list[Chunk]:
        """One token per decoding sequence, plus its draft when there is room for drafts."""
        decoding = [s for s in self.running if s.num_pending == 1]
        if not self._make_room(len(decoding) + sum(len(s.draft) for s in decoding)):
            for seq in decoding:
                seq.draft = []
        while decoding and not self._make_room(len(decoding)):
            # Retract the sequence with the least progress (fewest outputs, latest arrival).
            victim = min(self.running, key=lambda s: (s.num_output, -s.request.arrival))
            if victim in decoding:
                decoding.remove(victim)
            self.retract(victim)
        chunks = []
        for seq in decoding:
            chunk = self._chunk(seq, 1 + len(seq.draft))
            chunk.draft = seq.draft
            chunks.append(chunk)
        return chunks

    def _admit(self, budget: int, inflight: list[Sequence]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for seq in self._ordered_waiting():
            if budget <= 0 or len(self.running) >= self.cfg.max_running or not self.table.num_free_rows:
                break
            if seq.request.grammar_future is not None and seq.grammar is None:
                continue  # its grammar is compiling (EngineCore attaches the matcher)
            match = self.cache.match_prefix(_cache_key(seq, _cacheable_len(seq)))
            if self._shares_with(seq, match.length, inflight):
                continue  # computed by an earlier request this or next step; reuse it then
            n = min(len(seq.token_ids) - match.length, budget)
            self.cache.lock(match.node)
            reserve = int(self.reserve_ratio * sum(
                min(s.request.params.max_new_tokens - s.num_output, RESERVE_CAP)
                for s in self.running))
            if not self._make_room(n + (reserve if self.running else 0)):
                self.cache.unlock(match.node)
                break
            if not seq.request.admitted:  # count a request's prompt once, not per retry
                seq.request.admitted = True
                self.cache.record_match(match.length, seq.prompt_len)
                seq.request.num_cached_tokens = min(match.length, seq.prompt_len)
            self.waiting.remove(seq)
            self._match_len.pop(id(seq), None)
            seq.row = self.table.alloc_row()
            self.table.write(seq.row, 0, match.slots)
            seq.last_node, seq.cached_len, seq.num_computed = match.node, match.length, match.length
            seq.status = SeqStatus.RUNNING
            self.running.append(seq)
            chunks.append(self._chunk(seq, n))
            inflight.append(seq)
            budget -= n
        return chunks

    def _ordered_waiting(self) -> list[Sequence]:
        if self.cfg.schedule_policy == "fcfs":
            return list(self.waiting)
        # lpm: longest cached prefix first. A sequence is matched once when it arrives; after
        # the cache changes, at most LPM_REFRESH_PER_STEP stale lengths are refreshed per step
        # (oldest first), so a long queue costs the same per step and never falls back to
        # arrival order (stale lengths only shift the order a little).
        stale = []
        for seq in self.waiting:
            version, _ = self._match_len.get(id(seq), (None, 0))
            if version is None:
                self._refresh_match(seq)
            elif version != self.cache.version:
                stale.append((version, seq))
        stale.sort(key=lambda vs: vs[0])
        for _, seq in stale[:LPM_REFRESH_PER_STEP]:
            self._refresh_match(seq)
        return sorted(self.waiting, key=lambda s: -self._match_len[id(s)][1])

    def _refresh_match(self, seq: Sequence) -> None:
        length = self.cache.match_prefix(_cache_key(seq, _cacheable_len(seq))).length
        self._match_len[id(seq)] = (self.cache.version, length)

    def _shares_with(self, seq: Sequence, cached: int, inflight: list[Sequence]) -> bool:
        tokens = seq.tokens_array()
        for other in inflight:
            if other.request.lora_id != seq.request.lora_id:
                continue  # another adapter's K/V is not this one's
            if _common_prefix_len(tokens, other.tokens_array()) > cached + self.cfg.share_wait_threshold:
                return True
        return False

    def _with_branches(self, chunks: list[Chunk]) -> list[Chunk]:
        """A scoring trunk's last chunk brings its branches' chunks (branches.py) into the
        same step. Without room for them, the trunk's chunk waits for a later step."""
        out: list[Chunk] = []
        for c in chunks:
            branches = c.seq.request.branches
            if branches is None or not c.reaches_end:
                out.append(c)
                continue
            if not self._make_room(sum(branch_chunk_len(b) for b in branches)):
                self.pool.free(c.slots)
                continue
            out.append(c)
            trunk_slots = self.table.read(c.seq.row, c.end)
            out += [self._branch_chunk(c.seq, i, b, trunk_slots)
                    for i, b in enumerate(branches) if branch_chunk_len(b)]
        return out

    def _branch_chunk(self, trunk: Sequence, index: int, branch: list[int],
                      trunk_slots: torch.Tensor) -> Chunk:
        """Branch `index` of a trunk computed on the trunk's slots: a sequence of its own
        (no row, no lock, nothing cached) that lives for this step."""
        start = len(trunk.token_ids)
        seq = Sequence(trunk.request, index, trunk.token_ids + branch, start + len(branch),
                       output=None, status=SeqStatus.RUNNING, num_computed=start)
        slots = self.pool.alloc(branch_chunk_len(branch))
        return Chunk(seq, start, start + slots.numel(), slots, torch.cat((trunk_slots, slots)))

    def free_branch(self, chunk: Chunk) -> None:
        """A branch chunk's own slots go back to the pool (its trunk's are the trunk's)."""
        self.pool.free(chunk.slots)

    # --- memory -------------------------------------------------------------------------
    def _make_room(self, n: int) -> bool:
        short = n - self.pool.num_free
        if short > 0:
            self.cache.evict(short)
        return self.pool.num_free >= n

    def _chunk(self, seq: Sequence, n: int) -> Chunk:
        start = seq.num_computed
        slots = self.pool.alloc(n)
        self.table.write(seq.row, start, slots)
        return Chunk(seq, start, start + n, slots)

    def cache_computed(self, seq: Sequence) -> None:
        """Put the computed part of a running sequence into the radix cache and hold it there
        (so requests arriving later reuse it while this one still runs)."""
        if seq.num_computed == seq.cached_len:
            return
        match = self.cache.share(_cache_key(seq, seq.num_computed),
                                 self.table.read(seq.row, seq.num_computed))
        if match is None:  # NoCache: the sequence keeps its own slots
            return
        self.cache.lock(match.node)
        self.cache.unlock(seq.last_node)
        self.table.write(seq.row, 0, match.slots)
        seq.last_node, seq.cached_len = match.node, match.length

    def release(self, seq: Sequence, status: SeqStatus) -> None:
        """Give back everything a running sequence holds; its computed KV goes to the cache
        (K/V computed past its tokens, rows of draft tokens it did not keep, is freed)."""
        if seq.num_computed > len(seq.token_ids):
            self.truncate(seq, len(seq.token_ids))
        self.cache.insert(_cache_key(seq, seq.num_computed), self.table.read(seq.row, seq.num_computed))
        self.cache.unlock(seq.last_node)
        self.table.free_row(seq.row)
        self.running.remove(seq)
        seq.row, seq.last_node, seq.cached_len, seq.num_computed = -1, None, 0, 0
        seq.status = status

    def retract(self, seq: Sequence) -> None:
        """Move a running sequence back to the front of the queue, keeping its tokens."""
        self.release(seq, SeqStatus.WAITING)
        self.waiting.insert(0, seq)
        self.num_retractions += 1
        self.reserve_ratio = RESERVE_RATIO_INIT

    def remove_waiting(self, seq: Sequence) -> None:
        self.waiting.remove(seq)
        self._match_len.pop(id(seq), None)
        seq.status = SeqStatus.FINISHED

    def truncate(self, seq: Sequence, length: int) -> None:
        """Drop a running sequence's K/V past `length` (jump-forward re-tokenized its tail).
        Only its own slots go back to the pool, never cached ones:

            | cached (tree) | own, kept | own, freed |
            0          cached_len    length     num_computed
        """
        if length < seq.cached_len:
            raise ValueError(f"truncate to {length} would cut cached slots (up to {seq.cached_len})")
        if seq.num_computed > length:
            self.pool.free(self.table.read(seq.row, seq.num_computed)[length:].clone())
            seq.num_computed = length

    def fork(self, parent: Sequence, child: Sequence) -> bool:
        """Start `child` running on a copy of `parent`'s computed prompt: the part the cache
        holds is shared (locked once more), the rest is copied into fresh slots. False when
        there is no row or memory; the child then waits in the queue and recomputes."""
        n = parent.num_computed
        if self.table.num_free_rows:
            self.cache_computed(parent)
        own = n - parent.cached_len
        if not self.table.num_free_rows or (own and not self._make_room(own + 1)):
            self.add(child)
            return False
        child.row = self.table.alloc_row()
        shared = self.table.read(parent.row, parent.cached_len)
        self.table.write(child.row, 0, shared)
        if own:
            slots = self.pool.alloc(own)
            self.pool.copy(slots, self.table.read(parent.row, n)[parent.cached_len:])
            self.table.write(child.row, parent.cached_len, slots)
        child.last_node, child.cached_len = parent.last_node, parent.cached_len
        self.cache.lock(child.last_node)
        child.num_computed = n
        child.status = SeqStatus.RUNNING
        self.running.append(child)
        return True

    def check_idle(self) -> None:
        """With nothing running, every slot is either free or cached (raises otherwise)."""
        if self.running:
            return
        self.cache.check()
        self.pool.check()
        if self.pool.num_free + self.cache.total_size != self.pool.num_slots:
            raise AssertionError(f"KV slots leaked: {self.pool.num_free} free + "
                                 f"{self.cache.total_size} cached != {self.pool.num_slots}")


def _cacheable_len(seq: Sequence) -> int:
    """How much of a sequence may come from the cache: all but the last token (whose logits
    are needed), and nothing past where prompt logprobs start."""
    limit = len(seq.token_ids) - 1
    start = seq.request.logprob_start
    if start is not None and seq.num_output == 0:
        limit = min(limit, max(start - 1, 0))
    return limit


def _cache_key(seq: Sequence, length: int) -> list[int]:
    """The radix key of a sequence's first `length` tokens: its token ids, moved into a range
    of their own for a LoRA request (the same tokens under another adapter have other K/V)."""
    ids = seq.token_ids[:length]
    offset = seq.request.lora_id * LORA_KEY_STRIDE
    return [t + offset for t in ids] if offset else ids


def _common_prefix_len(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n
