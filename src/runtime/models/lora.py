"""PEFT LoRA adapters for the Llama-family model, mapped onto its fused projections.

A PEFT adapter folder (what `peft.get_peft_model(...).save_pretrained(dir)` writes) holds
adapter_config.json and adapter_model.safetensors with, for each adapted projection P of
layer i, `base_model.model.model.layers.{i}.{self_attn|mlp}.{P}.lora_A.weight` (r, in) and
`....lora_B.weight` (out, r). PEFT computes y = W x + s * B (A x), s = alpha / r
(alpha / sqrt(r) with rslora; r and alpha per module through rank_pattern / alpha_pattern).

Our model fuses q|k|v into one matrix and gate|up into another. The parts an adapter has for
one fused module become one pair: A stacked along the rank, B block-diagonal with each part's
s folded in, placed at that part's output rows and its own rank columns:

    A = [A_q; A_k; A_v]              (r_q + r_k + r_v, in)
    B = [[s_q B_q, 0, 0],            (q + 2 kv, r_q + r_k + r_v)
         [0, s_k B_k, 0],
         [0, 0, s_v B_v]]

so B (A x) == concat(s_q B_q A_q x, s_k B_k A_k x, s_v B_v A_v x): one pair of matmuls per
fused projection; a part the adapter does not target is simply absent (its rows of B are 0).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ModelConfig

# PEFT module path (below model.layers.{i}) -> (our module, part; None = the whole fused matrix,
# as Phi-3 checkpoints name it).
TARGETS: dict[str, tuple[str, int | None]] = {
    "self_attn.q_proj": ("qkv", 0),
    "self_attn.k_proj": ("qkv", 1),
    "self_attn.v_proj": ("qkv", 2),
    "self_attn.qkv_proj": ("qkv", None),
    "self_attn.o_proj": ("o", 0),
    "mlp.gate_proj": ("gate_up", 0),
    "mlp.up_proj": ("gate_up", 1),
    "mlp.gate_up_proj": ("gate_up", None),
    "mlp.down_proj": ("down", 0),
}
_TARGET_NAMES = {t.rsplit(".", 1)[1] for t in TARGETS}
_LAYER_KEY = re.compile(r"model\.layers\.(\d+)\.(.+)")
# Config entries that change what the adapter computes beyond B A x; a truthy value is refused.
_UNSUPPORTED = {
    "use_dora": "DoRA (use_dora)",
    "lora_bias": "LoRA bias (lora_bias)",
    "modules_to_save": "fully trained modules (modules_to_save)",
    "trainable_token_indices": "trained token embeddings (trainable_token_indices)",
    "layer_replication": "layer replication",
    "target_parameters": "target_parameters",
    "use_qalora": "QALoRA",
    "fan_in_fan_out": "fan_in_fan_out weights",
}


@dataclass(frozen=True, slots=True)
class LoraPair:
    """One fused projection's adapter: delta = b @ (a @ x), scaling folded into b."""

    a: torch.Tensor  # (R, in) float32
    b: torch.Tensor  # (out, R) float32

    @property
    def rank(self) -> int:
        return self.a.shape[0]


@dataclass(frozen=True, slots=True)
class LoraAdapter:
    """An adapter in our layout: (layer, module) -> pair, module one of qkv, o, gate_up, down."""

    name: str
    pairs: dict[tuple[int, str], LoraPair]

    @property
    def rank(self) -> int:
        return max(p.rank for p in self.pairs.values())


def module_shapes(cfg: ModelConfig) -> dict[str, tuple[int, tuple[int, ...]]]:
    """Our projection -> (in_features, output size of each fused part)."""
    return {
        "qkv": (cfg.hidden_size, (cfg.q_size, cfg.kv_size, cfg.kv_size)),
        "o": (cfg.q_size, (cfg.hidden_size,)),
        "gate_up": (cfg.hidden_size, (cfg.intermediate_size, cfg.intermediate_size)),
        "down": (cfg.intermediate_size, (cfg.hidden_size,)),
    }


def load_lora_adapter(path: str | Path, cfg: ModelConfig, name: str | None = None) -> LoraAdapter:
    """Read a PEFT LoRA folder for a model of config `cfg`, named `name` (default: the folder's
    name). Raises ValueError naming the module for anything the model cannot apply exactly:
    embedding or lm_head targets, DoRA, trained biases, a rank or shape that does not fit."""
    from safetensors.torch import load_file

    path = Path(path)
    if cfg.is_gemma3:
        raise ValueError(f"LoRA adapters are supported for Llama-family models, "
                         f"not {cfg.architecture}")
    config = json.loads((path / "adapter_config.json").read_text())
    _check_config(config)
    weights_file = path / "adapter_model.safetensors"
    if not weights_file.exists():
        raise ValueError(f"{path}: no adapter_model.safetensors (save with safe_serialization=True)")
    parts = _read_parts(load_file(str(weights_file)), config, cfg)
    shapes = module_shapes(cfg)
    pairs = {key: _fuse(by_part, shapes[key[1]][1]) for key, by_part in parts.items()}
    if not pairs:
        raise ValueError(f"{path}: the adapter has no LoRA weights")
    return LoraAdapter(name or path.name, pairs)


