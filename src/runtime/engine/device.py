"""Where an engine runs: its device, its kernels, and its weights in the format that device runs.

    device   cpu                          cuda
    weights  fp32, bf16, int8, int4, auto fp32 (exactness), bf16 (auto means bf16)
    kernels  torch (triton only under     triton (torch on request)
             TRITON_INTERPRET=1, tests)

The low-bit formats are packed for the CPU's int8/int4 ops (models/linear.py), so on CUDA a
model is loaded dense in fp32 and moved, in bf16 unless fp32 was asked for; int8 and int4
there are a ValueError naming the format. The host keeps scheduling and the radix tree; the
model, KV pool, slot table (a mirror) and the step's tensors live on the device.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from torch import nn

from ... import kernels
from ..models import onednn
from ..models.linear import Embedding, Linear, OutputHead
from .config import EngineConfig

log = logging.getLogger("tines.engine")


class Placement(NamedTuple):
    device: torch.device
    kernels: kernels.Backend  # "torch" or "triton": what "auto" means on the engine thread
    load_format: str  # the format the loader builds the model in
    weights: str  # the format the model runs in on the device


def resolve_placement(cfg: EngineConfig) -> Placement:
    """The device, kernels and weight formats `cfg` asks for. ValueError for a combination
    the device cannot run (naming the setting), RuntimeError for triton without triton."""
    device = resolve_device(cfg.device)
    backend = cfg.kernels
    if backend == "auto":
        backend = "triton" if device.type == "cuda" and kernels.triton_available() else "torch"
    if backend == "triton" and not kernels.triton_available():
        raise RuntimeError("kernels='triton' was asked for but triton is not installed")
    if device.type == "cpu":
        if backend == "triton" and not kernels.triton_interpreting():
            raise ValueError("kernels='triton' on the CPU runs only under the Triton "
                             "interpreter (TRITON_INTERPRET=1, as the tests set it)")
        if cfg.weights == "bf16" and not onednn.available():
            log.warning("weights='bf16': this CPU has no bf16 arithmetic, so bf16 matmuls run "
                        "emulated, tens of times slower than fp32; weights='auto' (the default) "
                        "or 'fp32' run faster here")
        return Placement(device, backend, cfg.weights, cfg.weights)
    if cfg.tp_size > 1:
        raise ValueError(f"tp_size={cfg.tp_size} runs on the CPU only for now; use device='cpu'")
    if cfg.weights in ("int8", "int4"):
        has_op = hasattr(torch.ops.aten, "_weight_int4pack_mm")
        raise ValueError(
            f"weights={cfg.weights!r} is packed for the CPU's {cfg.weights} ops and has no CUDA "
            f"path in tines yet (torch's CUDA int4 matmul is "
            f"{'present' if has_op else 'absent'}); use weights='bf16' or 'fp32' on cuda")
    weights = "fp32" if cfg.weights == "fp32" else "bf16"
    return Placement(device, backend, "fp32", weights)


def resolve_device(name: str) -> torch.device:
    """"cpu", "cuda" or "auto" (cuda when torch sees a GPU) -> a torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device='cuda' but torch {torch.__version__} sees no CUDA GPU")
    return torch.device(name)


def place_model(model: nn.Module, placement: Placement) -> None:
    """Move a model loaded in `placement.load_format` to its device, in `placement.weights`.
    On the CPU nothing changes. In bf16, matmul weights, embeddings and biases become bf16
    while norms and the rotary table stay fp32 (as the CPU's bf16 format keeps them)."""
    if placement.device.type == "cpu":
        return
    model.to(placement.device)
    if placement.weights == "bf16":
        _dense_to_bf16(model)


def _dense_to_bf16(model: nn.Module) -> None:
    bf16 = torch.bfloat16
    for module in model.modules():
        if isinstance(module, (Linear, Embedding)):
            module.fmt, module.dtype = "bf16", bf16
            if module.weight is not None:
                module.weight = module.weight.to(bf16)
            if isinstance(module, Linear) and module.bias is not None:
                module.bias.data = module.bias.data.to(bf16)
        elif isinstance(module, OutputHead):
            module.fmt = "bf16"  # loaded dense: no int4/oneDNN copies, logits from the table
    model.fmt, model.dtype = "bf16", bf16


def device_memory_available(device: torch.device) -> int | None:
    """Free bytes on a CUDA device (None on the CPU, whose memory build.py reads itself)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return free
