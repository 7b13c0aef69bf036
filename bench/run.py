"""The structured-generation workloads on tines and its peers, same model, same machine, one run.

Six workloads (bench/workloads/), each written as a tines program and in each peer's idiom,
run on every available system with the same inputs and token budgets, greedy:
tines, tines with the radix cache off (the ablation), llama-cpp-python (prompt cache on),
and transformers `generate` one call at a time. Every answer is checked for validity; the
table gives programs/s, output tokens/s, prompt tokens per program (given and actually
computed), cache hit rate, agreement with tines' answers and tines' speed-up. Each system
runs in a fresh process of its own (spawned, so no system's memory or threads carry into
another's), whose peak RSS is printed per system; computed prompt tokens per second are
printed beside transformers'. Results go to bench/results/run-<timestamp>.json and .png.

    .venv/bin/python -m bench.run --quick                  # < 5 minutes
    .venv/bin/python -m bench.run                          # the full run, < 30 minutes
    .venv/bin/python -m bench.run --tines-opt weights=int4 --systems tines,llama.cpp

transformers recomputes everything on every call, so its time per program does not depend
on how many it runs: it runs the first `hf_n` inputs of each workload (shown as n).

tines runs as `tines serve` does (compiled decode, weights `auto`). Whether the radix cache
changes answers is checked in float32 weights: `auto` takes int4 or bf16 weights by the size
of each step, and bf16 rounding depends on how a prompt is split into steps, so in those
formats greedy answers depend on what else was batched and what was cached (as in every
batched runtime without batch-invariant kernels); float32 is exact at every batch and split.
Exit status 1 when the float32 answers differ with the radix cache on and off, or a tines
answer is invalid.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import report  # noqa: E402
from bench.isolated import SystemSpec, run_isolated  # noqa: E402
from bench.systems import Measurement  # noqa: E402
from bench.workloads import WORKLOADS  # noqa: E402

# Programs per workload, (quick, full), for every system...
SIZES: dict[str, tuple[int, int]] = {
    "mmlu": (4, 64),
    "hellaswag": (8, 64),
    "json_extraction": (4, 32),
    "multi_turn_chat": (2, 16),
    "tree_of_thought": (1, 8),
    "react_agent": (2, 16),
}
# ...except where a system recomputes every prompt, so its time per program does not depend
# on n: it runs the first k inputs (shown as its n). (quick, full) per system and workload.
CAPS: dict[str, dict[str, tuple[int, int]]] = {
    "transformers": {"json_extraction": (2, 12), "multi_turn_chat": (1, 6),
                     "tree_of_thought": (1, 3), "react_agent": (1, 6)},
    "tines-no-radix": {"mmlu": (2, 12)},
}
SYSTEMS = ("tines", "tines-no-radix", "llama.cpp", "transformers")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_opt(text: str) -> tuple[str, Any]:
    """`key=value` -> (key, value as a Python literal when it reads as one, else the text)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, {"true": True, "false": False}.get(value.lower(), value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small n per workload (< 5 minutes)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help=f"comma-separated subset of {', '.join(WORKLOADS)}")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help=f"comma-separated subset of {', '.join(SYSTEMS)}")
    ap.add_argument("--tines-opt", action="append", default=[], type=parse_opt,
                    metavar="KEY=VALUE", help="an EngineConfig field for both tines engines, "
                    "e.g. weights=int4, dtype=bfloat16, max_running=128 (repeatable)")
    ap.add_argument("--n", action="append", default=[], type=parse_opt, metavar="WORKLOAD=N",
                    help="programs for a workload on every system (repeatable)")
    ap.add_argument("--model", type=Path, default=None, help="a GGUF file (default: the "
                    "default model, pulled if needed)")
    ap.add_argument("--hf-dtype", default=None, help="transformers dtype (default: bfloat16 where "
                    "the CPU has bf16 arithmetic, else float32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from dataclasses import fields

    from tines.runtime.engine.config import EngineConfig
    known = {f.name for f in fields(EngineConfig)} - {"model", "disable_radix_cache"}
    bad = sorted({k for k, _ in args.tines_opt} - known)
    if bad:
        ap.error(f"--tines-opt: unknown EngineConfig field(s) {', '.join(bad)}; "
                 f"known: {', '.join(sorted(known))}")
    for name, values in (("workloads", WORKLOADS), ("systems", SYSTEMS)):
        picked = [v for v in getattr(args, name).split(",") if v]
        unknown = sorted(set(picked) - set(values))
        if unknown:
            ap.error(f"--{name}: unknown {', '.join(unknown)}")
        setattr(args, name, picked)
    return args


def sizes(args: argparse.Namespace) -> dict[str, dict[str, int]]:
    """workload -> system key -> programs to run."""
    override = dict(args.n)
    pick = 0 if args.quick else 1
    out = {}
    for wl in args.workloads:
        n = int(override.get(wl, SIZES[wl][pick]))
        out[wl] = {system: min(n, CAPS.get(system, {}).get(wl, (n, n))[pick])
                   for system in SYSTEMS}
    return out


def tines_opts(args: argparse.Namespace) -> dict[str, Any]:
    """Engine options: as `tines serve` runs (decode compiled), then --tines-opt."""
    return {"compile": True, **dict(args.tines_opt)}


def exact_equivalence(args: argparse.Namespace, model: Path, plan: dict[str, dict[str, int]],
                      inputs: dict[str, list[dict]]) -> dict[str, list[int] | None]:
    """Radix on vs off in float32 weights (see the module docstring), on the inputs the
    radix-off system ran."""
    opts = {**tines_opts(args), "weights": "fp32", "compile": False}
    counts = {wl: {"on": c["tines-no-radix"], "off": c["tines-no-radix"]} for wl, c in plan.items()}
    ms = []
    for key, radix in (("on", True), ("off", False)):
        spec = SystemSpec(key, "tines", {"model": model, "opts": opts, "radix": radix,
                                         "probe_tokens": None, "label": " fp32"})
        ms += run_isolated(spec, counts, inputs).measurements
    return report.radix_equivalence(ms, "tines fp32", "tines fp32 (radix off)")


def system_specs(args: argparse.Namespace, model: Path) -> list[SystemSpec]:
    """One spec for each system asked for, in run order."""
    opts, k = tines_opts(args), 32 if args.quick else 64  # k: decode tokens of the probe
    table = {
        "tines": SystemSpec("tines", "tines", {"model": model, "opts": opts, "radix": True,
                                               "probe_tokens": k}),
        "tines-no-radix": SystemSpec("tines-no-radix", "tines",
                                     {"model": model, "opts": opts, "radix": False}),
        "llama.cpp": SystemSpec("llama.cpp", "llama.cpp", {"model": model, "probe_tokens": k}),
        "transformers": SystemSpec("transformers", "transformers",
                                   {"model": model, "dtype": args.hf_dtype, "probe_tokens": k}),
    }
    return [table[key] for key in args.systems]


def model_path(args: argparse.Namespace) -> Path:
    if args.model is not None:
        return args.model
    from tines.runtime.models.registry import pull
    return pull(quiet=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = model_path(args)
    plan = sizes(args)
    inputs = {wl: WORKLOADS[wl].make_inputs(max(counts.values()), args.seed)
              for wl, counts in plan.items()}
    mode = "quick" if args.quick else "full"
    shown = ", ".join(f"{wl} n={counts['tines']}" for wl, counts in plan.items())
    print(f"tines bench ({mode}): {model.name}, {os.cpu_count()} cores; {shown}; tines opts "
          f"{tines_opts(args)}", flush=True)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()), flush=True)
    t0 = time.perf_counter()
    measurements: list[Measurement] = []
    speeds: dict[str, dict[str, float]] = {}
    peaks: dict[str, int] = {}
    for spec in system_specs(args, model):
        run = run_isolated(spec, plan, inputs)
        measurements += run.measurements
        if run.speed:
            speeds[run.name] = run.speed
        if run.measurements:  # a skipped system's process measured nothing worth showing
            peaks[run.name] = run.peak_rss_bytes
    wall = time.perf_counter() - t0

    print()
    print(report.speed_table(speeds))
    print()
    print(report.table(measurements))
    print()
    print(report.computed_rate_table(measurements))
    print()
    print(report.memory_table(peaks))
    weights = tines_opts(args).get("weights", "auto")
    mismatches = {weights: report.radix_equivalence(measurements)}
    if weights != "fp32" and {"tines", "tines-no-radix"} <= set(args.systems):
        print("\nradix on vs off in float32 weights (exact arithmetic):", flush=True)
        mismatches["fp32"] = exact_equivalence(args, model, plan, inputs)
    print()
    for fmt, by_wl in mismatches.items():
        for wl, bad in by_wl.items():
            verdict = ("not measured (needs tines and tines-no-radix)" if bad is None else
                       "identical" if not bad else f"DIFFER at inputs {bad}")
            print(f"greedy answers, radix cache on vs off, weights {fmt}, {wl}: {verdict}")
    if weights != "fp32":
        print(f"({weights}: answers may differ with what is batched and cached; fp32 is the check)")
    print()
    print(report.notes(measurements))

    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = args.out / f"run-{stamp}.json", args.out / f"run-{stamp}.png"
    report.write_json(json_path, measurements, {
        "mode": mode, "model": str(model), "argv": sys.argv[1:], "tines_opts": tines_opts(args),
        "radix_on_off_differences": mismatches,
        "sizes": plan, "raw_speed": speeds, "peak_rss_bytes": peaks, "seed": args.seed, "wall_seconds": wall, "cores": os.cpu_count(),
        "python": platform.python_version(), "versions": _versions()})
    why = report.write_chart(png_path, measurements, f"tines bench ({mode}), {model.name}, "
                             f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"\nwall time {wall:.0f} s; wrote {json_path}" +
          (f" and {png_path}" if why is None else f" (no chart: {why})"))

    tines_bad = [m.workload for m in measurements if m.system == "tines" and m.valid < m.n]
    if tines_bad:
        print(f"tines gave invalid answers on: {', '.join(tines_bad)}")
    return 1 if tines_bad or any((mismatches.get("fp32") or {}).values()) else 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("torch", "transformers", "llama_cpp_python", "outlines", "outlines_core"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


if __name__ == "__main__":
    sys.exit(main())