def _check_config(config: dict) -> None:
    if config.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"not a LoRA adapter: peft_type {config.get('peft_type')!r}")
    for key, what in _UNSUPPORTED.items():
        if config.get(key):
            raise ValueError(f"unsupported LoRA adapter: {what} = {config[key]!r}")
    if config.get("bias", "none") != "none":
        raise ValueError(f"unsupported LoRA adapter: trained biases (bias = {config['bias']!r})")
    targets = config.get("target_modules")
    if isinstance(targets, list):  # a str is a regex or "all-linear": the weights tell
        for target in targets:
            if target.rsplit(".", 1)[-1] not in _TARGET_NAMES:
                raise ValueError(f"unsupported LoRA target module {target!r} "
                                 f"(supported: {sorted(_TARGET_NAMES)})")


def _read_parts(tensors: dict[str, torch.Tensor], config: dict, cfg: ModelConfig
                ) -> dict[tuple[int, str], dict[int | None, tuple[torch.Tensor, torch.Tensor]]]:
    """(layer, our module) -> {part: (A (r, in), s * B (out_part, r))}, shapes checked."""
    pending: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        module, sep, kind = key.removeprefix("base_model.model.").partition(".lora_")
        if not sep:
            raise ValueError(f"unsupported LoRA adapter: full weights for {module} (modules_to_save)")
        if kind not in ("A.weight", "B.weight"):
            raise ValueError(f"unsupported LoRA tensor lora_{kind} for module {module}")
        pending.setdefault(module, {})[kind[0]] = tensor.float()
    shapes = module_shapes(cfg)
    out: dict[tuple[int, str], dict[int | None, tuple[torch.Tensor, torch.Tensor]]] = {}
    for module, ab in pending.items():
        match = _LAYER_KEY.fullmatch(module)
        if match is None or match.group(2) not in TARGETS:
            raise ValueError(f"unsupported LoRA target module {module} "
                             f"(supported: q/k/v/o/gate/up/down projections of each layer)")
        layer, (ours, part) = int(match.group(1)), TARGETS[match.group(2)]
        if layer >= cfg.num_layers:
            raise ValueError(f"{module}: layer {layer} beyond the model's {cfg.num_layers}")
        if set(ab) != {"A", "B"}:
            raise ValueError(f"{module}: lora_A and lora_B must both be present")
        in_features, part_sizes = shapes[ours]
        out_features = sum(part_sizes) if part is None else part_sizes[part]
        a, b = ab["A"], ab["B"]
        r = _pattern_value(config.get("rank_pattern") or {}, module, config.get("r", 8))
        if a.shape != (r, in_features) or b.shape != (out_features, r):
            raise ValueError(f"{module}: LoRA shapes A {tuple(a.shape)}, B {tuple(b.shape)} do not "
                             f"fit rank {r} and projection {in_features} -> {out_features}")
        alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config.get("lora_alpha", 8))
        scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        by_part = out.setdefault((layer, ours), {})
        if (None in by_part) or (part is None and by_part):
            raise ValueError(f"{module}: the adapter targets both the fused projection and its parts")
        by_part[part] = (a, b * scaling)
    return out


def _pattern_value(patterns: dict[str, int | float], module: str, default: int | float
                   ) -> int | float:
    """PEFT's rank_pattern / alpha_pattern lookup: a key matches a module whose path ends
    with it (as a regex, at a dot boundary); the first match wins."""
    for key, value in patterns.items():
        if re.fullmatch(rf"(.*\.)?(?:{key})", module):
            return value
    return default


def _fuse(by_part: dict[int | None, tuple[torch.Tensor, torch.Tensor]],
          part_sizes: tuple[int, ...]) -> LoraPair:
    if None in by_part:
        a, b = by_part[None]
        return LoraPair(a.contiguous(), b.contiguous())
    present = sorted(by_part)
    a = torch.cat([by_part[p][0] for p in present])  # (sum r_p, in)
    b = torch.zeros(sum(part_sizes), a.shape[0])  # (out, sum r_p), block-diagonal
    row_starts = [sum(part_sizes[:p]) for p in range(len(part_sizes))]
    col = 0
    for p in present:
        part_b = by_part[p][1]  # (out_p, r_p)
        b[row_starts[p]:row_starts[p] + part_sizes[p], col:col + part_b.shape[1]] = part_b
        col += part_b.shape[1]
    return LoraPair(a, b)
