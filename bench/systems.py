"""The systems under test, each behind one small interface: `open()` (load, warm up, probe the
raw speed into `speed`; returns None or the reason it is skipped), `run(workload, inputs)
-> Measurement`, `close()`.

Time is wall time around the workload's run function only: loading and a tiny warm-up are
outside it. Token counts come from each system's own counters where it has them. Memory is
the process's peak resident set (bench/run.py runs each system in a process of its own).
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import probe
from bench.peers.tally import Tally


@dataclass(slots=True)
class Measurement:
    system: str
    workload: str
    n: int
    seconds: float
    tally: Tally
    answers: list[Any]
    valid: int
    notes: list[str] = field(default_factory=list)
    # The process's peak RSS when the workload ended (loading and earlier workloads included).
    peak_rss_bytes: int | None = None

    @property
    def programs_per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else 0.0

    @property
    def output_tok_per_s(self) -> float:
        return self.tally.output_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def computed_tok_per_s(self) -> float:
        """Prompt tokens run through the model per second of the workload's wall time (decode
        time included: a per-token prefill rate only where the workload decodes little)."""
        return self.tally.computed_tokens / self.seconds if self.seconds > 0 else 0.0


def process_peak_rss() -> int:
    """This process's peak resident set: VmHWM (Linux; the current program's, from its exec
    on), else getrusage's ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KB elsewhere


def _timed(run: Any) -> tuple[list, float]:
    """(run(), its wall time in seconds)."""
    t0 = time.perf_counter()
    out = run()
    return out, time.perf_counter() - t0


def _load_note() -> str:
    """The machine's 1-minute load average: cores are shared, so a figure measured while
    others ran is slower than the system is."""
    return f"load avg {os.getloadavg()[0]:.1f} at end"


def _result(system: str, wl: ModuleType, inputs: list[dict], answers: list[Any],
            seconds: float, tally: Tally, notes: list[str] | None = None) -> Measurement:
    valid = sum(1 for a in answers if wl.check(a))
    return Measurement(system, wl.NAME, len(inputs), seconds, tally, answers, valid,
                       [*(notes or []), _load_note()], process_peak_rss())


class TinesSystem:
    """tines in-process: `LocalBackend` over an `Engine` built from `opts` (EngineConfig
    fields from `--tines-opt`), the radix cache on or off."""

    def __init__(self, model: Path, opts: dict[str, Any], radix: bool,
                 probe_tokens: int | None = probe.DECODE_TOKENS, label: str = "") -> None:
        """probe_tokens=None: no raw-speed probe. `label` goes into the name ("tines fp32")."""
        self.model, self.opts, self.radix = model, dict(opts), radix
        self.probe_tokens = probe_tokens
        self.name = f"tines{label}" if radix else f"tines{label} (radix off)"
        self.engine: Any = None
        self.speed: dict[str, float] = {}

    def open(self) -> str | None:
        from tines.local import LocalBackend
        from tines.runtime.engine.engine import Engine
        from tines.runtime.sampling_params import SamplingParams

        self.engine = Engine(str(self.model), disable_radix_cache=not self.radix, **self.opts)
        self.backend = LocalBackend(self.engine)
        # First forward passes and the grammar vocabulary are one-time costs, like a load.
        self.engine.generate("Hello there", SamplingParams(max_new_tokens=4, temperature=0))
        self.engine.generate("Pick:", SamplingParams(max_new_tokens=2, regex="[ab]"))
        if self.radix and self.probe_tokens:  # the same model code either way: probed once
            self.speed = probe.probe_tines(self.engine, self.probe_tokens)
        return None

    def run(self, wl: ModuleType, inputs: list[dict]) -> Measurement:
        self.engine.flush_cache()  # every workload starts cold
        before = self.engine.stats()
        answers, seconds = _timed(lambda: wl.run_tines(self.backend, inputs))
        after = self.engine.stats()
        d = {k: after[k] - before[k] for k in ("prompt_tokens", "prefill_tokens_computed",
                                               "generated_tokens", "forced_tokens",
                                               "cache_hit_tokens")}
        # Jump-forward's forced tokens are computed in prefill-sized chunks too: they are
        # output, not prompt, so they are moved to the output count.
        tally = Tally(d["prompt_tokens"], d["prefill_tokens_computed"] - d["forced_tokens"],
                      d["generated_tokens"] + d["forced_tokens"])
        notes = [f"cache hit tokens {d['cache_hit_tokens']}"]
        return _result(self.name, wl, inputs, answers, seconds, tally, notes)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None
        gc.collect()


