"""Our Llama-family model computes what Hugging Face transformers computes, on the same weights:
the default GGUF file (transformers dequantizes it with `gguf_file=`) and tiny random
safetensors folders of each supported architecture."""

from __future__ import annotations

import pytest
import torch

from tests.forward import full_logits
from tines.runtime.models.loader import load_model
from tines.runtime.sampling_params import SamplingParams

transformers = pytest.importorskip("transformers")

PROMPTS = [
    "The capital of France is Paris. The capital of Germany is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "<|im_start|>user\nWrite a short poem about the sea, with rhymes.<|im_end|>\n<|im_start|>assistant\n",
]
# Long, open answers so 48 greedy tokens are produced before any end of turn.
GREEDY_PROMPTS = [
    "<|im_start|>user\nTell me a long story about a dragon who learns to bake bread.<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|im_start|>user\nExplain in detail how a steam engine works.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nList ten fruits and describe each one.<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.fixture(scope="module")
def hf_gguf(default_model_path):
    folder, name = str(default_model_path.parent), default_model_path.name
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                              dtype=torch.float32)
    return tok, model.eval()


@pytest.fixture(scope="module")
def ours_gguf(default_model_path):
    return load_model(default_model_path, "fp32").model


@pytest.mark.parametrize("prompt", PROMPTS)
def test_gguf_logits_match_transformers(prompt, hf_gguf, ours_gguf):
    tok, hf = hf_gguf
    ids = tok(prompt)["input_ids"]
    with torch.no_grad():
        expected = hf(torch.tensor([ids])).logits[0]
    got = full_logits(ours_gguf, ids)
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)


def test_gguf_greedy_48_tokens_match_transformers(hf_gguf, default_engine):
    tok, hf = hf_gguf
    params = SamplingParams(temperature=0, max_new_tokens=48, ignore_eos=True)
    prompt_ids = [tok(p)["input_ids"] for p in GREEDY_PROMPTS]
    outs = default_engine.generate(prompt_ids, params)
    for ids, out in zip(prompt_ids, outs):
        # An explicit mask: the pad id is <|im_end|>, which the prompt contains.
        with torch.no_grad():
            ref = hf.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                              max_new_tokens=48, do_sample=False, eos_token_id=None,
                              pad_token_id=tok.eos_token_id)[0, len(ids):]
        assert out.outputs[0].token_ids == ref.tolist()


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_safetensors_logits_match_transformers(arch, tmp_path, tokenizer_dir):
    from tests.tiny_models import save_tiny_model

    folder = save_tiny_model(tmp_path / arch, tokenizer_dir, arch, seed=3,
                             tie_word_embeddings=arch != "llama", num_key_value_heads=1)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    ours = load_model(folder, "fp32").model
    ids = torch.randint(0, 49152, (37,), generator=torch.Generator().manual_seed(1)).tolist()
    with torch.no_grad():
        expected = hf(torch.tensor([ids])).logits[0]
    torch.testing.assert_close(full_logits(ours, ids), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("rope", [
    {"rope_type": "linear", "factor": 4.0},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 64},
])
def test_rope_scaling_matches_transformers(rope, tmp_path, tokenizer_dir):
    from tests.tiny_models import save_tiny_model

    folder = save_tiny_model(tmp_path / "m", tokenizer_dir, "llama", seed=5,
                             rope_parameters={"rope_theta": 10000.0, **rope}, head_dim=32,
                             num_attention_heads=2)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    ours = load_model(folder, "fp32").model
    ids = torch.randint(0, 49152, (300,), generator=torch.Generator().manual_seed(2)).tolist()
    with torch.no_grad():
        expected = hf(torch.tensor([ids])).logits[0]
    torch.testing.assert_close(full_logits(ours, ids), expected, atol=1e-4, rtol=1e-4)


def test_bfloat16_weights_stay_close_to_float32(ours_gguf, default_model_path):
    ids = list(range(100, 140))
    bf16 = load_model(default_model_path, "bf16").model
    ref, got = full_logits(ours_gguf, ids), full_logits(bf16, ids)
    agree = (ref.argmax(-1) == got.argmax(-1)).float().mean().item()
    assert agree >= 0.9
    assert (ref - got).abs().max().item() < 1.5
