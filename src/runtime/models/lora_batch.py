"""Several LoRA adapters served at once, and the per-step description of which token uses which.

    LoraSet     the adapters a model serves, each under a small int id (0 = no adapter), their
                weights stacked per projection so a step indexes them by id
    LoraBatch   one step's tokens grouped by adapter (built by the model runner, put on
                ForwardBatch.lora); None when no token uses an adapter, which costs nothing
    add_lora    the segmented LoRA matmul (torch reference)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from .config import ModelConfig
from .lora import LoraAdapter, load_lora_adapter, module_shapes

# On the CPU, steps of at most this many tokens take float32 copies of bf16 adapters: at such
# thin shapes oneDNN's bf16 matmul costs more than float32's (measured, 1 thread, 576 -> rank
# 16 -> 1728, both matmuls: 8 tokens 57 us bf16, 7 us float32; 86 tokens 81 / 51 us; 256
# tokens 129 / 168 us).
SMALL_STEP_TOKENS = 128


class LoraStack(NamedTuple):
    """One projection's weights for every id, transposed for x @ a_t @ b_t: a_t (N, in, R),
    b_t (N, R, out), zero where an id has no adapter, does not target this projection, or has
    a rank below R."""

    a_t: torch.Tensor
    b_t: torch.Tensor
    adapter_ids: frozenset[int]  # the ids with non-zero weights here
    small: tuple[torch.Tensor, torch.Tensor] | None  # float32 (a_t, b_t) for small CPU steps


class LoraGroup(NamedTuple):
    """The tokens of a step (rows of x) that use one adapter: a slice for one contiguous run,
    else an int64 index tensor on the model's device."""

    adapter_id: int
    rows: slice | torch.Tensor


def add_lora(y: torch.Tensor, x: torch.Tensor, a_t: torch.Tensor, b_t: torch.Tensor,
             groups: Sequence[LoraGroup]) -> torch.Tensor:
    """The segmented LoRA matmul: adds each token's adapter term to its base projection,

        y[t] += (x[t] @ a_t[id_t]) @ b_t[id_t]    for every token t of a group; other rows unchanged

    in place, and returns y. x (T, in), y (T, out) = the base projection of x; a_t (N, in, R)
    and b_t (N, R, out) are the adapters' A^T and (scaled) B^T stacked by id. One pair of thin
    matmuls per group (per adapter present in the step, not per token or sequence), the second
    accumulating straight into y: the rank R is small, so this adds 2 R (in + out) flops a
    token and no (T, out) temporary where the group is one run and the dtypes agree."""
    x = x.to(a_t.dtype)
    for i, rows in groups:
        xa = x[rows] @ a_t[i]  # (n, R)
        if isinstance(rows, slice) and y.dtype == b_t.dtype:
            y[rows].addmm_(xa, b_t[i])  # a view of y: accumulates in place
        elif isinstance(rows, slice):
            y[rows] += (xa @ b_t[i]).to(y.dtype)
        else:
            y.index_add_(0, rows, (xa @ b_t[i]).to(y.dtype))
    return y


