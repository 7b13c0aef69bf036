"""CPU speed of tines against transformers and llama-cpp-python, on the same GGUF.

Prints, from one run (each figure the best of a few tries): prefill tok/s of a 512-token
prompt, decode tok/s of one sequence, and aggregate decode tok/s of 8 and 32 concurrent
sequences (each continuing two sentences of text), for each tines weight format and each peer,
with the ratio of tines' default format (auto) to each peer; then peak resident memory of
`tines serve` per weight format. Each system runs in its own process: two libraries (or two
engines) running torch ops on different threads of one process slow each other down.

    .venv/bin/python -m bench.cpu_speed [--formats auto,int4,bf16] [--no-peers] [--no-memory]
    .venv/bin/python -m bench.cpu_speed --model gemma3-270m  # Gemma 3 270M (Q4_K_M) instead
    .venv/bin/python -m bench.cpu_speed --profile auto:1     # where a decode step's time goes

`--model` takes a known model name (`tines pull` fetches it on first use); every system runs
the same GGUF file.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from bench.peers.hf import fastest_dtype  # noqa: E402
from tines.runtime.engine.engine import Engine  # noqa: E402
from tines.runtime.models.registry import DEFAULT_MODEL, KNOWN_MODELS, pull  # noqa: E402
from tines.runtime.sampling_params import SamplingParams  # noqa: E402

THREADS = 2
DECODE_TOKENS = 64
DECODE_BATCHES = (1, 8, 32)
# Each figure is the best of a few runs: on this shared machine one run can be 2x slower than
# the next (seen for every system), and the best run is the one least disturbed.
PREFILL_RUNS, DECODE_RUNS = 3, 2


def best_rate(tokens: int, runs: int, fn) -> float:
    """tokens / the fastest of `runs` timed calls of fn()."""
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return tokens / best


def prompt_ids(n: int, seed: int) -> list[int]:
    """n random token ids: a prefill prompt (its cost does not depend on the text)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1000, 40000, (n,), generator=g).tolist()


def decode_prompts(path, batch: int = max(DECODE_BATCHES)) -> list[list[int]]:
    """`batch` real-text prompts of two sentences each (bench.workloads.synth), in the model's
    tokens; a smaller batch is a prefix of a larger one (one seed), so one call serves every
    batch size. Decode needs text: after random ids the model repeats itself, and prompt-lookup
    speculation turns the repeats into long accepted drafts (measured on AVX2: batch-1 77
    tok/s after random ids, 35-42 after text)."""
    import random

    from bench.workloads.synth import sentence
    from tines.runtime.tokenizer.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    rng = random.Random("cpu_speed-decode")
    return [tokenizer.encode(f"{sentence(rng)} {sentence(rng)}") for _ in range(batch)]


def tines_engine(path, weights: str, compile: bool = True) -> Engine:
    return Engine(str(path), weights=weights, kv_tokens=16384, num_threads=THREADS,
                  disable_radix_cache=True, compile=compile)


def bench_tines(path, weights: str, compile: bool = True) -> dict:
    t = time.perf_counter()
    engine = tines_engine(path, weights, compile)
    load = time.perf_counter() - t  # with the compiled decode's warm-up
    one = SamplingParams(temperature=0, max_new_tokens=1)
    engine.generate(prompt_ids(64, 0), SamplingParams(temperature=0, max_new_tokens=8))  # warm-up
    prefill = best_rate(512, PREFILL_RUNS, lambda: engine.generate(prompt_ids(512, 1), one))
    out = {"load_s": load, "prefill_512": prefill}
    texts = decode_prompts(path)
    for batch in DECODE_BATCHES:
        params = SamplingParams(temperature=0, max_new_tokens=DECODE_TOKENS, ignore_eos=True)
        prompts = texts[:batch]
        engine.generate(prompts, SamplingParams(temperature=0, max_new_tokens=2))  # warm shapes
        out[f"decode_b{batch}"] = best_rate(batch * DECODE_TOKENS, DECODE_RUNS,
                                            lambda: engine.generate(prompts, params))
    engine.shutdown()
    return out


def profile_decode(path, weights: str, batch: int, steps: int = 32) -> None:
    """Top ops by self time over `steps` compiled decode steps of `batch` sequences."""
    engine = tines_engine(path, weights)
    prompts = [prompt_ids(16, 100 + i) for i in range(batch)]
    params = SamplingParams(temperature=0, max_new_tokens=steps, ignore_eos=True)
    engine.generate(prompts, params)
    prof = torch.profiler.profile()
    engine.call(lambda core: prof.__enter__())  # on the engine thread, which runs the ops
    engine.generate(prompts, params)
    engine.call(lambda core: prof.__exit__(None, None, None))
    engine.shutdown()
    print(f"tines {weights}, batch {batch}, {steps} decode steps:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def bench_transformers(path) -> dict | None:
    try:
        import transformers
    except ImportError as e:
        print(f"transformers skipped: {e}")
        return None
    torch.set_num_threads(THREADS)
    t = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=getattr(torch, fastest_dtype())).eval()
    out = {"load_s": time.perf_counter() - t}
    with torch.no_grad():
        ids = torch.tensor([prompt_ids(512, 1)])
        model(ids[:, :64])
        out["prefill_512"] = best_rate(512, PREFILL_RUNS, lambda: model(ids))
        texts = decode_prompts(path)
        for batch in DECODE_BATCHES:
            prompts = texts[:batch]
            width = max(map(len, prompts))  # left-padded, as generate expects for a batch
            ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
            model.generate(ids, attention_mask=mask, max_new_tokens=2, do_sample=False, pad_token_id=0)
            out[f"decode_b{batch}"] = best_rate(
                batch * DECODE_TOKENS, DECODE_RUNS,
                lambda: model.generate(ids, attention_mask=mask, max_new_tokens=DECODE_TOKENS,
                                       min_new_tokens=DECODE_TOKENS, do_sample=False, pad_token_id=0))
    return out


