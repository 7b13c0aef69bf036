"""Low-bit weights for the CPU matmul ops: int4 in groups of 32 and int8 per output channel.

int4: w[n, k] = (q[n, k] - 8) * scale[n, g] + zero[n, g] with g = k // 32 and q in [0, 15],
the layout of torch's `_weight_int4pack_mm_for_cpu`. A GGUF Q4_1 block (w = d*q + m) is the
same thing with scale = d and zero = m + 8d, and Q4_0 (w = d*(q - 8)) has zero = 0, so the
file's own 4-bit values are repacked, not re-quantized. Other sources are rounded to nearest
with each group's min/max.

int8: w[n, k] = q[n, k] * scale[n], q in [-127, 127], for `_weight_int8pack_mm`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...kernels import int4_cpu

GROUP = 32


@dataclass(slots=True)
class Int4Weight:
    q: torch.Tensor  # (N, K) uint8 in [0, 15]
    scale: torch.Tensor  # (N, K // GROUP) float32
    zero: torch.Tensor  # (N, K // GROUP) float32

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.q.shape)

    @classmethod
    def from_gguf_blocks(cls, kind: str, raw: np.ndarray, shape: tuple[int, int]) -> Int4Weight:
        """From Q4_0 / Q4_1 / Q4_K block bytes (rows of blocks, GGUF layout)."""
        n, k = shape
        if kind == "Q4_K":
            return cls._from_q4_k(raw, n, k)
        blocks = np.ascontiguousarray(raw).reshape(n, k // GROUP, -1)
        d = torch.from_numpy(blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32))
        if kind == "Q4_1":
            m = torch.from_numpy(blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32))
            nibbles = blocks[..., 4:20]
            zero = m + 8 * d
        elif kind == "Q4_0":
            nibbles = blocks[..., 2:18]
            zero = torch.zeros_like(d)
        else:
            raise ValueError(f"{kind} blocks cannot be repacked as int4")
        # Each block's 16 bytes hold elements 0..15 in low nibbles, 16..31 in high nibbles.
        q = np.concatenate((nibbles & 0x0F, nibbles >> 4), axis=-1).reshape(n, k)
        return cls(torch.from_numpy(q.astype(np.uint8)), d, zero)

    @classmethod
    def _from_q4_k(cls, raw: np.ndarray, n: int, k: int) -> Int4Weight:
        # Super-block (144 bytes): d f16, dmin f16, 12 bytes of packed 6-bit scales and mins,
        # 128 bytes of nibbles: byte i of chunk c (32 bytes) holds element i of group 2c in
        # its low nibble and of group 2c+1 in its high nibble.
        blocks = np.ascontiguousarray(raw).reshape(n, k // 256, 144)
        d = blocks[..., 0:2].copy().view(np.float16).astype(np.float32)  # (n, S, 1)
        dmin = blocks[..., 2:4].copy().view(np.float16).astype(np.float32)
        packed = blocks[..., 4:16].reshape(n, k // 256, 3, 4)
        lo, mid, hi = packed[..., 0, :], packed[..., 1, :], packed[..., 2, :]
        sc = np.concatenate((lo & 0x3F, (hi & 0x0F) | ((lo >> 2) & 0x30)), axis=-1)  # (n, S, 8)
        mins = np.concatenate((mid & 0x3F, (hi >> 4) | ((mid >> 2) & 0x30)), axis=-1)
        nibbles = blocks[..., 16:].reshape(n, k // 256, 4, 1, 32)
        q = (nibbles >> np.array([0, 4], dtype=np.uint8).reshape(2, 1)) & 0x0F  # (n, S, 4, 2, 32)
        scale = torch.from_numpy((d * sc).reshape(n, k // GROUP))
        offset = torch.from_numpy((dmin * mins).reshape(n, k // GROUP))
        return cls(torch.from_numpy(q.reshape(n, k).astype(np.uint8)), scale, 8 * scale - offset)

    @classmethod
    def from_float(cls, w: torch.Tensor) -> Int4Weight:
        """Round to nearest with each group's min and max (asymmetric)."""
        n, k = w.shape
        g = w.float().reshape(n, k // GROUP, GROUP)
        lo, hi = g.amin(-1), g.amax(-1)
        scale = ((hi - lo) / 15).clamp(min=1e-12)
        q = ((g - lo[..., None]) / scale[..., None]).round().clamp(0, 15)
        return cls(q.reshape(n, k).to(torch.uint8), scale, lo + 8 * scale)

    def dequantize(self) -> torch.Tensor:
        n, k = self.q.shape
        g = self.q.reshape(n, k // GROUP, GROUP).float() - 8
        return (g * self.scale[..., None] + self.zero[..., None]).reshape(n, k)

    def rows(self, index: torch.Tensor) -> Int4Weight:
        return Int4Weight(self.q[index], self.scale[index], self.zero[index])

    def packed_for_torch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, scales_and_zeros) as torch's `_weight_int4pack_mm_for_cpu` takes them."""
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(self.q.to(torch.int32), 1)
        scales = torch.stack((self.scale.t(), self.zero.t()), dim=-1).to(torch.bfloat16)
        return packed, scales.contiguous()

    def packed_for_tines(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(q, dm) as tines' AVX2 kernel takes them (`kernels/int4_cpu.py`), whose weights
        are q * d + m: (q - 8) * scale + zero == q * scale + (zero - 8 * scale)."""
        return int4_cpu.pack(self.q, self.scale, self.zero - 8 * self.scale)

    @staticmethod
    def cat(parts: list[Int4Weight]) -> Int4Weight:
        return Int4Weight(torch.cat([p.q for p in parts]), torch.cat([p.scale for p in parts]),
                          torch.cat([p.zero for p in parts]))


@dataclass(slots=True)
class Int8Weight:
    q: torch.Tensor  # (N, K) int8
    scale: torch.Tensor  # (N,) float32

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.q.shape)

    @classmethod
    def from_float(cls, w: torch.Tensor) -> Int8Weight:
        w = w.float()
        scale = (w.abs().amax(-1) / 127).clamp(min=1e-12)
        return cls((w / scale[:, None]).round().clamp(-127, 127).to(torch.int8), scale)

    def dequantize(self) -> torch.Tensor:
        return self.q.float() * self.scale[:, None]


def can_repack_int4(kind: str) -> bool:
    """Whether a GGML type's blocks map onto Int4Weight without re-quantizing."""
    return kind in ("Q4_0", "Q4_1", "Q4_K")
