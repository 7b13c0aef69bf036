"""64 requests sharing a ~1,000-token few-shot prefix, each with its own question.

Prints requests/s and prompt tokens actually computed for tines with the radix cache on, with
it off, and for Hugging Face transformers `generate` run one request at a time (on a subset,
since it is slow; its rate is per request, so the ratio holds), all in one run.

    .venv/bin/python -m bench.prefix_sharing [--requests 64] [--hf-requests 8]
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from tines.runtime.engine.engine import Engine  # noqa: E402
from tines.runtime.models.registry import pull  # noqa: E402
from tines.runtime.sampling_params import SamplingParams  # noqa: E402

SUBJECTS = ["geography", "arithmetic", "biology", "history", "chemistry", "astronomy"]


def few_shot_prefix(target_tokens: int, engine: Engine) -> str:
    """Deterministic question/answer pairs until the prefix reaches ~target_tokens."""
    rng = random.Random(0)
    lines = ["Answer each question with a short, factual answer.\n"]
    i = 0
    while len(engine.tokenizer.encode("".join(lines))) < target_tokens:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        subject = SUBJECTS[i % len(SUBJECTS)]
        lines.append(f"Question {i + 1} ({subject}): What is {a} plus {b}?\nAnswer: {a + b}\n\n")
        i += 1
    return "".join(lines)


def questions(n: int) -> list[str]:
    rng = random.Random(1)
    return [f"Question {100 + i} ({rng.choice(SUBJECTS)}): What is {rng.randint(2, 99)} plus "
            f"{rng.randint(2, 99)}?\nAnswer:" for i in range(n)]


def run_tines(path: str, prompts: list[str], params: SamplingParams, **kw) -> dict:
    with Engine(path, kv_tokens=32768, max_running=64, **kw) as engine:
        engine.generate(prompts[0][:200], SamplingParams(max_new_tokens=2))  # warm-up
        engine.flush_cache()
        before = engine.stats()
        t0 = time.perf_counter()
        outs = engine.generate(prompts, params)
        elapsed = time.perf_counter() - t0
        after = engine.stats()
    return {
        "req_s": len(prompts) / elapsed,
        "computed": after["prefill_tokens_computed"] - before["prefill_tokens_computed"],
        "hit_rate": (after["cache_hit_tokens"] - before["cache_hit_tokens"]) /
                    max(1, after["prompt_tokens"] - before["prompt_tokens"]),
        "texts": [o.text for o in outs],
        "elapsed": elapsed,
    }


def run_transformers(path, prompts: list[str], max_new_tokens: int) -> dict | None:
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"transformers skipped: {e}")
        return None
    tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                              dtype=torch.float32).eval()
    computed = 0
    t0 = time.perf_counter()
    for p in prompts:
        ids = tok(p, return_tensors="pt")
        computed += ids["input_ids"].shape[1]
        with torch.no_grad():
            model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                           pad_token_id=tok.eos_token_id)
    elapsed = time.perf_counter() - t0
    return {"req_s": len(prompts) / elapsed, "computed": computed, "hit_rate": 0.0, "elapsed": elapsed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--hf-requests", type=int, default=8, help="0 skips transformers")
    ap.add_argument("--prefix-tokens", type=int, default=1000)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    args = ap.parse_args()

    path = pull(quiet=True)
    with Engine(str(path), kv_tokens=4096) as probe:
        prefix = few_shot_prefix(args.prefix_tokens, probe)
        prefix_len = len(probe.tokenizer.encode(prefix))
    prompts = [prefix + q for q in questions(args.requests)]
    params = SamplingParams(temperature=0, max_new_tokens=args.max_new_tokens)
    print(f"{args.requests} requests, shared prefix {prefix_len} tokens, "
          f"{args.max_new_tokens} new tokens each (greedy)")

    rows = {"tines radix on": run_tines(str(path), prompts, params),
            "tines radix off": run_tines(str(path), prompts, params, disable_radix_cache=True)}
    if args.hf_requests:
        hf = run_transformers(path, prompts[:args.hf_requests], args.max_new_tokens)
        if hf:
            hf["computed"] = hf["computed"] * args.requests // args.hf_requests
            rows[f"transformers (1 at a time, {args.hf_requests} timed)"] = hf
    same = sum(a == b for a, b in zip(rows["tines radix on"]["texts"], rows["tines radix off"]["texts"]))
    base = rows["tines radix on"]
    print(f"\n{'system':40s} {'req/s':>8s} {'prompt tok computed':>20s} {'hit rate':>9s} "
          f"{'radix-on speed-up':>18s}")
    for name, r in rows.items():
        print(f"{name:40s} {r['req_s']:8.2f} {r['computed']:20d} {r['hit_rate']:9.1%} "
              f"{base['req_s'] / r['req_s']:17.2f}x")
    print(f"\ngreedy outputs identical with radix on and off: {same} of {len(prompts)} (weights "
          "auto takes int4 or bf16 by step size, so answers depend on how prompts were batched "
          "and cached; exact equality is tested in fp32, and bench/run.py checks it)")


if __name__ == "__main__":
    main()
