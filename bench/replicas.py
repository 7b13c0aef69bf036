"""Replicas on Ray Serve: does prefix-aware routing keep the radix cache's hits?

On a local Ray cluster, each workload runs on a fresh deployment of
  - 1 replica                      (the cache-hit ceiling: every prefix is in one cache)
  - 2 replicas, prefix-aware router (tines' PrefixAwareRouter)
  - 2 replicas, round-robin router  (the baseline)
through the frontend's RemoteBackend over the Ray Serve HTTP proxy. The cache hit rate is
cached prompt tokens / prompt tokens, summed from every response's meta_info; throughput is
programs per second. Targets (issue 21): prefix within 5 points of 1 replica, >= 1.5x round-robin.
"distinct prompt heads per replica" counts the different first 256 characters each replica
served: for mmlu_subjects, how many subjects' prefixes each replica had to cache.

Two regimes; the output names the one it ran:
- unbounded (default): every replica's KV pool is the engine's default cap, 65,536 tokens, far
  more than any workload here needs. Nothing is evicted, so round-robin pays one extra
  computation of each shared prefix per replica and then hits as often as the prefix router.
  This regime shows the router does no harm, not that it helps.
- bounded (`--kv-tokens C`): each of the 2 replicas gets a pool of C tokens (`kv_tokens`,
  exact; `max_kv_tokens` is floored at 1,024 and capped by a memory fraction), the single
  replica 2C (the pair's KV memory in one cache: the ceiling). With many distinct prefixes,
  round-robin makes each replica cache every prefix (twice the working set) and LRU evicts
  them before they are reused; the prefix router partitions them. `build_app` sizes the
  router's index from C.

Workloads (bench.workloads' `mmlu`, `multi_turn_chat`; the others in bench/replicas_workloads.py):
- mmlu_subjects: S=10 subjects, each its own ~1,000-token 5-shot prefix, ~200-token questions
  in a random order (a cyclic one would hand round-robin a partition when S is even), 8
  programs in flight. 10k prefix tokens are ~1.6x one pool of C=6,144 (round-robin thrashes),
  ~0.8x of it per replica when partitioned, ~0.8x the single replica's 2C. At run_batch's 32
  in flight the requests' own tokens plus most prefixes would be locked at once, more than C,
  and the bench would measure admission stalls instead of routing.
- chat_sessions: multi_turn_chat's conversations (~60-token system prompt, four turns of ~25
  user tokens and at most 32 reply tokens) with N open at once and 8 requests in flight, so
  each history must outlive ~N other turns (users think between turns).
- multi_turn_chat: run_batch's 32 conversations at once, each turn right after the last.

Measured (default model; 2 CPU cores shared with other jobs, so prog/s is noisy; n=100;
hit rate of 1 replica / prefix / round-robin; ratio = prefix / round-robin hit rate):
  regime                  workload             hit rate %          ratio  vs 1   prog/s
  bounded C=6,144         mmlu_subjects        68.0 / 65.2 / 40.2  1.62x  -2.8   1.40/1.83/1.45
  bounded C=6,144         chat_sessions (44)   84.3 / 84.3 / 67.4  1.25x  -0.0   0.59/0.74/0.63
  bounded C=6,144         multi_turn_chat      84.4 / 83.5 / 65.3  1.28x  -0.8   1.21/1.20/0.86
  bounded C=3,072, imb 4  chat_sessions (44)   84.3 / 84.0 / 66.6  1.26x  -0.3   0.67/0.47/0.48
  bounded C=6,144, imb 4  mmlu_subjects        68.7 / 60.4 / 39.2  1.54x  -8.3   1.38/1.43/1.45
  unbounded               mmlu_subjects        75.3 / 75.3 / 67.0  1.12x  -0.0   2.01/2.60/2.46
  unbounded               chat_sessions (36)   84.4 / 84.4 / 66.0  1.28x  -0.0   0.69/0.65/0.77
  unbounded               multi_turn_chat      84.3 / 83.9 / 65.3  1.28x  -0.4   1.12/0.95/0.91
  bounded C=8,192, n=48   document_chat        76.3 / 72.4 / 47.6  1.52x  -3.9   0.31/0.47/0.29
  unbounded, n=48         document_chat        76.3 / 73.4 / 54.0  1.36x  -2.9   0.31/0.43/0.34
(imb 4: --imbalance-threshold 4. The unbounded multi_turn_chat row predates prefix_choice.py,
whose change does not touch chat: a system prompt is over 10% of a first turn. The C=6,144
mmlu_subjects and unbounded rows ran before each workload got a fresh deployment; none of them
followed a workload with the same prompts.)
(The two document_chat rows: a 2-core AVX2 EPYC, 2026-12-07, after the rows above; a second
bounded run: 76.3 / 74.3 / 46.4, 1.60x, -2.0, 0.31/0.47/0.31.)
mmlu_subjects and document_chat meet the target only where the caches are bounded, as
expected: unbounded, round-robin loses only the turns that land away from their history
(document_chat's ceiling there, 1 replica / round-robin, is 76.3 / 54.0 = 1.41x).
multi_turn_chat and chat_sessions stay at ~1.27x in every regime, and no router could do
better than 1.28x: one replica, every history cached, hits 84%. Round-robin's loss there is
where turns land, not eviction. It hits the system prompt always and a turn's whole history
only when the turn lands where the previous one did (half the time): expected ~67% of prompt
tokens against the prefix router's ~84%, as measured. Evicting histories would lower it further, but the short histories (~60-token system
prompt, replies of at most 32 tokens) of even 44 open conversations fit a replica at C=3,072
(smaller pools not measured). The rows above ran before the router computed a short shared
prefix again (prefix_choice.py's `recompute_shared_below_chars`): with 8 in flight it sent every
chat_sessions conversation to the replica that first cached the system prompt (the load gap
never passed 8; 1 distinct head). With that rule, bounded C=6,144, n=100, same command:
chat_sessions 84.2 / 84.2 / 66.7 (1.26x, -0.1), both replicas serving conversations ([1, 1]),
0.65 / 0.83 / 0.85 prog/s; mmlu_subjects 68.2 / 66.1 / 41.6 (1.59x, -2.0), 1.40 / 2.61 / 1.90
prog/s.

    .venv/bin/python -m bench.replicas [--model PATH] [--n 32] [--workloads mmlu,multi_turn_chat]
    .venv/bin/python -m bench.replicas --kv-tokens 6144 --n 100 \
        --workloads mmlu_subjects,chat_sessions,multi_turn_chat
    .venv/bin/python -m bench.replicas --kv-tokens 8192 --n 48 --workloads document_chat
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from typing import Any

import httpx


class TokenTally(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport that counts prompt and cached tokens in native responses, and which
    prompt heads (first HEAD_CHARS characters: an mmlu_subjects subject's header and first
    shot) each replica served, read from the x-tines-replica header."""

    HEAD_CHARS = 256

    def __init__(self, replica_header: str = "x-tines-replica",
                 max_in_flight: int | None = None) -> None:
        self.replica_header = replica_header
        # Requests sent at once from blocking callers (run_batch's threads); None: no cap.
        self._in_flight = (threading.BoundedSemaphore(max_in_flight) if max_in_flight
                           else contextlib.nullcontext())
        self.sync, self.async_ = httpx.HTTPTransport(), httpx.AsyncHTTPTransport()
        self.prompt_tokens = self.cached_tokens = 0
        self.heads: dict[str, set[str]] = {}  # replica -> prompt heads it served
        self._lock = threading.Lock()

    def _count(self, request: httpx.Request, replica: str | None, body: bytes) -> None:
        from tines.runtime.replicas.routed_request import prompt_text_of

        try:
            prompt = prompt_text_of(request.content)
        except httpx.RequestNotRead:  # a streamed request body: no prompt to read
            prompt = ""
        if replica is not None and prompt:
            with self._lock:
                self.heads.setdefault(replica, set()).add(prompt[:self.HEAD_CHARS])
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
        with self._in_flight:
            response = self.sync.handle_request(request)
            body = response.read()
        self._count(request, response.headers.get(self.replica_header), body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.async_.handle_async_request(request)
        body = await response.aread()
        self._count(request, response.headers.get(self.replica_header), body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    @property
    def hit_rate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def heads_per_replica(self) -> list[int]:
        """How many distinct prompt heads each replica served, most first."""
        return sorted((len(h) for h in self.heads.values()), reverse=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIGS = ((1, "prefix"), (2, "prefix"), (2, "round_robin"))  # single (ceiling), tested, baseline
CONCURRENCY = 8  # mmlu_subjects' programs, chat_sessions' requests in flight (module docstring)


def workload_of(name: str, num_subjects: int, open_chats: int) -> Any:
    from bench.replicas_workloads import ChatSessions, DocumentChat, MmluSubjects
    from bench.workloads import WORKLOADS

    if name == DocumentChat.NAME:
        return DocumentChat
    if name == MmluSubjects.NAME:
        return MmluSubjects(num_subjects, CONCURRENCY)
    if name == ChatSessions.NAME:
        return ChatSessions(open_chats, CONCURRENCY)
    return WORKLOADS[name]


def replica_options(engine_options: dict[str, Any], replicas: int, kv_tokens: int | None
                    ) -> dict[str, Any]:
    """Bounded: each of 2 replicas gets `kv_tokens`, a single replica twice that (the same
    total KV memory). Unbounded: the engine's default cap for every replica."""
    if kv_tokens is None:
        return engine_options
    return {**engine_options, "kv_tokens": kv_tokens * 2 // replicas}


def run_config(engine_options: dict[str, Any], replicas: int, router: str,
               router_options: dict[str, Any], workloads: dict[str, Any], n: int, port: int
               ) -> dict[str, Any]:
    """Each workload on a freshly deployed application: a workload never finds another's
    prompts cached (chat_sessions and multi_turn_chat send the same conversations)."""
    from ray import serve

    from tines import RemoteBackend
    from tines.runtime.replicas.app import REPLICA_HEADER, build_app

    row: dict[str, Any] = {"config": f"{replicas} replica(s), {router}"}
    for name, workload in workloads.items():
        serve.run(build_app(engine_options, replicas=replicas, router=router,
                            router_options=router_options if router == "prefix" else None,
                            cpus_per_replica=0.5), name="tines", route_prefix="/")
        try:
            tally = TokenTally(REPLICA_HEADER.decode(), getattr(workload, "max_in_flight", None))
            backend = RemoteBackend(f"http://127.0.0.1:{port}", transport=tally)
            t0 = time.perf_counter()
            answers = workload.run_tines(backend, workload.make_inputs(n))
            seconds = time.perf_counter() - t0
            row[name] = {"hit_rate": tally.hit_rate, "programs_per_s": n / seconds,
                         "valid": sum(map(workload.check, answers)),
                         "heads": tally.heads_per_replica()}
        finally:
            serve.delete("tines")
    return row


def regime(kv_tokens: int | None) -> str:
    if kv_tokens is None:
        return "unbounded: every replica's KV pool is the engine default cap (65,536 tokens)"
    return (f"bounded: C = {kv_tokens} KV tokens per replica of 2; the single replica gets "
            f"2C = {2 * kv_tokens}")


def report(rows: list[dict[str, Any]], workloads: list[str], n: int) -> None:
    print(f"{'config':<28}" + "".join(f"{w + ' hit':>22}{w + ' prog/s':>24}" for w in workloads))
    for row in rows:
        print(f"{row['config']:<28}" + "".join(
            f"{row[w]['hit_rate']:>21.1%} {row[w]['programs_per_s']:>23.2f}" for w in workloads))
    single, prefix, rr = rows
    for w in workloads:
        print(f"{w}: prefix vs 1 replica {100 * (prefix[w]['hit_rate'] - single[w]['hit_rate']):+.1f} "
              f"points; prefix / round-robin hit rate "
              f"{prefix[w]['hit_rate'] / max(rr[w]['hit_rate'], 1e-9):.2f}x; throughput "
              f"prefix / round-robin {prefix[w]['programs_per_s'] / rr[w]['programs_per_s']:.2f}x;"
              f" valid {prefix[w]['valid']}/{n} (prefix), {rr[w]['valid']}/{n} (round-robin)")
        print(f"{w}: distinct prompt heads ({TokenTally.HEAD_CHARS} chars) per replica: "
              + "; ".join(f"{row['config']} {row[w]['heads']}" for row in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=32, help="programs per workload")
    ap.add_argument("--workloads", default="mmlu,multi_turn_chat,document_chat")
    ap.add_argument("--kv-tokens", type=int, default=None,
                    help="bounded regime: KV pool tokens per replica of 2 (C); unset: unbounded")
    ap.add_argument("--subjects", type=int, default=10, help="mmlu_subjects' subject count (S)")
    ap.add_argument("--open-chats", type=int, default=36,
                    help="chat_sessions' conversations open at once")
    ap.add_argument("--imbalance-threshold", type=int, default=None,
                    help="the prefix router's queue-length spread past which load decides "
                         "(default: PrefixAwareRouter's)")
    ap.add_argument("--threads-per-replica", type=int, default=1)
    args = ap.parse_args()
    import ray
    from ray import serve

    workloads = {w: workload_of(w, args.subjects, args.open_chats)
                 for w in args.workloads.split(",")}
    engine_options = dict(model=args.model, num_threads=args.threads_per_replica,
                          max_queue=100_000)
    ray.init(include_dashboard=False, log_to_driver=False)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    router_options = ({} if args.imbalance_threshold is None
                      else {"imbalance_threshold": args.imbalance_threshold})
    rows = [run_config(replica_options(engine_options, r, args.kv_tokens), r, router,
                       router_options, workloads, args.n, port) for r, router in CONFIGS]
    serve.shutdown()
    ray.shutdown()
    print(f"ray {ray.__version__}; {args.n} programs per workload; hit rate = cached / prompt "
          f"tokens; mmlu_subjects: S = {args.subjects}, {CONCURRENCY} programs in flight; "
          f"chat_sessions: {args.open_chats} open, {CONCURRENCY} requests in flight")
    print(f"regime: {regime(args.kv_tokens)}; prefix router options: "
          f"{router_options or 'defaults'}")
    report(rows, list(workloads), args.n)


if __name__ == "__main__":
    main()
