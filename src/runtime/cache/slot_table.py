"""SlotTable: for each running sequence, the KV slot of every one of its positions.

Row `r` belongs to one running sequence; `table[r, p]` is the pool slot holding that
sequence's K/V at position p. Attention reads `table[rows, :max_len]` in one gather, and a
step's new slots are written with one scatter.
"""

from __future__ import annotations

import torch


class SlotTable:
    def __init__(self, num_rows: int, max_len: int):
        self.max_len = max_len
        self.table = torch.zeros(num_rows, max_len, dtype=torch.int64)  # (R, max_len)
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
        self.table[row, start:start + slots.numel()] = slots

    def read(self, row: int, end: int) -> torch.Tensor:
        """Slots of positions [0, end) of a row (a view)."""
        return self.table[row, :end]
