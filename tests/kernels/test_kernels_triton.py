"""Each Triton kernel against its torch reference, on small random inputs.

On this machine they run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1,
set in conftest.py), ~1 ms per program instance, so the shapes stay tiny. Tile sizes are
forced small so short sequences still cross several key blocks, query blocks and splits.

Tolerances: fp32 attention 1e-5 absolute (online softmax vs one softmax; 2e-3 on a GPU,
where fp32 matmuls run in TF32); fp32 elementwise ops 1e-6; copies and masks exact. bf16
results within one bf16 step (relative 2**-7): the interpreter rounds fp32 -> bf16 casts
toward zero where a GPU rounds to nearest even.
"""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("triton")

from tests.kernels.kernel_cases import pack_bitmask, random_pool, scattered_batch  # noqa: E402
from tines import kernels  # noqa: E402
from tines.kernels import AttentionPlan  # noqa: E402
from tines.kernels.triton_decode_attention import decode_attention, num_kv_splits  # noqa: E402
from tines.kernels.triton_extend_attention import extend_attention  # noqa: E402

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
if not INTERPRET and not torch.cuda.is_available():
    pytest.skip("Triton needs a GPU or TRITON_INTERPRET=1", allow_module_level=True)
DEVICE = "cpu" if INTERPRET else "cuda"
ATOL = 1e-5 if INTERPRET else 2e-3
BF16_STEP = 2 ** -7  # relative spacing of bf16 values
GQA = [(2, 2), (6, 2), (8, 1)]  # (H, Hkv): ratios 1, 3, 8


def randn(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape).to(DEVICE, dtype)


@pytest.mark.parametrize("heads", GQA)
@pytest.mark.parametrize("head_dim", [64, 128])
def test_split_k_decode_equals_the_reference_on_ragged_lengths(heads, head_dim):
    H, Hkv = heads
    k_cache, v_cache = random_pool(160, Hkv, head_dim, device=DEVICE)
    # 3 splits of 16-key blocks: the 1-key sequence leaves two splits empty, the 70-key one
    # spreads over every split and block boundary.
    batch = scattered_batch([1, 1, 1], [1, 37, 70], 160, device=DEVICE)
    q = randn(3, H, head_dim)
    out = decode_attention(q, k_cache, v_cache, batch, head_dim ** -0.5, num_splits=3, block_n=16)
    expected = kernels.decode_attention_ref(q, k_cache, v_cache, batch, head_dim ** -0.5)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_decode_with_the_default_split_count_equals_the_reference():
    k_cache, v_cache = random_pool(64, 3, 64, device=DEVICE)
    batch = scattered_batch([1, 1], [5, 50], 64, device=DEVICE)
    q = randn(2, 9, 64)
    out = kernels.decode_attention(q, k_cache, v_cache, batch, 0.125, backend="triton")
    expected = kernels.decode_attention_ref(q, k_cache, v_cache, batch, 0.125)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_split_count_grows_with_the_context_and_stops_when_the_batch_fills_the_gpu():
    def batch(num_seqs: int, kv_len: int):
        return kernels.AttentionBatch.from_table([1] * num_seqs, [kv_len] * num_seqs,
                                                 torch.zeros(num_seqs, kv_len, dtype=torch.int64))
    assert num_kv_splits(batch(1, 100), 3) == 1
    assert num_kv_splits(batch(1, 2048), 3) == 8
    assert num_kv_splits(batch(1, 100_000), 3) == 16
    assert num_kv_splits(batch(128, 2048), 2) == 1


def test_decode_on_a_bf16_pool_equals_the_reference_within_bf16_rounding():
    k_cache, v_cache = random_pool(80, 3, 64, dtype=torch.bfloat16, device=DEVICE)
    batch = scattered_batch([1, 1], [20, 60], 80, device=DEVICE)
    q = randn(2, 9, 64, dtype=torch.bfloat16)
    out = decode_attention(q, k_cache, v_cache, batch, 0.125, num_splits=2, block_n=16)
    expected = kernels.decode_attention_ref(q, k_cache, v_cache, batch, 0.125)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected.float(), atol=1e-2, rtol=0)


@pytest.mark.parametrize("heads", GQA)
@pytest.mark.parametrize("head_dim", [64, 128])
def test_extend_equals_the_reference_with_cached_prefixes(heads, head_dim):
    H, Hkv = heads
    k_cache, v_cache = random_pool(120, Hkv, head_dim, device=DEVICE)
    # no prefix / 25 cached + 20 new (two 16-row query blocks) / 8 cached + 1 new
    batch = scattered_batch([3, 20, 1], [3, 45, 9], 120, device=DEVICE)
    q = randn(24, H, head_dim)
    out = extend_attention(q, k_cache, v_cache, batch, 0.1, block_m=16, block_n=16)
    expected = kernels.extend_attention_ref(q, k_cache, v_cache, batch, 0.1)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_a_plan_writes_extend_and_decode_rows_into_one_output():
    k_cache, v_cache = random_pool(100, 3, 64, device=DEVICE)
    plan = AttentionPlan(scattered_batch([6], [20], 100, seed=1, device=DEVICE),
                         scattered_batch([1, 1], [33, 4], 100, seed=2, device=DEVICE))
    q = randn(8, 9, 64)
    out = kernels.attention(q, k_cache, v_cache, plan, 0.125, backend="triton")
    expected = kernels.attention_ref(q, k_cache, v_cache, plan, 0.125)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_attention_reads_q_through_its_strides():
    """q as the model passes it: a view into the fused qkv output, rows 9*64+2*3*64 apart."""
    k_cache, v_cache = random_pool(40, 3, 64, device=DEVICE)
    q = randn(5, (9 + 6) * 64)[:, :9 * 64].view(5, 9, 64)
    plan = AttentionPlan(scattered_batch([3], [10], 40, device=DEVICE),
                         scattered_batch([1, 1], [7, 12], 40, seed=3, device=DEVICE))
    out = kernels.attention(q, k_cache, v_cache, plan, 0.125, backend="triton")
    expected = kernels.attention_ref(q, k_cache, v_cache, plan, 0.125)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("dim", [100, 576])
