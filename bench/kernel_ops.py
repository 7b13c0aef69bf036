"""Time each torch reference kernel (the CPU path) at the default model's shapes.

SmolLM2-135M: hidden 576, 9 heads / 3 KV heads, head dim 64, FFN 1536, vocab 49,152, 30
layers. Decode rows are per layer (per step for the bitmask) at batch 1, 8 and 32, in fp32
and bf16; attention reads contexts of 512 and 2048 tokens per sequence through the slot
table. Extend attention runs one 512-token prefill chunk, alone and after a 1,536-token
cached prefix, and beside 15 short extends (split by query length, and as one padded call). Times are medians in µs. The last lines put them in scale: one layer's
matmuls, and the kernels' share of a 30-layer decode step.

    .venv/bin/python -m bench.kernel_ops [--runs 15] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from tines import kernels
from tines.kernels import AttentionBatch

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB, LAYERS = 576, 9, 3, 64, 1536, 49152, 30
BATCHES = (1, 8, 32)
DTYPES = (torch.float32, torch.bfloat16)
CONTEXTS = (512, 2048)


def median_us(fn: Callable[[], object], runs: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def decode_batch(batch: int, context: int) -> AttentionBatch:
    """`batch` sequences of `context` keys, each in its own contiguous run of slots (as a
    fresh pool hands them out)."""
    table = torch.arange(batch * context).view(batch, context)
    attn = AttentionBatch.from_table([1] * batch, [context] * batch, table)
    attn.prepare_torch()
    return attn


def layer_ops(batch: int, dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    """One decode step's per-layer kernels on `batch` tokens."""
    x, residual = torch.randn(batch, HIDDEN, dtype=dtype), torch.randn(batch, HIDDEN, dtype=dtype)
    weight = torch.randn(HIDDEN, dtype=dtype)
    qkv = torch.randn(batch, (HEADS + 2 * KV_HEADS) * HEAD_DIM, dtype=dtype)
    q, k, v = qkv.split([HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM], dim=-1)
    q, k, v = (t.view(batch, -1, HEAD_DIM) for t in (q, k, v))  # (B, H, D), views into qkv
    positions, cos_sin = torch.randint(0, 8192, (batch,)), torch.randn(8192, HEAD_DIM)
    pool_k, pool_v = (torch.zeros(4096, KV_HEADS, HEAD_DIM, dtype=dtype) for _ in range(2))
    slots = torch.randperm(4096)[:batch]
    gate_up = torch.randn(batch, 2 * FFN, dtype=dtype)
    return {
        "rms_norm": lambda: kernels.rms_norm_ref(x, weight, 1e-5),
        "add_rms_norm": lambda: kernels.add_rms_norm_ref(x, residual, weight, 1e-5),
        "apply_rotary (in place)": lambda: kernels.apply_rotary_ref(q, k, positions, cos_sin),
        "store_kv": lambda: kernels.store_kv_ref(pool_k, pool_v, slots, k, v),
        "silu_and_mul": lambda: kernels.silu_and_mul_ref(gate_up),
    }


