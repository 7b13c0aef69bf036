"""SlotTable: for each running sequence, the KV slot of every one of its positions.

Row `r` belongs to one running sequence; `table[r, p]` is the pool slot holding that
sequence's K/V at position p. Attention reads `device_table[rows, :max_len]` in one gather,
and a step's new slots are written with one scatter.

`table` is on the host, where the scheduler and radix cache read it. With a GPU device,
`device_table` mirrors it there: every `write` goes to both, the device copy non-blocking
from pinned memory (the copy is queued before the step that reads it, on the same stream,
and a later write to the same cells queues its own copy after it, so the mirror ends equal
to the host table). On the CPU `device_table` is `table` itself.
"""

from __future__ import annotations

import torch


class SlotTable:
    def __init__(self, num_rows: int, max_len: int, device: torch.device | str = "cpu"):
        self.max_len = max_len
        device = torch.device(device)
        on_cpu = device.type == "cpu"
        # (R, max_len); pinned when mirrored, so the mirror's copies need not wait for the host
        self.table = torch.zeros(num_rows, max_len, dtype=torch.int64, pin_memory=not on_cpu)
        self.device_table = self.table if on_cpu else torch.zeros_like(self.table, device=device)
        self._free_rows = list(range(num_rows - 1, -1, -1))

    @property
    def num_free_rows(self) -> int:
        return len(self._free_rows)

    def alloc_row(self) -> int:
        if not self._free_rows:
            raise RuntimeError("slot table has no free row")
        return self._free_rows.pop()

    def free_row(self, row: int) -> None:
        self._free_rows.append(row)

    def write(self, row: int, start: int, slots: torch.Tensor) -> None:
        end = start + slots.numel()
        self.table[row, start:end] = slots
        if self.device_table is not self.table:
            self.device_table[row, start:end].copy_(self.table[row, start:end], non_blocking=True)

    def read(self, row: int, end: int) -> torch.Tensor:
        """Slots of positions [0, end) of a row (a host view)."""
        return self.table[row, :end]
