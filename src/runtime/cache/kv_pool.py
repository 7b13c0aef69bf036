"""KVPool: preallocated K/V tensors addressed by token slot.

Every cached or in-flight token owns one slot; its K and V for layer `l` live at
`k[l, slot]` / `v[l, slot]`. The pool hands out slots and takes them back; it does not know
who holds them (the radix cache and the running requests do).

The tensors live on the pool's device (the CPU, or a GPU); the free list is always on the
host, where scheduling happens. With `padding_slot=True` the tensors get one row more than
`num_slots`, never handed out: padded rows of a captured CUDA-graph decode batch write there.

Memory on the CPU: `num_slots` is a cap, not a commitment. Each of K and V is one anonymous
mapping of the full size (address space only; the kernel zero-fills a 4 KB page the first time
it is written, and the mapping is kept off transparent huge pages, where one written slot
would make 2 MB per layer resident). Slots are handed out lowest-first in this sense:

    slot   0 ........................ high_water ......................... num_slots
           [ in use, or freed and kept ][ never handed out since the pool was last empty ]

a freed slot is handed out again before any slot at or past `high_water`, so `high_water` is
the most slots in use at once since the pool was last empty, and only the pages under it
are resident. When every slot is free again (a flushed cache), the pages are given back to
the OS and `high_water` returns to 0.
"""

from __future__ import annotations

import mmap

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
        self._maps: list[mmap.mmap] = []  # the CPU tensors' memory, for giving pages back
        self.k, self.v = self._zeros(shape), self._zeros(shape)
        # Free slots are `_recycled` (freed since handed out; taken last-freed first) plus
        # every slot in [high_water, num_slots).
        self._recycled = torch.empty(0, dtype=torch.int64)
        self.high_water = 0
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
        """n free slots as an int64 tensor; raises OutOfSlots when fewer are free. Freed
        slots are reused before the high-water mark moves (see the module docstring)."""
        if n > self._num_free:
            raise OutOfSlots(f"asked for {n} KV slots, {self._num_free} free")
        reuse = min(n, self._recycled.numel())
        keep = self._recycled.numel() - reuse
        out = self._recycled[keep:]
        self._recycled = self._recycled[:keep]
        if reuse < n:
            fresh = torch.arange(self.high_water, self.high_water + n - reuse, dtype=torch.int64)
            self.high_water += n - reuse
            out = fresh if reuse == 0 else torch.cat((out, fresh))
        self._num_free -= n
        return out

    def free(self, slots: torch.Tensor) -> None:
        """Return slots to the pool. Freeing a slot twice corrupts the accounting: callers
        (radix cache, requests) must each free only what they own. When this leaves every
        slot free, the pool's CPU pages are given back to the OS."""
        if slots.numel() == 0:
            return
        self._recycled = torch.cat((self._recycled, slots.to(torch.int64).flatten().cpu()))
        self._num_free += slots.numel()
        if self._num_free > self.num_slots:
            raise RuntimeError(f"KV pool over-freed: {self._num_free} free of {self.num_slots}")
        if self._num_free == self.num_slots:
            self._release()

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        """Copy the K/V of slots `src` into slots `dst` (same length, host or device
        tensors), every layer."""
        if self.device.type != "cpu":
            dst, src = dst.to(self.device), src.to(self.device)
        self.k[:, dst] = self.k[:, src]
        self.v[:, dst] = self.v[:, src]

    @property
    def nbytes(self) -> int:
        """Bytes reserved for K and V at `num_slots` (resident only under `high_water`, on
        the CPU)."""
        return self.k.nbytes + self.v.nbytes

    @property
    def touched_bytes(self) -> int:
        """Bytes of K and V under the high-water mark: what the pool can have made resident
        (to within a 4 KB page per layer) since it was last empty."""
        return self.nbytes * self.high_water // self.k.shape[1]

    def free_slot_set(self) -> set[int]:
        """For integrity checks in tests: the free slots as a set."""
        return set(self._recycled.tolist()) | set(range(self.high_water, self.num_slots))

    def check(self) -> None:
        """Raise AssertionError unless the free slots are distinct, below the high-water mark
        where recycled, and `num_free` of them (call when idle or in tests)."""
        recycled = self._recycled.tolist()
        if len(set(recycled)) != len(recycled):
            raise AssertionError("a KV slot is free twice")
        if recycled and not (0 <= min(recycled) and max(recycled) < self.high_water):
            raise AssertionError(f"a recycled slot is outside [0, {self.high_water})")
        if len(recycled) + self.num_slots - self.high_water != self._num_free:
            raise AssertionError(f"{len(recycled)} recycled + {self.num_slots - self.high_water}"
                                 f" never used != {self._num_free} free")

    def _release(self) -> None:
        """Every slot is free: forget the order and give the pages back (CPU only)."""
        touched, self.high_water = self.high_water, 0
        self._recycled = torch.empty(0, dtype=torch.int64)
        # touched == 0: nothing was handed out, so nothing written, since the last release.
        if touched and hasattr(mmap, "MADV_DONTNEED"):
            for m in self._maps:
                m.madvise(mmap.MADV_DONTNEED)

    def _zeros(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Zeros that take no memory until written. On the CPU an anonymous mapping of its
        own (torch.zeros would write every byte; numpy's zeros ask for huge pages), whose
        pages `_release` can give back; elsewhere torch.zeros."""
        if self.device.type != "cpu" or not hasattr(mmap, "MAP_PRIVATE"):  # not Unix
            return torch.zeros(shape, dtype=self.dtype, device=self.device)
        nbytes = torch.Size(shape).numel() * (torch.finfo(self.dtype).bits // 8)
        m = mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            m.madvise(mmap.MADV_NOHUGEPAGE)
        self._maps.append(m)
        return torch.frombuffer(m, dtype=self.dtype, count=torch.Size(shape).numel()).view(shape)
