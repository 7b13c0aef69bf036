"""tines' AVX2 int4 matmul (`tines.kernels.int4_cpu`): the packing round-trips, the torch
reference is the float32 matmul with the dequantized weights, and the kernel (int16
activations, exact integer sums) stays within 1e-4 of the reference's largest output at
every row count (1-8 in one pass, more in several) and inside a compiled graph. The kernel tests skip where it is not built (not an AVX2 CPU, or
no compiler)."""

from __future__ import annotations

import pytest
import torch

from tines.kernels import int4_cpu

needs_kernel = pytest.mark.skipif(not int4_cpu.available(),
                                  reason="the AVX2 int4 kernel is not built on this machine")


def random_weight(n: int, k: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), dtype=torch.uint8, generator=g)
    d = torch.rand(n, k // 32, generator=g) * 0.1
    m = torch.randn(n, k // 32, generator=g) * 0.1
    return q, d, m


def assert_near_reference(got, ref):
    torch.testing.assert_close(got.float(), ref, rtol=0, atol=1e-4 * ref.abs().max().item())


def naive_weight(q, d, m):
    n, k = q.shape
    return (q.float().reshape(n, k // 32, 32) * d[..., None] + m[..., None]).reshape(n, k)


def test_pack_keeps_each_group_low_nibbles_first():
    q = torch.arange(32, dtype=torch.uint8)[None] % 16  # 0..15, 0..15
    packed, dm = int4_cpu.pack(q, torch.ones(1, 1), torch.zeros(1, 1))
    assert packed.shape == (1, 16) and dm.shape == (1, 1, 2)
    assert packed[0].tolist() == [j | (j << 4) for j in range(16)]


def test_dequantize_inverts_pack():
    q, d, m = random_weight(24, 96)
    packed, dm = int4_cpu.pack(q, d, m)
    assert torch.equal(int4_cpu.dequantize(packed, dm), naive_weight(q, d, m))


def test_reference_is_the_float32_matmul_of_the_dequantized_weight():
    q, d, m = random_weight(40, 64)
    x = torch.randn(3, 64)
    packed, dm = int4_cpu.pack(q, d, m)
    assert torch.equal(int4_cpu.int4_mm_ref(x, packed, dm), x @ naive_weight(q, d, m).t())


@needs_kernel
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 7, 8, 9, 17])
@pytest.mark.parametrize("shape", [(96, 64), (200, 576)])  # 200 outputs: uneven thread chunks
def test_kernel_equals_the_reference(rows, shape):
    n, k = shape
    packed, dm = int4_cpu.pack(*random_weight(n, k, seed=rows))
    x = torch.randn(rows, k)
    ref = int4_cpu.int4_mm_ref(x, packed, dm)
    got = int4_cpu.int4_mm(x, packed, dm)
    assert got.dtype == torch.float32 and got.shape == (rows, n)
    assert_near_reference(got, ref)


@needs_kernel
def test_kernel_takes_strided_activations():
    packed, dm = int4_cpu.pack(*random_weight(64, 128))
    x = torch.randn(128, 4).t()  # not contiguous
    assert_near_reference(int4_cpu.int4_mm(x, packed, dm), int4_cpu.int4_mm_ref(x, packed, dm))


@needs_kernel
def test_kernel_answers_bf16_in_bf16_rounded_from_float32():
    packed, dm = int4_cpu.pack(*random_weight(64, 128))
    x = torch.randn(3, 128).bfloat16()
    got = int4_cpu.int4_mm(x, packed, dm)
    assert got.dtype == torch.bfloat16
    ref = int4_cpu.int4_mm_ref(x, packed, dm)  # float32 from the bf16 values
    torch.testing.assert_close(got.float(), ref, rtol=2 ** -8, atol=1e-4 * ref.abs().max().item())


@needs_kernel
def test_kernel_refuses_a_misshapen_weight():
    packed, dm = int4_cpu.pack(*random_weight(8, 64))
    with pytest.raises(RuntimeError, match="q: contiguous uint8"):
        int4_cpu.int4_mm(torch.randn(1, 96), packed, dm)


@needs_kernel
def test_kernel_runs_inside_a_compiled_graph():
    packed, dm = int4_cpu.pack(*random_weight(48, 64))
    x = torch.randn(2, 64)
    compiled = torch.compile(lambda t: int4_cpu.int4_mm(t, packed, dm).relu(), fullgraph=True)
    assert_near_reference(compiled(x), int4_cpu.int4_mm_ref(x, packed, dm).relu())
