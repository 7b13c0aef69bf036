"""Phi-3's fused projections (qkv_proj rows q|k|v, gate_up_proj rows gate|up) load into the
Llama block and compute what transformers' Phi3ForCausalLM computes on tiny random weights,
from a safetensors folder and from a GGUF file (attn_qkv, and ffn_up holding gate|up)."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.forward import full_logits
from tines.runtime.models.loader import load_model

transformers = pytest.importorskip("transformers")

VOCAB, HIDDEN, FFN, LAYERS, HEADS, KV_HEADS = 512, 64, 128, 2, 4, 2
HEAD_DIM = HIDDEN // HEADS


def phi3_config(**overrides) -> dict:
    cfg = dict(model_type="phi3", architectures=["Phi3ForCausalLM"], vocab_size=VOCAB,
               hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
               num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, rms_norm_eps=1e-5,
               max_position_embeddings=256, original_max_position_embeddings=256,
               rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
               tie_word_embeddings=False, hidden_act="silu", bos_token_id=1, eos_token_id=2,
               pad_token_id=0, torch_dtype="float32")
    cfg.update(overrides)
    return cfg


def phi3_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def w(*shape: int, std: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    qkv_rows = (HEADS + 2 * KV_HEADS) * HEAD_DIM
    out = {"model.embed_tokens.weight": w(VOCAB, HIDDEN, std=1.0), "lm_head.weight": w(VOCAB, HIDDEN, std=1.0),
           "model.norm.weight": 1 + w(HIDDEN, std=0.1)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        out.update({p + "input_layernorm.weight": 1 + w(HIDDEN, std=0.1),
                    p + "post_attention_layernorm.weight": 1 + w(HIDDEN, std=0.1),
                    p + "self_attn.qkv_proj.weight": w(qkv_rows, HIDDEN),
                    p + "self_attn.o_proj.weight": w(HIDDEN, HIDDEN),
                    p + "mlp.gate_up_proj.weight": w(2 * FFN, HIDDEN),
                    p + "mlp.down_proj.weight": w(HIDDEN, FFN)})
    return out


def save_phi3(folder: Path, **overrides) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(phi3_config(**overrides), indent=1))
    save_file(phi3_weights(), str(folder / "model.safetensors"))
    return folder


def save_phi3_gguf(path: Path) -> Path:
    """The same weights under llama.cpp's Phi-3 names (no Q/K permutation for this arch)."""
    names = {"model.embed_tokens.weight": "token_embd.weight", "lm_head.weight": "output.weight",
             "model.norm.weight": "output_norm.weight"}
    layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.qkv_proj": "attn_qkv", "self_attn.o_proj": "attn_output",
             "mlp.gate_up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    w = gguf.GGUFWriter(str(path), "phi3")
    for key, value in (("context_length", 256), ("embedding_length", HIDDEN),
                       ("feed_forward_length", FFN), ("block_count", LAYERS),
                       ("attention.head_count", HEADS), ("attention.head_count_kv", KV_HEADS),
                       ("rope.dimension_count", HEAD_DIM), ("vocab_size", VOCAB)):
        w.add_uint32(f"phi3.{key}", value)
    w.add_float32("phi3.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32("phi3.rope.freq_base", 10000.0)
    for name, tensor in phi3_weights().items():
        if name.startswith("model.layers."):
            _, _, idx, rest = name.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            name = f"blk.{idx}.{layer[module]}.{kind}"
        else:
            name = names[name]
        w.add_tensor(name, tensor.numpy().astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def hf_logits(folder: Path, ids: list[int]) -> torch.Tensor:
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return hf(torch.tensor([ids])).logits[0]


IDS = torch.randint(0, VOCAB, (29,), generator=torch.Generator().manual_seed(3)).tolist()


def test_safetensors_logits_match_transformers(tmp_path):
    folder = save_phi3(tmp_path / "phi3")
    ours = load_model(folder, "fp32").model
    torch.testing.assert_close(full_logits(ours, IDS), hf_logits(folder, IDS), atol=1e-4, rtol=1e-4)


def test_gguf_logits_match_transformers(tmp_path):
    folder = save_phi3(tmp_path / "phi3")
    ours = load_model(save_phi3_gguf(tmp_path / "phi3.gguf"), "fp32").model
    torch.testing.assert_close(full_logits(ours, IDS), hf_logits(folder, IDS), atol=1e-4, rtol=1e-4)


def test_sliding_window_caps_the_context(tmp_path):
    """Every Phi-3 layer is windowed; within the window that is plain causal attention, so the
    model's context stops at the window rather than computing something else past it."""
    folder = save_phi3(tmp_path / "phi3", sliding_window=20)
    ours = load_model(folder, "fp32").model
    assert ours.max_positions == 20
    ids = IDS[:20]
    torch.testing.assert_close(full_logits(ours, ids), hf_logits(folder, ids), atol=1e-4, rtol=1e-4)
