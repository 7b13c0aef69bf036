"""Gemma 3 computes what transformers' Gemma3ForCausalLM computes on the same tiny random
weights: sliding-window and global layers with their own rope bases, the four block norms,
q/k norms, (1 + w) RMSNorm, scaled embeddings, gelu-tanh MLP and soft-capping; through the KV
pool a token at a time as well as in one prefill; and greedily through the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.forward import full_logits
from tines.kernels import AttentionBatch, AttentionPlan
from tines.runtime.cache.kv_pool import KVPool
from tines.runtime.models.llama import ForwardBatch
from tines.runtime.models.loader import load_model
from tines.runtime.models.windowed_attention import windowed_attention
from tines.runtime.sampling_params import SamplingParams

transformers = pytest.importorskip("transformers")

VOCAB = 49152  # the default model's tokenizer, so the engine test can run on it
WINDOW = 8  # small, so the 37-token prompts below cross it many times


def gemma3_config(**overrides) -> dict:
    cfg = dict(
        model_type="gemma3_text", architectures=["Gemma3ForCausalLM"], vocab_size=VOCAB,
        hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, max_position_embeddings=2048,
        sliding_window=WINDOW, layer_types=["sliding_attention", "full_attention",
                                            "sliding_attention", "full_attention"],
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0,
                                            "rope_theta": 1_000_000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
        query_pre_attn_scalar=24, tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh",
        bos_token_id=1, eos_token_id=2, pad_token_id=0, torch_dtype="float32",
    )
    cfg.update(overrides)
    return cfg


def gemma3_weights(cfg: dict, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def w(*shape: int, std: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    H, I, D = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * D, cfg["num_key_value_heads"] * D
    out = {"model.embed_tokens.weight": w(VOCAB, H, std=0.5), "model.norm.weight": w(H, std=0.1)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            out[p + f"{norm}.weight"] = w(H, std=0.1)  # Gemma norms multiply by 1 + w
        out.update({
            p + "self_attn.q_norm.weight": w(D, std=0.1), p + "self_attn.k_norm.weight": w(D, std=0.1),
            p + "self_attn.q_proj.weight": w(q, H), p + "self_attn.k_proj.weight": w(kv, H),
            p + "self_attn.v_proj.weight": w(kv, H), p + "self_attn.o_proj.weight": w(H, q),
            p + "mlp.gate_proj.weight": w(I, H), p + "mlp.up_proj.weight": w(I, H),
            p + "mlp.down_proj.weight": w(H, I),
        })
    return out


def save_gemma3(folder: Path, tokenizer_dir: Path | None = None, seed: int = 0,
                **overrides) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = gemma3_config(**overrides)
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    save_file(gemma3_weights(cfg, seed), str(folder / "model.safetensors"))
    for f in (tokenizer_dir.iterdir() if tokenizer_dir else ()):
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def hf_logits(folder: Path, ids: list[int]) -> torch.Tensor:
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return hf(torch.tensor([ids])).logits[0]


def prompt(n: int = 37, seed: int = 1) -> list[int]:
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("final_cap", [None, 5.0], ids=["plain", "softcapped"])
def test_logits_match_transformers(final_cap, tmp_path):
    # attn_logit_softcapping is set to show it is ignored, as transformers ignores it for Gemma 3.
    folder = save_gemma3(tmp_path / "g", attn_logit_softcapping=20.0,
                         final_logit_softcapping=final_cap)
    ids = prompt()
    ours = load_model(folder, "fp32").model
    torch.testing.assert_close(full_logits(ours, ids), hf_logits(folder, ids), atol=1e-4, rtol=1e-4)


def test_default_layer_pattern_matches_transformers(tmp_path):
    """No layer_types in the config: every 6th layer global (layers 0-4 slide, 5 is global)."""
    folder = save_gemma3(tmp_path / "g", num_hidden_layers=6, layer_types=None)
    ours = load_model(folder, "fp32").model
    assert [layer.sliding for layer in ours.layers] == [True] * 5 + [False]
    ids = prompt(seed=4)
    torch.testing.assert_close(full_logits(ours, ids), hf_logits(folder, ids), atol=1e-4, rtol=1e-4)


def test_decoding_through_the_pool_matches_one_prefill(tmp_path):
    """A prefill chunk, then one token per step attending to the cached K/V: the window is
    counted from each query's own position, so every step's logits equal the full pass."""
    folder = save_gemma3(tmp_path / "g")
    model = load_model(folder, "fp32").model
    ids = prompt(seed=2)
    expected = full_logits(model, ids)
    cfg = model.cfg
    pool = KVPool(64, cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, model.dtype)
    slots = pool.alloc(len(ids))
    first = 11
    steps = [(0, first)] + [(i, i + 1) for i in range(first, len(ids))]
    for start, end in steps:
        attn = AttentionBatch.build([end - start], [slots[:end]])
        batch = ForwardBatch(torch.tensor(ids[start:end]), torch.arange(start, end),
                             slots[start:end], AttentionPlan.single(attn), pool)
        got = model.compute_logits(model(batch))
        torch.testing.assert_close(got, expected[start:end], atol=1e-4, rtol=1e-4)


LAYOUTS = {  # (new tokens, kv slots) per sequence
    "one with a cached prefix": ([3, 5], [[4, 9, 2, 7, 11, 0], [13, 14, 15, 16, 17]]),
    # a 16-token prompt beside two 1-token extends: run in parts (AttentionBatch.query_groups)
    "a long chunk beside short extends": ([1, 16, 1], [list(range(10)), list(range(20, 36)),
                                                       list(range(40, 50))]),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("window,softcap", [(3, None), (None, 2.0), (3, 2.0)])
def test_windowed_attention_matches_a_loop(window, softcap, layout):
    """Each query row sees keys k <= its position with pos - k < window, scores capped as
    cap * tanh(s / cap)."""
    g = torch.Generator().manual_seed(0)
    H, Hkv, D = 4, 2, 8
    k_cache, v_cache = torch.randn(50, Hkv, D, generator=g), torch.randn(50, Hkv, D, generator=g)
    q_lens, kv_slots = LAYOUTS[layout]
    q = torch.randn(sum(q_lens), H, D, generator=g)
    batch = AttentionBatch.build(q_lens, kv_slots)
    assert bool(batch.query_groups()) == (layout == "a long chunk beside short extends")
    plan = AttentionPlan.single(batch)
    got = windowed_attention(q, k_cache, v_cache, plan, 0.5, window, softcap)
    row = 0
    for q_len, slots in zip(q_lens, kv_slots):
        for j in range(q_len):
            pos = len(slots) - q_len + j
            keys = [p for p in range(pos + 1) if window is None or pos - p < window]
            for h in range(H):
                k, v = k_cache[slots][keys, h // 2], v_cache[slots][keys, h // 2]
                s = k @ q[row, h] * 0.5
                s = s if softcap is None else softcap * torch.tanh(s / softcap)
                torch.testing.assert_close(got[row, h], s.softmax(-1) @ v, atol=1e-5, rtol=1e-5)
            row += 1


def test_engine_greedy_matches_transformers(tmp_path, tokenizer_dir):
    from tines.runtime.engine.engine import Engine

    folder = save_gemma3(tmp_path / "g", tokenizer_dir, seed=5)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    prompts = [prompt(13, seed=6), prompt(5, seed=7)]
    engine = Engine(str(folder), kv_tokens=1024, max_running=4, weights="fp32")
    try:
        outs = engine.generate(prompts, SamplingParams(temperature=0, max_new_tokens=12,
                                                       ignore_eos=True))
    finally:
        engine.shutdown()
    for ids, out in zip(prompts, outs):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                              max_new_tokens=12, do_sample=False, eos_token_id=None,
                              pad_token_id=0)[0, len(ids):]
        assert out.outputs[0].token_ids == ref.tolist()


def test_gguf_without_template_gets_gemma_turns_when_its_vocabulary_has_them():
    from tines.runtime.tokenizer.chat_template import ChatTemplate

    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "a"]
    metadata = {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.bos_token_id": 2,
                "tokenizer.ggml.eos_token_id": 1}
    text = ChatTemplate.from_gguf_metadata(metadata).render(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi "},
         {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}],
        add_generation_prompt=True)
    assert text == ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
                    "<start_of_turn>model\nHello.<end_of_turn>\n"
                    "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")


@pytest.fixture(scope="module")
def gemma3_270m_path() -> Path:
    """The real Gemma 3 270M (Q4_K_M), where `tines pull gemma3-270m` has fetched it."""
    from tines.runtime.models.registry import GEMMA3_270M, cached_path

    path = cached_path(GEMMA3_270M)
    if not path.is_file():
        pytest.skip("gemma3-270m is not pulled (run `tines pull gemma3-270m`)")
    return path


@pytest.mark.slow
def test_real_gemma3_270m_logits_match_transformers(gemma3_270m_path):
    ids = [2, 818, 5279, 529, 7001, 563]  # "<bos>The capital of France is"
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(gemma3_270m_path.parent), gguf_file=gemma3_270m_path.name, dtype=torch.float32).eval()
    with torch.no_grad():
        expected = hf(torch.tensor([ids])).logits[0]
    ours = load_model(gemma3_270m_path, "fp32").model
    torch.testing.assert_close(full_logits(ours, ids), expected, atol=2e-4, rtol=1e-4)


@pytest.mark.slow
def test_real_gemma3_270m_answers_greedily(gemma3_270m_path):
    from tines.runtime.engine.engine import Engine

    engine = Engine(str(gemma3_270m_path), kv_tokens=1024, max_running=2, weights="fp32")
    try:
        out = engine.generate("Question: What is the capital of France?\nAnswer:",
                              SamplingParams(temperature=0, max_new_tokens=4))
    finally:
        engine.shutdown()
    assert out.outputs[0].text.strip().startswith("Paris")
