"""Starting the tensor-parallel ranks, the workers' loop, and rank 0's side of each step."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ... import kernels
from ..cache.kv_pool import KVPool
from ..engine.handle import EngineFatalError
from ..models.llama import ForwardBatch
from ..models.loader import load_model
from .sharding import kv_heads_of, shard_llama

if TYPE_CHECKING:
    from ..engine.config import EngineConfig

log = logging.getLogger("tines.tp")
COLLECTIVE_TIMEOUT = timedelta(seconds=120)  # the backstop; a dead rank is noticed at once


class RankDied(EngineFatalError):
    """A tensor-parallel rank exited: the model is incomplete and the engine must stop."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


def plan_inputs(attn: kernels.AttentionBatch | None) -> tuple | None:
    """What a worker needs to rebuild one half of an attention plan."""
    if attn is None:
        return None
    return attn.q_lens.tolist(), attn.kv_lens.tolist(), attn.slot_table


def plan_of(inputs: tuple | None) -> kernels.AttentionBatch | None:
    return None if inputs is None else kernels.AttentionBatch.from_table(*inputs)


class TensorParallelGroup:
    """Rank 0's handle on the workers: starts them, sends each step's work, watches them.

    Invariant: every collective rank 0 enters, each live worker enters too, in the same order
    (forward messages, copies, stop), because workers do nothing but follow the broadcasts."""

    def __init__(self, world: int, model_path: str, weights: str, max_positions: int | None,
                 num_slots: int, pool_dtype: torch.dtype, device: str = "cpu",
                 threads_per_rank: int | None = None):
        self.world = world
        self.dead: str | None = None
        port = _free_port()
        init = f"tcp://127.0.0.1:{port}"
        threads = threads_per_rank or max(1, (os.cpu_count() or 1) // world)
        ctx = mp.get_context("spawn")
        self.workers = [ctx.Process(target=_worker_main, name=f"tines-tp-rank{r}", daemon=True,
                                    args=(r, world, init, device, model_path, weights,
                                          max_positions, num_slots, pool_dtype, threads))
                        for r in range(1, world)]
        for w in self.workers:
            w.start()
        self._join_group(init, device)
        torch.set_num_threads(threads)
        self._watch = threading.Thread(target=self._watch_workers, name="tines-tp-watch",
                                       daemon=True)
        self._watch.start()

    def _join_group(self, init: str, device: str) -> None:
        """Rank 0 joins the group; a worker that dies while loading fails this at once."""
        error: list[BaseException] = []

        def join() -> None:
            try:
                dist.init_process_group(_backend(device), init_method=init, rank=0,
                                        world_size=self.world, timeout=COLLECTIVE_TIMEOUT)
                dist.barrier()  # every worker has loaded its shard and its pool
            except BaseException as e:  # noqa: BLE001 (re-raised below on the caller's thread)
                error.append(e)

        joiner = threading.Thread(target=join, daemon=True)
        joiner.start()
        while joiner.is_alive():
            if gone := self._gone_worker():
                self.stop(join=False)
                raise RankDied(f"tensor parallelism could not start: {gone}")
            joiner.join(timeout=0.1)
        if error:
            raise error[0]

    def _gone_worker(self) -> str | None:
        for rank, w in enumerate(self.workers, start=1):
            if not w.is_alive():
                return f"rank {rank} exited with code {w.exitcode}"
        return None

    def _watch_workers(self) -> None:
        while self.dead is None:
            if gone := self._gone_worker():
                self.dead = gone
                log.error("tensor-parallel %s; the engine stops at its next step", gone)
                return
            time.sleep(0.2)

    def _send(self, message: tuple[str, Any]) -> None:
        if self.dead is not None:
            raise RankDied(f"tensor-parallel {self.dead}")
        try:
            dist.broadcast_object_list([message], src=0)
        except RuntimeError as e:
            raise RankDied(f"tensor-parallel collective failed ({self._gone_worker() or e})") from e

    def forward(self, batch: ForwardBatch) -> None:
        """Tell the workers to run their share of this forward (rank 0 then runs its own)."""
        self._send(("forward", (batch.input_ids, batch.positions, batch.out_slots,
                                plan_inputs(batch.attn.extend), plan_inputs(batch.attn.decode))))

    def copy_kv(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        self._send(("copy", (dst, src)))

    def stop(self, join: bool = True) -> None:
        if join and self.dead is None:
            try:
                self._send(("stop", None))
            except RankDied:
                pass
        self.dead = self.dead or "stopped"
        for w in self.workers:
            w.join(timeout=10 if join else 0)
            if w.is_alive():
                w.kill()
        if dist.is_initialized():
            dist.destroy_process_group()


class MirroredKVPool(KVPool):
    """Rank 0's pool: a KV copy (fork) is made on every rank's pool."""

    def __init__(self, *args: Any, group: TensorParallelGroup, **kw: Any):
        super().__init__(*args, **kw)
        self.group = group

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        self.group.copy_kv(dst, src)
        super().copy(dst, src)


def _worker_main(rank: int, world: int, init: str, device: str, model_path: str, weights: str,
                 max_positions: int | None, num_slots: int, pool_dtype: torch.dtype,
                 threads: int) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group(_backend(device), init_method=init, rank=rank, world_size=world,
                            timeout=COLLECTIVE_TIMEOUT)
    model = load_model(model_path, weights, max_positions).model
    heads = shard_llama(model, rank, world)
    cfg = model.cfg
    pool = KVPool(num_slots, cfg.num_layers, heads, cfg.head_dim, pool_dtype)
    dist.barrier()
    with torch.inference_mode():
        while True:
            message: list[Any] = [None]
            dist.broadcast_object_list(message, src=0)
            kind, payload = message[0]
            if kind == "stop":
                break
            if kind == "copy":
                pool.copy(*payload)
                continue
            ids, positions, out_slots, extend, decode = payload
            model(ForwardBatch(ids, positions, out_slots,
                               kernels.AttentionPlan(plan_of(extend), plan_of(decode)), pool))
    dist.destroy_process_group()


def start_tensor_parallel(cfg: EngineConfig, model_path: Path, model: torch.nn.Module,
                          num_slots: int) -> tuple[MirroredKVPool, TensorParallelGroup]:
    """Start ranks 1..tp_size-1, shard rank 0's `model` in place, and make rank 0's pool.
    A model the ranks cannot share (fewer KV heads than ranks) is refused before any rank
    starts."""
    kv_heads_of(0, cfg.tp_size, model.cfg.num_kv_heads)
    group = TensorParallelGroup(cfg.tp_size, str(model_path), cfg.weights, cfg.max_model_len,
                                num_slots, model.dtype, threads_per_rank=cfg.num_threads)
    heads = shard_llama(model, 0, cfg.tp_size)
    mc = model.cfg
    pool = MirroredKVPool(num_slots, mc.num_layers, heads, mc.head_dim, model.dtype, group=group)
    return pool, group
