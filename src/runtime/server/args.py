"""Command-line flags of `tines serve`."""

from __future__ import annotations

import argparse
import socket

from .limits import Limits


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", default=None,
                   help="a path or known name (default: the default model); give it several "
                        "times to serve several models, chosen by each request's `model`")
    p.add_argument("--max-loaded-models", type=int, default=2,
                   help="with several --model: most engines loaded at once; loading another "
                        "unloads the least recently used idle one")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=30000)
    p.add_argument("--api-key", default=None,
                   help="require `Authorization: Bearer KEY` on every route but /health and "
                        "/openapi.json (without it, anyone who can connect may use every route)")
    p.add_argument("--kv-tokens", type=int, default=None, help="KV pool size in tokens")
    p.add_argument("--max-running", type=int, default=64)
    p.add_argument("--schedule-policy", default="lpm", choices=("lpm", "fcfs"))
    p.add_argument("--disable-radix-cache", action="store_true")
    p.add_argument("--chunked-prefill-size", type=int, default=512)
    p.add_argument("--max-queue", type=int, default=4096,
                   help="requests that may wait for admission; beyond it: 503 with Retry-After")
    d = Limits()
    p.add_argument("--max-body", type=int, default=d.max_body,
                   help=f"largest request body in bytes (default {d.max_body}); beyond it: 413")
    p.add_argument("--max-n", type=int, default=d.max_n,
                   help=f"most completions per prompt, `n` / `best_of` (default {d.max_n})")
    p.add_argument("--max-batch", type=int, default=d.max_batch,
                   help=f"most completions one request starts, prompts x n (default {d.max_batch})")
    p.add_argument("--weights", default="auto", choices=("fp32", "bf16", "int8", "int4", "auto"),
                   help="weight format: dense fp32/bf16, int8/int4 weight-only, or auto (int4 for "
                        "decode steps, dense bf16 or fp32 (by the CPU) for prefill; the default)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                   help="where the model and KV cache live: cpu (the default), cuda, or auto "
                        "(cuda when torch sees a GPU)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="run the model eagerly instead of compiling its steps at start-up")
    p.add_argument("--served-model-name", default=None,
                   help="the model id clients use (default: the model's name or file stem)")
    p.add_argument("--shutdown-timeout", type=float, default=30.0,
                   help="seconds running requests get to finish after SIGTERM before they are aborted")
    p.add_argument("--grammar-backend", default="tines",
                   choices=("tines", "outlines", "llguidance", "xgrammar"),
                   help="what compiles constraints to token masks (tines: the default, with "
                        "budget-aware closing and jump-forward; the others when installed)")
    p.add_argument("--lora", action="append", default=[], metavar="NAME=PATH",
                   help="a PEFT LoRA adapter folder to serve as NAME (repeatable; with several "
                        "--model, for the first); requests pick it by `model: MODEL:NAME`, "
                        "`lora_path: NAME` or `sampling_params.lora`")
    p.add_argument("--tp", dest="tp_size", type=int, default=1,
                   help="tensor parallelism: split the model over N ranks (processes started "
                        "through torch.distributed; needs --weights fp32 and --no-compile)")
    r = p.add_argument_group("replicas (Ray Serve; needs the `ray` extra)")
    r.add_argument("--replicas", type=int, default=0,
                   help="run N engine replicas on Ray Serve behind one endpoint (0: one engine "
                        "in this process, no Ray)")
    r.add_argument("--router", default="prefix", choices=("prefix", "round_robin"),
                   help="how requests are spread over replicas: to the replica that caches the "
                        "longest prefix of the prompt (the default), or in turn")
    r.add_argument("--ray-address", default=None,
                   help="the Ray cluster to join (e.g. ray://head:10001 or auto; default: start "
                        "a local one)")


def check_serve_args(args: argparse.Namespace) -> Limits:
    """The per-request limits the flags ask for. ValueError naming the flag for a bad limit
    or an empty `--api-key` (which would silently serve without authentication)."""
    if isinstance(args.model, list) or not hasattr(args, "models"):  # once, from the flags
        args.models = args.model if isinstance(args.model, list) else [args.model]
        args.model = args.models[0]
    if args.max_loaded_models < 1:
        raise ValueError("--max-loaded-models: must be >= 1")
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port: must be in 1..65535, got {args.port}")
    if args.replicas < 0:
        raise ValueError(f"--replicas: must be >= 0, got {args.replicas}")
    if not args.shutdown_timeout >= 0:
        raise ValueError(f"--shutdown-timeout: must be >= 0 seconds, got {args.shutdown_timeout}")
    if args.api_key is not None and not args.api_key.strip():
        raise ValueError("--api-key: empty; give a non-empty key, or leave the flag out to "
                         "serve without authentication")
    return Limits(max_body=args.max_body, max_n=args.max_n, max_batch=args.max_batch)


def check_port_free(host: str, port: int) -> None:
    """ValueError naming --port when `host:port` cannot be listened on now (in use, or not an
    address of this machine): said before the model loads, not after."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
            s.bind(address)
    except OSError as e:
        raise ValueError(f"--port: cannot listen on {host}:{port} "
                         f"({e.strerror or e})") from None


def engine_options(args: argparse.Namespace) -> dict:
    """Engine keyword arguments from `tines serve` flags."""
    model = args.model[0] if isinstance(args.model, list) else args.model
    return dict(model=model, weights=args.weights, compile=args.compile,
                kv_tokens=args.kv_tokens, max_running=args.max_running,
                schedule_policy=args.schedule_policy, disable_radix_cache=args.disable_radix_cache,
                chunked_prefill_size=args.chunked_prefill_size, max_queue=args.max_queue,
                tp_size=args.tp_size, grammar_backend=args.grammar_backend,
                device=args.device, lora_adapters=lora_adapters(args.lora))


def lora_adapters(flags: list[str]) -> tuple[tuple[str, str], ...]:
    """`--lora NAME=PATH` flags as (name, path) pairs; ValueError naming a malformed one."""
    pairs = []
    for flag in flags:
        name, sep, path = flag.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--lora: expected NAME=PATH, got {flag!r}")
        pairs.append((name, path))
    return tuple(pairs)
