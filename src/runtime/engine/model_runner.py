"""ModelRunner: turns a step's chunks into tensors, runs the model, returns the logits needed.

Logits are computed only for the rows someone reads: the last token of each chunk that
reaches the end of its sequence (to sample the next token) and the prompt positions whose
logprobs were asked for.

The runner owns how the model runs: eager, or (after `compile_steps`) decode-only steps
through a torch.compile'd run of blocks with dynamic batch and context dims and every other
step with each block's dense halves compiled (attention between them stays eager), or on a
GPU (after `capture_decode_graphs`) decode-only steps replayed from CUDA graphs. The model
itself is a plain forward with no compile logic.

The step's host lists become tensors on the pool's device (through pinned memory, without
waiting, on a GPU); the logits come back to the host, where the sampler runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ... import kernels
from ..cache.kv_pool import KVPool
from ..models.llama import EAGER_HALVES, ForwardBatch, Halves, LlamaModel, decode_layers
from ..models.lora_batch import LoraBatch, LoraSet
from .cuda_graphs import DecodeGraphs
from .scheduler import Chunk
from ..cache.slot_table import SlotTable


@dataclass(slots=True)
class StepLogits:
    logits: torch.Tensor  # (N, V) float32
    sample_row: dict[int, int]  # id(chunk.seq) -> row of `logits` for its next token
    # (with a draft of k tokens: the first of its k + 1 consecutive rows)
    prompt_rows: dict[int, tuple[int, int, int]]  # id(seq) -> (first row, count, first position)


# A drafted chunk of at most this many tokens runs as decode rows (see `run`).
MAX_DRAFT_DECODE_ROWS = 16


def _as_decode_rows(c: Chunk) -> bool:
    return (c.length == 1 and c.end > 1) or (bool(c.draft) and c.length <= MAX_DRAFT_DECODE_ROWS)


def _decode_rows(c: Chunk) -> list[Chunk]:
    """A decode-rows chunk as single-token chunks, one per position, in order."""
    if c.length == 1:
        return [c]
    return [Chunk(c.seq, p, p + 1, c.slots[i:i + 1]) for i, p in enumerate(range(c.start, c.end))]


class ModelRunner:
    def __init__(self, model: LlamaModel, pool: KVPool, table: SlotTable, tp: Any = None):
        self.model, self.pool, self.table = model, pool, table
        self.tp = tp  # a TensorParallelGroup: workers run their share of each forward
        self.adapters: LoraSet | None = None  # LoRA adapters, made on the first load_lora
        # K/V gather buffers of the torch attention path, handed from step to step: a fresh
        # tensor of tens of MB each step costs more in page faults than the copy into it.
        self._gather_buffers: dict[str, tuple | None] = {"extend": None, "decode": None}
        self._compiled_decode = None  # set by compile_steps()
        self._compiled_halves: Halves | None = None  # set by compile_steps()
        self.device = pool.k.device
        self.graphs: DecodeGraphs | None = None  # set by capture_decode_graphs() (CUDA)
        self.decode_warm = False  # every compiled variant exists (set after the warm-up)
        # Blocks per compiled call: each call costs tens of microseconds of guards and
        # wrappers, and a graph of many blocks takes minutes to compile (measured on the
        # default model: 1 block 15.0 ms/token, 5 blocks 12.1, 30 blocks 12.5 after a 62 s
        # compile); the largest divisor of the depth up to 6.
        num_layers = len(model.layers)
        self.decode_group = max(d for d in range(1, 7) if num_layers % d == 0)

    def load_lora(self, name: str, path: str) -> int:
        """Load a PEFT adapter folder as `name` (engine thread, between steps); its id."""
        if self.tp is not None:
            raise ValueError("lora: not supported with tensor parallelism yet")
        if self.adapters is None:
            self.adapters = LoraSet.for_model(self.model)
        return self.adapters.load(path, name)

    def close(self) -> None:
        """Stop the tensor-parallel workers, if any (the engine thread, at shutdown)."""
        if self.tp is not None:
            self.tp.stop()

    @property
    def compiled(self) -> bool:
        return self._compiled_decode is not None

    def compile_steps(self) -> None:
        """Compile with torch.compile (inductor). Decode steps: one graph covers a run of
        `decode_group` blocks and serves every such run (the weights and pool views are its
        inputs), for every batch size and context length (their dims are dynamic). Other
        steps (prefill chunks, extends beside decodes): each block's two dense halves, one
        graph each for every layer and token count, fuse the norms, rotary and activation
        around the matmuls (measured on the default model: a 512-token chunk 29% faster, a
        step of 2 extends and 12 decodes 8-17%). Models without `forward_decode` stay eager."""
        if not hasattr(self.model, "forward_decode"):
            return
        # Every engine in a process shares these code objects' caches of graphs (one per
        # weight format, batch of one or more, int4 or bf16 branch): room for several engines.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self._compiled_decode = torch.compile(decode_layers)
        self._compiled_halves = Halves(torch.compile(EAGER_HALVES.before, dynamic=True),
                                       torch.compile(EAGER_HALVES.after, dynamic=True))

    def capture_decode_graphs(self, max_batch: int) -> bool:
        """Capture CUDA graphs of decode steps for batch sizes up to `max_batch` (see
        cuda_graphs.py). Returns False, capturing nothing, where graphs are not supported (the
        CPU, the torch kernels, tensor parallelism)."""
        if self.tp is not None or not DecodeGraphs.supported(self.pool):
            return False
        self.graphs = DecodeGraphs(self.model, self.pool, self.table, max_batch)
        return True

    def _forward(self, batch: ForwardBatch) -> torch.Tensor:
        if self.tp is not None:
            self.tp.forward(batch)
        if self._compiled_decode is not None and batch.attn.extend is None:
            return self.model.forward_decode(batch, self.decode_group, self._run_compiled)
        if self._compiled_halves is not None:
            return self.model(batch, self._compiled_halves)
        return self.model(batch)

    def _run_compiled(self, layers, x, residual, positions, cos_sin, k_caches, v_caches,
                      out_slots, table, mask):
        # Batch size and context length vary step to step: one graph for all of them (a
        # batch of one, or a context of one, may still get its own).
        for t, dims in ((x, (0,)), (residual, (0,)), (positions, (0,)), (out_slots, (0,)),
                        (table, (0, 1)), (mask, (0, 3))):
            for dim in dims:
                torch._dynamo.maybe_mark_dynamic(t, dim)
        args = (layers, x, residual, positions, cos_sin, k_caches, v_caches, out_slots, table, mask)
        # Once the variants are compiled (the warm-up), checking only the guards that tell
        # them apart saves tens of microseconds per call. A shape the warm-up did not cover
        # raises before anything runs: from then on every guard is checked.
        try:
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=self.decode_warm):
                return self._compiled_decode(*args)
        except RuntimeError as e:
            if not self.decode_warm or "skip_guard_eval_unsafe" not in str(e):
                raise
            self.decode_warm = False
            return self._compiled_decode(*args)

    def run(self, chunks: list[Chunk]) -> tuple[list[Chunk], StepLogits]:
        """Chunks come back reordered (extend chunks first, then single-token decodes) with
        the logits of the rows that need them."""
        # Decodes: one new token after at least one cached; a one-token prompt goes with the
        # extends, so a decode batch never attends to a single key (a shape that would make
        # the compiled decode graph specialize again). A short drafted chunk runs as decode
        # rows too, one per token, each attending up to its own position (the step stores
        # every row's K/V before attending), so drafts keep the compiled decode step.
        decode = [c for c in chunks if _as_decode_rows(c)]
        extend = [c for c in chunks if not _as_decode_rows(c)]
        chunks = extend + decode
        ids: list[int] = []
        positions: list[int] = []
        for c in chunks:
            ids += c.seq.token_ids[c.start:c.end - len(c.draft)] + c.draft
            positions += range(c.start, c.end)
        decode_rows = [row for c in decode for row in _decode_rows(c)]
        lora = self._lora_batch(chunks)
        plain_rows = lora is None and all(c.context is None for c in chunks)
        if self.graphs is not None and not extend and plain_rows and self.graphs.bucket(len(decode_rows)):
            hidden = self.graphs.run(ids, positions, torch.cat([c.slots for c in chunks]),
                                     [c.end for c in decode_rows], [c.seq.row for c in decode_rows])
        else:
            hidden = self._run_eager(chunks, extend, decode_rows, ids, positions, lora)  # (T, hidden)
        rows, sample_row, prompt_rows = self._logit_rows(chunks)
        logits = self.model.compute_logits(hidden[rows]) if rows else hidden.new_zeros(0, 0)
        return chunks, StepLogits(self._to_host(logits), sample_row, prompt_rows)

    def _lora_batch(self, chunks: list[Chunk]) -> LoraBatch | None:
        """Which of the step's tokens use which adapter (None: no token uses one)."""
        if self.adapters is None:
            return None
        return LoraBatch.from_segments(self.adapters, [c.length for c in chunks],
                                       [c.seq.request.lora_id for c in chunks])

    def _run_eager(self, chunks: list[Chunk], extend: list[Chunk], decode: list[Chunk],
                   ids: list[int], positions: list[int], lora: LoraBatch | None) -> torch.Tensor:
        plan = kernels.AttentionPlan(self._attention(extend, "extend"),
                                     self._attention(decode, "decode"))
        batch = ForwardBatch(
            input_ids=self._tensor(ids),
            positions=self._tensor(positions),
            out_slots=self._to_device(torch.cat([c.slots for c in chunks])),
            attn=plan,
            kv=self.pool,
            lora=lora,
        )
        hidden = self._forward(batch)  # (T, hidden)
        for kind, attn in (("extend", plan.extend), ("decode", plan.decode)):
            if attn is not None and attn.kv_buffers is not None:
                self._gather_buffers[kind] = attn.kv_buffers
        return hidden

    def _tensor(self, values: list[int]) -> torch.Tensor:
        """Host ints -> an int64 tensor on the device."""
        return self._to_device(torch.tensor(values, dtype=torch.int64))

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        """A host tensor on the device: itself on the CPU; else copied from pinned memory
        without waiting (the copy is queued before the kernels that read it)."""
        if self.device.type == "cpu":
            return x
        return x.pin_memory().to(self.device, non_blocking=True)

    def _to_host(self, logits: torch.Tensor) -> torch.Tensor:
        """The step's logits on the host for the sampler: the step's one wait for the device."""
        if self.device.type == "cpu":
            return logits
        host = torch.empty(logits.shape, dtype=logits.dtype, pin_memory=True)
        host.copy_(logits, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return host

    def _attention(self, chunks: list[Chunk], kind: str) -> kernels.AttentionBatch | None:
        if not chunks:
            return None
        rows = self._tensor([max(c.seq.row, 0) for c in chunks])
        kv_lens = [c.end for c in chunks]
        table = self.table.device_table[rows, :max(kv_lens)]  # (B, max_kv), a copy
        for i, c in enumerate(chunks):
            if c.context is not None:  # a branch: the trunk's slots and its own
                table[i, :c.end] = self._to_device(c.context)
        batch = kernels.AttentionBatch.from_table([c.length for c in chunks], kv_lens, table)
        batch.kv_buffers = self._gather_buffers[kind]
        return batch

    @staticmethod
    def _logit_rows(chunks: list[Chunk]) -> tuple[list[int], dict[int, int], dict]:
        rows: list[int] = []
        sample_row: dict[int, int] = {}
        prompt_rows: dict[int, tuple[int, int, int]] = {}
        offset = 0
        for c in chunks:
            seq = c.seq
            start = seq.request.logprob_start
            if start is not None and seq.num_output == 0:
                # Row at position p predicts token p+1: we need p+1 in [start, prompt_len).
                lo, hi = max(c.start, start - 1), min(c.end, seq.prompt_len - 1)
                if lo < hi:
                    prompt_rows[id(seq)] = (len(rows), hi - lo, lo + 1)
                    rows += range(offset + lo - c.start, offset + hi - c.start)
            if c.draft:  # the rows after each of [last pending token, d1 .. dk]
                sample_row[id(seq)] = len(rows)
                rows += range(offset + c.length - 1 - len(c.draft), offset + c.length)
            # A scoring trunk's last row predicts each of its branches' first token.
            elif c.reaches_end and (not seq.request.prefill_only or seq.request.branches is not None):
                sample_row[id(seq)] = len(rows)
                rows.append(offset + c.length - 1)
            offset += c.length
        return rows, sample_row, prompt_rows
