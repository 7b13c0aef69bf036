"""Budget-aware closing on the default model: tool/extraction schemas x samples at temperature
1.0 and a small max_tokens, once with closing on (the default) and once off. Prints, for
each, how many outputs do not parse or validate and how many were cut by the budget.

    python -m bench.grammar_closing [--samples 5] [--max-tokens 48] [--quick] [--backends]

With `--backends`, the same run (closing requested) on every installed grammar backend side
by side: only tines closes, so the others show what a cut costs there.

The schemas are bench/schemas/tool_schemas.json; one whose shortest completion is longer than
`--max-tokens` cannot close in time and is reported apart (no output of that length is valid).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.workloads.common import text_validates
from tines.grammar.backends import BACKENDS, backend_available
from tines.runtime.engine.engine import Engine
from tines.runtime.sampling_params import SamplingParams

SCHEMAS = json.loads((Path(__file__).resolve().parent / "schemas" / "tool_schemas.json").read_text())
PROMPT = "Call the tool. Arguments as JSON:"
TOO_LONG = {"order": 56}  # shortest completion in tokens of the default vocabulary


def run(engine: Engine, schemas: dict, samples: int, max_tokens: int, close: bool) -> dict:
    t0 = time.perf_counter()
    params = [SamplingParams(json_schema=s, temperature=1.0, max_new_tokens=max_tokens, n=samples,
                             seed=i, close_on_budget=close) for i, s in enumerate(schemas.values())]
    handles = [engine.submit(PROMPT, p) for p in params]
    total = invalid = cut = 0
    examples = []
    for (name, schema), h in zip(schemas.items(), handles):
        for c in h.result().outputs:
            total += 1
            cut += c.finish_reason == "length"
            if not text_validates(c.text, schema):
                invalid += 1
                if len(examples) < 3:
                    examples.append(f"{name}: {c.text!r}")
    return {"outputs": total, "invalid": invalid, "cut_at_budget": cut,
            "seconds": round(time.perf_counter() - t0, 1), "examples": examples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--quick", action="store_true", help="10 schemas x 2 samples")
    ap.add_argument("--backends", action="store_true",
                    help="also run every installed grammar backend (closing requested)")
    args = ap.parse_args()
    schemas = {k: v for k, v in SCHEMAS.items() if k not in TOO_LONG}
    samples = args.samples
    if args.quick:
        schemas, samples = dict(list(schemas.items())[:10]), 2
    print(f"{len(schemas)} schemas x {samples} samples, temperature 1.0, "
          f"max_tokens {args.max_tokens} (left out, shortest completion too long: {TOO_LONG})")
    runs = [("tines", True), ("tines", False)]
    if args.backends:
        runs += [(b, True) for b in BACKENDS if b != "tines" and backend_available(b)]
    engines: dict[str, Engine] = {}
    try:
        for backend, close in runs:
            if backend not in engines:
                engines[backend] = Engine(None, kv_tokens=16384, weights="fp32",
                                          grammar_backend=backend)
            r = run(engines[backend], schemas, samples, args.max_tokens, close)
            print(f"{backend:10s} close_on_budget={close!s:5}  invalid {r['invalid']:3d} / "
                  f"{r['outputs']}  cut at the budget {r['cut_at_budget']:3d}  ({r['seconds']} s)")
            for e in r["examples"]:
                print(f"    e.g. {e}")
    finally:
        for engine in engines.values():
            engine.shutdown()


if __name__ == "__main__":
    main()
