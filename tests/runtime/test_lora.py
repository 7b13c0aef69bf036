"""LoRA adapters at the model level: a PEFT adapter folder applied by our fused Llama gives the
logits transformers+PEFT gives on the same weights; a batch mixing adapters gives each sequence
what it gets alone; adapters the model cannot apply exactly are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.tiny_models import random_weights, save_random_adapter, tiny_config
from tines.kernels import AttentionBatch, AttentionPlan
from tines.runtime.cache.kv_pool import KVPool
from tines.runtime.models.llama import ForwardBatch, LlamaModel
from tines.runtime.models.loader import load_model
from tines.runtime.models.lora_batch import LoraBatch, LoraGroup, LoraSet, add_lora

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

VOCAB = 256
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
ALL_LINEAR = ATTENTION + ["gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A 2-layer random Llama (GQA 4/2 heads, head dim 16) with a 256-token vocabulary."""
    folder = tmp_path_factory.mktemp("lora-base")
    cfg = tiny_config("llama", vocab_size=VOCAB, tie_word_embeddings=False)
    (folder / "config.json").write_text(json.dumps(cfg))
    save_file(random_weights(cfg, seed=11), str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def ours(base_dir) -> LlamaModel:
    return load_model(base_dir, "fp32").model


def batch_logits(model: LlamaModel, seqs: list[list[int]], lora: LoraBatch | None
                 ) -> list[torch.Tensor]:
    """Each sequence's (len, vocab) logits from one prefill of all of them together."""
    cfg = model.cfg
    total = sum(map(len, seqs))
    pool = KVPool(total + 8, cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, model.dtype)
    slots = [pool.alloc(len(s)) for s in seqs]
    attn = AttentionBatch.build([len(s) for s in seqs], slots)
    batch = ForwardBatch(torch.tensor([t for s in seqs for t in s]),
                         torch.cat([torch.arange(len(s)) for s in seqs]), torch.cat(slots),
                         AttentionPlan.single(attn), pool, lora)
    return list(model.compute_logits(model(batch)).split([len(s) for s in seqs]))


def random_ids(n: int, seed: int) -> list[int]:
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("targets, lora_kwargs", [
    (ATTENTION, {}),
    (ALL_LINEAR, {}),
    # q and v only (k's rows of the fused B stay zero), per-module rank and alpha, rslora
    (["q_proj", "v_proj", "down_proj"],
     {"use_rslora": True, "rank_pattern": {"v_proj": 3}, "alpha_pattern": {"down_proj": 40}}),
], ids=["attention", "attention+mlp", "partial-rslora-patterns"])
def test_logits_match_transformers_peft(targets, lora_kwargs, base_dir, ours, tmp_path):
    hf = save_random_adapter(base_dir, tmp_path / "ad", targets, seed=1, **lora_kwargs)
    assert_logits_match(ours, hf, tmp_path / "ad", random_ids(29, seed=2))


def assert_logits_match(model: LlamaModel, hf, adapter_dir: Path, ids: list[int]) -> None:
    """Our model with the adapter folder gives the PEFT model's logits over `ids`."""
    adapters = LoraSet.for_model(model)
    adapter_id = adapters.load(adapter_dir)
    with torch.no_grad():
        expected = hf(torch.tensor([ids])).logits[0]
    [got] = batch_logits(model, [ids], LoraBatch.from_segments(adapters, [len(ids)], [adapter_id]))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def two_adapters(base_dir, ours, tmp_path_factory) -> LoraSet:
    root = tmp_path_factory.mktemp("adapters")
    save_random_adapter(base_dir, root / "one", ALL_LINEAR, seed=3)
    save_random_adapter(base_dir, root / "two", ["q_proj", "v_proj", "up_proj"], seed=4, r=4)
    adapters = LoraSet(ours.cfg)
    assert (adapters.load(root / "one"), adapters.load(root / "two")) == (1, 2)
    return adapters


def test_mixed_batch_equals_each_sequence_alone(ours, two_adapters):
    # adapter 1 twice, apart, so its tokens are not one contiguous run
    seqs = [random_ids(n, seed=10 + n) for n in (13, 7, 11, 5)]
    adapter_ids = [1, 2, 0, 1]
    mixed = batch_logits(ours, seqs, LoraBatch.from_segments(
        two_adapters, [len(s) for s in seqs], adapter_ids))
    for seq, adapter_id, got in zip(seqs, adapter_ids, mixed):
        [alone] = batch_logits(ours, [seq], LoraBatch.from_segments(two_adapters, [len(seq)],
                                                                    [adapter_id]))
        # fp32 GEMMs of 36 rows and of 13 may round differently (seen: 2e-5 on an AVX2-only
        # CPU); an adapter applied to the wrong tokens moves logits by > 0.1 (next test).
        torch.testing.assert_close(got, alone, atol=1e-4, rtol=1e-4)


def test_each_adapter_changes_the_logits(ours, two_adapters):
    seq = random_ids(9, seed=5)
    [base] = batch_logits(ours, [seq], None)
    for adapter_id in (1, 2):
        [adapted] = batch_logits(ours, [seq], LoraBatch.from_segments(two_adapters, [9], [adapter_id]))
        assert (adapted - base).abs().max().item() > 0.1


@pytest.mark.parametrize("lens", [(9, 6, 8), (60, 50, 40)],
                         ids=["float32-copies-for-small-steps", "bf16-for-large-steps"])
def test_adapters_apply_on_bf16_weights(lens, base_dir, ours, two_adapters):
    """With bf16 matmuls the mixed batch stays within bf16 rounding of float32: far closer
    than the adapters' own effect (steps over SMALL_STEP_TOKENS take the bf16 adapters)."""
    seqs, adapter_ids = [random_ids(n, seed=30 + n) for n in lens], [1, 0, 2]
    lens = [len(s) for s in seqs]
    bf16 = load_model(base_dir, "bf16").model
    adapters = LoraSet.for_model(bf16)
    for name in two_adapters.names:
        adapters.add(two_adapters.adapter(name))
    got = batch_logits(bf16, seqs, LoraBatch.from_segments(adapters, lens, adapter_ids))
    ref = batch_logits(ours, seqs, LoraBatch.from_segments(two_adapters, lens, adapter_ids))
    base = batch_logits(ours, seqs, None)
    for g, r, b, adapter_id in zip(got, ref, base, adapter_ids):
        if adapter_id:
            assert (g - r).abs().max() < 0.1 * (r - b).abs().max()


def test_tokens_without_adapter_make_no_lora_batch(two_adapters):
    assert LoraBatch.from_token_ids(two_adapters, [0, 0, 0]) is None


def test_decode_step_with_adapters_matches_prefill(ours, two_adapters):
    """forward_decode with `batch.lora` set (it runs the eager forward) gives each sequence's
    next-token logits as a prefill of the whole sequence with its adapter."""
    seqs = [random_ids(8, seed=20), random_ids(6, seed=21), random_ids(7, seed=22)]
    adapter_ids = [2, 0, 1]
    cfg = ours.cfg
    pool = KVPool(64, cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, ours.dtype)
    slots = [pool.alloc(len(s)) for s in seqs]
    prompts = [s[:-1] for s in seqs]
    lens = [len(p) for p in prompts]
    prefill = ForwardBatch(torch.tensor(sum(prompts, [])), torch.cat([torch.arange(n) for n in lens]),
                           torch.cat([s[:-1] for s in slots]),
                           AttentionPlan.single(AttentionBatch.build(lens, [s[:-1] for s in slots])),
                           pool, LoraBatch.from_segments(two_adapters, lens, adapter_ids))
    ours(prefill)
    decode = ForwardBatch(torch.tensor([s[-1] for s in seqs]), torch.tensor(lens),
                          torch.stack([s[-1] for s in slots]),
                          AttentionPlan.single(AttentionBatch.build([1, 1, 1], slots)), pool,
                          LoraBatch.from_token_ids(two_adapters, adapter_ids))
    got = ours.compute_logits(ours.forward_decode(decode, group=1))
    for row, seq, adapter_id in zip(got, seqs, adapter_ids):
        alone = LoraBatch.from_segments(two_adapters, [len(seq)], [adapter_id])
        [full] = batch_logits(ours, [seq], alone)
        torch.testing.assert_close(row, full[-1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("rows_one, rows_two", [
    (torch.tensor([0, 1, 4]), torch.tensor([3, 6])),  # interleaved: index tensors
    (slice(0, 2), slice(3, 5)),  # one run each: slices
])
def test_add_lora_matches_a_per_token_loop(rows_one, rows_two):
    g = torch.Generator().manual_seed(0)
    a_t, b_t = torch.randn(3, 10, 4, generator=g), torch.randn(3, 4, 6, generator=g)
    x, y = torch.randn(7, 10, generator=g), torch.randn(7, 6, generator=g)
    token_ids = [0] * 7
    for adapter_id, rows in ((1, rows_one), (2, rows_two)):
        for t in torch.arange(7)[rows].tolist():
            token_ids[t] = adapter_id
    expected = torch.stack([y[t] + (x[t] @ a_t[i]) @ b_t[i] if i else y[t]
                            for t, i in enumerate(token_ids)])
    got = add_lora(y.clone(), x, a_t, b_t, [LoraGroup(1, rows_one), LoraGroup(2, rows_two)])
    torch.testing.assert_close(got, expected)


def test_unsupported_target_module_is_named(base_dir, ours, tmp_path):
    save_random_adapter(base_dir, tmp_path / "ad", ["q_proj", "lm_head"], seed=6)
    with pytest.raises(ValueError, match="lm_head"):
        LoraSet(ours.cfg).load(tmp_path / "ad")


def test_dora_is_refused(base_dir, ours, tmp_path):
    save_random_adapter(base_dir, tmp_path / "ad", ["q_proj"], seed=7, use_dora=True)
    with pytest.raises(ValueError, match="DoRA"):
        LoraSet(ours.cfg).load(tmp_path / "ad")


def test_rank_mismatch_names_the_module(base_dir, ours, tmp_path):
    save_random_adapter(base_dir, tmp_path / "ad", ["v_proj"], seed=8)
    config_file = tmp_path / "ad" / "adapter_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "r": 5}))
    with pytest.raises(ValueError, match=r"model\.layers\.0\.self_attn\.v_proj"):
        LoraSet(ours.cfg).load(tmp_path / "ad")


def test_removed_adapter_id_is_not_reused(ours, base_dir, tmp_path):
    save_random_adapter(base_dir, tmp_path / "ad", ["q_proj"], seed=9)
    adapters = LoraSet(ours.cfg)
    first = adapters.load(tmp_path / "ad", name="x")
    adapters.remove("x")
    assert adapters.load(tmp_path / "ad", name="x") == first + 1
    with pytest.raises(ValueError, match="no LoRA adapter has id"):
        LoraBatch.from_token_ids(adapters, [first])


def test_phi3_fused_targets_match_transformers_peft(tmp_path):
    """Phi-3 names its fused projections (qkv_proj, gate_up_proj): their A/B apply as they are."""
    from tests.runtime.test_phi3 import save_phi3

    base = save_phi3(tmp_path / "phi3")
    hf = save_random_adapter(base, tmp_path / "ad", ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
                             seed=12)
    assert_logits_match(load_model(base, "fp32").model, hf, tmp_path / "ad", random_ids(23, seed=13))
