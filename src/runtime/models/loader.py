"""Load a model's config and weights from a GGUF file or a Hugging Face safetensors folder.

Both sources are turned into a stream of (Hugging Face tensor name, float tensor) pairs that
the model's `load_weights` consumes, so a model knows one naming scheme. The architecture in
the config picks the model file: Gemma 3 -> Gemma3Model, the rest -> LlamaModel (Phi-3's fused
qkv and gate|up tensors are split into the Llama names on the way). Tensors are dequantized
one at a time as the model takes them, so a load never holds the whole model in float32
(beyond what the chosen format itself keeps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from .config import ModelConfig
from .gemma3 import Gemma3Model
from .gguf_file import GGUFFile
from .llama import LlamaModel
from .rope import inverse_frequencies
from .quantize import Int4Weight, can_repack_int4

# GGUF architectures whose Q/K rows llama.cpp's converter permuted for its interleaved rope.
_PERMUTED_QK = ("llama", "mistral")

_GGUF_GLOBAL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_GGUF_LAYER = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
# Per-architecture differences from _GGUF_LAYER.
_GGUF_LAYER_BY_ARCH = {
    "gemma3": {**_GGUF_LAYER, "post_attention_norm": "post_attention_layernorm",
               "ffn_norm": "pre_feedforward_layernorm",
               "post_ffw_norm": "post_feedforward_layernorm"},
    "phi3": {**_GGUF_LAYER, "attn_qkv": "self_attn.qkv_proj", "ffn_up": "mlp.gate_up_proj"},
}


@dataclass(slots=True)
class LoadedModel:
    model: LlamaModel | Gemma3Model
    config: ModelConfig
    path: Path
    gguf: GGUFFile | None = None  # kept so the raw quantized blocks stay reachable


def load_model(path: str | Path, weights: str = "fp32",
               max_positions: int | None = None) -> LoadedModel:
    """Load a model with its weights in `weights` format (fp32, bf16, int8, int4, auto)."""
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path}: a model folder needs a config.json (or give a .gguf file)")
        try:
            cfg = ModelConfig.from_hf(json.loads((path / "config.json").read_text()))
        except (KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path / 'config.json'}: not a model config "
                             f"({type(e).__name__}: {e})") from None
        model = _make_model(cfg, weights, max_positions)
        _load_into(model, cfg, _safetensors_weights(path), from_gguf=False)
        return LoadedModel(model, cfg, path)
    if path.suffix != ".gguf":
        raise ValueError(f"{path}: expected a .gguf file or a folder with config.json")
    gguf = GGUFFile(path)
    names = set(gguf.tensor_names())
    cfg = ModelConfig.from_gguf(gguf.metadata, names)
    gguf.check_types([n for n in names if gguf_to_hf_name(n, cfg.architecture) is not None
                      or n == "rope_freqs.weight"])
    model = _make_model(cfg, weights, max_positions)
    if "rope_freqs.weight" in names:  # llama3-style scaling stored as per-frequency factors
        model.set_rope(inverse_frequencies(cfg, torch.from_numpy(gguf.dequantize("rope_freqs.weight"))))
    _load_into(model, cfg, _gguf_weights(gguf, cfg, keep_int4=weights in ("int4", "auto")),
               from_gguf=True)
    return LoadedModel(model, cfg, path, gguf)


def _make_model(cfg: ModelConfig, weights: str, max_positions: int | None
                ) -> LlamaModel | Gemma3Model:
    if cfg.is_gemma3:
        return Gemma3Model(cfg, weights, max_positions)
    if cfg.sliding_window:  # Phi-3: every layer windowed; within the window that is plain causal
        max_positions = min(max_positions or cfg.max_position_embeddings, cfg.sliding_window)
    return LlamaModel(cfg, weights, max_positions)


def _load_into(model: LlamaModel | Gemma3Model, cfg: ModelConfig,
               weights: Iterator[tuple[str, torch.Tensor | Int4Weight]], from_gguf: bool) -> None:
    if isinstance(model, Gemma3Model):
        # llama.cpp's converter stores Gemma's norm weights as 1 + w.
        model.load_weights(weights, norms_include_one=from_gguf)
    else:
        model.load_weights(split_fused(weights, cfg))


def split_fused(weights: Iterator[tuple[str, torch.Tensor | Int4Weight]], cfg: ModelConfig
                ) -> Iterator[tuple[str, torch.Tensor | Int4Weight]]:
    """Phi-3's fused projections as the Llama names LlamaModel fuses again: qkv_proj (rows
    q | k | v) and gate_up_proj (rows gate | up). Other tensors pass through."""
    for name, tensor in weights:
        prefix, _, rest = name.rpartition(".self_attn.qkv_proj.")
        if prefix:
            sizes = {"q": cfg.q_size, "k": cfg.kv_size, "v": cfg.kv_size}
        else:
            prefix, _, rest = name.rpartition(".mlp.gate_up_proj.")
            sizes = {"gate": cfg.intermediate_size, "up": cfg.intermediate_size} if prefix else {}
        if not sizes:
            yield name, tensor
            continue
        module = "self_attn" if "q" in sizes else "mlp"
        start = 0
        for part, size in sizes.items():
            yield f"{prefix}.{module}.{part}_proj.{rest}", _take_rows(tensor, torch.arange(start, start + size))
            start += size


def gguf_to_hf_name(name: str, architecture: str = "llama") -> str | None:
    if name in _GGUF_GLOBAL:
        return _GGUF_GLOBAL[name]
    if not name.startswith("blk."):
        return None
    _, idx, module, kind = name.split(".")
    layer_names = _GGUF_LAYER_BY_ARCH.get(architecture, _GGUF_LAYER)
    return f"model.layers.{idx}.{layer_names[module]}.{kind}" if module in layer_names else None


def _gguf_weights(gguf: GGUFFile, cfg: ModelConfig, keep_int4: bool
                  ) -> Iterator[tuple[str, torch.Tensor | Int4Weight]]:
    """HF-named tensors, dequantized one at a time; with `keep_int4`, Q4_0/Q4_1/Q4_K matrices
    come as their own 4-bit blocks (Int4Weight), exactly."""
    permuted = cfg.architecture in _PERMUTED_QK
    for name in gguf.tensor_names():
        hf_name = gguf_to_hf_name(name, cfg.architecture)
        if hf_name is None:
            continue
        raw = gguf.raw(name)
        # The embedding table is read row by row, so it is always handed over as floats.
        if (keep_int4 and can_repack_int4(raw.ggml_type) and len(raw.shape) == 2
                and name != "token_embd.weight"):
            tensor = Int4Weight.from_gguf_blocks(raw.ggml_type, raw.data, raw.shape)
        else:
            tensor = torch.from_numpy(gguf.dequantize(name))
        if permuted and name.endswith(("attn_q.weight", "attn_q.bias")):
            tensor = _take_rows(tensor, unpermute_index(raw.shape[0], cfg.num_heads))
        elif permuted and name.endswith(("attn_k.weight", "attn_k.bias")):
            tensor = _take_rows(tensor, unpermute_index(raw.shape[0], cfg.num_kv_heads))
        yield hf_name, tensor


def unpermute_index(rows: int, num_heads: int) -> torch.Tensor:
    """Row order undoing llama.cpp's Q/K permutation: within each head, rows were reordered
    from (half, pair) to (pair, half) to suit its interleaved rotary; we use the half-split
    one. `w[unpermute_index(...)]` is the Hugging Face layout."""
    return torch.arange(rows).reshape(num_heads, rows // num_heads // 2, 2).transpose(1, 2).reshape(-1)


def _take_rows(tensor: torch.Tensor | Int4Weight, index: torch.Tensor) -> torch.Tensor | Int4Weight:
    return tensor.rows(index) if isinstance(tensor, Int4Weight) else tensor[index]


def _safetensors_weights(folder: Path) -> Iterator[tuple[str, torch.Tensor]]:
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in {folder}")
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                yield name, f.get_tensor(name)