def test_rms_norm_equals_the_reference(dim):
    x, w = randn(3, 4, dim), randn(dim)
    out = kernels.rms_norm(x, w, 1e-5, backend="triton")
    torch.testing.assert_close(out, kernels.rms_norm_ref(x, w, 1e-5), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_add_rms_norm_equals_the_reference(dtype):
    x, r, w = randn(5, 576, dtype=dtype), randn(5, 576, dtype=dtype), randn(576, dtype=dtype)
    normed, residual = kernels.add_rms_norm(x, r, w, 1e-5, backend="triton")
    expected_normed, expected_residual = kernels.add_rms_norm_ref(x, r, w, 1e-5)
    tol = 1e-6 if dtype == torch.float32 else BF16_STEP
    torch.testing.assert_close(residual, expected_residual, atol=0, rtol=tol)
    # bf16: the normed value may also inherit the residual's rounding step
    torch.testing.assert_close(normed, expected_normed, atol=tol, rtol=2 * tol)


@pytest.mark.parametrize("head_dim", [64, 128, 80])
def test_rotary_rotates_qkv_views_in_place_as_the_reference(head_dim):
    H, Hkv, T = 9, 3, 5
    qkv = randn(T, (H + 2 * Hkv) * head_dim)
    q, k, v = qkv.split([H * head_dim, Hkv * head_dim, Hkv * head_dim], dim=-1)
    q, k = q.view(T, H, head_dim), k.view(T, Hkv, head_dim)
    positions, cos_sin = torch.tensor([0, 3, 3, 40, 63]).to(DEVICE), randn(64, head_dim)
    expected_q, expected_k = kernels.apply_rotary_ref(q.clone(), k.clone(), positions, cos_sin)
    v0 = v.clone()
    out_q, out_k = kernels.apply_rotary(q, k, positions, cos_sin, backend="triton")
    assert out_q is q and out_k is k
    torch.testing.assert_close(q, expected_q, atol=1e-6, rtol=0)
    torch.testing.assert_close(k, expected_k, atol=1e-6, rtol=0)
    assert torch.equal(v, v0)


def test_silu_and_mul_equals_the_reference_across_column_blocks():
    from tines.kernels.triton_activation import silu_and_mul

    gate_up = randn(4, 2 * 70)
    out = silu_and_mul(gate_up, block=32)  # 3 column blocks, the last one partial
    torch.testing.assert_close(out, kernels.silu_and_mul_ref(gate_up), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("pool_dtype", [torch.float32, torch.bfloat16])
def test_store_kv_writes_strided_rows_at_their_slots_like_the_reference(pool_dtype):
    kv = randn(4, 2 * 3 * 64)
    k, v = kv[:, :192].view(4, 3, 64), kv[:, 192:].view(4, 3, 64)  # views, rows 384 apart
    slots = torch.tensor([7, 0, 3, 9]).to(DEVICE)
    caches = [torch.zeros(10, 3, 64, dtype=pool_dtype, device=DEVICE) for _ in range(4)]
    kernels.store_kv(caches[0], caches[1], slots, k, v, backend="triton")
    kernels.store_kv_ref(caches[2], caches[3], slots, k, v)
    tol = 0 if pool_dtype == torch.float32 else BF16_STEP
    torch.testing.assert_close(caches[0], caches[2], atol=0, rtol=tol)
    torch.testing.assert_close(caches[1], caches[3], atol=0, rtol=tol)


@pytest.mark.parametrize("vocab", [100, 1000, 1100],
                         ids=["V%32!=0", "several-blocks", "logits-wider-than-mask"])
def test_bitmask_equals_the_reference(vocab):
    from tines.kernels.triton_bitmask import apply_token_bitmask

    g = torch.Generator().manual_seed(vocab)
    logits = torch.randn(3, vocab, generator=g).to(DEVICE)
    bitmask = pack_bitmask(torch.rand(3, min(vocab, 1000), generator=g) < 0.5).to(DEVICE)
    expected = logits.clone()
    kernels.apply_token_bitmask_ref(expected, bitmask)
    apply_token_bitmask(logits, bitmask, words_per_block=8)  # 256 tokens per program
    assert torch.equal(logits, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bitmask_on_named_rows_leaves_the_others_untouched(dtype):
    logits = randn(5, 77, dtype=dtype)
    bitmask = pack_bitmask(torch.rand(2, 77) < 0.3).to(DEVICE)
    rows = torch.tensor([4, 1]).to(DEVICE)
    expected = logits.clone()
    kernels.apply_token_bitmask_ref(expected, bitmask, rows)
    kernels.apply_token_bitmask(logits, bitmask, rows, backend="triton")
    assert torch.equal(logits, expected)
