"""Gemma 3 text decoder, on the same forward contract as LlamaModel (a flattened batch, K/V
written into the pool at `batch.out_slots`, attention through `batch.attn`).

What differs from the Llama block:
  - embeddings scaled by sqrt(hidden); the MLP is gelu-tanh(gate) * up
  - four norms per block, each output normed before it joins the residual:
        x += post_attn_norm(attn(input_norm(x)));  x += post_ffw_norm(mlp(pre_ffw_norm(x)))
  - RMSNorm multiplies by (1 + w): weights are stored with the 1 already added (as llama.cpp's
    GGUF files carry them), so the plain RMSNorm kernel runs them
  - q/k norms over head_dim before rotary; queries scaled by query_pre_attn_scalar ** -0.5
  - most layers see only a sliding window of positions, with their own rope base; the global
    ones use rope_theta (and its scaling); optional tanh soft-capping of attention scores and
    of the final logits
It has no `forward_decode`, so the model runner keeps it eager (no compiled decode graph yet);
the windowed attention is the torch path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ... import kernels
from .config import ModelConfig
from .linear import Embedding, Linear, OutputHead, activation_dtype
from .llama import ForwardBatch, RMSNorm
from .quantize import Int4Weight
from .rope import cos_sin_table, inverse_frequencies
from .windowed_attention import windowed_attention


class GemmaAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, fmt: str, sliding: bool):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_size, self.kv_size = cfg.q_size, cfg.kv_size
        self.scale = cfg.attn_scale or cfg.head_dim ** -0.5
        self.window = cfg.sliding_window if sliding else None
        self.softcap = cfg.attn_softcap
        self.qkv = Linear(cfg.hidden_size, cfg.q_size + 2 * cfg.kv_size, cfg.qkv_bias, fmt)
        self.o = Linear(cfg.q_size, cfg.hidden_size, False, fmt)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, layer: int, cos_sin: torch.Tensor,
                batch: ForwardBatch) -> torch.Tensor:
        """x (T, hidden) normed -> attention output (T, hidden) in the matmul dtype."""
        T = x.shape[0]
        q, k, v = self.qkv(x).split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q = self.q_norm(q.reshape(T, self.num_heads, self.head_dim))  # (T, H, D)
        k = self.k_norm(k.reshape(T, self.num_kv_heads, self.head_dim))  # (T, Hkv, D)
        v = v.reshape(T, self.num_kv_heads, self.head_dim)
        q, k = kernels.apply_rotary(q, k, batch.positions, cos_sin)
        k_cache, v_cache = batch.kv.k[layer], batch.kv.v[layer]
        kernels.store_kv(k_cache, v_cache, batch.out_slots, k, v)
        out = windowed_attention(q, k_cache, v_cache, batch.attn, self.scale, self.window,
                                 self.softcap)  # (T, H, D)
        return self.o(out.reshape(T, -1))


class GemmaMLP(nn.Module):
    def __init__(self, cfg: ModelConfig, fmt: str):
        super().__init__()
        self.gate_up = Linear(cfg.hidden_size, 2 * cfg.intermediate_size, False, fmt)
        self.down = Linear(cfg.intermediate_size, cfg.hidden_size, False, fmt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.gelu(gate, approximate="tanh") * up)


class GemmaDecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, fmt: str, sliding: bool):
        super().__init__()
        eps = cfg.rms_norm_eps
        self.sliding = sliding
        self.input_norm = RMSNorm(cfg.hidden_size, eps)
        self.attn = GemmaAttention(cfg, fmt, sliding)
        self.post_attn_norm = RMSNorm(cfg.hidden_size, eps)
        self.pre_ffw_norm = RMSNorm(cfg.hidden_size, eps)
        self.mlp = GemmaMLP(cfg, fmt)
        self.post_ffw_norm = RMSNorm(cfg.hidden_size, eps)

    def forward(self, x: torch.Tensor, layer: int, cos_sin: torch.Tensor,
                batch: ForwardBatch) -> torch.Tensor:
        """x (T, hidden) float32 residual stream -> the same after this block."""
        x = x + self.post_attn_norm(self.attn(self.input_norm(x), layer, cos_sin, batch).float())
        return x + self.post_ffw_norm(self.mlp(self.pre_ffw_norm(x)).float())


class Gemma3Model(nn.Module):
    def __init__(self, cfg: ModelConfig, weights: str = "fp32", max_positions: int | None = None):
        super().__init__()
        if cfg.sliding_layers and len(cfg.sliding_layers) != cfg.num_layers:
            raise ValueError(f"{len(cfg.sliding_layers)} layer types for {cfg.num_layers} layers")
        self.cfg, self.fmt = cfg, weights
        self.dtype = activation_dtype(weights)
        self.embed = Embedding(cfg.vocab_size, cfg.hidden_size, weights)
        self.embed_scale = math.sqrt(cfg.hidden_size)
        sliding = cfg.sliding_layers or (False,) * cfg.num_layers
        self.layers = nn.ModuleList(GemmaDecoderLayer(cfg, weights, s) for s in sliding)
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.head = OutputHead(cfg.vocab_size, cfg.hidden_size, weights,
                               self.embed if cfg.tie_word_embeddings else None)
        self.max_positions = max_positions or cfg.max_position_embeddings
        self.set_rope(inverse_frequencies(cfg))
        self.requires_grad_(False)

    def set_rope(self, inv_freq: torch.Tensor) -> None:
        """Rope of the global layers; the sliding ones keep their own unscaled base."""
        local_cfg = dataclasses.replace(self.cfg, rope_theta=self.cfg.rope_local_theta or
                                        self.cfg.rope_theta, rope_scaling=None)
        self.register_buffer("cos_sin", cos_sin_table(inv_freq, self.max_positions),
                             persistent=False)
        self.register_buffer("cos_sin_local", cos_sin_table(inverse_frequencies(local_cfg),
                                                            self.max_positions), persistent=False)

    @torch.inference_mode()
    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        """The final-norm hidden state of every new token: (T, hidden) float32."""
        x = self.embed(batch.input_ids).float() * self.embed_scale  # (T, hidden)
        for i, layer in enumerate(self.layers):
            x = layer(x, i, self.cos_sin_local if layer.sliding else self.cos_sin, batch)
        return self.norm(x)

    @torch.inference_mode()
    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, hidden) -> (N, vocab) float32 as LlamaModel's, soft-capped when configured."""
        logits = self.head.logits(hidden)
        cap = self.cfg.final_softcap
        return logits if cap is None else cap * torch.tanh(logits / cap)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor | Int4Weight]], *,
                     norms_include_one: bool) -> None:
        """Load tensors with Hugging Face Gemma 3 names. `norms_include_one`: the norm weights
        already hold 1 + w (GGUF files); otherwise 1 is added here (HF checkpoints)."""
        from .gemma3_weights import load_gemma3_weights

        load_gemma3_weights(self, weights, norms_include_one)
