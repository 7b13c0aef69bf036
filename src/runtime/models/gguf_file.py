"""Read a GGUF file: its metadata as plain Python values and its tensors, raw or dequantized."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .gguf_parse import parse_gguf


@dataclass(frozen=True, slots=True)
class RawTensor:
    """A tensor as stored in the file. `data` is the raw block bytes for quantized types
    (shape [rows, bytes_per_row]) or the values themselves for float types.
    `shape` is in PyTorch order (rows first), i.e. GGUF's dims reversed."""

    name: str
    ggml_type: str  # "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K", ...
    shape: tuple[int, ...]
    data: np.ndarray


def can_dequantize(ggml_type: str) -> bool:
    """Whether the installed `gguf` package can turn this GGML type into floats: F32, F16,
    BF16, the legacy quants (Q4_0 ... Q8_0), the K-quants (Q2_K ... Q6_K), the IQ types and
    whatever newer ones it knows. Probed once per type on one block of zeros."""
    if ggml_type not in _DEQUANTIZABLE:
        _DEQUANTIZABLE[ggml_type] = _probe(ggml_type)
    return _DEQUANTIZABLE[ggml_type]


def supported_types() -> list[str]:
    import gguf

    return [t.name for t in gguf.GGMLQuantizationType if can_dequantize(t.name)]


_DEQUANTIZABLE: dict[str, bool] = {}


def _probe(ggml_type: str) -> bool:
    import gguf

    try:
        qtype = gguf.GGMLQuantizationType[ggml_type]
        _, type_size = gguf.GGML_QUANT_SIZES[qtype]
        gguf.quants.dequantize(np.zeros((1, type_size), dtype=np.uint8), qtype)
    except (KeyError, ValueError, NotImplementedError):
        return False
    return True


class GGUFFile:
    """A memory-mapped GGUF file. Metadata is read at open; tensor data only when asked."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {self.path}")
        parsed = parse_gguf(self.path)
        self.metadata: dict[str, Any] = parsed.metadata
        # A plain ndarray over the map: numpy's memmap subclass costs a hook on every view.
        self._memory, self._data_start = parsed.memory.view(np.ndarray), parsed.data_start
        self._tensors = {t.name: t for t in parsed.tensors}

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "llama"))

    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def ggml_type(self, name: str) -> str:
        return _type_name(self._tensors[name].ggml_type)

    def raw(self, name: str) -> RawTensor:
        """The stored tensor, a read-only view of the file (F32 / F16 as their dtype, any
        other type as uint8 rows of blocks)."""
        import gguf

        t = self._tensors[name]
        kind = _type_name(t.ggml_type)
        shape = tuple(reversed(t.dims))
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(t.ggml_type)]
        num_bytes = int(np.prod(t.dims)) // block * type_size
        start = self._data_start + t.offset
        data = self._memory[start:start + num_bytes]
        if kind in ("F32", "F16"):
            data = data.view(np.float32 if kind == "F32" else np.float16).reshape(shape)
        else:
            data = data.reshape(*shape[:-1], shape[-1] // block * type_size)
        return RawTensor(name, kind, shape, data)

    def check_types(self, names: list[str] | None = None) -> None:
        """Raise ValueError naming every GGML type among `names` (default: all tensors) that
        cannot be dequantized, before any weight is read."""
        bad = sorted({self.ggml_type(n) for n in names or self._tensors}
                     - set(supported_types()))
        if bad:
            raise ValueError(f"{self.path.name}: GGML type(s) {', '.join(bad)} cannot be loaded "
                             f"(the installed gguf package dequantizes: "
                             f"{', '.join(supported_types())})")

    def dequantize(self, name: str) -> np.ndarray:
        """The tensor as float32 in PyTorch order: one tensor at a time, so a load never holds
        more than one dequantized copy. Raises ValueError for types that cannot be read."""
        import gguf

        raw = self.raw(name)
        if not can_dequantize(raw.ggml_type):
            raise ValueError(f"tensor {name}: GGML type {raw.ggml_type} cannot be loaded "
                             f"(supported: {', '.join(supported_types())})")
        shape = raw.shape
        qtype = gguf.GGMLQuantizationType[raw.ggml_type]
        values = np.ascontiguousarray(gguf.quants.dequantize(raw.data, qtype), dtype=np.float32)
        if not values.flags.writeable:  # float tensors come back as views of the read-only map
            values = values.copy()
        return values.reshape(shape)


def _type_name(ggml_type: int) -> str:
    import gguf

    try:
        return gguf.GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type {ggml_type}"
