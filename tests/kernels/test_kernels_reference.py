"""The torch references (the CPU path) against the naive loops their docstrings state.

Tolerances: fp32 attention within 1e-5 of an fp32 loop (different summation order); the
elementwise ops within 1e-6; copies and masks exact.
"""

from __future__ import annotations

import pytest
import torch

from tests.kernels.kernel_cases import naive_attention, naive_bitmask, naive_plan_attention, pack_bitmask, \
    random_pool, scattered_batch
from tines.kernels import AttentionPlan, add_rms_norm_ref, apply_rotary_ref, \
    apply_token_bitmask_ref, attention_ref, decode_attention_ref, extend_attention_ref, \
    rms_norm_ref, silu_and_mul_ref, store_kv_ref, unpack_bitmask

ATOL = 1e-5
GQA = [(2, 2), (6, 2), (8, 1)]  # (H, Hkv): ratios 1, 3, 8


@pytest.mark.parametrize("heads", GQA)
@pytest.mark.parametrize("head_dim", [64, 128])
def test_decode_attention_ref_equals_the_loop_on_ragged_lengths(heads, head_dim):
    H, Hkv = heads
    k_cache, v_cache = random_pool(200, Hkv, head_dim)
    batch = scattered_batch([1, 1, 1], [1, 7, 60], 200)
    q = torch.randn(3, H, head_dim)
    out = decode_attention_ref(q, k_cache, v_cache, batch, head_dim ** -0.5)
    torch.testing.assert_close(out, naive_attention(q, k_cache, v_cache, batch, head_dim ** -0.5),
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("heads", GQA)
@pytest.mark.parametrize("head_dim", [64, 128])
def test_extend_attention_ref_equals_the_loop_with_prefixes(heads, head_dim):
    H, Hkv = heads
    k_cache, v_cache = random_pool(200, Hkv, head_dim)
    # no prefix / 16 cached + 9 new / 10 cached + 1 new
    batch = scattered_batch([4, 9, 1], [4, 25, 11], 200)
    q = torch.randn(14, H, head_dim)
    out = extend_attention_ref(q, k_cache, v_cache, batch, 0.1)
    torch.testing.assert_close(out, naive_attention(q, k_cache, v_cache, batch, 0.1),
                               atol=ATOL, rtol=0)


def test_a_long_chunk_beside_short_extends_runs_in_parts_and_equals_the_loop():
    k_cache, v_cache = random_pool(900, 3, 64)
    # a 120-token prompt (nothing cached) among extends of 2-6 new tokens over long prefixes
    batch = scattered_batch([2, 120, 6, 1, 5], [150, 120, 160, 90, 130], 900, seed=3)
    parts = batch.query_groups()
    assert [p.q_lens.tolist() for _, p in parts] == [[120], [6, 5, 2], [1]]
    assert sorted(torch.cat([rows for rows, _ in parts]).tolist()) == list(range(134))
    q = torch.randn(134, 9, 64)
    out = extend_attention_ref(q, k_cache, v_cache, batch, 0.125)
    torch.testing.assert_close(out, naive_attention(q, k_cache, v_cache, batch, 0.125),
                               atol=ATOL, rtol=0)


def test_similar_query_lengths_run_in_one_call():
    batch = scattered_batch([3, 4, 2], [40, 50, 45], 200)
    assert batch.query_groups() == []


def test_a_whole_prompt_takes_the_unpadded_path_and_equals_the_loop():
    k_cache, v_cache = random_pool(64, 3, 64)
    batch = scattered_batch([40], [40], 64)
    q = torch.randn(40, 9, 64)
    out = extend_attention_ref(q, k_cache, v_cache, batch, 0.125)
    torch.testing.assert_close(out, naive_attention(q, k_cache, v_cache, batch, 0.125),
                               atol=ATOL, rtol=0)
    assert batch.mask is None  # no padding index or mask was built


def test_a_plan_runs_extend_rows_then_decode_rows():
    k_cache, v_cache = random_pool(300, 3, 64)
    extend = scattered_batch([5, 12], [5, 30], 300, seed=1)
    decode = scattered_batch([1, 1, 1], [9, 2, 100], 300, seed=2)
    plan = AttentionPlan(extend, decode)
    q = torch.randn(17 + 3, 9, 64)
    out = attention_ref(q, k_cache, v_cache, plan, 0.125)
    torch.testing.assert_close(out, naive_plan_attention(q, k_cache, v_cache, plan, 0.125),
                               atol=ATOL, rtol=0)


def test_the_gather_buffers_are_reused_across_layers_and_stay_correct():
    batch = scattered_batch([1, 1], [10, 3], 50)
    q = torch.randn(2, 6, 64)
    for layer in range(2):  # two layers' caches through one batch
        k_cache, v_cache = random_pool(50, 2, 64, seed=layer)
        out = decode_attention_ref(q, k_cache, v_cache, batch, 0.125)
        torch.testing.assert_close(out, naive_attention(q, k_cache, v_cache, batch, 0.125),
                                   atol=ATOL, rtol=0)
        if layer == 0:
            buffers = [b.data_ptr() for b in batch.kv_buffers]
    assert [b.data_ptr() for b in batch.kv_buffers] == buffers


def test_a_next_step_batch_can_take_over_the_gather_buffers():
    k_cache, v_cache = random_pool(50, 2, 64)
    q = torch.randn(2, 6, 64)
    step = scattered_batch([1, 1], [10, 3], 50)
    decode_attention_ref(q, k_cache, v_cache, step, 0.125)
    next_step = scattered_batch([1, 1], [11, 4], 50)  # one more token each: within capacity
    next_step.kv_buffers = step.kv_buffers
    out = decode_attention_ref(q, k_cache, v_cache, next_step, 0.125)
    torch.testing.assert_close(out, naive_attention(q, k_cache, v_cache, next_step, 0.125),
                               atol=ATOL, rtol=0)
    assert next_step.kv_buffers is step.kv_buffers


def test_a_bf16_pool_stays_within_bf16_rounding_of_the_fp32_loop():
    k_cache, v_cache = random_pool(100, 3, 64, dtype=torch.bfloat16)
    batch = scattered_batch([1, 1], [50, 17], 100)
    q = torch.randn(2, 9, 64).bfloat16()
    out = decode_attention_ref(q, k_cache, v_cache, batch, 0.125)
    expected = naive_attention(q.float(), k_cache.float(), v_cache.float(), batch, 0.125)
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=0)


