"""Llama-family decoder (Llama 2/3, SmolLM, Mistral, Qwen2 with qkv bias, Qwen3 with q/k norm).

One forward runs a flattened batch: the new tokens of every sequence in one (T,) tensor.
Each layer writes its new K/V into the pool at `batch.out_slots` and attends through
`batch.attn` (cached prefix + new tokens), so a cached prefix is never recomputed.
Weights are stored fused (q/k/v as one matrix, gate/up as one) in the engine's weight format
(runtime/models/linear.py); the residual stream, norms and rotary are float32 in every format.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ... import kernels
from ..config import ModelConfig
from ..kv_pool import KVPool
from ..quantize import Int4Weight
from .linear import Embedding, Linear, activation_dtype
from .rope import cos_sin_table, inverse_frequencies


REFINE_TOP = 16  # logits recomputed in float32 per row when the matmul ran in bf16


@dataclass(slots=True)
class ForwardBatch:
    """Everything one forward needs besides the weights. Built once per step."""

    input_ids: torch.Tensor  # (T,) int64
    positions: torch.Tensor  # (T,) int64
    out_slots: torch.Tensor  # (T,) int64, where each new token's K/V go
    attn: kernels.AttentionPlan
    kv: KVPool


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim), requires_grad=False)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rms_norm(x, self.weight, self.eps)

    def add_forward(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return kernels.add_rms_norm(x, residual, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int, fmt: str):
        super().__init__()
        self.layer = layer
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_size, self.kv_size = cfg.q_size, cfg.kv_size
        self.scale = cfg.head_dim ** -0.5
        self.qkv = Linear(cfg.hidden_size, cfg.q_size + 2 * cfg.kv_size, cfg.qkv_bias, fmt)
        self.o = Linear(cfg.q_size, cfg.hidden_size, False, fmt)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None

    def forward(self, x: torch.Tensor, cos_sin: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        T = x.shape[0]
        q, k, v = self.qkv(x).split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q = q.view(T, self.num_heads, self.head_dim)  # (T, H, D)
        k = k.view(T, self.num_kv_heads, self.head_dim)  # (T, Hkv, D)
        v = v.view(T, self.num_kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = kernels.apply_rotary(q, k, batch.positions, cos_sin)
        k_cache, v_cache = batch.kv.k[self.layer], batch.kv.v[self.layer]
        kernels.store_kv(k_cache, v_cache, batch.out_slots, k, v)
        out = kernels.attention(q, k_cache, v_cache, batch.attn, self.scale)  # (T, H, D)
        return self.o(out.reshape(T, self.q_size))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig, fmt: str):
        super().__init__()
        self.gate_up = Linear(cfg.hidden_size, 2 * cfg.intermediate_size, False, fmt)
        self.down = Linear(cfg.intermediate_size, cfg.hidden_size, False, fmt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(kernels.silu_and_mul(self.gate_up(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int, fmt: str):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = Attention(cfg, layer, fmt)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg, fmt)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None, cos_sin: torch.Tensor,
                batch: ForwardBatch) -> tuple[torch.Tensor, torch.Tensor]:
        if residual is None:
            residual, h = x, self.attn_norm(x)
        else:
            h, residual = self.attn_norm.add_forward(x, residual)
        h = self.attn(h, cos_sin, batch)
        h, residual = self.mlp_norm.add_forward(h, residual)
        return self.mlp(h), residual


class LlamaModel(nn.Module):
    def __init__(self, cfg: ModelConfig, weights: str = "fp32", max_positions: int | None = None):
        super().__init__()
        self.cfg, self.fmt = cfg, weights
        self.dtype = activation_dtype(weights)
        self.embed = Embedding(cfg.vocab_size, cfg.hidden_size, weights)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i, weights) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        # An untied output layer keeps 8 bits in the low-bit formats, like llama.cpp's Q8 heads.
        self.lm_head = None if cfg.tie_word_embeddings else Linear(
            cfg.hidden_size, cfg.vocab_size, False, "int8" if weights == "int4" else weights)
        self.max_positions = max_positions or cfg.max_position_embeddings
        self.set_rope(inverse_frequencies(cfg))
        self.requires_grad_(False)

    def set_rope(self, inv_freq: torch.Tensor) -> None:
        self.register_buffer("cos_sin", cos_sin_table(inv_freq, self.max_positions), persistent=False)

    @torch.inference_mode()
    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        """The final-norm hidden state of every new token: (T, hidden) float32.

        The residual stream stays float32 in every format (as llama.cpp keeps it); only matmul
        inputs and the KV cache are narrower."""
        x, residual = self.embed(batch.input_ids).float(), None
        for layer in self.layers:
            x, residual = layer(x, residual, self.cos_sin, batch)
        x, _ = self.norm.add_forward(x, residual)
        return x

    @torch.inference_mode()
    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, hidden) -> (N, vocab) float32.

        With bf16 matmuls the logits come out rounded to bf16 (steps of 0.125 near 25), which
        makes near ties exact ties; the best REFINE_TOP candidates of each row are recomputed
        in float32 from the same weights, so greedy picks and top logprobs are exact."""
        head = self.embed if self.lm_head is None else self.lm_head
        logits = head.logits(hidden) if self.lm_head is None else head(hidden).float()
        if self.dtype == torch.float32 or not hidden.numel():
            return logits
        top = logits.topk(REFINE_TOP, dim=-1).indices  # (N, k)
        exact = torch.einsum("nkd,nd->nk", head.rows(top), hidden.float())
        return logits.scatter_(1, top, exact)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor | Int4Weight]]) -> None:
        """Load tensors named as in Hugging Face Llama checkpoints, fusing q/k/v and gate/up.
        A tensor may be an Int4Weight (a GGUF's 4-bit blocks, kept as they are for int4)."""
        pending: dict[str, dict[str, torch.Tensor | Int4Weight]] = {}
        loaded: set[str] = set()
        for name, tensor in weights:
            target, part = _hf_to_ours(name)
            if target is None or (target.startswith("lm_head") and self.lm_head is None):
                continue
            module_name, kind = target.rsplit(".", 1)
            if part is not None:
                parts = pending.setdefault(target, {})
                parts[part] = tensor
                order = _FUSED_PARTS[module_name.rsplit(".", 1)[-1]]
                if len(parts) < len(order):
                    continue
                parts = pending.pop(target)
                tensor = _concat([parts[p] for p in order])
            self._load(module_name, kind, tensor)
            loaded.add(target)
        if pending:
            raise ValueError(f"incomplete fused weights: {sorted(pending)[:4]}")
        missing = self._expected_names() - loaded
        if missing:
            raise ValueError(f"checkpoint is missing weights: {sorted(missing)[:6]}")

    def _load(self, module_name: str, kind: str, tensor: torch.Tensor | Int4Weight) -> None:
        module = self.get_submodule(module_name)
        if isinstance(module, (Linear, Embedding)):
            if kind == "bias":
                module.bias.data.copy_(tensor)
            else:
                module.load(tensor)
            return
        param = module.get_parameter(kind)
        if tuple(param.shape) != tuple(tensor.shape):
            raise ValueError(f"{module_name}.{kind}: checkpoint shape {tuple(tensor.shape)} != "
                             f"model shape {tuple(param.shape)}")
        param.data.copy_(tensor)

    def _expected_names(self) -> set[str]:
        names = {n for n, _ in self.named_parameters()}
        for name, module in self.named_modules():
            if isinstance(module, (Linear, Embedding)):
                names.add(f"{name}.weight")
        return names


