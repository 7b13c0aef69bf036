"""Command-line flags of `tines serve`."""

from __future__ import annotations

import argparse


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="a path or known name (default: the default model)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=30000)
    p.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY`")
    p.add_argument("--kv-tokens", type=int, default=None, help="KV pool size in tokens")
    p.add_argument("--max-running", type=int, default=64)
    p.add_argument("--schedule-policy", default="lpm", choices=("lpm", "fcfs"))
    p.add_argument("--disable-radix-cache", action="store_true")
    p.add_argument("--chunked-prefill-size", type=int, default=512)
    p.add_argument("--max-queue", type=int, default=4096)
    p.add_argument("--weights", default="auto", choices=("fp32", "bf16", "int8", "int4", "auto"),
                   help="weight format: dense fp32/bf16, int8/int4 weight-only, or auto (int4 for "
                        "decode steps, bf16 for prefill; the default)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="run the decode step eagerly instead of compiling it at start-up")
    p.add_argument("--served-model-name", default=None,
                   help="the model id clients use (default: the model's name or file stem)")
    p.add_argument("--shutdown-timeout", type=float, default=30.0,
                   help="seconds running requests get to finish after SIGTERM before they are aborted")
