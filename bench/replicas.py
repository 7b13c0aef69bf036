"""Replicas on Ray Serve: does prefix-aware routing keep the radix cache's hits?

On a local Ray cluster, the same workloads run against
  - 1 replica                      (the cache-hit ceiling: every prefix is in one cache)
  - 2 replicas, prefix-aware router (tines' PrefixAwareRouter)
  - 2 replicas, round-robin router  (the baseline)
through the frontend's RemoteBackend over the Ray Serve HTTP proxy. The cache hit rate is
cached prompt tokens / prompt tokens, summed from every response's meta_info; throughput is
programs per second. Targets (issue 21): prefix within 5 points of 1 replica, >= 1.5x round-robin.

Workloads: bench.workloads' few-shot mmlu and multi-turn chat, whose long prefix (few-shot
examples, system prompt) is the same for every program, so every replica caches it after its
first request whatever the router; and `document_chat` (defined here): each conversation asks
four questions about its own document, so only a router that keeps a conversation on one
replica finds its history cached.

    .venv/bin/python -m bench.replicas [--model PATH] [--n 32] [--workloads mmlu,multi_turn_chat]
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from typing import Any

import httpx


class TokenTally(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport that counts prompt and cached tokens in native responses."""

    def __init__(self) -> None:
        self.sync, self.async_ = httpx.HTTPTransport(), httpx.AsyncHTTPTransport()
        self.prompt_tokens = self.cached_tokens = 0
        self._lock = threading.Lock()

    def _count(self, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            return
        for item in data if isinstance(data, list) else [data]:
            meta = item.get("meta_info") if isinstance(item, dict) else None
            if isinstance(meta, dict):
                with self._lock:
                    self.prompt_tokens += meta.get("prompt_tokens", 0)
                    self.cached_tokens += meta.get("cached_tokens", 0)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.sync.handle_request(request)
        body = response.read()
        self._count(body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.async_.handle_async_request(request)
        body = await response.aread()
        self._count(body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    @property
    def hit_rate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


class DocumentChat:
    """Four questions about one document per conversation; the document is the conversation's
    own (not shared), the whole history is sent each turn."""

    NAME, TURNS, MAX_TOKENS = "document_chat", 4, 16

    @staticmethod
    def make_inputs(n: int, seed: int = 0) -> list[dict[str, Any]]:
        import random

        from bench.workloads.synth import sentence

        rng = random.Random(f"document_chat-{seed}")
        return [{"document": " ".join(sentence(rng) for _ in range(12)),
                 "questions": ["Who is this about?", "Where does it happen?",
                               "What is the most surprising detail?", "Sum it up in one line."]}
                for _ in range(n)]

    @staticmethod
    def run_tines(backend: Any, inputs: list[dict[str, Any]]) -> list[Any]:
        import tines
        from bench.workloads.common import GREEDY, answers

        @tines.program
        def chat(s, document, questions):
            s += tines.system("Answer questions about this document in one short sentence.\n\n"
                              + document)
            for i, q in enumerate(questions):
                s += tines.user(q)
                s += tines.assistant(tines.gen(f"a{i}", max_tokens=DocumentChat.MAX_TOKENS))

        states = chat.run_batch(inputs, backend=backend, progress_bar=False, **GREEDY)
        return answers(states, lambda s: [s[f"a{i}"] for i in range(DocumentChat.TURNS)])

    @staticmethod
    def check(output: Any) -> bool:
        return isinstance(output, list) and len(output) == DocumentChat.TURNS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_config(engine_options: dict[str, Any], replicas: int, router: str, workloads: list[str],
               n: int, port: int) -> dict[str, Any]:
    from ray import serve

    from bench.workloads import WORKLOADS
    from tines import RemoteBackend
    from tines.runtime.replicas.app import build_app

    serve.run(build_app(engine_options, replicas=replicas, router=router,
                        cpus_per_replica=0.5), name="tines", route_prefix="/")
    row: dict[str, Any] = {"config": f"{replicas} replica(s), {router}"}
    try:
        for name in workloads:
            module = DocumentChat if name == DocumentChat.NAME else WORKLOADS[name]
            tally = TokenTally()
            backend = RemoteBackend(f"http://127.0.0.1:{port}", transport=tally)
            t0 = time.perf_counter()
            answers = module.run_tines(backend, module.make_inputs(n))
            seconds = time.perf_counter() - t0
            row[name] = {"hit_rate": tally.hit_rate, "programs_per_s": n / seconds,
                         "valid": sum(map(module.check, answers))}
    finally:
        serve.delete("tines")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=32, help="programs per workload")
    ap.add_argument("--workloads", default="mmlu,multi_turn_chat,document_chat")
    ap.add_argument("--threads-per-replica", type=int, default=1)
    args = ap.parse_args()
    import ray
    from ray import serve

    workloads = args.workloads.split(",")
    engine_options = dict(model=args.model, num_threads=args.threads_per_replica,
                          max_queue=100_000)
    ray.init(include_dashboard=False, log_to_driver=False)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    rows = [run_config(engine_options, r, router, workloads, args.n, port)
            for r, router in ((1, "prefix"), (2, "prefix"), (2, "round_robin"))]
    serve.shutdown()
    ray.shutdown()
    print(f"ray {ray.__version__}; {args.n} programs per workload; hit rate = cached / prompt tokens")
    print(f"{'config':<28}" + "".join(f"{w + ' hit':>22}{w + ' prog/s':>24}" for w in workloads))
    for row in rows:
        print(f"{row['config']:<28}" + "".join(
            f"{row[w]['hit_rate']:>21.1%} {row[w]['programs_per_s']:>23.2f}" for w in workloads))
    single, prefix, rr = rows
    for w in workloads:
        print(f"{w}: prefix vs 1 replica {100 * (prefix[w]['hit_rate'] - single[w]['hit_rate']):+.1f} "
              f"points; prefix / round-robin hit rate "
              f"{prefix[w]['hit_rate'] / max(rr[w]['hit_rate'], 1e-9):.2f}x; valid "
              f"{prefix[w]['valid']}/{args.n} (prefix), {rr[w]['valid']}/{args.n} (round-robin)")


if __name__ == "__main__":
    main()
