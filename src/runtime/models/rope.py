"""Rotary frequency tables, with linear and llama3 scaling."""

from __future__ import annotations

import math

import torch

from .config import ModelConfig


def inverse_frequencies(cfg: ModelConfig, freq_factors: torch.Tensor | None = None) -> torch.Tensor:
    """(head_dim/2,) float32 inverse frequencies after scaling."""
    dim = cfg.head_dim
    # float32 throughout, as transformers computes it, so positions far out agree bit for bit.
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2).float() / dim))
    if freq_factors is not None:  # a GGUF's rope_freqs.weight (how llama.cpp stores llama3)
        return inv_freq / freq_factors.float()
    s = cfg.rope_scaling
    if s is None:
        return inv_freq
    if s.kind == "linear":
        return inv_freq / s.factor
    if s.kind == "llama3":
        low_wavelen = s.original_max_positions / s.low_freq_factor
        high_wavelen = s.original_max_positions / s.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq)
        smooth = (s.original_max_positions / wavelen - s.low_freq_factor) / (
            s.high_freq_factor - s.low_freq_factor)
        smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(medium, smoothed, scaled)
    raise ValueError(f"unknown rope scaling {s.kind!r}")


def cos_sin_table(inv_freq: torch.Tensor, max_positions: int) -> torch.Tensor:
    """(max_positions, head_dim) float32: cos in the first half, sin in the second."""
    positions = torch.arange(max_positions, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq)  # (P, D/2)
    return torch.cat((freqs.cos(), freqs.sin()), dim=-1)
