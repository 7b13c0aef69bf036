"""Request routers for the engine replicas (Ray Serve's pluggable `RequestRouter` API).

`PrefixAwareRouter` sends a request to the replica whose radix cache most likely holds the
longest prefix of its prompt (a `PrefixIndex` kept from the requests it routed), so shared
system prompts, few-shot examples and chat histories are computed once per replica instead of
once per request. When replicas' queues diverge by more than `imbalance_threshold` it takes the
least loaded replica (affinity piles at most that many extra requests on one replica: with
fewer requests in flight than it, a shared system prompt takes every new conversation to the
replica that cached it first, bench/replicas.py); when no replica holds enough
of the prompt, the one whose cache holds least (prefix_choice.py has the decision).
`RoundRobinRouter` is the baseline the bench compares against.

Ray Serve calls `choose_replicas` with the live candidates and the pending request; it returns
ranks of replicas, best first, and Ray takes the first one in a rank whose queue has room.
The request's prompt is read from a `RoutedRequest` among the call's arguments.
"""

from __future__ import annotations

import itertools
from typing import Any

from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

from .prefix_choice import AffinityPolicy, rank_replicas
from .prefix_index import PrefixIndex
from .routed_request import RoutedRequest

CHARS_PER_TOKEN = 4  # English BPE text: the default model's tokenizer gives 4.3 on the benches
DEFAULT_KV_TOKENS = 65536  # EngineConfig.max_kv_tokens, the pool's cap when nothing sets one


def index_capacity_blocks(kv_tokens: int, block_chars: int = 64) -> int:
    """How many `block_chars` blocks a replica's index keeps so that it forgets prefixes about
    when a KV pool of `kv_tokens` tokens evicts them: kv_tokens x CHARS_PER_TOKEN characters."""
    if kv_tokens < 1 or block_chars < 1:
        raise ValueError("kv_tokens and block_chars must be positive")
    return max(1, kv_tokens * CHARS_PER_TOKEN // block_chars)


def replica_kv_tokens(engine_options: dict[str, Any]) -> int:
    """The KV pool size (tokens) an engine built from `engine_options` has at most:
    `kv_tokens` when set, else `max_kv_tokens` (a memory fraction may make it smaller)."""
    for name in ("kv_tokens", "max_kv_tokens"):
        if isinstance(value := engine_options.get(name), int) and value > 0:
            return value
    return DEFAULT_KV_TOKENS


def prefix_router_options(engine_options: dict[str, Any],
                          router_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """PrefixAwareRouter's keyword arguments for engines built from `engine_options`: the
    index holds as many characters per replica as one KV pool holds tokens x CHARS_PER_TOKEN,
    unless `router_options` sets `capacity_blocks` itself."""
    options = dict(router_options or {})
    if options.get("capacity_blocks") is None:
        options["capacity_blocks"] = index_capacity_blocks(replica_kv_tokens(engine_options),
                                                           options.get("block_chars", 64))
    return options


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
                         min_match_fraction: float = 0.1, recompute_shared_below_chars: int = 1024,
                         block_chars: int = 64, capacity_blocks: int | None = None) -> None:
        """`capacity_blocks` x `block_chars` should be about what one replica's KV pool holds
        in characters (tokens x ~4): the index forgets the oldest prefixes past it, as the
        radix cache evicts them. `build_app` sets it from the engines' pool size; None means
        the engine's default cap (`index_capacity_blocks(DEFAULT_KV_TOKENS)`). The rest is
        the `AffinityPolicy` (prefix_choice.py)."""
        if capacity_blocks is None:
            capacity_blocks = index_capacity_blocks(DEFAULT_KV_TOKENS, block_chars)
        self.policy = AffinityPolicy(imbalance_threshold, min_match_chars, min_match_fraction,
                                     recompute_shared_below_chars)
        self.index = PrefixIndex(block_chars, capacity_blocks)

    def _queue_len(self, replica: RunningReplica) -> int:
        queue_len = self.replica_queue_len_cache.get(replica.replica_id)
        return 0 if queue_len is None else queue_len

    def rank(self, candidates: list[RunningReplica], pending: PendingRequest | None
             ) -> list[list[RunningReplica]]:
        by_id = {r.replica_id: r for r in candidates}
        text = prompt_of(pending)
        matched = self.index.match(text, by_id) if text else {}
        ranks = rank_replicas(
            list(by_id), {i: self._queue_len(r) for i, r in by_id.items()},
            {i: self.index.size(i) for i in by_id},
            matched, len(text), self.policy,
            shared=lambda i: self.index.branches_after(i, text, matched[i]))
        return [[by_id[i] for i in rank] for rank in ranks]

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
