"""The engine's counters and the immutable stats snapshot the engine thread publishes.

`Counters` are written only by the engine thread. After each step and each inbox drain it
builds a `MappingProxyType` snapshot; `Engine.stats()` on any thread reads the latest one and
never touches the scheduler, pool or cache itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .latency import LatencyHistogram

if TYPE_CHECKING:
    from .core import EngineCore


@dataclass(slots=True)
class Counters:
    num_requests: int = 0
    num_finished: int = 0
    num_aborted: int = 0
    num_failed: int = 0  # failed alone inside a step (their own sampling, grammar or text)
    prompt_tokens: int = 0  # prompt tokens of admitted requests
    prefill_tokens_computed: int = 0  # tokens run through the model in chunks longer than 1
    decode_tokens_computed: int = 0  # tokens run as single-token decodes
    generated_tokens: int = 0
    forced_tokens: int = 0  # appended by jump-forward
    draft_tokens: int = 0  # speculative draft tokens verified (speculation.py)
    draft_tokens_accepted: int = 0
    grammar_masks_overlapped: int = 0  # computed on the worker during the forward
    # the engine thread's time on grammar masks after the forward: waiting for the worker,
    # or computing the rows it did not (mask_prefetch.py)
    grammar_mask_wait_seconds: float = 0.0
    steps: int = 0
    forward_seconds: float = 0.0
    ttft: LatencyHistogram = field(default_factory=LatencyHistogram)  # bounded


def snapshot(core: EngineCore) -> Mapping[str, Any]:
    """Load, memory and cache figures, as an immutable mapping (engine thread only)."""
    c, sched = core.counters, core.scheduler
    cache, pool = sched.cache, sched.pool
    looked_up = cache.hit_tokens + cache.miss_tokens
    ttft = c.ttft.summary()
    return MappingProxyType({
        "running": len(sched.running),
        "waiting": len(sched.waiting),
        "kv_slots_total": pool.num_slots,
        "kv_slots_used": pool.num_used,
        "kv_slots_cached": cache.total_size,
        "kv_slots_protected": cache.protected_size,  # cached slots locked by requests
        "kv_pool_bytes": pool.nbytes,  # the cap
        "kv_pool_touched_bytes": pool.touched_bytes,  # resident: the most slots held at once
        "cache_hit_tokens": cache.hit_tokens,
        "cache_hit_rate": cache.hit_tokens / looked_up if looked_up else 0.0,
        "evicted_tokens": cache.evicted_tokens,
        "retractions": sched.num_retractions,
        "num_requests": c.num_requests,
        "num_finished": c.num_finished,
        "num_aborted": c.num_aborted,
        "num_failed": c.num_failed,
        "prompt_tokens": c.prompt_tokens,
        "prefill_tokens_computed": c.prefill_tokens_computed,
        "decode_tokens_computed": c.decode_tokens_computed,
        "generated_tokens": c.generated_tokens,
        "forced_tokens": c.forced_tokens,
        "draft_tokens": c.draft_tokens,
        "draft_tokens_accepted": c.draft_tokens_accepted,
        "grammar_masks_overlapped": c.grammar_masks_overlapped,
        "grammar_mask_wait_seconds": c.grammar_mask_wait_seconds,
        "steps": c.steps,
        "forward_seconds": c.forward_seconds,  # in the model runner's forward
        "ttft_count": ttft.count,
        "ttft_sum_seconds": ttft.sum,
        "ttft_buckets": ttft.buckets,  # ((upper bound s, cumulative count), ...)
    })


def process_rss_bytes() -> int:
    """Resident memory of this process (0 where /proc is absent)."""
    import os

    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