def _concat(parts: list[torch.Tensor | Int4Weight]) -> torch.Tensor | Int4Weight:
    if all(isinstance(p, Int4Weight) for p in parts):
        return Int4Weight.cat(parts)
    return torch.cat([p.dequantize() if isinstance(p, Int4Weight) else p for p in parts])


# fused module -> the HF projections concatenated along dim 0, in this order
_FUSED_PARTS = {"qkv": ("q", "k", "v"), "gate_up": ("gate", "up")}
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "mlp_norm.weight",
    "self_attn.o_proj.weight": "attn.o.weight",
    "self_attn.q_norm.weight": "attn.q_norm.weight",
    "self_attn.k_norm.weight": "attn.k_norm.weight",
    "mlp.down_proj.weight": "mlp.down.weight",
}
_GLOBAL_NAMES = {
    "model.embed_tokens.weight": "embed.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "lm_head.weight",
}


def _hf_to_ours(name: str) -> tuple[str | None, str | None]:
    """HF name -> (our parameter name, fused part or None). Unknown names -> (None, None)."""
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name], None
    if not name.startswith("model.layers."):
        return None, None
    idx, rest = name[len("model.layers."):].split(".", 1)
    prefix = f"layers.{idx}."
    if rest in _LAYER_NAMES:
        return prefix + _LAYER_NAMES[rest], None
    module, _, kind = rest.rpartition(".")  # e.g. "self_attn.q_proj", "weight"
    for p in ("q", "k", "v"):
        if module == f"self_attn.{p}_proj":
            return prefix + f"attn.qkv.{kind}", p
    for p in ("gate", "up"):
        if module == f"mlp.{p}_proj" and kind == "weight":
            return prefix + "mlp.gate_up.weight", p
    return None, None
