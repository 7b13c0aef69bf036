"""Refusals, correctness and tail latency on a real-world schema corpus (JSONSchemaBench's
maskbench files: `{"schema": ..., "tests": [{"data", "valid"}]}`), one thread, the default
model's vocabulary.

    python -m bench.schemas.corpus DIR [--sample 500] [--seed 0] [--refusals]

DIR is the `maskbench/data` folder of github.com/guidance-ai/jsonschemabench. A fixed sample
(`random.Random(seed).sample` of the sorted file names) is used so runs compare. Prints, per
grammar backend (tines, and llguidance and xgrammar where installed, each through its adapter
in `tines.grammar.backends`, in the same run): schemas fully right, refused (by keyword),
invalid instances accepted, valid rejected, compile p50/p99/max (until the grammar and its
first mask are ready), and per-token mask p50/p99/p99.9/max along each valid instance.
A test's verdict is whether some serialization of its instance is accepted token by token.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np

from tines.grammar import GrammarSpec, allocate_token_bitmask
from tines.grammar.conformance import serializations
from tines.grammar.backends import backend_available, make_compiler
from tines.grammar.errors import GrammarError, UnsupportedSchemaError


def sample_files(folder: Path, n: int, seed: int) -> list[Path]:
    names = sorted(p.name for p in folder.glob("*.json"))
    return [folder / x for x in random.Random(seed).sample(names, min(n, len(names)))]


def run(files: list[Path], vocab, encode, hash_masks: bool = False,
        backend: str = "tines") -> dict:
    """Compile each schema, check its tests' verdicts, time every mask along each valid
    instance. With `hash_masks`, `mask_hashes` maps each file to its tests' verdicts and a
    hash of each of those masks (or its compile error): two versions' dumps compare masks
    token for token."""
    compile_spec = _compiler(backend, vocab, encode)
    res = Counter()
    hashes: dict[str, list[str]] = {}
    refused_by = Counter()
    refusals: list[str] = []
    worst_compile: list[tuple[float, str]] = []
    worst_mask: list[tuple[float, str]] = []
    compile_ms, mask_us = [], []
    bitmask = allocate_token_bitmask(1, vocab.vocab_size)
    for path in files:
        case = json.loads(path.read_text())
        t0 = time.perf_counter()
        try:
            g = compile_spec(GrammarSpec.json_schema(case["schema"]))
            g.matcher().fill_bitmask(bitmask, 0)  # ready: the first mask is part of compiling
        except UnsupportedSchemaError as e:
            hashes[path.name] = [f"error {type(e).__name__}"]
            res["refused"] += 1
            refused_by[e.keyword] += 1
            refusals.append(f"{path.name}: {e}")
            continue
        except GrammarError as e:
            hashes[path.name] = [f"error {type(e).__name__}"]
            res["error"] += 1
            refused_by[f"error: {str(e)[:50]}"] += 1
            continue
        compile_ms.append(1e3 * (time.perf_counter() - t0))
        worst_compile.append((compile_ms[-1], path.name))
        worst_mask_here = 0.0
        right = True
        entries = hashes[path.name] = []
        for test in case["tests"]:
            texts = serializations(test["data"], 16)
            ok = next((t for t in texts if _accepts(g, encode(t))), None)
            entries.append(f"accepts={ok is not None}")
            if (ok is not None) != test["valid"]:
                right = False
                res["invalid accepted" if ok is not None else "valid rejected"] += 1
            if ok is not None and test["valid"]:
                m = g.matcher()
                for tok in encode(ok):
                    t1 = time.perf_counter()
                    m.fill_bitmask(bitmask, 0)
                    mask_us.append(1e6 * (time.perf_counter() - t1))
                    worst_mask_here = max(worst_mask_here, mask_us[-1])
                    if hash_masks:
                        entries.append(hashlib.sha1(bitmask.tobytes()).hexdigest()[:16])
                    if not m.accept_token(tok):
                        entries.append("refused")
                        break
        res["fully right"] += right
        worst_mask.append((worst_mask_here, path.name))
    return {"counts": res, "refused_by": refused_by, "compile_ms": compile_ms,
            "mask_us": mask_us, "num": len(files), "refusals": refusals,
            "worst_compile": sorted(worst_compile)[-5:], "worst_mask": sorted(worst_mask)[-5:],
            "mask_hashes": hashes, "backend": backend}


def _compiler(backend: str, vocab, encode):
    """spec -> grammar through `backend`'s compiler, as the engine uses it; a foreign engine's
    failure counts as a refusal (a GrammarError), as tines' own do."""
    compiler = make_compiler(backend, vocab, encode)

    def compile_spec(spec):
        try:
            return compiler.compile(spec)
        except GrammarError:
            raise
        except Exception as e:  # noqa: BLE001 - each engine raises its own types
            raise GrammarError(f"{backend}: {e}") from None
    return compile_spec


def _accepts(grammar, token_ids: list[int]) -> bool:
    m = grammar.matcher()
    return all(m.accept_token(t) for t in token_ids) and m.is_accepting()


def report(r: dict) -> None:
    c = r["counts"]
    print(f"[{r['backend']}] schemas {r['num']}: fully right {c['fully right']}, "
          f"refused {c['refused']}, compile errors {c['error']}, "
          f"invalid accepted {c['invalid accepted']}, valid rejected {c['valid rejected']}")
    print("refused by keyword: " + ", ".join(f"{k} {v}" for k, v in r["refused_by"].most_common()))
    cm, mu = np.array(r["compile_ms"]), np.array(r["mask_us"])
    if len(cm):
        print(f"compile ms p50 {np.percentile(cm, 50):.2f} p99 {np.percentile(cm, 99):.1f} "
              f"max {cm.max():.0f}")
    if len(mu):
        print(f"mask µs p50 {np.percentile(mu, 50):.1f} p99 {np.percentile(mu, 99):.0f} "
              f"p99.9 {np.percentile(mu, 99.9):.0f} max {mu.max():.0f} ({len(mu)} masks)")


def main() -> int:
    from bench.grammar import load_default_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--sample", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--refusals", action="store_true", help="print every refusal's message")
    ap.add_argument("--backends", default=",".join(available_backends()),
                    help="comma-separated grammar backends (default: tines and the installed "
                    "peers among llguidance, xgrammar)")
    args = ap.parse_args()
    vocab, encode, _ = load_default_model()
    vocab.prepare()  # the mask layouts, built at start-up as the engine's compiler does
    files = sample_files(args.folder, args.sample, args.seed)
    for backend in args.backends.split(","):
        r = run(files, vocab, encode, backend=backend)
        report(r)
        print("slowest compiles (ms): " + ", ".join(f"{n} {v:.0f}" for v, n in r["worst_compile"]))
        print("slowest masks (µs): " + ", ".join(f"{n} {v:.0f}" for v, n in r["worst_mask"]))
        if args.refusals:
            print("\n".join(r["refusals"]))
    return 0


def available_backends() -> list[str]:
    """tines, then the peers whose packages are installed."""
    return [b for b in ("tines", "llguidance", "xgrammar") if backend_available(b)]


if __name__ == "__main__":
    raise SystemExit(main())
