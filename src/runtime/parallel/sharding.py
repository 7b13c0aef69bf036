"""Slice a loaded Llama-family model for one tensor-parallel rank, in place."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ..models.linear import Linear


def kv_heads_of(rank: int, world: int, num_kv_heads: int) -> range:
    """The KV heads rank `rank` owns: contiguous, as even as the count allows (3 heads over 2
    ranks: [0], [1, 2]). Query heads follow their KV head's group."""
    if num_kv_heads < world:
        raise ValueError(f"tp_size: {world} ranks need at least {world} KV heads; the model "
                         f"has {num_kv_heads}")
    return range(num_kv_heads * rank // world, num_kv_heads * (rank + 1) // world)


def columns_of(rank: int, world: int, size: int) -> range:
    return range(size * rank // world, size * (rank + 1) // world)


class AllReduceSum(nn.Module):
    """A row-parallel projection: each rank's partial product, summed over the ranks."""

    def __init__(self, inner: nn.Module, group: dist.ProcessGroup | None = None):
        super().__init__()
        self.inner, self.group = inner, group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        dist.all_reduce(y, op=dist.ReduceOp.SUM, group=self.group)
        return y


def _sliced(lin: Linear, rows: torch.Tensor | None = None, cols: range | None = None,
            keep_bias: bool = True) -> Linear:
    weight = lin.weight
    if weight is None:
        raise ValueError(f"tensor parallelism slices dense weights: load with weights='fp32' "
                         f"(this layer is {lin.fmt})")
    if rows is not None:
        weight = weight[rows]
    if cols is not None:
        weight = weight[:, cols.start:cols.stop]
    bias = None
    if lin.bias is not None and keep_bias:
        bias = lin.bias.data if rows is None else lin.bias.data[rows]
    out = Linear(weight.shape[1], weight.shape[0], bias is not None, lin.fmt)
    out.load(weight.contiguous(), bias)
    return out


def shard_llama(model: nn.Module, rank: int, world: int,
                group: dist.ProcessGroup | None = None) -> int:
    """Keep this rank's heads and MLP columns in every layer of `model` (a LlamaModel loaded
    whole, in fp32); returns the number of KV heads this rank holds (its pool's width)."""
    cfg = model.cfg
    kv = kv_heads_of(rank, world, cfg.num_kv_heads)
    group_size = cfg.num_heads // cfg.num_kv_heads
    d = cfg.head_dim
    q_rows = torch.arange(kv.start * group_size * d, kv.stop * group_size * d)
    k_rows = cfg.q_size + torch.arange(kv.start * d, kv.stop * d)
    v_rows = k_rows + cfg.kv_size
    mlp = columns_of(rank, world, cfg.intermediate_size)
    gate_rows = torch.arange(mlp.start, mlp.stop)
    up_rows = gate_rows + cfg.intermediate_size
    for layer in model.layers:
        attn = layer.attn
        attn.qkv = _sliced(attn.qkv, rows=torch.cat((q_rows, k_rows, v_rows)))
        attn.o = AllReduceSum(_sliced(attn.o, cols=range(q_rows[0], q_rows[-1] + 1),
                                      keep_bias=rank == 0), group)
        attn.num_kv_heads = len(kv)
        attn.num_heads = len(kv) * group_size
        attn.q_size, attn.kv_size = len(q_rows), len(kv) * d
        layer.mlp.gate_up = _sliced(layer.mlp.gate_up, rows=torch.cat((gate_rows, up_rows)))
        layer.mlp.down = AllReduceSum(_sliced(layer.mlp.down, cols=mlp, keep_bias=rank == 0), group)
    return len(kv)
