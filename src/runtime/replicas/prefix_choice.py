"""The prefix router's decision, as a pure function of what it knows about each replica.

    rank = rank_replicas(replicas, loads, cache_sizes, matched, prompt_chars, policy)

- loads diverge by more than `imbalance_threshold`: least loaded first (affinity piles at most
  that many extra requests on one replica);
- the longest match is worth following (at least `min_match_chars`, or the whole prompt if it
  is shorter, and at least `min_match_fraction` of the prompt): that replica, then the rest;
  unless it is a short prefix several prompts share (a system prompt: under
  `recompute_shared_below_chars` more than the least loaded replica holds) and that replica is
  busier: then load decides, and the shared prefix is computed again where there is room;
- else the prompt is a new prefix: the replica whose cache holds least first, so that new
  prefixes partition evenly over the caches (as Ray Serve LLM's PrefixCacheAffinityRouter
  sends them to its smallest tenant).

The fraction matters where prompts share a short header and then part: every MMLU subject's
prompt opens with the same 66-character line, which alone would pull each new subject to the
replica that first saw any subject.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

R = TypeVar("R", bound=Hashable)


@dataclass(frozen=True, slots=True)
class AffinityPolicy:
    imbalance_threshold: int = 8  # queue-length spread past which load decides alone
    min_match_chars: int = 64
    min_match_fraction: float = 0.1  # Ray Serve LLM's match_rate_threshold default
    # A prefix several prompts share (a system prompt) that is shorter than this is computed
    # again on a less loaded replica instead of queueing behind the one that has it.
    recompute_shared_below_chars: int = 1024

    def __post_init__(self) -> None:
        if self.imbalance_threshold < 0 or self.min_match_chars < 0:
            raise ValueError("imbalance_threshold and min_match_chars must be >= 0")
        if not 0.0 <= self.min_match_fraction <= 1.0:
            raise ValueError(f"min_match_fraction must be in [0, 1], got {self.min_match_fraction}")

    def worth_following(self, matched_chars: int, prompt_chars: int) -> bool:
        return (matched_chars > 0 and matched_chars >= min(self.min_match_chars, prompt_chars)
                and matched_chars >= self.min_match_fraction * prompt_chars)


def rank_replicas(replicas: Sequence[R], loads: Mapping[R, int], cache_sizes: Mapping[R, int],
                  matched: Mapping[R, int], prompt_chars: int, policy: AffinityPolicy,
                  shared: Callable[[R], bool] = lambda r: False) -> list[list[R]]:
    """Ranks of replicas, best first. Ray takes the first rank with a replica that has room,
    and within a rank the least loaded (ties: the first listed), so a preference is a rank of
    its own. `matched[r]` is how many leading prompt characters r probably caches;
    `prompt_chars` 0 means no prompt; `shared(r)`: r's match ends where several prompts
    part (a shared prefix, not one conversation's history)."""
    by_load = sorted(replicas, key=lambda r: (loads[r], cache_sizes[r]))
    if not by_load:
        return []
    if not prompt_chars or loads[by_load[-1]] - loads[by_load[0]] > policy.imbalance_threshold:
        return [by_load]
    best = max(by_load, key=lambda r: matched.get(r, 0))  # ties: the less loaded
    if policy.worth_following(matched.get(best, 0), prompt_chars):
        least = by_load[0]
        advantage = matched.get(best, 0) - matched.get(least, 0)
        if (loads[least] < loads[best] and advantage < policy.recompute_shared_below_chars
                and shared(best)):
            return [by_load]  # a short shared prefix: cheaper to compute again than to wait for
        return [[best], [r for r in by_load if r != best]]
    by_size = sorted(replicas, key=lambda r: (cache_sizes[r], loads[r]))
    return [[by_size[0]], by_size[1:]]
