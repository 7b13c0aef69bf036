"""bf16 weights in oneDNN's blocked layout, for the CPU's bf16 matrix units.

F.linear hands oneDNN a plain row-major weight, which it re-blocks on every call; packing
once at load skips that. Measured over the default model's 120 matmuls per step (2 threads,
weights out of cache): 13–16 ms instead of 20–22 ms at 1–64 rows, no change at 512 rows;
results bit-identical to F.linear.

A packed weight is an opaque oneDNN tensor that torch.compile cannot take as a graph input,
so it stays outside the graph: the op `tines::packed_linear` receives a one-element handle
tensor (a graph input like any buffer, so one compiled graph still serves every layer) and
looks the packed weight up when it runs.
"""

from __future__ import annotations

import itertools
import weakref

import torch

# handle -> packed weight; an entry lives as long as the layer that holds the weight
_PACKED: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()
_handles = itertools.count()
# oneDNN picks a blocking for this many rows; any row count runs (decode batches are ~1–64)
_PACK_ROWS = 32


def available(device: torch.device | str = "cpu") -> bool:
    return (torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available()
            and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def pack(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A bf16 (N, K) weight -> (packed weight for the caller to keep, handle tensor)."""
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.to(torch.bfloat16).contiguous(),
                                                     _PACK_ROWS)
    handle = next(_handles)
    _PACKED[handle] = packed
    return packed, torch.tensor([handle], dtype=torch.int64)


def linear(x: torch.Tensor, handle: torch.Tensor, bias: torch.Tensor | None,
           out_features: int) -> torch.Tensor:
    """x (T, K) bf16 @ the packed weight `handle` names, (+ bias) -> (T, out_features).

    Inside torch.compile this is the custom op below; outside it the op's body is called
    directly: an eager call through the custom op costs ~30 µs more and, on first use,
    imports torch._dynamo (~190 MiB resident) into engines that never compile."""
    if torch.compiler.is_compiling():
        return packed_linear(x, handle, bias, out_features)
    return _packed_linear(x, handle, bias)


def _packed_linear(x: torch.Tensor, handle: torch.Tensor,
                   bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, _PACKED[int(handle)], bias, "none", [], "")


@torch.library.custom_op("tines::packed_linear", mutates_args=())
def packed_linear(x: torch.Tensor, handle: torch.Tensor, bias: torch.Tensor | None,
                  out_features: int) -> torch.Tensor:
    """`linear` as one opaque op for torch.compile graphs."""
    return _packed_linear(x, handle, bias)


@packed_linear.register_fake
def _(x, handle, bias, out_features):
    return x.new_empty((*x.shape[:-1], out_features))
