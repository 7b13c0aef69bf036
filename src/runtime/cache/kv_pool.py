"""KVPool: preallocated K/V tensors addressed by token slot.

Every cached or in-flight token owns one slot; its K and V for layer `l` live at
`k[l, slot]` / `v[l, slot]`. The pool hands out slots and takes them back; it does not know
who holds them (the radix cache and the running requests do).

The tensors live on the pool's device (the CPU, or a GPU); the free list is always on the
host, where scheduling happens. With `padding_slot=True` the tensors get one row more than
`num_slots`, never handed out: padded rows of a captured CUDA-graph decode batch write there.
"""

from __future__ import annotations

import numpy as np
import torch


class OutOfSlots(RuntimeError):
    """alloc() asked for more slots than are free."""


class KVPool:
    def __init__(self, num_slots: int, num_layers: int, num_kv_heads: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 padding_slot: bool = False):
        if num_slots < 1:
            raise ValueError(f"a KV pool needs at least one slot, got {num_slots}")
        self.num_slots = num_slots
        self.dtype = dtype
        self.device = torch.device(device)
        # The row past the last slot, when kept: written by padding rows, read by nobody.
        self.padding_slot = num_slots if padding_slot else None
        rows = num_slots + int(padding_slot)
        shape = (num_layers, rows, num_kv_heads, head_dim)  # (L, S, Hkv, D)
        self.k, self.v = _zeros(shape, dtype, device), _zeros(shape, dtype, device)
        self._free = torch.arange(num_slots, dtype=torch.int64)
        self._num_free = num_slots

    @classmethod
    def bytes_per_token(cls, num_layers: int, num_kv_heads: int, head_dim: int,
                        dtype: torch.dtype) -> int:
        return 2 * num_layers * num_kv_heads * head_dim * torch.finfo(dtype).bits // 8

    @property
    def num_free(self) -> int:
        return self._num_free

    @property
    def num_used(self) -> int:
        return self.num_slots - self._num_free

    def alloc(self, n: int) -> torch.Tensor:
        """n free slots as an int64 tensor; raises OutOfSlots when fewer are free."""
        if n > self._num_free:
            raise OutOfSlots(f"asked for {n} KV slots, {self._num_free} free")
        out = self._free[:n]
        self._free = self._free[n:]
        self._num_free -= n
        return out

    def free(self, slots: torch.Tensor) -> None:
        """Return slots to the pool. Freeing a slot twice corrupts the accounting: callers
        (radix cache, requests) must each free only what they own."""
        if slots.numel() == 0:
            return
        self._free = torch.cat((self._free, slots.to(torch.int64).flatten()))
        self._num_free += slots.numel()
        if self._num_free > self.num_slots:
            raise RuntimeError(f"KV pool over-freed: {self._num_free} free of {self.num_slots}")

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        """Copy the K/V of slots `src` into slots `dst` (same length, host or device
        tensors), every layer."""
        if self.device.type != "cpu":
            dst, src = dst.to(self.device), src.to(self.device)
        self.k[:, dst] = self.k[:, src]
        self.v[:, dst] = self.v[:, src]

    @property
    def nbytes(self) -> int:
        """Bytes allocated for K and V (resident only where written, on the CPU)."""
        return self.k.nbytes + self.v.nbytes

    def free_slot_set(self) -> set[int]:
        """For integrity checks in tests: the free slots as a set."""
        return set(self._free.tolist())


def _zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """Zeros that take no memory until written, on the CPU: calloc'd pages stay unmapped until
    touched, where torch.zeros writes every byte (a pool sized for the worst case would
    otherwise be resident from the start)."""
    if torch.device(device).type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    width = torch.finfo(dtype).bits // 8
    raw = np.zeros(shape, dtype={2: np.int16, 4: np.int32}[width])
    return torch.from_numpy(raw).view(dtype)
