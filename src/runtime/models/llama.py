"""Llama-family decoder (Llama 2/3, SmolLM, Mistral, Qwen2 with qkv bias, Qwen3 with q/k norm).

One forward runs a flattened batch: the new tokens of every sequence in one (T,) tensor.
Each layer writes its new K/V into the pool at `batch.out_slots` and attends through
`batch.attn` (cached prefix + new tokens), so a cached prefix is never recomputed.
Weights are stored fused (q/k/v as one matrix, gate/up as one) in the engine's weight format
(runtime/models/linear.py); the residual stream, norms and rotary are float32 in every format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from ... import kernels
from .config import ModelConfig
from ..cache.kv_pool import KVPool
from .quantize import Int4Weight
from .linear import Embedding, Linear, OutputHead, activation_dtype
from .rope import cos_sin_table, inverse_frequencies

if TYPE_CHECKING:
    from .lora_batch import LayerLora, LoraBatch


@dataclass(slots=True)
class ForwardBatch:
    """Everything one forward needs besides the weights. Built once per step."""

    input_ids: torch.Tensor  # (T,) int64
    positions: torch.Tensor  # (T,) int64
    out_slots: torch.Tensor  # (T,) int64, where each new token's K/V go
    attn: kernels.AttentionPlan
    kv: KVPool
    lora: LoraBatch | None = None  # the step's LoRA adapters per token (lora_batch.py); None: none


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
    """Projections around attention; the attention itself runs in DecoderLayer.forward."""

    def __init__(self, cfg: ModelConfig, fmt: str):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_size, self.kv_size = cfg.q_size, cfg.kv_size
        self.scale = cfg.head_dim ** -0.5
        self.qkv = Linear(cfg.hidden_size, cfg.q_size + 2 * cfg.kv_size, cfg.qkv_bias, fmt)
        self.o = Linear(cfg.q_size, cfg.hidden_size, False, fmt)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None

    def project(self, x: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor,
                lora: LayerLora | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (T, hidden) -> rotated q (T, H, D), rotated k and v (T, Hkv, D)."""
        T = x.shape[0]
        qkv = self.qkv(x)
        if lora is not None:
            qkv = lora.apply("qkv", x, qkv)
        q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q = q.view(T, self.num_heads, self.head_dim)  # (T, H, D)
        k = k.view(T, self.num_kv_heads, self.head_dim)  # (T, Hkv, D)
        v = v.view(T, self.num_kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = kernels.apply_rotary(q, k, positions, cos_sin)
        return q, k, v


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig, fmt: str):
        super().__init__()
        self.gate_up = Linear(cfg.hidden_size, 2 * cfg.intermediate_size, False, fmt)
        self.down = Linear(cfg.intermediate_size, cfg.hidden_size, False, fmt)

    def forward(self, x: torch.Tensor, lora: LayerLora | None = None) -> torch.Tensor:
        if lora is None:
            return self.down(kernels.silu_and_mul(self.gate_up(x)))
        h = kernels.silu_and_mul(lora.apply("gate_up", x, self.gate_up(x)))
        return lora.apply("down", h, self.down(h))


