"""4-bit weight matmul for AVX2 CPUs: `int4_cpu.cpp`, built on first use, and its reference.

    W[n, k] = d[n, g] * q[n, k] + m[n, g],  g = k // 32,  q in 0..15
    int4_mm_ref(x, q, dm) = x @ W.T  (in float32)

`pack(q, d, m)` lays a (N, K) nibble matrix and its per-group (d, m) out as the kernel
reads them (GGUF's Q4 block order); `int4_mm(x, q, dm)` is the op `torch.ops.tines.int4_mm`,
which torch.compile sees as one opaque call. It answers in x's dtype (float32 or bf16).

Why a kernel of our own: torch's `_weight_int4pack_mm_for_cpu` takes bf16 activations and
bf16 scales, and on an AVX2-only EPYC (2 threads) it took 44% of a batch-1 decode step on
the default model (`bench/cpu_speed.py --profile auto:1`). This one rounds each group of 32
activations to int16 and sums nibble times activation exactly in int32; its outputs came
within 2e-5 of the float32 reference (relative to the largest), torch's op within 4e-3.
A layer's four matmuls take 296 µs against torch's 501 on one row, 698 against 1002 on 8
(`bench/kernel_ops.py` prints both), and batch-1 decode went from 37.5 to 52.9 tok/s
(`bench/cpu_speed.py`). It is used only where torch reports AVX2 as the CPU's best vector
unit (`available()`): on AVX-512 machines torch's op was not measured against it and stays.

Building needs a C++ compiler (as torch.compile's CPU backend does) and ninja (a dependency,
from PyPI), and takes ~25 s once;
torch caches the library under ~/.cache/torch_extensions, by a hash of the source. Without
a compiler, `available()` is False (logged once) and the caller keeps torch's op. The op's
contract (shapes, dtypes) is baked into graphs that inductor caches by the op's name: a
change to it needs a new name or an empty inductor cache.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sysconfig
from pathlib import Path

import torch

log = logging.getLogger(__name__)

GROUP = 32
_SOURCE = Path(__file__).with_name("int4_cpu.cpp")


def int4_mm_ref(x: torch.Tensor, q: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
    """The reference: x (M, K), q and dm as `pack` returns them -> float32 (M, N). The
    kernel matches it within ~1e-4 of the largest output (its activations are int16)."""
    return x.float() @ dequantize(q, dm).t()


def pack(q: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q uint8 (N, K) in 0..15, d and m (N, K // 32) -> (uint8 (N, K // 2), float32
    (N, K // 32, 2)): per group of 32, byte j holds q[j] (low nibble) and q[j + 16]."""
    n, k = q.shape
    groups = q.to(torch.uint8).reshape(n, k // GROUP, 2, GROUP // 2)
    packed = (groups[:, :, 0] | (groups[:, :, 1] << 4)).reshape(n, k // 2).contiguous()
    return packed, torch.stack((d.float(), m.float()), dim=-1).contiguous()


def dequantize(q: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
    """The float32 (N, K) weight of a packed pair."""
    n = q.shape[0]
    groups = q.reshape(n, -1, GROUP // 2)
    nibbles = torch.cat((groups & 0xF, groups >> 4), dim=2)  # per group: q[0:16], q[16:32]
    w = nibbles.float() * dm[..., :1] + dm[..., 1:]
    return w.reshape(n, -1)


def int4_mm(x: torch.Tensor, q: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
    """x float32 or bfloat16 (M, K) -> (M, N) in x's dtype through the built kernel (call
    `available()` first). bf16 goes in and out as it is, so the roundings happen in the op,
    where a compiled graph cannot fuse them away."""
    if x.dtype not in (torch.float32, torch.bfloat16):
        x = x.float()
    return torch.ops.tines.int4_mm(x, q, dm)


@functools.cache
def available() -> bool:
    """Whether the kernel is built and loaded here (AVX2 CPUs with a C++ compiler)."""
    if torch.backends.cpu.get_cpu_capability() != "AVX2":
        return False
    try:
        _load()
    except Exception as e:  # noqa: BLE001 - no compiler, no headers: keep torch's op
        log.warning("the AVX2 int4 kernel could not be built (%s); using torch's int4 op, "
                    "which is slower on this CPU", str(e).splitlines()[0] if str(e) else e)
        return False
    return True


def _load() -> None:
    from torch.utils import cpp_extension

    # cpp_extension runs `ninja` from PATH; pip puts the PyPI one (a dependency) in the
    # environment's scripts folder, which is not on PATH when the venv is not activated
    scripts = sysconfig.get_path("scripts")
    if shutil.which("ninja") is None and shutil.which("ninja", path=scripts):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    source = _SOURCE.read_bytes()
    name = "tines_int4_cpu_" + hashlib.sha1(source).hexdigest()[:12]
    log.info("loading the AVX2 int4 kernel %s (built once, ~25 s, then cached)", name)
    cpp_extension.load(name=name, sources=[str(_SOURCE)], is_python_module=False,
                       extra_cflags=["-O3", "-mavx2", "-mfma", "-fopenmp"], verbose=False)
