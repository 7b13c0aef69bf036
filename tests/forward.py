"""A plain forward for tests: logits of every position of one sequence, in one prefill."""

from __future__ import annotations

import torch

from tines.kernels import AttentionBatch, AttentionPlan
from tines.runtime.cache.kv_pool import KVPool
from tines.runtime.models.llama import ForwardBatch


def full_logits(model, ids: list[int]) -> torch.Tensor:
    """(len(ids), vocab) float32 logits, computed through a fresh KV pool."""
    cfg = model.cfg
    pool = KVPool(len(ids) + 8, cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, model.dtype)
    slots = pool.alloc(len(ids))
    attn = AttentionBatch.build([len(ids)], [slots])
    batch = ForwardBatch(torch.tensor(ids), torch.arange(len(ids)), slots,
                         AttentionPlan.single(attn), pool)
    return model.compute_logits(model(batch))