class TransformersSystem:
    """transformers `generate`, one call at a time (see peers/hf.py)."""

    name = "transformers"

    def __init__(self, model: Path, dtype: str | None,
                 probe_tokens: int = probe.DECODE_TOKENS) -> None:
        """dtype None: transformers' fastest on this CPU (peers/hf.py `fastest_dtype`)."""
        self.model, self.dtype, self.probe_tokens = model, dtype, probe_tokens
        self.hf: Any = None
        self.speed: dict[str, float] = {}

    def open(self) -> str | None:
        try:
            import accelerate  # noqa: F401 (transformers needs it to read a GGUF)
            import transformers  # noqa: F401
        except ImportError as e:
            return f"not installed ({e}); `make bench-peers` installs it"
        from bench.peers.hf import HFPeer, fastest_dtype

        self.dtype = self.dtype or fastest_dtype()
        self.hf = HFPeer(self.model, self.dtype)
        self.hf.generate("Hello there", 2)
        self.speed = probe.probe_hf(self.hf, self.probe_tokens)
        self.hf.reset_tally()
        return None

    def run(self, wl: ModuleType, inputs: list[dict]) -> Measurement:
        self.hf.reset_tally()
        answers, seconds = _timed(lambda: wl.run_transformers(self.hf, inputs))
        notes = [self.dtype]
        if wl.NAME in ("json_extraction", "react_agent"):
            notes.append(f"JSON by {self.hf.json_mode}")
        return _result(self.name, wl, inputs, answers, seconds, self.hf.reset_tally(), notes)

    def close(self) -> None:
        self.hf = None
        gc.collect()


class LlamaCppSystem:
    """llama-cpp-python with its prompt cache (see peers/llamacpp.py); one `Llama` per
    workload, made with the workload's LLAMA_SETTINGS."""

    name = "llama.cpp"

    def __init__(self, model: Path, probe_tokens: int = probe.DECODE_TOKENS) -> None:
        self.model, self.probe_tokens = model, probe_tokens
        self.extra_buffers = True
        self.speed: dict[str, float] = {}

    def open(self) -> str | None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as e:
            return f"not installed ({e}); `make bench-peers` installs it"
        from bench.peers.llamacpp import LlamaPeer, extra_buffers_work

        self.extra_buffers = extra_buffers_work(self.model)
        peer = LlamaPeer(self.model, extra_buffers=self.extra_buffers, prompt_cache=False)
        try:
            peer.warm_up()
            self.speed = probe.probe_llama(peer, self.probe_tokens)
        finally:
            peer.close()
        return None

    def run(self, wl: ModuleType, inputs: list[dict]) -> Measurement:
        from bench.peers.llamacpp import LlamaPeer

        llm = LlamaPeer(self.model, extra_buffers=self.extra_buffers, **wl.LLAMA_SETTINGS)
        llm.warm_up()
        try:
            answers, seconds = _timed(lambda: wl.run_llama_cpp(llm, inputs))
            tally = llm.finish_tally()
        finally:
            llm.close()
        notes = [] if self.extra_buffers else ["AMX/repack buffers off (they fault on this VM)"]
        if wl.LLAMA_SETTINGS.get("logits_all"):
            notes.append(f"logits_all for {wl.NAME}")
        return _result(self.name, wl, inputs, answers, seconds, tally, notes)

    def close(self) -> None:
        gc.collect()
