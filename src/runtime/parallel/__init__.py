"""Tensor parallelism over torch.distributed: one model split across N ranks (processes).

Rank 0 is the engine: it owns scheduling, the radix cache, the slot table and sampling, and
runs its share of every layer. Ranks 1..N-1 are workers that only run their share of the
forward. Attention heads are split by KV-head groups and the MLP by intermediate columns
(Megatron-style): the qkv and gate/up projections are sliced by output rows, the o and down
projections by input columns, and each of the latter is followed by one all-reduce, so after
each block every rank holds the same residual stream. Each rank's KV pool holds its own heads
at the same slot indices, so one slot table (rank 0's) addresses all of them.

Each step, rank 0 broadcasts what the forward needs (token ids, positions, output slots,
attention lengths and slot tables) and any KV copy it makes (forks), before running it itself;
the logits are computed on rank 0 only (embedding and output head are replicated).

Files: `sharding.py` slices a loaded model in place; `group.py` starts the ranks (gloo on the
CPU, NCCL on CUDA), runs the workers' loop and watches them: a rank that dies fails the
engine with an error naming it, never a hang.
"""
