"""Each system of a bench run in a fresh process of its own (spawned, so no system's memory,
threads or compiled code carry into another's, and its peak RSS is its own): `SystemSpec`
says how to make the system there, `run_isolated` runs its workloads and brings back a
`SystemRun`.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bench.systems import (LlamaCppSystem, Measurement, TinesSystem, TransformersSystem,
                           process_peak_rss)
from bench.workloads import WORKLOADS


@dataclass(frozen=True, slots=True)
class SystemSpec:
    """How to make one system: picklable, so a fresh process can make it. `key` names the
    system's column in the plan (how many inputs of each workload it runs)."""

    key: str
    kind: str  # "tines", "llama.cpp" or "transformers"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self) -> Any:
        kinds = {"tines": TinesSystem, "llama.cpp": LlamaCppSystem,
                 "transformers": TransformersSystem}
        return kinds[self.kind](**self.kwargs)


class SystemRun(NamedTuple):
    """What one system's process sends back."""

    name: str
    measurements: list[Measurement]
    speed: dict[str, float]
    peak_rss_bytes: int


def run_isolated(spec: SystemSpec, plan: dict[str, dict[str, int]],
                 inputs: dict[str, list[dict]]) -> SystemRun:
    """Run one system's workloads in a fresh (spawned) process and collect its results."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run_in_this_process, spec, plan, inputs).result()


def _run_in_this_process(spec: SystemSpec, plan: dict[str, dict[str, int]],
                         inputs: dict[str, list[dict]]) -> SystemRun:
    system = spec.make()
    measurements = run_system(spec.key, system, plan, inputs)
    return SystemRun(system.name, measurements, dict(getattr(system, "speed", None) or {}),
                     process_peak_rss())


def run_system(key: str, system: Any, plan: dict[str, dict[str, int]],
               inputs: dict[str, list[dict]]) -> list[Measurement]:
    t0 = time.perf_counter()
    try:
        skip = system.open()
    except Exception as e:  # noqa: BLE001 (a peer that cannot start is skipped, not fatal)
        skip = f"failed to start: {type(e).__name__}: {e}"
    if skip:
        print(f"[{system.name}] skipped: {skip}", flush=True)
        return []
    print(f"[{system.name}] ready in {time.perf_counter() - t0:.1f} s", flush=True)
    out = []
    try:
        for wl, counts in plan.items():
            m = system.run(WORKLOADS[wl], inputs[wl][:counts[key]])
            print(f"[{system.name}] {wl}: {m.n} programs in {m.seconds:.1f} s, "
                  f"{m.valid}/{m.n} valid", flush=True)
            out.append(m)
    finally:
        system.close()
    return out