def test_rms_norm_ref_equals_the_loop():
    x, w = torch.randn(5, 3, 64), torch.randn(64)
    expected = torch.stack([r / torch.sqrt((r * r).mean() + 1e-5) * w
                            for r in x.reshape(-1, 64)]).view(5, 3, 64)
    torch.testing.assert_close(rms_norm_ref(x, w, 1e-5), expected, atol=1e-6, rtol=1e-6)


def test_add_rms_norm_ref_returns_the_normed_sum_and_the_sum_and_keeps_its_inputs():
    x, r, w = torch.randn(4, 100), torch.randn(4, 100), torch.randn(100)
    x0, r0 = x.clone(), r.clone()
    normed, residual = add_rms_norm_ref(x, r, w, 1e-6)
    assert torch.equal(residual, x0 + r0)
    assert torch.equal(normed, rms_norm_ref(x0 + r0, w, 1e-6))
    assert torch.equal(x, x0) and torch.equal(r, r0)


def test_silu_and_mul_ref_equals_the_formula():
    gate_up = torch.randn(3, 2 * 70)
    gate, up = gate_up[:, :70], gate_up[:, 70:]
    torch.testing.assert_close(silu_and_mul_ref(gate_up), gate * torch.sigmoid(gate) * up,
                               atol=1e-6, rtol=1e-6)


def rotary_loop(x: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    half = x.shape[-1] // 2
    for t in range(x.shape[0]):
        cos, sin = cos_sin[positions[t], :half], cos_sin[positions[t], half:]
        for h in range(x.shape[1]):
            x1, x2 = x[t, h, :half], x[t, h, half:]
            out[t, h] = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin))
    return out


