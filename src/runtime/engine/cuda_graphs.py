"""Decode steps replayed from CUDA graphs, one graph per batch-size bucket (CUDA only).

A decode step launches a few kernels per layer, each too short to hide its launch cost; a
captured graph launches them all at once. Each graph was recorded on static tensors: a step
copies its inputs into their first `n` rows (padding the rest to its bucket), replays the
graph of the smallest bucket >= n, and reads the first n rows of that graph's output.

    static row b < n : the step's sequence b (ids, position, new slot, kv_len, slot-table row)
    static row b >= n: padding: token 0 at position 0, writing its K/V to the pool's
                       padding slot, attending to one key (whatever slot its table row names)

Only the Triton kernels are captured: they read the lengths and the slot table on the
device, and their grids depend only on the batch size and the fixed `max_kv_len` the graphs
were captured with (the torch path's padding depends on each step's lengths). Nothing here
runs on the CPU; `DecodeGraphs.supported` says whether a runner may build one.
"""

from __future__ import annotations

import torch

from ... import kernels
from ..cache.kv_pool import KVPool
from ..cache.slot_table import SlotTable
from ..models.llama import ForwardBatch

BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256)
_IDS, _POSITIONS, _SLOTS, _KV_LENS, _ROWS = range(5)  # rows of the staging buffers


class DecodeGraphs:
    """Captured decode forwards of `model` over `pool` for batch sizes up to `max_batch`."""

    @staticmethod
    def supported(pool: KVPool) -> bool:
        """Graphs need a CUDA pool with a padding slot and the Triton kernels on this thread."""
        return (pool.device.type == "cuda" and pool.padding_slot is not None
                and kernels.thread_backend() == "triton")

    def __init__(self, model: torch.nn.Module, pool: KVPool, table: SlotTable, max_batch: int):
        if not self.supported(pool):
            raise ValueError("CUDA graphs need a CUDA KV pool with a padding slot and "
                             "kernels='triton'")
        self.model, self.pool, self.table = model, pool, table
        self.buckets = [b for b in BUCKETS if b < max_batch] + [max_batch]
        size, device = self.buckets[-1], pool.device
        # Inputs of one step, staged in pinned memory and copied to the device in one go. The
        # engine syncs once per step (the logits), so a step's staging buffer is free again
        # by the time the next step fills it.
        self.staging = torch.zeros(5, size, dtype=torch.int64, pin_memory=True)
        self.inputs = torch.zeros(5, size, dtype=torch.int64, device=device)
        self.slot_table = torch.zeros(size, table.max_len, dtype=torch.int64, device=device)
        self.q_starts = torch.arange(size + 1, dtype=torch.int64, device=device)
        self.q_lens = torch.ones(size, dtype=torch.int64, device=device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.outputs: dict[int, torch.Tensor] = {}
        self._capture_all()

    def _batch(self, b: int) -> ForwardBatch:
        attn = kernels.AttentionBatch(self.q_starts[:b + 1], self.q_lens[:b],
                                      self.inputs[_KV_LENS, :b], self.slot_table[:b],
                                      max_q_len=1, max_kv_len=self.table.max_len, total_q_len=b)
        return ForwardBatch(self.inputs[_IDS, :b], self.inputs[_POSITIONS, :b],
                            self.inputs[_SLOTS, :b], kernels.AttentionPlan(None, attn), self.pool)

    def _capture_all(self) -> None:
        self._fill_padding(0)  # capture on padding rows: they write only the padding slot
        self.inputs.copy_(self.staging)
        mempool = torch.cuda.graph_pool_handle()
        for b in reversed(self.buckets):  # largest first: the smaller reuse its memory
            batch = self._batch(b)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # compiles the Triton kernels, sets up cuBLAS
                self.model(batch)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=mempool):
                self.outputs[b] = self.model(batch)
            self.graphs[b] = graph
        torch.cuda.synchronize()

    def _fill_padding(self, n: int) -> None:
        """Staging rows from n on: padding (see the module docstring)."""
        pad = self.staging[:, n:]
        pad.zero_()
        pad[_SLOTS] = self.pool.padding_slot
        pad[_KV_LENS] = 1

    def bucket(self, n: int) -> int | None:
        """The graph a batch of n decodes replays (None: larger than every graph)."""
        return next((b for b in self.buckets if b >= n), None)

    def run(self, ids: list[int], positions: list[int], out_slots: torch.Tensor,
            kv_lens: list[int], rows: list[int]) -> torch.Tensor:
        """One decode step of n = len(ids) sequences -> hidden (n, hidden) on the device (a
        view of the graph's output, valid until the next replay)."""
        n = len(ids)
        b = self.bucket(n)
        self._fill_padding(n)
        for index, values in ((_IDS, ids), (_POSITIONS, positions), (_KV_LENS, kv_lens),
                              (_ROWS, rows)):
            self.staging[index, :n] = torch.as_tensor(values, dtype=torch.int64)
        self.staging[_SLOTS, :n] = out_slots
        self.inputs.copy_(self.staging, non_blocking=True)  # (5, size): one small copy
        torch.index_select(self.table.device_table, 0, self.inputs[_ROWS, :n],
                           out=self.slot_table[:n])
        self.graphs[b].replay()
        return self.outputs[b][:n]
