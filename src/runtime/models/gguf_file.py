"""Read a GGUF file: its metadata as plain Python values and its tensors, raw or dequantized."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class RawTensor:
    """A tensor as stored in the file. `data` is the raw block bytes for quantized types
    (shape [rows, bytes_per_row]) or the values themselves for float types.
    `shape` is in PyTorch order (rows first), i.e. GGUF's dims reversed."""

    name: str
    ggml_type: str  # "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K", ...
    shape: tuple[int, ...]
    data: np.ndarray


SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K")


class GGUFFile:
    """A memory-mapped GGUF file. Metadata is read at open; tensor data only when asked."""

    def __init__(self, path: str | Path):
        import gguf

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {self.path}")
        self._reader = gguf.GGUFReader(str(self.path), "r")
        self.metadata: dict[str, Any] = {}
        for name, fld in self._reader.fields.items():
            if name.startswith("GGUF."):
                continue
            self.metadata[name] = _field_value(fld)
        self._tensors = {t.name: t for t in self._reader.tensors}

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "llama"))

    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def raw(self, name: str) -> RawTensor:
        t = self._tensors[name]
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        return RawTensor(name, t.tensor_type.name, shape, t.data)

    def dequantize(self, name: str) -> np.ndarray:
        """The tensor as float32 in PyTorch order. Raises ValueError for unsupported types."""
        import gguf

        t = self._tensors[name]
        kind = t.tensor_type.name
        if kind not in SUPPORTED_TYPES:
            raise ValueError(f"tensor {name}: GGML type {kind} is not supported "
                             f"(supported: {', '.join(SUPPORTED_TYPES)})")
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        values = np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        if not values.flags.writeable:  # float tensors come back as views of the read-only map
            values = values.copy()
        return values.reshape(shape)


def _field_value(fld: Any) -> Any:
    import gguf

    value = fld.contents()
    if fld.types and fld.types[0] == gguf.GGUFValueType.ARRAY:
        return list(value)
    return value
