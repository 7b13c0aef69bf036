"""Weight formats: int4 keeps a GGUF's own 4-bit blocks, int8 rounds per channel, and each
format's logits stay within a stated distance of fp32 on the default model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, quants
from safetensors.torch import save_file

from tests.forward import full_logits
from tests.tiny_models import random_weights, tiny_config
from tines.kernels import int4_cpu
from tines.runtime.models.loader import load_model
from tines.runtime.models import onednn
from tines.runtime.models.linear import Embedding, Linear, activation_dtype, auto_int4_max_tokens
from tines.runtime.models.quantize import Int4Weight, Int8Weight

# Per format, on the prompt below: the mean KL divergence of its next-token distributions
# from fp32's, and the share of positions whose argmax matches fp32. bf16 rounds activations
# at every matmul; int8 also re-rounds the file's 4-bit weights per channel; int4 keeps them
# (scales rounded to bf16 by torch's op, float32 in tines' AVX2 kernel) and computes logits
# from a 4-bit copy of the output table, the best 16 recomputed from its 8-bit rows.
# (Measured with torch's op: 0.0008 / 0.008 / 0.012, agreement >= 94%.)
TOLERANCES = {"bf16": (0.005, 0.95), "int8": (0.03, 0.9), "int4": (0.04, 0.9)}


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1"])
def test_int4_repack_of_gguf_blocks_is_exact(kind):
    w = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    qtype = GGMLQuantizationType[kind]
    blocks = quants.quantize(w, qtype)
    expected = torch.from_numpy(quants.dequantize(blocks, qtype).reshape(8, 64))
    got = Int4Weight.from_gguf_blocks(kind, blocks, (8, 64)).dequantize()
    assert torch.equal(got, expected)


def test_int4_rounding_error_is_within_half_a_step():
    w = torch.randn(16, 128)
    q = Int4Weight.from_float(w)
    step = q.scale.repeat_interleave(32, dim=1)
    assert ((q.dequantize() - w).abs() <= step / 2 + 1e-6).all()


def test_int8_rounding_error_is_within_half_a_step():
    w = torch.randn(16, 128)
    q = Int8Weight.from_float(w)
    assert ((q.dequantize() - w).abs() <= q.scale[:, None] / 2 + 1e-6).all()


@pytest.mark.parametrize("fmt", ["bf16", "int8", "int4"])
def test_linear_matches_its_dequantized_weights(fmt):
    w, x = torch.randn(96, 64), torch.randn(5, 64)
    layer = Linear(64, 96, bias=False, fmt=fmt)
    layer.load(w)
    ref = x.bfloat16().float() @ {"bf16": w.bfloat16().float(), "int8": Int8Weight.from_float(w).dequantize(),
                                  "int4": Int4Weight.from_float(w).dequantize()}[fmt].t()
    torch.testing.assert_close(layer(x).float(), ref, atol=0.05 * ref.abs().max().item(), rtol=0)


def test_auto_without_bf16_arithmetic_runs_fp32_dense_and_int4_for_few_rows(monkeypatch):
    # An AVX2-only CPU: emulated bf16 matmuls are tens of times slower than fp32 there.
    monkeypatch.setattr(onednn, "available", lambda device="cpu": False)
    assert activation_dtype("auto") == torch.float32 and activation_dtype("int4") == torch.bfloat16
    w = torch.randn(96, 64)
    layer = Linear(64, 96, bias=False, fmt="auto")
    layer.load(w)
    assert layer.weight.dtype == torch.float32
    limit = auto_int4_max_tokens()
    many, few = torch.randn(limit + 1, 64), torch.randn(limit, 64)
    assert torch.equal(layer(many), many @ w.t())
    assert layer(few).dtype == torch.float32
    if int4_cpu.available():  # tines' AVX2 kernel: the 4-bit weights, int16 activations
        expected = few @ Int4Weight.from_float(w).dequantize().t()
        torch.testing.assert_close(layer(few), expected, rtol=0,
                                   atol=1e-4 * expected.abs().max().item())
    else:  # torch's int4 op, as the int4 format runs it
        int4 = Linear(64, 96, bias=False, fmt="int4")
        int4.load(w)
        assert torch.equal(layer(few), int4(few).float())


def test_auto_without_bf16_arithmetic_refines_the_int4_heads_best_logits(monkeypatch, tmp_path):
    # fp32 activations, but a decode step's logits come from the 4-bit copy of the table:
    # each row's best candidates are recomputed from the float32 table, as in bf16.
    monkeypatch.setattr(onednn, "available", lambda device="cpu": False)
    cfg = tiny_config("llama", vocab_size=512)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    save_file(random_weights(cfg, seed=3), str(tmp_path / "model.safetensors"))
    model = load_model(tmp_path, "auto").model
    hidden = torch.randn(2, cfg["hidden_size"])
    assert not model.head.exact(len(hidden)) and model.head.exact(auto_int4_max_tokens() + 1)
    exact = hidden @ model.head.rows(torch.arange(512)).t()
    got = model.compute_logits(hidden)
    best = exact.topk(8, dim=-1).indices
    torch.testing.assert_close(got.gather(1, best), exact.gather(1, best), atol=1e-5, rtol=1e-5)


def test_low_bit_embedding_lookup_and_logits():
    w = torch.randn(50, 32)
    emb = Embedding(50, 32, "int8")
    emb.load(w)
    ids = torch.tensor([0, 7, 49])
    torch.testing.assert_close(emb(ids).float(), w[ids], atol=0.02, rtol=0)
    h = torch.randn(2, 32)
    torch.testing.assert_close(emb.logits(h), h @ w.t(), atol=0.3, rtol=0.02)


@pytest.fixture(scope="module")
def fp32_logits(default_model_path, default_engine):
    prompt = default_engine.chat_template.render(
        [{"role": "user", "content": "Write three sentences about the history of Rome."}])
    ids = default_engine.tokenizer.encode(prompt) + default_engine.tokenizer.encode(
        " Rome was founded, according to legend, in 753 BC by Romulus.", add_special_tokens=False)
    model = load_model(default_model_path, "fp32").model
    return ids, full_logits(model, ids)


@pytest.mark.parametrize("fmt", ["bf16", "int8", "int4"])
def test_logits_stay_close_to_fp32(fmt, fp32_logits, default_model_path):
    ids, ref = fp32_logits
    got = full_logits(load_model(default_model_path, fmt).model, ids)
    max_kl, min_agree = TOLERANCES[fmt]
    kl = torch.nn.functional.kl_div(got.log_softmax(-1), ref.log_softmax(-1), log_target=True,
                                    reduction="none").sum(-1)
    agree = (got.argmax(-1) == ref.argmax(-1)).float().mean().item()
    assert kl.mean().item() < max_kl, f"{fmt}: mean KL {kl.mean().item():.4f}"
    assert agree >= min_agree, f"{fmt}: greedy agreement {agree:.1%}"
