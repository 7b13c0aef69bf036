"""tines on a CUDA GPU: correctness checks, then tines vs transformers on the same device.

    python -m bench.gpu_check --model PATH.gguf          # a CUDA machine: < 8 minutes on one H100
    python -m bench.gpu_check --device cpu --quick       # smoke test of this script on the CPU

(a) Checks; the exit status is 1 when one fails:
    logits vs transformers   the same GGUF in fp32 on the device: greedy tokens equal, and the
                             logprob of each within LOGPROB_TOL (TF32 off for both)
    triton = torch kernels   fp32 engines: the same greedy tokens over a batch with shared
                             prefixes, chunked prefill and a regex grammar (on the CPU only
                             under TRITON_INTERPRET=1, else skipped)
    radix on = off           an fp32 engine with and without the radix cache, same batch
(b) A table, both systems on the same device: prefill tokens/s (one 512-token prompt), decode
    tokens/s at 1, 32 and 256 sequences, and the six workloads of bench.run at their quick
    sizes (tines bf16 with CUDA graphs and Triton kernels; transformers bf16, one `generate`
    call at a time). `--quick` shrinks everything to a smoke test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from bench.probe import PREFILL_TOKENS, _text  # noqa: E402
from bench.run import SIZES  # noqa: E402
from bench.systems import TinesSystem, TransformersSystem  # noqa: E402
from bench.workloads import WORKLOADS  # noqa: E402

LOGPROB_TOL = 1e-3
TRUNK = ("You are a careful assistant. Read the notes below and answer in one short line.\n"
         "Notes: the river rises in spring; the bridge closes when it floods; the ferry runs "
         "every hour from the north bank.\n")
QUESTIONS = ["When does the bridge close?", "How often does the ferry run?",
             "Where does the ferry leave from?", "What happens in spring?"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--quick", action="store_true", help="a smoke test: tiny sizes")
    ap.add_argument("--model", type=Path, default=None,
                    help="a GGUF file (default: the default model, pulled if needed)")
    ap.add_argument("--skip-transformers", action="store_true", help="tines only")
    return ap.parse_args(argv)


# ---- (a) correctness ---------------------------------------------------------------------

def greedy_tokens(model: Path, prompts: list[str], params_list: list[Any],
                  **opts: Any) -> tuple[list[list[int]], list[list[float]]]:
    """Token ids and their logprobs of each (prompt, params) on one fresh engine."""
    from tines.runtime.engine.engine import Engine

    engine = Engine(str(model), **opts)
    try:
        handles = [engine.submit(p, sp) for p, sp in zip(prompts, params_list)]
        outs = [h.result() for h in handles]
    finally:
        engine.shutdown()
    return ([o.outputs[0].token_ids for o in outs],
            [[lp.logprob for lp in (o.outputs[0].logprobs or [])] for o in outs])


def check_batch(model: Path, device: str, quick: bool, **opts: Any) -> list[list[int]]:
    from tines.runtime.sampling_params import SamplingParams

    n = 4 if quick else 12
    free = SamplingParams(temperature=0, max_new_tokens=n, ignore_eos=True)
    regex = SamplingParams(temperature=0, max_new_tokens=n, regex=r"(yes|no|maybe)[a-z ]{0,12}")
    prompts = [TRUNK + q for q in QUESTIONS] + ["Answer yes or no: is water wet? "]
    tokens, _ = greedy_tokens(model, prompts, [free] * len(QUESTIONS) + [regex], device=device,
                              weights="fp32", kv_tokens=8192, chunked_prefill_size=32, **opts)
    return tokens


def check_vs_transformers(model: Path, device: str, quick: bool) -> tuple[bool, str]:
    from bench.peers.hf import HFPeer
    from tines.runtime.sampling_params import SamplingParams

    n = 4 if quick else 16
    prompt = TRUNK + QUESTIONS[0]
    params = SamplingParams(temperature=0, max_new_tokens=n, ignore_eos=True, logprobs=True)
    (ours,), (our_lps,) = greedy_tokens(model, [prompt], [params], device=device,
                                        weights="fp32", kv_tokens=4096)
    hf = on_device(HFPeer(model, "float32"), device)
    ids = torch.tensor([hf.encode(prompt)], device=device)
    with torch.inference_mode():
        out = hf.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                temperature=None, top_p=None, top_k=None, pad_token_id=hf.eos_id)
        theirs = out[0, ids.shape[1]:].tolist()
        logits = hf.model(out).logits[0, ids.shape[1] - 1:-1].float()  # predicts each new token
        their_lps = torch.log_softmax(logits, -1).gather(1, out[0, ids.shape[1]:, None])[:, 0]
    if ours != theirs:
        return False, f"greedy tokens differ: tines {ours} vs transformers {theirs}"
    worst = max(abs(a - b) for a, b in zip(our_lps, their_lps.tolist()))
    return worst <= LOGPROB_TOL, f"{n} tokens equal, max |logprob diff| {worst:.2e}"


def run_checks(model: Path, device: str, quick: bool) -> dict[str, tuple[bool | None, str]]:
    torch.backends.cuda.matmul.allow_tf32 = False
    results: dict[str, tuple[bool | None, str]] = {}
    try:
        results["logits vs transformers"] = check_vs_transformers(model, device, quick)
    except ImportError as e:
        results["logits vs transformers"] = (None, f"skipped: {e}")
    if device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        results["triton = torch kernels"] = (None, "skipped: the CPU runs triton only under "
                                             "TRITON_INTERPRET=1 (tests/kernels does)")
    else:
        a = check_batch(model, device, quick, kernels="triton")
        b = check_batch(model, device, quick, kernels="torch")
        results["triton = torch kernels"] = (a == b, "identical" if a == b else f"{a} vs {b}")
    on = check_batch(model, device, quick)
    off = check_batch(model, device, quick, disable_radix_cache=True)
    results["radix on = off"] = (on == off, "identical" if on == off else f"{on} vs {off}")
    return results


# ---- (b) speed ---------------------------------------------------------------------------

class _DeviceTorch:
    """torch, with the tensors HFPeer makes from host lists created on `device` instead."""

    _MAKERS = frozenset({"tensor", "full", "zeros", "ones", "empty", "arange"})

    def __init__(self, device: str):
        self._device = device

    def __getattr__(self, name: str) -> Any:
        real = getattr(torch, name)
        if name not in self._MAKERS:
            return real
        return lambda *a, **k: real(*a, **k).to(self._device)


def on_device(hf: Any, device: str) -> Any:
    """An HFPeer moved to `device` (its inputs follow through `_DeviceTorch`)."""
    hf.model.to(device)
    hf.torch = _DeviceTorch(device)
    return hf


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def speed_tines(engine: Any, batches: list[int], decode_tokens: int) -> dict[str, float]:
    from tines.runtime.sampling_params import SamplingParams

    encode = engine.tokenizer.encode
    ids = encode(_text(PREFILL_TOKENS, encode))[:PREFILL_TOKENS]
    engine.flush_cache()
    t0 = time.perf_counter()
    engine.generate(ids, SamplingParams(max_new_tokens=1, temperature=0))
    out = {"prefill tok/s": PREFILL_TOKENS / (time.perf_counter() - t0)}
    for b in batches:
        prompts = [encode(f"Story {i}: once upon a time") for i in range(b)]
        params = SamplingParams(max_new_tokens=decode_tokens, temperature=0, ignore_eos=True)
        t0 = time.perf_counter()
        engine.generate(prompts, params)
        out[f"decode b{b} tok/s"] = b * decode_tokens / (time.perf_counter() - t0)
    engine.flush_cache()
    return out


def speed_hf(hf: Any, device: str, batches: list[int], decode_tokens: int) -> dict[str, float]:
    prompt = hf.encode(_text(PREFILL_TOKENS, hf.encode))[:PREFILL_TOKENS]
    ids = torch.tensor([prompt], device=device)
    with torch.inference_mode():
        hf.model(ids[:, :16])  # first-call set-up
        _sync(device)
        t0 = time.perf_counter()
        hf.model(ids)
        _sync(device)
        out = {"prefill tok/s": PREFILL_TOKENS / (time.perf_counter() - t0)}
        short = hf.encode("Story 0: once upon a time")
        for b in batches:
            batch = torch.tensor([short] * b, device=device)  # equal lengths: no padding
            t0 = time.perf_counter()
            hf.model.generate(input_ids=batch, attention_mask=torch.ones_like(batch),
                              max_new_tokens=decode_tokens, min_new_tokens=decode_tokens,
                              do_sample=False, temperature=None, top_p=None, top_k=None,
                              pad_token_id=hf.eos_id)
            _sync(device)
            out[f"decode b{b} tok/s"] = b * decode_tokens / (time.perf_counter() - t0)
    return out


class DeviceTransformers(TransformersSystem):
    """bench.systems' transformers peer, on `device` (no raw-speed probe: speed_hf is it): bf16
    on a GPU, fp32 on the CPU (the smoke test; bf16 matmuls crawl on CPUs without bf16 units)."""

    def __init__(self, model: Path, device: str):
        super().__init__(model, "bfloat16" if device == "cuda" else "float32")
        self.device = device

    def open(self) -> str | None:
        try:
            import accelerate  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as e:
            return f"not installed ({e})"
        from bench.peers.hf import HFPeer

        self.hf = on_device(HFPeer(self.model, self.dtype), self.device)
        self.hf.generate("Hello there", 2)
        self.hf.reset_tally()
        return None


def workloads(system: Any, names: list[str], n: int | None) -> dict[str, str]:
    """workload -> "programs/s (valid/n)" on an opened system."""
    out = {}
    for name in names:
        wl = WORKLOADS[name]
        count = n or SIZES[name][0]
        m = system.run(wl, wl.make_inputs(count, 0))
        out[name] = f"{m.n / m.seconds:.2f} ({m.valid}/{m.n})"
        print(f"  [{system.name}] {name}: {m.n} programs in {m.seconds:.1f} s", flush=True)
    return out


def print_table(columns: dict[str, dict[str, Any]]) -> None:
    rows = list(dict.fromkeys(k for col in columns.values() for k in col))
    names = list(columns)
    print(f"{'':<22}" + "".join(f"{n:>20}" for n in names))
    for row in rows:
        cells = [columns[n].get(row, "-") for n in names]
        print(f"{row:<22}" + "".join(f"{c:>20.1f}" if isinstance(c, float) else f"{c!s:>20}"
                                     for c in cells))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu --quick for the smoke test")
        return 2
    from tines.runtime.models.registry import pull

    model = args.model or pull(quiet=True)
    t_start = time.perf_counter()
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"gpu_check: {model.name} on {name}, torch {torch.__version__}", flush=True)

    checks = run_checks(model, args.device, args.quick)
    for check, (ok, detail) in checks.items():
        verdict = "skip" if ok is None else "PASS" if ok else "FAIL"
        print(f"  {verdict:<5}{check}: {detail}", flush=True)

    batches, tokens, n = ([1, 4], 8, 1) if args.quick else ([1, 32, 256], 64, None)
    names = list(WORKLOADS)
    columns: dict[str, dict[str, Any]] = {}
    opts = {"device": args.device, "weights": "bf16", "compile": args.device == "cuda",
            "max_running": max(batches),
            "chunked_prefill_size": 2048 if args.device == "cuda" else 512}
    tines = TinesSystem(model, opts, radix=True, probe_tokens=None)
    tines.open()
    try:
        columns["tines"] = {**speed_tines(tines.engine, batches, tokens),
                            **workloads(tines, names, n)}
    finally:
        tines.close()
    if not args.skip_transformers:
        hf = DeviceTransformers(model, args.device)
        skip = hf.open()
        if skip:
            print(f"transformers skipped: {skip}")
        else:
            columns["transformers"] = {**speed_hf(hf.hf, args.device, batches, tokens),
                                       **workloads(hf, names, n)}
            hf.close()
    print()
    print_table(columns)
    wall = time.perf_counter() - t_start
    print(f"\nworkload cells: programs/s (valid/n); wall time {wall:.0f} s")
    return 1 if any(ok is False for ok, _ in checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
