"""Prometheus metrics of one server: engine figures read at scrape time, request timings
observed as requests finish.

Names follow vLLM's and SGLang's (`tines:` prefix). Gauges and token counters come from
`Engine.stats()` on every scrape, so they are never stale and cost nothing between scrapes.
The KV figures say where every pool slot is: `kv_slots_used` = cached (radix tree, reusable)
+ held by running requests; at idle `kv_slots_request_held` and `kv_slots_locked` are 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..engine.engine import Engine

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                    7.5, 10.0, 20.0, 40.0, 80.0)
_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                  0.75, 1.0, 2.5)


class EngineCollector(Collector):
    """Reads `engine.stats()` when scraped."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        s = self.engine.stats()
        gauges = {
            "num_requests_running": ("Requests decoding or prefilling now.", s["running"]),
            "num_requests_waiting": ("Requests queued for admission.", s["waiting"]),
            "kv_slots_total": ("KV pool size in token slots.", s["kv_slots_total"]),
            "kv_slots_used": ("KV slots not free (cached or held by requests).", s["kv_slots_used"]),
            "kv_slots_cached": ("KV slots held by the radix cache.", s["kv_slots_cached"]),
            "kv_slots_locked": ("Cached KV slots locked by running requests.",
                                s.get("kv_slots_protected", 0)),
            "kv_slots_request_held": ("KV slots owned by running requests outside the cache.",
                                      s["kv_slots_used"] - s["kv_slots_cached"]),
            "kv_usage_ratio": ("Used share of the KV pool (0..1).",
                               s["kv_slots_used"] / max(1, s["kv_slots_total"])),
            "cache_hit_rate": ("Share of prompt tokens found in the radix cache.", s["cache_hit_rate"]),
            "kv_pool_bytes": ("Memory the KV pool holds (K and V of every slot).",
                              kv_pool_bytes(self.engine, s)),
            "process_resident_memory_bytes": ("The server process's resident memory (RSS).",
                                              rss_bytes(s)),
        }
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(f"tines:{name}", doc, value=value)
        counters = {
            "prompt_tokens": ("Prompt tokens of admitted requests.", s["prompt_tokens"]),
            "generation_tokens": ("Tokens generated (sampled or forced).", s["generated_tokens"]),
            "cache_hit_tokens": ("Prompt tokens served from the radix cache.", s["cache_hit_tokens"]),
            "engine_requests": ("Requests the engine accepted.", s["num_requests"]),
            "engine_requests_aborted": ("Requests aborted before their end.", s["num_aborted"]),
            "retractions": ("Running sequences sent back to the queue for memory.", s["retractions"]),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(f"tines:{name}", doc, value=value)
        if "ttft_buckets" in s:  # the engine's bounded histogram (cumulative buckets)
            buckets = [(repr(float(le)), n) for le, n in s["ttft_buckets"]]
            yield HistogramMetricFamily(
                "tines:engine_time_to_first_token_seconds",
                "From the engine accepting a request to its first sampled token (no HTTP, no "
                "tokenization).", buckets=buckets + [("+Inf", s["ttft_count"])],
                sum_value=s["ttft_sum_seconds"])


def kv_pool_bytes(engine: Engine, stats: dict) -> int:
    """The engine's own figure when `stats()` has it, else the pool tensors' size."""
    if "kv_pool_bytes" in stats:
        return int(stats["kv_pool_bytes"])
    pool = engine.pool
    return sum(int(getattr(t, "nbytes", 0)) for t in (getattr(pool, "k", None), getattr(pool, "v", None)))


def rss_bytes(stats: dict) -> int:
    """The engine's own figure when `stats()` has it, else read from /proc (0 off Linux)."""
    for key in ("rss_bytes", "process_rss_bytes"):
        if key in stats:
            return int(stats[key])
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ServerMetrics:
    """One registry per app (tests run several apps in one process)."""

    def __init__(self, engine: Engine):
        prometheus_client.disable_created_metrics()
        self.registry = CollectorRegistry()
        self.registry.register(EngineCollector(engine))
        r = self.registry
        self.ttft = Histogram("tines:time_to_first_token_seconds",
                              "From request arrival to its first generated text.",
                              buckets=_LATENCY_BUCKETS, registry=r)
        self.tpot = Histogram("tines:time_per_output_token_seconds",
                              "Mean time between output tokens after the first, per request.",
                              buckets=_TOKEN_BUCKETS, registry=r)
        self.e2e = Histogram("tines:e2e_request_latency_seconds", "From arrival to the last token.",
                             buckets=_LATENCY_BUCKETS, registry=r)
        self.finished = Counter("tines:requests", "Finished generation requests.",
                                ["endpoint", "finish_reason"], registry=r)
        self.errors = Counter("tines:http_errors", "Error responses.", ["status"], registry=r)

    def observe(self, endpoint: str, finish_reason: str, ttft: float | None, e2e: float,
                num_output: int, decode_seconds: float | None) -> None:
        self.finished.labels(endpoint, finish_reason).inc()
        self.e2e.observe(e2e)
        if ttft is not None:
            self.ttft.observe(ttft)
        if decode_seconds is not None and num_output > 1:
            self.tpot.observe(decode_seconds / (num_output - 1))

    def drain_engine(self) -> None:
        """Nothing to drain: the engine keeps its TTFTs in a bounded histogram that
        `EngineCollector` reads from `Engine.stats()` at scrape time."""

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
