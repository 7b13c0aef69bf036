"""Hugging Face Gemma 3 tensor names -> Gemma3Model parameters, fusing q/k/v and gate/up."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .llama import concat_parts, expected_weight_names, load_tensor
from .quantize import Int4Weight

_LAYER_NAMES = {
    "input_layernorm.weight": "input_norm.weight",
    "post_attention_layernorm.weight": "post_attn_norm.weight",
    "pre_feedforward_layernorm.weight": "pre_ffw_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    "self_attn.q_norm.weight": "attn.q_norm.weight",
    "self_attn.k_norm.weight": "attn.k_norm.weight",
    "self_attn.o_proj.weight": "attn.o.weight",
    "mlp.down_proj.weight": "mlp.down.weight",
}
# fused target -> its parts, concatenated along dim 0 in this order
_FUSED = {"attn.qkv.weight": ("self_attn.q_proj.weight", "self_attn.k_proj.weight",
                              "self_attn.v_proj.weight"),
          "mlp.gate_up.weight": ("mlp.gate_proj.weight", "mlp.up_proj.weight")}
_PART_OF = {part: target for target, parts in _FUSED.items() for part in parts}
_GLOBAL_NAMES = {"model.embed_tokens.weight": "embed.weight", "model.norm.weight": "norm.weight",
                 "lm_head.weight": "head.weight"}


def load_gemma3_weights(model, weights: Iterable[tuple[str, torch.Tensor | Int4Weight]],
                        norms_include_one: bool) -> None:
    """Fill `model` (a Gemma3Model) from HF-named tensors; raises ValueError naming what is
    missing or mis-shaped. Norm weights get +1 unless `norms_include_one`."""
    pending: dict[str, dict[str, torch.Tensor | Int4Weight]] = {}
    loaded: set[str] = set()
    for name, tensor in weights:
        target = _target(name)
        if target is None or (target == "head.weight" and model.head.tied is not None):
            continue
        if target.endswith("norm.weight") and not norms_include_one:
            tensor = tensor + 1.0
        rest = name.split(".", 3)[-1] if name.startswith("model.layers.") else name
        if rest in _PART_OF:
            parts = pending.setdefault(target, {})
            parts[rest] = tensor
            order = _FUSED[_PART_OF[rest]]
            if len(parts) < len(order):
                continue
            parts = pending.pop(target)
            tensor = concat_parts([parts[p] for p in order])
        load_tensor(model, *target.rsplit(".", 1), tensor)
        loaded.add(target)
    if pending:
        raise ValueError(f"incomplete fused weights: {sorted(pending)[:4]}")
    missing = expected_weight_names(model) - loaded
    if missing:
        raise ValueError(f"checkpoint is missing weights: {sorted(missing)[:6]}")


def _target(name: str) -> str | None:
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name]
    if not name.startswith("model.layers."):
        return None
    idx, rest = name[len("model.layers."):].split(".", 1)
    ours = _LAYER_NAMES.get(rest) or _PART_OF.get(rest)
    return f"layers.{idx}.{ours}" if ours else None
