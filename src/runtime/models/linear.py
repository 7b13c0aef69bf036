"""Linear layers and embeddings in each weight format the engine runs.

    fp32 / bf16   dense weights, F.linear (bf16 blocked once for oneDNN where the CPU has it:
                  onednn.py)
    int8          int8 weights with one scale per output channel, torch's int8 weight-only op
    int4          4-bit weights in groups of 32 with a scale and zero each: tines' AVX2
                  kernel where the CPU's best vector unit is AVX2 (int16 activations, float32
                  scales: kernels/int4_cpu.py), torch's int4 op (bf16) elsewhere
    auto          both int4 and a dense copy: a step of few tokens (decoding) is bound by
                  reading the weights and takes the 4-bit copy; a step of many (prefill, big
                  batches) is bound by arithmetic and takes the dense copy, in bf16 where the
                  CPU multiplies bf16 in hardware (AVX512-BF16, AMX: `onednn.available()`),
                  else in fp32

Where the CPU has no bf16 arithmetic, torch's bf16 matmul and attention run emulated, far
slower than fp32 (measured on an AVX2-only EPYC, 2 threads, a (512, 576) x (576, 1536)
matmul: 1.1 GFLOP/s in bf16, 83 in fp32): there `auto` keeps activations, the dense copy and
the KV cache in fp32, and the int4 steps run on tines' AVX2 kernel from fp32 activations.

torch's low-bit ops take bf16 activations (their fast path); the low-bit formats keep the
weights low-bit in memory and are the CPU path (CUDA would want its own packing). Matmul
inputs are cast to the format's dtype, so the model may keep its residual stream in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...kernels import int4_cpu
from .quantize import GROUP, Int4Weight, Int8Weight
from . import onednn

REFINE_TOP = 16  # logits recomputed in float32 per row when the head's copy is inexact

WEIGHT_FORMATS = ("fp32", "bf16", "int8", "int4", "auto")
# `auto` takes the 4-bit weights for steps of at most this many tokens, by int4 kernel.
# torch's op, against oneDNN bf16 (measured on the default model, 2 threads, AMX): alone, a
# layer's linears are faster in int4 only up to 4 rows (`bench/kernel_ops.py` prints both
# formats), but in the compiled decode step each oneDNN bf16 call is a custom-op round trip,
# so whole decode steps cross over between 8 and 12 sequences (batch 8: bf16 ~0.7x int4's
# tokens/s; batch 12-16: bf16 1.2-1.6x).
AUTO_INT4_MAX_TOKENS = 8
# tines' AVX2 kernel, against fp32 dense (an AVX2-only EPYC, 2 threads): batch-32 decode
# went from 95 to 127 tok/s with this limit at 32 instead of 8 (`bench/cpu_speed.py`), since
# a step's 30 layers of weights come from memory, 4 bits against 32. (One layer alone, its
# weights in cache, is 1.1x slower in int4 at 32 rows: `bench/kernel_ops.py`.)
AUTO_INT4_MAX_TOKENS_AVX2 = 32


def auto_int4_max_tokens(tines_kernel: bool | None = None) -> int:
    """The most tokens a step of the `auto` format runs on the 4-bit weights, with tines'
    AVX2 kernel or torch's op (None: whichever runs here)."""
    if tines_kernel is None:
        tines_kernel = int4_cpu.available()
    return AUTO_INT4_MAX_TOKENS_AVX2 if tines_kernel else AUTO_INT4_MAX_TOKENS


def activation_dtype(fmt: str) -> torch.dtype:
    """The dtype of a format's activations and KV cache (see the module docstring for auto)."""
    if fmt == "fp32" or (fmt == "auto" and not onednn.available()):
        return torch.float32
    return torch.bfloat16


def _takes_int4(fmt: str, rows: int, tines_kernel: bool) -> bool:
    """Whether a matmul of `rows` rows in format `fmt` runs on the 4-bit weights (whose
    kernel is tines' AVX2 one or torch's op)."""
    return fmt == "int4" or (fmt == "auto" and rows <= auto_int4_max_tokens(tines_kernel))


def _check_format(fmt: str) -> None:
    if fmt not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {WEIGHT_FORMATS}, got {fmt!r}")