def qkv_views(T: int, H: int, Hkv: int, D: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v as the model makes them: views into one fused projection output."""
    qkv = torch.randn(T, (H + 2 * Hkv) * D)
    q, k, v = qkv.split([H * D, Hkv * D, Hkv * D], dim=-1)
    return q.view(T, H, D), k.view(T, Hkv, D), v.view(T, Hkv, D)


@pytest.mark.parametrize("adjacent", [True, False], ids=["qkv-views", "separate"])
def test_apply_rotary_ref_rotates_in_place_as_the_loop(adjacent):
    q, k, v = qkv_views(6, 9, 3, 64)
    if not adjacent:
        q, k = q.clone(), k.clone()
    v0 = v.clone()
    positions, cos_sin = torch.tensor([0, 5, 2, 99, 7, 7]), torch.randn(100, 64)
    expected_q, expected_k = rotary_loop(q, positions, cos_sin), rotary_loop(k, positions, cos_sin)
    out_q, out_k = apply_rotary_ref(q, k, positions, cos_sin)
    assert out_q is q and out_k is k
    torch.testing.assert_close(q, expected_q, atol=1e-6, rtol=0)
    torch.testing.assert_close(k, expected_k, atol=1e-6, rtol=0)
    assert torch.equal(v, v0)  # the neighbouring v slice is untouched


def test_store_kv_ref_writes_each_token_at_its_slot_in_the_pool_dtype():
    _, k, v = qkv_views(4, 3, 3, 64)
    k_cache, v_cache = (torch.zeros(10, 3, 64, dtype=torch.bfloat16) for _ in range(2))
    slots = torch.tensor([7, 0, 3, 9])
    store_kv_ref(k_cache, v_cache, slots, k, v)
    for t, s in enumerate(slots.tolist()):
        assert torch.equal(k_cache[s], k[t].bfloat16()) and torch.equal(v_cache[s], v[t].bfloat16())
    assert not k_cache[[1, 2, 4, 5, 6, 8]].any()


@pytest.mark.parametrize("vocab", [64, 100, 130],
                         ids=["V%32==0", "V%32!=0", "logits-wider-than-mask"])
def test_apply_token_bitmask_ref_equals_the_loop(vocab):
    g = torch.Generator().manual_seed(vocab)
    logits = torch.randn(3, vocab, generator=g)
    bitmask = pack_bitmask(torch.rand(3, min(vocab, 100), generator=g) < 0.5)
    expected = naive_bitmask(logits, bitmask)
    apply_token_bitmask_ref(logits, bitmask)
    assert torch.equal(logits, expected)


def test_apply_token_bitmask_ref_touches_only_the_named_rows():
    logits = torch.randn(4, 70)
    bitmask = pack_bitmask(torch.rand(2, 70) < 0.3)
    expected = naive_bitmask(logits, bitmask, rows=[3, 1])
    apply_token_bitmask_ref(logits, bitmask, torch.tensor([3, 1]))
    assert torch.equal(logits, expected)
    assert not torch.isinf(logits[[0, 2]]).any()


def test_apply_token_bitmask_ref_masks_bf16_logits_and_keeps_infinities_right():
    logits = torch.randn(2, 40).bfloat16()
    logits[0, 0], logits[0, 1], logits[1, 5] = float("inf"), float("-inf"), float("inf")
    allowed = torch.rand(2, 40) < 0.5
    allowed[0, 0], allowed[1, 5] = False, True
    expected = naive_bitmask(logits, pack_bitmask(allowed))
    apply_token_bitmask_ref(logits, pack_bitmask(allowed))
    assert torch.equal(logits, expected)
    assert logits[0, 0] == float("-inf") and logits[1, 5] == float("inf")


def test_unpack_bitmask_inverts_the_packing():
    allowed = torch.rand(3, 77) < 0.5
    assert torch.equal(unpack_bitmask(pack_bitmask(allowed), 77), allowed)
    assert not unpack_bitmask(pack_bitmask(allowed), 100)[:, 96:].any()  # past the last word

