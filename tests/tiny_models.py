"""Tiny random-weight Llama-family models saved as Hugging Face folders, for fast tests.

They use the default model's real tokenizer and chat template (so prompts, stop tokens and
grammars behave as with the real model) with a few small layers of random weights. Weights are
drawn wide enough (std 0.2) that logits are well separated, so greedy decoding does not hinge
on float rounding: the embedding (also the output layer) is drawn wider still, so the
top logits sit well apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

ARCHS = {
    "llama": dict(model_type="llama", attention_bias=False),
    "qwen2": dict(model_type="qwen2", attention_bias=True),
    "qwen3": dict(model_type="qwen3", attention_bias=False),
}


def tiny_config(arch: str = "llama", vocab_size: int = 49152, **overrides) -> dict:
    cfg = dict(
        ARCHS[arch],
        architectures=[{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                        "qwen3": "Qwen3ForCausalLM"}[arch]],
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
        rope_theta=10000.0, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, torch_dtype="float32", hidden_act="silu",
    )
    cfg.update(overrides)
    return cfg


def random_weights(cfg: dict, seed: int = 0, std: float = 0.2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def w(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    def norm(dim: int) -> torch.Tensor:
        return 1.0 + 0.1 * torch.randn(dim, generator=g)

    H, I, D = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * D, cfg["num_key_value_heads"] * D
    out = {"model.embed_tokens.weight": w(cfg["vocab_size"], H) * 5, "model.norm.weight": norm(H)}
    if not cfg["tie_word_embeddings"]:
        out["lm_head.weight"] = w(cfg["vocab_size"], H) * 5
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out.update({
            p + "input_layernorm.weight": norm(H),
            p + "post_attention_layernorm.weight": norm(H),
            p + "self_attn.q_proj.weight": w(q, H),
            p + "self_attn.k_proj.weight": w(kv, H),
            p + "self_attn.v_proj.weight": w(kv, H),
            p + "self_attn.o_proj.weight": w(H, q),
            p + "mlp.gate_proj.weight": w(I, H),
            p + "mlp.up_proj.weight": w(I, H),
            p + "mlp.down_proj.weight": w(H, I),
        })
        if cfg.get("attention_bias"):
            for name, size in (("q", q), ("k", kv), ("v", kv)):
                out[p + f"self_attn.{name}_proj.bias"] = w(size)
        if cfg["model_type"] == "qwen3":
            out[p + "self_attn.q_norm.weight"] = norm(D)
            out[p + "self_attn.k_norm.weight"] = norm(D)
    return out


def save_tiny_model(folder: Path, tokenizer_dir: Path, arch: str = "llama", seed: int = 0,
                    **overrides) -> Path:
    """Write config.json, model.safetensors and the tokenizer files into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config(arch, **overrides)
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    save_file(random_weights(cfg, seed), str(folder / "model.safetensors"))
    for f in tokenizer_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def save_default_tokenizer(folder: Path, gguf_path: Path) -> Path:
    """The default model's tokenizer and chat template as a Hugging Face tokenizer folder."""
    from tines.runtime.models.gguf_file import GGUFFile
    from tines.runtime.tokenizer.tokenizer import Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    md = GGUFFile(gguf_path).metadata
    tok = Tokenizer.from_gguf_metadata(md)
    tok.backend.save(str(folder / "tokenizer.json"))
    tokens = md["tokenizer.ggml.tokens"]
    config = {
        "bos_token": tokens[md["tokenizer.ggml.bos_token_id"]],
        "eos_token": tokens[md["tokenizer.ggml.eos_token_id"]],
        "pad_token": tokens[md["tokenizer.ggml.padding_token_id"]],
        "add_bos_token": False,
        "chat_template": md["tokenizer.chat_template"],
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    return folder


def save_random_adapter(base_dir: Path, out: Path, targets: list[str], seed: int, **lora_kwargs):
    """A PEFT adapter with random A and B (B non-zero, unlike PEFT's init) saved to `out`;
    returns the PEFT model it came from."""
    import peft
    import transformers

    hf = transformers.AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    config = peft.LoraConfig(**{"r": 8, "lora_alpha": 16, "target_modules": targets, **lora_kwargs})
    model = peft.get_peft_model(hf, config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=g) * 0.1)
    model.save_pretrained(str(out))
    return model.eval()