class Linear(nn.Module):
    """y = x @ W.T (+ b). Weights arrive through `load` (a float tensor, or an Int4Weight
    that keeps a GGUF's own 4-bit values)."""

    def __init__(self, in_features: int, out_features: int, bias: bool, fmt: str):
        super().__init__()
        _check_format(fmt)
        if fmt in ("int4", "auto") and in_features % GROUP:
            raise ValueError(f"{fmt} needs in_features divisible by {GROUP}, got {in_features}")
        self.in_features, self.out_features, self.fmt = in_features, out_features, fmt
        self.dtype = activation_dtype(fmt)
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=self.dtype), requires_grad=False) \
            if bias else None
        # Buffers (filled by `load`), so a compiler sees them as inputs, not constants.
        self.register_buffer("weight", None, persistent=False)  # dense (fp32; bf16, auto unpacked)
        self.register_buffer("handle", None, persistent=False)  # bf16, auto: see onednn.py
        self.packed = None  # the oneDNN weight `handle` names (held here, so it lives with us)
        self.register_buffer("q", None, persistent=False)  # int8 (N, K) / int4 packed
        # int8 (N,); int4: (N, K/32, 2) float32 for tines' kernel, else (K/32, N, 2) bf16
        self.register_buffer("scales", None, persistent=False)
        self.int4_kernel = False  # int4 runs on tines' AVX2 kernel (kernels/int4_cpu.py)

    def load(self, weight: torch.Tensor | Int4Weight, bias: torch.Tensor | None = None) -> None:
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(f"weight shape {tuple(weight.shape)} != "
                             f"{(self.out_features, self.in_features)}")
        dense = weight.dequantize() if isinstance(weight, Int4Weight) else weight
        if self.fmt in ("int4", "auto"):
            w = weight if isinstance(weight, Int4Weight) else Int4Weight.from_float(weight)
            self.int4_kernel = int4_cpu.available()
            self.q, self.scales = w.packed_for_tines() if self.int4_kernel else w.packed_for_torch()
        elif self.fmt == "int8":
            w8 = Int8Weight.from_float(dense)
            self.q, self.scales = w8.q.contiguous(), w8.scale.to(self.dtype)
        if self.fmt == "fp32" or (self.fmt in ("bf16", "auto") and not onednn.available()):
            self.weight = dense.to(self.dtype).contiguous()  # auto: fp32 there (activation_dtype)
        elif self.fmt in ("bf16", "auto"):
            self.packed, self.handle = onednn.pack(dense)
        if bias is not None:
            self.bias.data.copy_(bias)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Output rows `index` of the weight in float32: (*index.shape, in_features)."""
        if self.weight is not None:
            return self.weight[index].float()
        if self.fmt == "int8":
            return self.q[index].float() * self.scales[index].float()[..., None]
        raise NotImplementedError(f"row access is not kept for {self.fmt} weights")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)  # the residual stream may be wider than the matmul's input
        if _takes_int4(self.fmt, x.shape[0], self.int4_kernel):
            if self.int4_kernel:
                y = int4_cpu.int4_mm(x, self.q, self.scales).to(self.dtype)
            else:
                y = torch.ops.aten._weight_int4pack_mm_for_cpu(
                    x.to(torch.bfloat16), self.q, GROUP, self.scales).to(self.dtype)
        elif self.fmt == "int8":
            y = torch.ops.aten._weight_int8pack_mm(x, self.q, self.scales)
        elif self.handle is not None:
            return onednn.linear(x, self.handle, self.bias, self.out_features)
        else:
            return F.linear(x, self.weight, self.bias)
        return y if self.bias is None else y + self.bias


class Embedding(nn.Module):
    """Token embeddings, also the output layer when tied. int8 and int4 keep the table in
    int8 (one scale per row): rows are dequantized on lookup, logits use the int8 matmul."""

    def __init__(self, num: int, dim: int, fmt: str):
        super().__init__()
        _check_format(fmt)
        self.num, self.dim, self.fmt = num, dim, fmt
        self.dtype = activation_dtype(fmt)
        self.register_buffer("weight", None, persistent=False)
        self.register_buffer("q", None, persistent=False)
        self.register_buffer("scales", None, persistent=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.num, self.dim

    def load(self, weight: torch.Tensor) -> None:
        if tuple(weight.shape) != (self.num, self.dim):
            raise ValueError(f"embedding shape {tuple(weight.shape)} != {(self.num, self.dim)}")
        if self.fmt in ("int8", "int4"):
            w8 = Int8Weight.from_float(weight)
            self.q, self.scales = w8.q.contiguous(), w8.scale.to(self.dtype)
        else:
            self.weight = weight.to(self.dtype).contiguous()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.q is None:
            return F.embedding(ids, self.weight)
        return self.q[ids].to(self.dtype) * self.scales[ids, None]

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows `index` of the table in float32: (*index.shape, dim)."""
        if self.q is None:
            return self.weight[index].float()
        return self.q[index].float() * self.scales[index].float()[..., None]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (N, dim) -> (N, num) float32."""
        if self.q is None:
            return F.linear(hidden.to(self.dtype), self.weight).float()
        return torch.ops.aten._weight_int8pack_mm(hidden.to(self.dtype), self.q, self.scales).float()


class OutputHead(nn.Module):
    """The output layer. Logits come from one matmul in the weight format: int4 and auto keep
    a 4-bit copy of the table (8x smaller than float32, which auto uses for few rows); bf16
    and auto keep a copy blocked for oneDNN where the CPU has it (measured 2.2x faster than
    from the table itself at 32 rows: 2.3 ms instead of 5.1, for the table's size again).
    `rows` gives float32 rows of the best available table, for recomputing the best
    candidates exactly. A tied head reads the embedding's table and stores only its copies."""

    def __init__(self, num: int, dim: int, fmt: str, tied: Embedding | None):
        super().__init__()
        self.fmt = fmt
        self.tied = tied
        self.table = None if tied is not None else Embedding(num, dim, fmt)
        self.int4 = Linear(dim, num, False, "int4") if fmt in ("int4", "auto") else None
        self.bf16 = Linear(dim, num, False, "bf16") \
            if fmt in ("bf16", "auto") and onednn.available() else None

    def load(self, weight: torch.Tensor) -> None:
        if self.table is not None:
            self.table.load(weight)
        for copy in (self.int4, self.bf16):
            if copy is not None:
                copy.load(weight)

    def _copy_for(self, rows: int) -> Linear | None:
        """The low-precision copy that computes `rows` rows of logits (None: the table)."""
        if self.int4 is not None and _takes_int4(self.fmt, rows, self.int4.int4_kernel):
            return self.int4
        return self.bf16

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (N, dim) -> (N, num) float32.

        From a bf16 or 4-bit copy of the table the logits come out rounded (bf16: steps of
        0.125 near 25, which makes near ties exact ties); then the best REFINE_TOP candidates
        of each row are recomputed in float32 from the table, so greedy picks and top
        logprobs are exact."""
        copy = self._copy_for(hidden.shape[0])
        logits = copy(hidden).float() if copy is not None \
            else (self.tied or self.table).logits(hidden)
        if self.exact(hidden.shape[0]) or not hidden.numel():
            return logits
        top = top_indices(logits, REFINE_TOP)  # (N, k)
        refined = torch.einsum("nkd,nd->nk", self.rows(top), hidden.float())
        return logits.scatter_(1, top, refined)

    def exact(self, rows: int) -> bool:
        """Whether `rows` rows of logits are float32 arithmetic on the float32 table (else
        `logits` recomputes each row's best candidates from `rows()`)."""
        table = self.tied or self.table
        return self._copy_for(rows) is None and table.q is None and table.weight.dtype == torch.float32

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Float32 rows of the best available table: index (...) -> (..., dim)."""
        return (self.tied or self.table).rows(index)


def top_indices(logits: torch.Tensor, k: int, chunk: int = 512) -> torch.Tensor:
    """The indices of each row's k largest values (as `topk`), found in two stages: the k
    best values lie in at most k chunks, so rank chunk maxima first, then search only those
    chunks. Measured 2x faster than `topk` over a 49k vocabulary on the CPU."""
    n, v = logits.shape
    if v <= k * chunk:
        return logits.topk(k, dim=-1).indices
    pad = -v % chunk
    if pad:
        logits = F.pad(logits, (0, pad), value=float("-inf"))
    chunks = logits.view(n, -1, chunk)  # (N, C, chunk)
    best = chunks.amax(-1).topk(k, dim=-1).indices  # (N, k) chunks holding the top k
    cand = torch.gather(chunks, 1, best[..., None].expand(n, k, chunk)).view(n, k * chunk)
    pos = cand.topk(k, dim=-1).indices  # (N, k) positions among the candidates
    return best.gather(1, pos // chunk) * chunk + pos % chunk