class LoraSet:
    """The adapters one model serves. Ids are 1, 2, ... in load order and never reused after
    `remove` (a cache keyed by id cannot confuse two adapters); id 0 means no adapter.
    Invariant: for every projection some adapter targets, `stack(layer, module)` holds each
    adapter's pair at its id, in the model's activation dtype on its device."""

    def __init__(self, cfg: ModelConfig, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        self.cfg, self.dtype, self.device = cfg, dtype, torch.device(device)
        self._adapters: dict[int, LoraAdapter] = {}
        self._ids: dict[str, int] = {}
        self._next_id = 1
        self._stacks: dict[tuple[int, str], LoraStack] = {}

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> LoraSet:
        """An empty set matching a loaded model's config, matmul dtype and device."""
        return cls(model.cfg, model.dtype, model.cos_sin.device)

    @property
    def names(self) -> list[str]:
        return list(self._ids)

    def load(self, path: str | Path, name: str | None = None) -> int:
        """Read a PEFT adapter folder (see lora.py) and add it; returns its id."""
        return self.add(load_lora_adapter(path, self.cfg, name))

    def add(self, adapter: LoraAdapter) -> int:
        if adapter.name in self._ids:
            raise ValueError(f"a LoRA adapter named {adapter.name!r} is already loaded")
        adapter_id = self._next_id
        self._next_id += 1
        self._adapters[adapter_id] = adapter
        self._ids[adapter.name] = adapter_id
        self._restack()
        return adapter_id

    def remove(self, name: str) -> None:
        """Drop an adapter; no running request may still use its id. Like `add`, call it
        between steps (on the thread that runs them): it replaces the stacks."""
        del self._adapters[self.id_of(name)]
        del self._ids[name]
        self._restack()

    def id_of(self, name: str) -> int:
        if name not in self._ids:
            raise ValueError(f"unknown LoRA adapter {name!r} (loaded: {self.names})")
        return self._ids[name]

    def adapter(self, name: str) -> LoraAdapter:
        return self._adapters[self.id_of(name)]

    def is_active(self, adapter_id: int) -> bool:
        return adapter_id in self._adapters

    def stack(self, layer: int, module: str) -> LoraStack | None:
        return self._stacks.get((layer, module))

    def _restack(self) -> None:
        shapes = module_shapes(self.cfg)
        keys = {key for adapter in self._adapters.values() for key in adapter.pairs}
        self._stacks = {}
        for layer, module in keys:
            in_features, part_sizes = shapes[module]
            owners = {i: ad.pairs[(layer, module)] for i, ad in self._adapters.items()
                      if (layer, module) in ad.pairs}
            rank = max(pair.rank for pair in owners.values())
            a_t = torch.zeros(self._next_id, in_features, rank)
            b_t = torch.zeros(self._next_id, rank, sum(part_sizes))
            for i, pair in owners.items():
                a_t[i, :, :pair.rank] = pair.a.T
                b_t[i, :pair.rank] = pair.b.T
            small = (a_t, b_t) if self.device.type == "cpu" and self.dtype != torch.float32 \
                else None
            self._stacks[(layer, module)] = LoraStack(
                a_t.to(self.device, self.dtype), b_t.to(self.device, self.dtype), frozenset(owners),
                small)


@dataclass(frozen=True, slots=True)
class LoraBatch:
    """Which adapter each token of one step uses, as groups of rows. Build it with
    `from_segments` / `from_token_ids`, which return None when no token has an adapter."""

    adapters: LoraSet
    groups: tuple[LoraGroup, ...]

    @classmethod
    def from_segments(cls, adapters: LoraSet, lengths: Sequence[int],
                      adapter_ids: Sequence[int]) -> LoraBatch | None:
        """Consecutive runs of tokens (e.g. the step's chunks in order), `lengths[k]` tokens
        using adapter `adapter_ids[k]`."""
        if len(lengths) != len(adapter_ids):
            raise ValueError("lengths and adapter_ids must have the same length")
        ranges: dict[int, list[tuple[int, int]]] = {}
        start = 0
        for length, adapter_id in zip(lengths, adapter_ids):
            if adapter_id and not adapters.is_active(adapter_id):
                raise ValueError(f"no LoRA adapter has id {adapter_id}")
            if adapter_id and length:
                runs = ranges.setdefault(adapter_id, [])
                if runs and runs[-1][1] == start:  # adjacent runs of one adapter: one run
                    runs[-1] = (runs[-1][0], start + length)
                else:
                    runs.append((start, start + length))
            start += length
        if not ranges:
            return None
        groups = (LoraGroup(i, _rows(runs, adapters.device)) for i, runs in ranges.items())
        return cls(adapters, tuple(groups))

    @classmethod
    def from_token_ids(cls, adapters: LoraSet, token_adapter_ids: Sequence[int]
                       ) -> LoraBatch | None:
        """One adapter id per token of the step."""
        lengths: list[int] = []
        ids: list[int] = []
        for adapter_id in token_adapter_ids:
            if ids and ids[-1] == adapter_id:
                lengths[-1] += 1
            else:
                lengths.append(1)
                ids.append(adapter_id)
        return cls.from_segments(adapters, lengths, ids)

    def apply(self, layer: int, module: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Adds the step's adapter terms for projection `module` of `layer` into y (the base
        projection of x, a fresh tensor the caller owns) and returns it."""
        stack = self.adapters.stack(layer, module)
        if stack is None:
            return y
        groups = [g for g in self.groups if g.adapter_id in stack.adapter_ids]
        if stack.small is not None and x.shape[0] <= SMALL_STEP_TOKENS:
            return add_lora(y, x, *stack.small, groups)
        return add_lora(y, x, stack.a_t, stack.b_t, groups)

    def layer(self, index: int) -> LayerLora:
        return LayerLora(self, index)


class LayerLora(NamedTuple):
    """A LoraBatch seen from one layer, so a block's projections name only their module."""

    batch: LoraBatch
    index: int

    def apply(self, module: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.batch.apply(self.index, module, x, y)


def _rows(ranges: list[tuple[int, int]], device: torch.device) -> slice | torch.Tensor:
    if len(ranges) == 1:
        return slice(*ranges[0])
    return torch.cat([torch.arange(s, e) for s, e in ranges]).to(device)

