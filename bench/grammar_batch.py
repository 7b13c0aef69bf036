"""Eight schemas in one batch: does constrained decoding keep free decoding's pace?

Eight requests, each held to a different tool/extraction schema (bench/schemas/
tool_schemas.json), decode together on the default model (greedy, jump-forward on, compiled
decode). Their grammars are compiled before the clock starts (a one-token request each), but
every state after the first is cold: its mask is built during the timed run, as it is for a
server's new schemas. Each schema gets a fresh title per run, so no run reuses another's masks.

One engine; the mask mode is switched between runs (its config's `overlap_grammar_masks`), the
modes alternating so the machine's load hits both alike:
  - free:            the same 8 prompts, no grammar, each as many tokens as its constrained
                     answer had (ignore_eos);
  - masks overlapped: constrained, masks computed on a worker while the forward runs (the
                     default on GPUs);
  - masks after:      constrained, masks computed after the forward (the default on the CPU,
                     where the worker's Python slows the forward: mask_prefetch.py).
Output tokens/s counts jump-forward's forced tokens as output (they are the answer's tokens).
"forward s" is the model runner's time, "other s" the rest of the wall time (scheduling,
sampling, grammar, text); "mask wait" is the engine thread's time on masks after the forward
(both from the engine's stats).
Goal (issue 15): constrained decoding, in the engine's default mode, >= 1.0x free.

    .venv/bin/python -m bench.grammar_batch [--max-tokens 160] [--repeat 2] [--modes after]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

SCHEMAS = json.loads((Path(__file__).resolve().parent / "schemas" / "tool_schemas.json").read_text())
BATCH = ("weather", "booking", "contact", "order", "calendar", "recipe", "invoice", "entities")


def _prompts(engine) -> list[str]:
    return [engine.chat_template.render([{"role": "user", "content":
            f"Reply with one JSON object for this tool call ({name}): {json.dumps(SCHEMAS[name])}"}])
            for name in BATCH]


def _fresh(run: int) -> list[dict]:
    """The batch's schemas under a new title (an annotation): new compiles, cold masks."""
    return [{**SCHEMAS[name], "title": f"{name} run {run}"} for name in BATCH]


def _timed(engine, prompts: list[str], params: list) -> tuple[float, list, dict]:
    before = engine.stats()
    t = time.perf_counter()
    handles = [engine.submit(p, sp) for p, sp in zip(prompts, params)]
    outs = [h.result() for h in handles]
    seconds = time.perf_counter() - t
    after = engine.stats()
    delta = {k: after[k] - before[k] for k in ("steps", "forward_seconds", "grammar_masks_overlapped",
                                               "grammar_mask_wait_seconds")}
    return seconds, outs, delta


def run_batch(engine, run: str, max_tokens: int) -> tuple[dict, dict]:
    """One timed constrained run of the batch (fresh schemas) and the same prompts free."""
    from bench.workloads.common import text_validates
    from tines.runtime.sampling_params import SamplingParams

    prompts = _prompts(engine)
    schemas = _fresh(run)
    _timed(engine, prompts, [SamplingParams(temperature=0, max_new_tokens=1, json_schema=s)
                             for s in schemas])  # compile; first masks only
    engine.flush_cache()
    seconds, outs, delta = _timed(engine, prompts, [
        SamplingParams(temperature=0, max_new_tokens=max_tokens, json_schema=s) for s in schemas])
    tokens = [o.num_completion_tokens for o in outs]
    valid = sum(text_validates(o.outputs[0].text, schema) for o, schema in zip(outs, schemas))
    constrained = {"seconds": seconds, "tokens": sum(tokens), "valid": valid, **delta}
    engine.flush_cache()
    seconds, outs, delta = _timed(engine, prompts, [
        SamplingParams(temperature=0, max_new_tokens=max(1, n), ignore_eos=True) for n in tokens])
    free = {"seconds": seconds, "valid": len(outs),
            "tokens": sum(o.num_completion_tokens for o in outs), **delta}
    return constrained, free


def _line(label: str, runs: list[dict], free_rate: float | None) -> str:
    seconds = sum(r["seconds"] for r in runs)
    rate = sum(r["tokens"] for r in runs) / seconds
    wait = sum(r["grammar_mask_wait_seconds"] for r in runs)
    ratio = f"{rate / free_rate:9.2f}x" if free_rate else f"{'':>10s}"
    forward = sum(r["forward_seconds"] for r in runs)
    return (f"{label:18s} {rate:9.1f} {ratio} {sum(r['steps'] for r in runs):7d} "
            f"{forward:9.2f} {seconds - forward:8.2f} "
            f"{sum(r['grammar_masks_overlapped'] for r in runs):10d} {1e3 * wait:13.1f} "
            f"{sum(r['valid'] for r in runs):3d}/{8 * len(runs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--modes", default="overlapped,after",
                    help="which mask modes to run (overlapped, after)")
    args = ap.parse_args()
    from tines.runtime.engine.engine import Engine
    from tines.runtime.sampling_params import SamplingParams

    modes = {f"masks {m}": m == "overlapped" for m in args.modes.split(",")}
    rows: dict[str, dict[str, list]] = {label: {"constrained": [], "free": []} for label in modes}
    engine = Engine(compile=True)
    try:
        engine.generate(_prompts(engine), SamplingParams(max_new_tokens=8, ignore_eos=True))
        for run in range(args.repeat):  # the modes alternate, so load changes hit both alike
            for label, overlap in modes.items():
                engine.call(lambda core: setattr(core, "cfg", replace(
                    core.cfg, overlap_grammar_masks=overlap)))
                constrained, free = run_batch(engine, f"{run}-{label}", args.max_tokens)
                rows[label]["constrained"].append(constrained)
                rows[label]["free"].append(free)
                print(f"run {run} {label}: constrained {constrained['tokens']} tokens in "
                      f"{constrained['seconds']:.1f} s, free {free['tokens']} in "
                      f"{free['seconds']:.1f} s", file=sys.stderr, flush=True)
    finally:
        engine.shutdown()
    print(f"8 requests, 8 schemas ({', '.join(BATCH)}), default model, greedy, compiled, "
          f"jump-forward on, max_tokens {args.max_tokens}, {args.repeat} runs each")
    print(f"{'':18s} {'out tok/s':>9s} {'vs free':>10s} {'steps':>7s} {'forward s':>9s} "
          f"{'other s':>8s} {'overlapped':>10s} {'mask wait ms':>13s} valid")
    for label, row in rows.items():
        free_rate = sum(r["tokens"] for r in row["free"]) / sum(r["seconds"] for r in row["free"])
        print(_line(f"free ({label[6:]})", row["free"], None))
        print(_line(label, row["constrained"], free_rate))


if __name__ == "__main__":
    main()
