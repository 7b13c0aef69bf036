"""Request routers for the engine replicas (Ray Serve's pluggable `RequestRouter` API).

`PrefixAwareRouter` sends a request to the replica whose radix cache most likely holds the
longest prefix of its prompt (a `PrefixIndex` kept from the requests it routed), so shared
system prompts, few-shot examples and chat histories are computed once per replica instead of
once per request. When replicas' queues diverge by more than `imbalance_threshold`, or nothing
matches, it takes the least loaded replica instead: affinity never piles work on one replica.
`RoundRobinRouter` is the baseline the bench compares against.

Ray Serve calls `choose_replicas` with the live candidates and the pending request; it returns
ranks of replicas, best first, and Ray takes the first one in a rank whose queue has room.
The request's prompt is read from a `RoutedRequest` among the call's arguments.
"""

from __future__ import annotations

import itertools

from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

from .prefix_index import PrefixIndex
from .routed_request import RoutedRequest


def prompt_of(pending: PendingRequest | None) -> str:
    for arg in pending.args if pending is not None else ():
        if isinstance(arg, RoutedRequest):
            return arg.prompt_text
    return ""


class _RankingRouter(RequestRouter):
    """Ray's entry point; subclasses rank the live candidates for one request."""

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None
                              ) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        if pending_request is not None:
            pending_request.routing_context.should_backoff = True  # when every rank is full
        return self.rank(candidate_replicas, pending_request)

    def rank(self, candidates: list[RunningReplica], pending: PendingRequest | None
             ) -> list[list[RunningReplica]]:
        raise NotImplementedError


class PrefixAwareRouter(_RankingRouter):
    def initialize_state(self, imbalance_threshold: int = 8, min_match_chars: int = 64,
                         block_chars: int = 64, capacity_blocks: int = 8192) -> None:
        """`capacity_blocks` x `block_chars` should be about what one replica's KV pool holds
        in characters (tokens x ~4): the index forgets the oldest prefixes past it."""
        self.imbalance_threshold = imbalance_threshold
        self.min_match_chars = min_match_chars
        self.index = PrefixIndex(block_chars, capacity_blocks)

    def _queue_len(self, replica: RunningReplica) -> int:
        queue_len = self.replica_queue_len_cache.get(replica.replica_id)
        return 0 if queue_len is None else queue_len

    def rank(self, candidates: list[RunningReplica], pending: PendingRequest | None
             ) -> list[list[RunningReplica]]:
        # Least loaded first; among equals, the one whose cache holds least (new prefixes
        # spread over the replicas instead of all landing on the first).
        by_load = sorted(candidates,
                         key=lambda r: (self._queue_len(r), self.index.size(r.replica_id)))
        text = prompt_of(pending)
        loads = [self._queue_len(r) for r in by_load]
        if not text or loads[-1] - loads[0] > self.imbalance_threshold:
            return [by_load]
        matched = self.index.match(text, [r.replica_id for r in by_load])
        best = max(by_load, key=lambda r: matched[r.replica_id])  # ties: the less loaded
        if matched[best.replica_id] < min(self.min_match_chars, len(text)):
            return [by_load]
        return [[best], [r for r in by_load if r is not best]]

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID,
                          result: object) -> None:
        if text := prompt_of(pending_request):
            self.index.insert(replica_id, text)

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        super().update_replicas(replicas)
        self.index.keep_only(r.replica_id for r in replicas)

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        super().on_replica_actor_died(replica_id)
        self.index.remove_replica(replica_id)


class RoundRobinRouter(_RankingRouter):
    """Each request to the next replica in turn (the baseline for the prefix router)."""

    def initialize_state(self) -> None:
        self._turn = itertools.count()

    def rank(self, candidates: list[RunningReplica], pending: PendingRequest | None
             ) -> list[list[RunningReplica]]:
        ordered = sorted(candidates, key=lambda r: r.replica_id.unique_id)
        first = next(self._turn) % len(ordered)
        # One replica per rank: Ray takes the first rank with room, so the turn is kept
        # (one rank of all would let Ray pick the least loaded instead).
        return [[r] for r in ordered[first:] + ordered[:first]]