class DecoderLayer(nn.Module):
    """One block, as two dense halves around attention over the pool. The halves take only
    tensors, so a compiler can fuse each into a few kernels and one graph serves every layer
    (`Halves`); attention, which reads the pool, stays outside."""

    def __init__(self, cfg: ModelConfig, fmt: str):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = Attention(cfg, fmt)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg, fmt)

    def before_attention(self, x: torch.Tensor, residual: torch.Tensor, positions: torch.Tensor,
                         cos_sin: torch.Tensor, lora: LayerLora | None = None):
        """residual += x; returns (q, k, v, residual) for the normed sum."""
        h, residual = self.attn_norm.add_forward(x, residual)
        q, k, v = self.attn.project(h, positions, cos_sin, lora)
        return q, k, v, residual

    def after_attention(self, out: torch.Tensor, residual: torch.Tensor,
                        lora: LayerLora | None = None):
        """out (T, H, D) -> (mlp output, residual including the attention output)."""
        out = out.reshape(out.shape[0], -1)
        h = self.attn.o(out)
        if lora is not None:
            h = lora.apply("o", out, h)
        h, residual = self.mlp_norm.add_forward(h, residual)
        return self.mlp(h, lora), residual

    def decode(self, x: torch.Tensor, residual: torch.Tensor, positions: torch.Tensor,
               cos_sin: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
               out_slots: torch.Tensor, slot_table: torch.Tensor, mask: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The block for a decode step (one new token per sequence) on plain tensors, so one
        compiled graph covers it all: slot_table (B, L) and mask (B, 1, 1, L) describe each
        sequence's keys, out_slots (B,) where its new K/V go."""
        q, k, v, residual = self.before_attention(x, residual, positions, cos_sin)
        kernels.store_kv(k_cache, v_cache, out_slots, k, v)
        out = kernels.decode_attention_traced(q, k_cache, v_cache, slot_table, mask, self.attn.scale)
        return self.after_attention(out, residual)

    def forward(self, x: torch.Tensor, residual: torch.Tensor, layer: int, cos_sin: torch.Tensor,
                batch: ForwardBatch, halves: Halves | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        lora = batch.lora.layer(layer) if batch.lora is not None else None
        if halves is None or lora is not None:  # compiled halves stay adapter-free
            halves = EAGER_HALVES
        q, k, v, residual = halves.before(self, x, residual, batch.positions, cos_sin, lora)
        k_cache, v_cache = batch.kv.k[layer], batch.kv.v[layer]
        kernels.store_kv(k_cache, v_cache, batch.out_slots, k, v)
        out = kernels.attention(q, k_cache, v_cache, batch.attn, self.attn.scale)  # (T, H, D)
        return halves.after(self, out, residual, lora)


@dataclass(frozen=True, slots=True)
class Halves:
    """How a block's dense halves run outside a decode step: `DecoderLayer.before_attention`
    and `after_attention` (called with the layer first), or compiled versions of them, which
    the model runner passes for steps without LoRA adapters."""

    before: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    after: Callable[..., tuple[torch.Tensor, torch.Tensor]]


EAGER_HALVES = Halves(DecoderLayer.before_attention, DecoderLayer.after_attention)


class LlamaModel(nn.Module):
    def __init__(self, cfg: ModelConfig, weights: str = "fp32", max_positions: int | None = None):
        super().__init__()
        self.cfg, self.fmt = cfg, weights
        self.dtype = activation_dtype(weights)
        self.embed = Embedding(cfg.vocab_size, cfg.hidden_size, weights)
        self.layers = nn.ModuleList(DecoderLayer(cfg, weights) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.head = OutputHead(cfg.vocab_size, cfg.hidden_size, weights,
                               self.embed if cfg.tie_word_embeddings else None)
        self.max_positions = max_positions or cfg.max_position_embeddings
        self.set_rope(inverse_frequencies(cfg))
        self.requires_grad_(False)

    def set_rope(self, inv_freq: torch.Tensor) -> None:
        self.register_buffer("cos_sin", cos_sin_table(inv_freq, self.max_positions), persistent=False)

    @torch.inference_mode()
    def forward(self, batch: ForwardBatch, halves: Halves | None = None) -> torch.Tensor:
        """The final-norm hidden state of every new token: (T, hidden) float32. `halves`: how
        each block's dense halves run (default eager).

        The residual stream stays float32 in every format (as llama.cpp keeps it); only matmul
        inputs and the KV cache are narrower."""
        x = self.embed(batch.input_ids)  # blocks take x in the matmul dtype
        residual = torch.zeros_like(x, dtype=torch.float32)  # the first block adds x to zero
        for i, layer in enumerate(self.layers):
            x, residual = layer(x, residual, i, self.cos_sin, batch, halves)
        x, _ = self.norm.add_forward(x, residual)
        return x

    @torch.inference_mode()
    def forward_decode(self, batch: ForwardBatch, group: int,
                       run_layers: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None
                       ) -> torch.Tensor:
        """As `forward`, for a batch of single-token decodes only: the blocks run on plain
        tensors (`DecoderLayer.decode`), `group` blocks per call of `run_layers` (default
        `decode_layers`; the model runner passes a compiled one). A step with LoRA adapters
        (`batch.lora`) runs `forward` instead: the compiled graphs stay adapter-free."""
        if batch.lora is not None:
            return self.forward(batch)
        run_layers = run_layers or decode_layers
        x = self.embed(batch.input_ids)
        residual = torch.zeros_like(x, dtype=torch.float32)
        d = batch.attn.decode
        d.prepare_torch()
        table = d.slot_table[:, :d.max_kv_len]  # (B, L)
        for i in range(0, len(self.layers), group):
            x, residual = run_layers(
                tuple(self.layers[i:i + group]), x, residual, batch.positions, self.cos_sin,
                tuple(batch.kv.k[i:i + group]), tuple(batch.kv.v[i:i + group]), batch.out_slots,
                table, d.mask)
        x, _ = self.norm.add_forward(x, residual)
        return x

    @torch.inference_mode()
    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, hidden) -> (N, vocab) float32 (`OutputHead.logits`: the best candidates of
        each row exact in float32)."""
        return self.head.logits(hidden)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor | Int4Weight]]) -> None:
        """Load tensors named as in Hugging Face Llama checkpoints, fusing q/k/v and gate/up.
        A tensor may be an Int4Weight (a GGUF's 4-bit blocks, kept as they are for int4)."""
        pending: dict[str, dict[str, torch.Tensor | Int4Weight]] = {}
        loaded: set[str] = set()
        for name, tensor in weights:
            target, part = _hf_to_ours(name)
            if target is None or (target == "head.weight" and self.head.tied is not None):
                continue
            module_name, kind = target.rsplit(".", 1)
            if part is not None:
                parts = pending.setdefault(target, {})
                parts[part] = tensor
                order = _FUSED_PARTS[module_name.rsplit(".", 1)[-1]]
                if len(parts) < len(order):
                    continue
                parts = pending.pop(target)
                tensor = concat_parts([parts[p] for p in order])
            self._load(module_name, kind, tensor)
            loaded.add(target)
        if pending:
            raise ValueError(f"incomplete fused weights: {sorted(pending)[:4]}")
        missing = self._expected_names() - loaded
        if missing:
            raise ValueError(f"checkpoint is missing weights: {sorted(missing)[:6]}")

    def _load(self, module_name: str, kind: str, tensor: torch.Tensor | Int4Weight) -> None:
        load_tensor(self, module_name, kind, tensor)

    def _expected_names(self) -> set[str]:
        return expected_weight_names(self)


def load_tensor(model: nn.Module, module_name: str, kind: str,
                tensor: torch.Tensor | Int4Weight) -> None:
    """Load one checkpoint tensor into `model` (a Llama-family or Gemma 3 model: `embed`,
    `head` and `Linear` / `Embedding` / `OutputHead` modules take their own formats)."""
    module = model.get_submodule(module_name)
    if module is model.embed and model.head.tied is not None:
        model.head.load(tensor)  # the tied output layer's own copies, if it keeps any
    if isinstance(module, (Linear, Embedding, OutputHead)):
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


def expected_weight_names(model: nn.Module) -> set[str]:
    """Every weight a checkpoint must give `model` (a tied head needs none of its own)."""
    names = {n for n, _ in model.named_parameters()}
    for name, module in model.named_modules():
        if isinstance(module, (Linear, Embedding)) and not name.startswith("head."):
            names.add(f"{name}.weight")
    if model.head.tied is None:
        names.add("head.weight")
    return names


def decode_layers(layers, x, residual, positions, cos_sin, k_caches, v_caches, out_slots,
                  table, mask):
    """A run of blocks for a decode step on plain tensors (what the model runner compiles: one
    graph serves every run of the same length; the layers' weights and pool views are inputs)."""
    for layer, k_cache, v_cache in zip(layers, k_caches, v_caches):
        x, residual = layer.decode(x, residual, positions, cos_sin, k_cache, v_cache, out_slots,
                                   table, mask)
    return x, residual


def concat_parts(parts: list[torch.Tensor | Int4Weight]) -> torch.Tensor | Int4Weight:
    """Projections fused along dim 0: int4 blocks stay int4, anything else is dense."""
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
    "lm_head.weight": "head.weight",
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