def attention_ops(batch: int, dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    ops = {}
    for context in CONTEXTS:
        k_cache, v_cache = (torch.randn(batch * context, KV_HEADS, HEAD_DIM, dtype=dtype)
                            for _ in range(2))
        q = torch.randn(batch, HEADS, HEAD_DIM, dtype=dtype)
        attn = decode_batch(batch, context)
        # default arguments bind this context's tensors
        ops[f"decode_attention ctx {context}"] = lambda q=q, k=k_cache, v=v_cache, a=attn: \
            kernels.decode_attention_ref(q, k, v, a, 0.125)
    return ops


def bitmask_op(batch: int) -> Callable[[], object]:
    logits = torch.randn(batch, VOCAB)
    bitmask = torch.randint(-2**31, 2**31 - 1, (batch, VOCAB // 32), dtype=torch.int32)
    return lambda: kernels.apply_token_bitmask_ref(logits, bitmask)


def extend_ops(dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    chunk, prefix = 512, 1536
    k_cache, v_cache = (torch.randn(chunk + prefix, KV_HEADS, HEAD_DIM, dtype=dtype)
                        for _ in range(2))
    q = torch.randn(chunk, HEADS, HEAD_DIM, dtype=dtype)
    table = torch.arange(chunk + prefix)[None]
    fresh = AttentionBatch.from_table([chunk], [chunk], table)
    cached = AttentionBatch.from_table([chunk], [chunk + prefix], table)
    cached.prepare_torch()
    # the chunk beside 15 sequences extending 4 tokens over 1,000 cached ones
    lens = ([chunk] + [4] * 15, [chunk] + [1000] * 15)
    mixed_table = torch.arange(chunk + prefix).repeat(16, 1)
    mixed_q = torch.randn(chunk + 60, HEADS, HEAD_DIM, dtype=dtype)
    mixed = AttentionBatch.from_table(*lens, mixed_table)
    padded = AttentionBatch.from_table(*lens, mixed_table)
    padded.parts = []  # not split: every sequence padded to the chunk
    return {
        "extend 512, no prefix": lambda: kernels.extend_attention_ref(q, k_cache, v_cache, fresh,
                                                                      0.125),
        "extend 512 after 1536": lambda: kernels.extend_attention_ref(q, k_cache, v_cache, cached,
                                                                      0.125),
        "512 + 15x4, in parts": lambda: kernels.extend_attention_ref(mixed_q, k_cache, v_cache,
                                                                     mixed, 0.125),
        "512 + 15x4, one padded call": lambda: kernels.extend_attention_ref(
            mixed_q, k_cache, v_cache, padded, 0.125),
    }


def matmul_ops(batch: int, dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    """One layer's linears (weights [out, in], as nn.Linear keeps them), for scale; in bf16
    also as the engine runs them: oneDNN-blocked bf16 and int4 (where `auto` switches)."""
    from tines.runtime.models.linear import Linear

    x = torch.randn(batch, HIDDEN, dtype=dtype)
    h = torch.randn(batch, FFN, dtype=dtype)
    w_qkv = torch.randn((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN, dtype=dtype)
    w_o = torch.randn(HIDDEN, HEADS * HEAD_DIM, dtype=dtype)
    w_gu, w_down = torch.randn(2 * FFN, HIDDEN, dtype=dtype), torch.randn(HIDDEN, FFN, dtype=dtype)
    ops = {"linears of one layer": lambda: (F.linear(x, w_qkv), F.linear(x, w_o),
                                            F.linear(x, w_gu), F.linear(h, w_down))}
    if dtype == torch.bfloat16:
        for fmt in ("bf16", "int4"):
            layer = []
            for w in (w_qkv, w_o, w_gu, w_down):
                lin = Linear(w.shape[1], w.shape[0], False, fmt)
                lin.load(w.float())
                layer.append(lin)
            ops[f"linears of one layer, {fmt}"] = lambda layer=layer: (
                layer[0](x), layer[1](x), layer[2](x), layer[3](h))
    return ops


def int4_ops(batch: int) -> dict[str, Callable[[], object]]:
    """One layer's linears on 4-bit weights from float32 activations, as `auto` runs decode
    steps on a CPU without bf16 arithmetic: torch's int4 op (bf16 in) and, where it is built,
    tines' AVX2 kernel (kernels/int4_cpu.py)."""
    from tines.kernels import int4_cpu
    from tines.runtime.models.quantize import GROUP, Int4Weight

    x, h = torch.randn(batch, HIDDEN), torch.randn(batch, FFN)
    shapes = [((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN), (HIDDEN, HEADS * HEAD_DIM),
              (2 * FFN, HIDDEN), (HIDDEN, FFN)]
    weights = [Int4Weight.from_float(torch.randn(n, k)) for n, k in shapes]
    inputs = [x, x, x, h]
    torch_packed = [w.packed_for_torch() for w in weights]
    ops = {"int4 layer, torch op": lambda: [
        torch.ops.aten._weight_int4pack_mm_for_cpu(a.to(torch.bfloat16), q, GROUP, sz).float()
        for a, (q, sz) in zip(inputs, torch_packed)]}
    if int4_cpu.available():
        ours = [w.packed_for_tines() for w in weights]
        ops["int4 layer, tines AVX2"] = lambda: [int4_cpu.int4_mm(a, q, dm)
                                                 for a, (q, dm) in zip(inputs, ours)]
    return ops


def table(title: str, rows: dict[str, dict[tuple, float]], columns: list[tuple]) -> None:
    head = " | ".join(f"{'fp32' if d == torch.float32 else 'bf16'} B={b}" for d, b in columns)
    print(f"\n{title}\n{'op':<28} | {head}")
    print("-" * (31 + len(head)))
    for name, cells in rows.items():
        vals = " | ".join(f"{cells[c]:>{len(f'fp32 B={c[1]}')}.0f}" if c in cells
                          else " " * len(f"fp32 B={c[1]}") for c in columns)
        print(f"{name:<28} | {vals}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f} (another busy process skews multi-threaded ops)")
    columns = [(d, b) for d in DTYPES for b in BATCHES]
    rows: dict[str, dict[tuple, float]] = {}
    scale: dict[str, dict[tuple, float]] = {}
    with torch.inference_mode():
        for dtype, batch in columns:
            ops = {**layer_ops(batch, dtype), **attention_ops(batch, dtype)}
            if dtype == torch.float32:
                ops["apply_token_bitmask (step)"] = bitmask_op(batch)  # logits are fp32
            for name, fn in ops.items():
                rows.setdefault(name, {})[(dtype, batch)] = median_us(fn, args.runs)
            more = int4_ops(batch) if dtype == torch.float32 else {}
            for name, fn in {**matmul_ops(batch, dtype), **more}.items():
                scale.setdefault(name, {})[(dtype, batch)] = median_us(fn, args.runs)
        table("Decode, per layer (µs, median)", rows, columns)
        extend: dict[str, dict[tuple, float]] = {}
        for dtype in DTYPES:
            for name, fn in extend_ops(dtype).items():
                extend.setdefault(name, {})[(dtype, 1)] = median_us(fn, max(3, args.runs // 3))
        table("Extend attention, a 512-token chunk (µs, median)", extend,
              [(d, 1) for d in DTYPES])
        per_layer = list(layer_ops(1, torch.float32))
        for context in CONTEXTS:
            attention = f"decode_attention ctx {context}"
            scale[f"kernels x{LAYERS} ctx {context}"] = {
                c: LAYERS * sum(rows[op][c] for op in [*per_layer, attention]) for c in columns}
        table(f"For scale: one layer's matmuls; the per-layer kernels x{LAYERS} layers (µs)",
              scale, columns)

if __name__ == "__main__":
    main()