def bench_llama_cpp(path) -> dict | None:
    try:
        from llama_cpp import Llama
    except ImportError as e:
        print(f"llama-cpp-python skipped: {e} (install with `make bench-peers`)")
        return None
    from contextlib import nullcontext

    from bench.peers.llamacpp import _without_extra_buffers, extra_buffers_work

    repack = extra_buffers_work(path)
    if not repack:
        print("llama-cpp-python: its AMX/repacked matmuls fault on this machine; measured with "
              "use_extra_bufts=False (its --no-repack)")
    t = time.perf_counter()
    with nullcontext() if repack else _without_extra_buffers():
        llm = Llama(model_path=str(path), n_ctx=2048, n_threads=THREADS, n_batch=512, verbose=False)
    out = {"load_s": time.perf_counter() - t}
    llm.eval(prompt_ids(64, 0))

    def prefill() -> None:
        llm.reset()
        llm.eval(prompt_ids(512, 1))

    decode_prompt = decode_prompts(path, 1)[0]

    def decode_seconds() -> float:
        llm.reset()
        llm.eval(decode_prompt)
        t = time.perf_counter()
        for _ in range(DECODE_TOKENS):  # greedy, one token per eval, as its generate loop does
            llm.eval([int(llm.scores[llm.n_tokens - 1].argmax())])
        return time.perf_counter() - t

    out["prefill_512"] = best_rate(512, PREFILL_RUNS, prefill)
    out["decode_b1"] = DECODE_TOKENS / min(decode_seconds() for _ in range(DECODE_RUNS))
    return out


def peak_memory_of_serve(path, weights: str) -> float | None:
    """Peak RSS (MB) of `tines serve` after loading and answering a few requests."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tines.runtime.cli", "serve", "--model", str(path),
                             "--port", str(port), "--weights", weights, "--kv-tokens", "16384"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            return None
        for i in range(4):
            httpx.post(url + "/generate", json={"text": f"Tell me about the number {i}.",
                                                "sampling_params": {"max_new_tokens": 32}}, timeout=120)
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return None


def run_isolated(system: str, model: str) -> dict | None:
    """Measure one system in a fresh process; its results come back as JSON."""
    import json
    import subprocess
    import sys

    from pathlib import Path

    proc = subprocess.run([sys.executable, "-m", "bench.cpu_speed", "--worker", system,
                           "--model", model],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{") or ln == "null"]
    if proc.returncode or not lines:
        print(f"{system}: failed ({proc.stderr.strip().splitlines()[-1:]})")
        return None
    for line in proc.stdout.splitlines():
        if not (line.startswith("{") or line == "null"):
            print(line)
    return json.loads(lines[-1])


def worker(system: str, model: str) -> None:
    import json

    path = pull(model, quiet=True)
    if system.startswith("tines-"):
        fmt, _, mode = system[len("tines-"):].partition(":")
        result = bench_tines(path, fmt, compile=mode != "eager")
    elif system == "transformers":
        result = bench_transformers(path)
    else:
        result = bench_llama_cpp(path)
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default="auto,int4,bf16,int8,fp32",
                    help="tines weight formats; append :eager to measure without compiling")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(KNOWN_MODELS),
                    help="which known model's GGUF every system runs")
    ap.add_argument("--profile", metavar="FORMAT:BATCH",
                    help="instead: profile tines' decode step (e.g. auto:1) and print top ops")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.model)
    if args.profile:
        fmt, _, batch = args.profile.partition(":")
        return profile_decode(pull(args.model, quiet=True), fmt, int(batch or 1))
    path = pull(args.model, quiet=True)
    print(f"model {args.model} ({path.name}), threads {THREADS}, "
          f"load average {os.getloadavg()[0]:.1f}")
    rows: dict[str, dict] = {}
    for fmt in args.formats.split(","):
        result = run_isolated(f"tines-{fmt}", args.model)
        if result:
            rows[f"tines {fmt}"] = result
    if not args.no_peers:
        hf_name = f"transformers {fastest_dtype().replace('bfloat', 'bf').replace('float', 'fp')}"
        for name, system in ((hf_name, "transformers"), ("llama-cpp-python", "llama-cpp")):
            result = run_isolated(system, args.model)
            if result:
                rows[name] = result
    keys = ["prefill_512", *(f"decode_b{batch}" for batch in DECODE_BATCHES)]
    print(f"\n{'system':22s}" + "".join(f"{k:>14s}" for k in keys) + f"{'load_s':>10s}"
          + "   (tok/s; load in seconds, tines' with its compile warm-up)")
    for name, r in rows.items():
        print(f"{name:22s}" + "".join(f"{r.get(k, float('nan')):14.1f}" for k in keys)
              + f"{r.get('load_s', float('nan')):10.1f}")
    default = rows.get("tines auto") or next((r for n, r in rows.items() if n.startswith("tines")), None)
    for name, r in rows.items():
        if name.startswith("tines") or default is None:
            continue
        ratios = "".join(f"{default[k] / r[k]:13.2f}x" if k in r else f"{'-':>14s}" for k in keys)
        print(f"{'tines auto / ' + name:22s}"[:22] + ratios)
    if not args.no_memory:
        print("\npeak RSS of `tines serve` (MB), after loading and answering 4 requests:")
        for fmt in args.formats.split(","):
            fmt = fmt.partition(":")[0]
            print(f"  {fmt:6s} {peak_memory_of_serve(path, fmt) or float('nan'):8.0f}")


if __name__ == "__main__":
    main()
