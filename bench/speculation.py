"""Batch-1 decode on the json_extraction prompts with prompt-lookup speculation on and off.

Each setting runs in its own process (the default model, weights auto, compiled decode, as
`tines serve` runs): the json_extraction program, one input at a time, greedy. Prints output
tokens/s (sampled + forced + accepted draft tokens, over the wall time of the programs), steps,
the share of draft tokens accepted, whether the answers agree, and the ratio on/off. With
llama-cpp-python installed (`make bench-peers`), its batch-1 rate on the same prompts and GGUF
(its JSON-schema grammar, output tokens counted by re-encoding its answers) is printed beside.

    .venv/bin/python -m bench.speculation [--n 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_tines(speculation: bool, n: int) -> dict:
    from bench.workloads import json_extraction as wl
    from tines.local import LocalBackend
    from tines.runtime.engine.engine import Engine

    engine = Engine(compile=True, speculation=speculation)
    backend = LocalBackend(engine)
    inputs = wl.make_inputs(n + 1)
    wl.run_tines(backend, inputs[:1])  # warm-up: grammar vocabulary, compiled variants
    before = engine.stats()
    t0 = time.perf_counter()
    answers = [wl.run_tines(backend, [x])[0] for x in inputs[1:]]
    seconds = time.perf_counter() - t0
    after = engine.stats()
    d = {k: after[k] - before[k] for k in ("generated_tokens", "forced_tokens", "steps",
                                           "draft_tokens", "draft_tokens_accepted")}
    engine.shutdown()
    tokens = d["generated_tokens"] + d["forced_tokens"]
    return {"tok_s": tokens / seconds, "tokens": tokens, "seconds": seconds, **d,
            "answers": [json.dumps(a, sort_keys=True) for a in answers]}


def run_llama_cpp(n: int) -> dict | None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return None
    from bench.peers.llamacpp import LlamaPeer, extra_buffers_work
    from bench.workloads import json_extraction as wl
    from tines.runtime.models.registry import resolve_model

    gguf = resolve_model(None)
    peer = LlamaPeer(gguf, prompt_cache=False, extra_buffers=extra_buffers_work(gguf))
    inputs = wl.make_inputs(n + 1)
    wl.run_llama_cpp(peer, inputs[:1])
    t0 = time.perf_counter()
    answers = wl.run_llama_cpp(peer, inputs[1:])
    seconds = time.perf_counter() - t0
    tokens = sum(len(peer.encode(json.dumps(a))) for a in answers)
    peer.close()
    return {"tok_s": tokens / seconds, "tokens": tokens, "seconds": seconds}


def worker(kind: str, n: int) -> None:
    result = run_llama_cpp(n) if kind == "llama.cpp" else run_tines(kind == "on", n)
    print("RESULT " + json.dumps(result), flush=True)


def in_process(kind: str, n: int) -> dict | None:
    out = subprocess.run([sys.executable, "-m", "bench.speculation", "--worker", kind, "--n", str(n)],
                         capture_output=True, text=True, check=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="json_extraction inputs (after one warm-up)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.n)
    off, on = in_process("off", args.n), in_process("on", args.n)
    peer = in_process("llama.cpp", args.n)
    same = sum(a == b for a, b in zip(off["answers"], on["answers"]))
    print(f"json_extraction, batch 1, {args.n} programs, default model, weights auto, compiled")
    print(f"{'system':<24}{'seconds':>8}{'tok/s':>8}{'tokens':>8}{'steps':>7}{'drafted':>9}{'accepted':>9}")
    for name, r in (("tines, speculation off", off), ("tines, speculation on", on)):
        print(f"{name:<24}{r['seconds']:>8.1f}{r['tok_s']:>8.1f}{r['tokens']:>8}{r['steps']:>7}"
              f"{r['draft_tokens']:>9}{r['draft_tokens_accepted']:>9}")
    print(f"speculation on / off: {on['tok_s'] / off['tok_s']:.2f}x; same answers {same}/{args.n} "
          "(weights auto: bf16/int4 rounding may differ by step shape; fp32 is exact)")
    if peer is None:
        print("llama-cpp-python: not installed (no ratio)")
    else:
        print(f"{'llama-cpp-python':<24}{peer['seconds']:>8.1f}{peer['tok_s']:>8.1f}{peer['tokens']:>8}")
        print(f"tines / llama.cpp, output tokens/s: speculation on {on['tok_s'] / peer['tok_s']:.2f}x, "
              f"off {off['tok_s'] / peer['tok_s']:.2f}x; the same programs' wall time: "
              f"{peer['seconds'] / on['seconds']:.2f}x, off {peer['seconds'] / off['seconds']:.2f}x "
              "(llama.cpp's tokens are its answers re-encoded; it has no jump-forward)")


if __name__ == "__main__":
    main()
