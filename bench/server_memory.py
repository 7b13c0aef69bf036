"""Does `tines serve` stay flat in memory? RSS after 200 and after 2,000 requests, and their ratio.

The server runs as its own process (`tines serve`, the default model unless --model). A few
concurrent clients send distinct short chat completions (greedy, --max-tokens tokens each)
until --first requests are done, then on to --total; the server's resident memory is read
from /proc after each stage (its own /metrics figure is printed beside it). A flat server
prints a ratio near 1.0; this is a measurement, not a pass/fail threshold.

    .venv/bin/python -m bench.server_memory [--model PATH] [--first 200] [--total 2000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import time

import httpx

from bench.serve_load import start_server


def rss_of(pid: int) -> int:
    """Resident memory of process `pid` in bytes (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def metric(url: str, name: str) -> float | None:
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def send(url: str, model: str, first: int, count: int, concurrency: int, max_tokens: int) -> int:
    """Send requests numbered first..first+count-1; returns how many were not 200."""
    numbers = iter(range(first, first + count))
    failed = 0

    async def client() -> None:
        nonlocal failed
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            for i in numbers:
                body = {"model": model, "max_tokens": max_tokens, "temperature": 0,
                        "messages": [{"role": "user", "content": f"Request {i}: name a colour."}]}
                r = await c.post("/v1/chat/completions", json=body)
                failed += r.status_code != 200

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a path or known name (default: the default model)")
    ap.add_argument("--first", type=int, default=200)
    ap.add_argument("--total", type=int, default=2000)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--kv-tokens", type=int, default=16384)
    ap.add_argument("--quick", action="store_true", help="50 then 500 requests")
    args = ap.parse_args()
    if args.quick:
        args.first, args.total = 50, 500
    from tines.runtime.models.registry import resolve_model

    model = str(args.model if args.model and os.path.exists(args.model) else resolve_model(args.model))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = start_server(model, port, args.kv_tokens, timeout=300)
    try:
        served = httpx.get(url + "/v1/models").json()["data"][0]["id"]
        rows = []
        done = 0
        for target in (args.first, args.total):
            t0 = time.perf_counter()
            failed = asyncio.run(send(url, served, done, target - done, args.concurrency, args.max_tokens))
            done = target
            rss = rss_of(proc.pid)
            reported = metric(url, "tines:process_resident_memory_bytes")
            kv = metric(url, "tines:kv_pool_bytes")
            rows.append(rss)
            print(f"after {done:>5} requests ({failed} not 200, {time.perf_counter() - t0:.1f}s): "
                  f"RSS {rss / 2**20:.1f} MiB (/metrics: "
                  f"{'-' if reported is None else f'{reported / 2**20:.1f} MiB'}, KV pool "
                  f"{'-' if kv is None else f'{kv / 2**20:.1f} MiB'})", flush=True)
        print(f"model {os.path.basename(model)}: RSS after {args.total} / after {args.first} = "
              f"{rows[1] / rows[0]:.3f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
