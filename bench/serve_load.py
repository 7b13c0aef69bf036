"""`tines serve` under load over loopback: requests/s and time-to-first-token at 1, 8 and 32
concurrent streaming clients.

The server runs as its own process (`tines serve`, the default model unless --model); each
client is an asyncio task with one keep-alive connection sending streaming chat completions
one after another (distinct questions, greedy, exactly --max-tokens tokens each). TTFT is what
the client sees: from sending the request to the first content chunk. Each level also runs on
an in-process Engine (no HTTP, same asyncio client shape) right after, as the peer, so the
table shows what serving over HTTP costs.

    .venv/bin/python -m bench.serve_load [--model PATH] [--max-tokens 32] [--levels 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

import httpx

TOPICS = ["rivers", "volcanoes", "bees", "the moon", "bread", "chess", "glaciers", "owls", "copper",
          "tides", "maple trees", "comets", "salt", "bridges", "penguins", "clouds"]


def question(i: int) -> str:
    return f"Question {i}: tell me one fact about {TOPICS[i % len(TOPICS)]}."


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


class Result:
    def __init__(self, concurrency: int, wall: float, ttfts: list[float], tokens: int):
        self.concurrency, self.wall, self.ttfts, self.tokens = concurrency, wall, ttfts, tokens

    @property
    def rps(self) -> float:
        return len(self.ttfts) / self.wall

    def row(self, label: str) -> str:
        return (f"| {label:<10} | {self.concurrency:>7} | {len(self.ttfts):>8} | {self.rps:>8.2f} | "
                f"{self.tokens / self.wall:>9.1f} | {statistics.median(self.ttfts) * 1e3:>11.0f} | "
                f"{percentile(self.ttfts, 99) * 1e3:>11.0f} |")


async def http_level(url: str, model: str, concurrency: int, per_client: int, max_tokens: int) -> Result:
    ttfts: list[float] = []
    tokens = 0

    async def client(c: int) -> None:
        nonlocal tokens
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            for r in range(per_client):
                body = {"model": model, "messages": [{"role": "user", "content": question(c * per_client + r)}],
                        "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True, "stream": True,
                        "stream_options": {"include_usage": True}}
                t0 = time.perf_counter()
                first = None
                async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
                    resp.raise_for_status()
                    async for line in resp.aiter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        chunk = json.loads(line[6:])
                        if first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                            first = time.perf_counter() - t0
                        if chunk.get("usage"):
                            tokens += chunk["usage"]["completion_tokens"]
                ttfts.append(first if first is not None else time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(concurrency)))
    return Result(concurrency, time.perf_counter() - t0, ttfts, tokens)


async def engine_level(engine, concurrency: int, per_client: int, max_tokens: int) -> Result:
    from tines.runtime.sampling_params import SamplingParams

    params = SamplingParams(max_new_tokens=max_tokens, temperature=0, ignore_eos=True)
    ttfts: list[float] = []
    tokens = 0

    async def client(c: int) -> None:
        nonlocal tokens
        for r in range(per_client):
            prompt = engine.chat_template.render([{"role": "user", "content": question(c * per_client + r)}])
            t0 = time.perf_counter()
            first = None
            async for d in engine.astream(prompt, params):
                if first is None and d.text:
                    first = time.perf_counter() - t0
                if d.output is not None:
                    tokens += d.output.num_completion_tokens
            ttfts.append(first if first is not None else time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(concurrency)))
    return Result(concurrency, time.perf_counter() - t0, ttfts, tokens)


def start_server(model: str, port: int, kv_tokens: int, timeout: float = 120) -> subprocess.Popen:
    """`tines serve` in its own process, once /health answers (SystemExit if it does not
    within `timeout` seconds, or exits)."""
    cmd = [sys.executable, "-m", "tines.runtime.cli", "serve", "--model", model, "--port", str(port),
           "--kv-tokens", str(kv_tokens)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"`{' '.join(cmd)}` exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the server did not come up in {timeout:.0f} s")
        time.sleep(0.3)


def per_client(concurrency: int, args: argparse.Namespace) -> int:
    return max(args.requests_per_client, -(-args.min_requests // concurrency))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a path or known name (default: the default model)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--requests-per-client", type=int, default=3)
    ap.add_argument("--min-requests", type=int, default=8, help="at least this many requests per level")
    ap.add_argument("--kv-tokens", type=int, default=16384)
    ap.add_argument("--no-peer", action="store_true", help="skip the in-process engine runs")
    args = ap.parse_args()
    from tines.runtime.models.registry import resolve_model

    model = str(args.model if args.model and os.path.exists(args.model) else resolve_model(args.model))
    levels = [int(x) for x in args.levels.split(",")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = start_server(model, port, args.kv_tokens)
    engine = None
    rows: list[str] = []
    try:
        served = httpx.get(url + "/v1/models").json()["data"][0]["id"]
        asyncio.run(http_level(url, served, 2, 1, 4))  # warm-up
        if not args.no_peer:
            from tines.runtime.engine.engine import Engine

            engine = Engine(model, kv_tokens=args.kv_tokens)
            asyncio.run(engine_level(engine, 2, 1, 4))
        # each level runs on the server and then in-process, back to back, so both see the same
        # machine (other processes' load moves these numbers more than anything measured here)
        for c in levels:
            n = per_client(c, args)
            server = asyncio.run(http_level(url, served, c, n, args.max_tokens))
            rows.append(server.row("server"))
            print(rows[-1], flush=True)
            if engine is not None:
                peer = asyncio.run(engine_level(engine, c, n, args.max_tokens))
                rows.append(peer.row("in-process"))
                print(rows[-1], flush=True)
                rows.append(f"| ratio      | {c:>7} |          | {server.rps / peer.rps:>7.2f}x |           | "
                            f"{statistics.median(server.ttfts) / statistics.median(peer.ttfts):>10.2f}x | "
                            f"{percentile(server.ttfts, 99) / percentile(peer.ttfts, 99):>10.2f}x |")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        if engine is not None:
            engine.shutdown()
    print(f"\nserver exit code after SIGTERM: {code}")
    print(f"model {os.path.basename(model)}, {args.max_tokens} output tokens per request (greedy, "
          f"ignore_eos), streaming chat completions over loopback; ratio = server / in-process\n")
    print("| run        | clients | requests |    req/s | tok/s out | p50 TTFT ms | p99 TTFT ms |")
    print("|------------|--------:|---------:|---------:|----------:|------------:|------------:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
