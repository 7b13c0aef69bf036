"""A GGUF file's header, metadata and tensor table, read directly (GGUF v2/v3, little-endian).

gguf.GGUFReader builds a numpy view per array element, which takes tens of seconds on a
262k-token vocabulary (Gemma 3); this reads numeric arrays with one `frombuffer` each and
strings with one `unpack_from` each. Tensor data stay in the memory map until asked for.

Layout: magic "GGUF", u32 version, u64 tensor count, u64 key count; then each key (string,
u32 type, value); then each tensor (string name, u32 n_dims, u64 dims[n_dims] innermost first,
u32 GGML type, u64 offset); then padding to `general.alignment` (default 32) and the data.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

# GGUF metadata value types -> numpy dtypes (8 = string, 9 = array)
_SCALARS = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32,
            6: np.float32, 7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}
_STRING, _ARRAY = 8, 9


class TensorInfo(NamedTuple):
    name: str
    ggml_type: int  # gguf.GGMLQuantizationType value
    dims: tuple[int, ...]  # GGUF order: innermost (row length) first
    offset: int  # from the start of the data section


class ParsedGGUF(NamedTuple):
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_start: int
    memory: np.memmap  # the whole file, read-only


def parse_gguf(path: str | Path) -> ParsedGGUF:
    """Raises ValueError if the file is not GGUF v2/v3."""
    memory = np.memmap(path, dtype=np.uint8, mode="r")
    buf = memoryview(memory)
    if bytes(buf[:4]) != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    version, num_tensors, num_keys = struct.unpack_from("<IQQ", buf, 4)
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} is not supported (2, 3)")
    reader = _Reader(buf, 24)
    metadata = {}
    for _ in range(num_keys):
        key = reader.string()
        metadata[key] = reader.value(reader.u32())
    tensors = []
    for _ in range(num_tensors):
        name = reader.string()
        dims = tuple(reader.unpack(f"<{reader.u32()}Q"))
        ggml_type, offset = reader.unpack("<IQ")
        tensors.append(TensorInfo(name, ggml_type, dims, offset))
    alignment = int(metadata.get("general.alignment", 32))
    data_start = -(-reader.pos // alignment) * alignment
    return ParsedGGUF(metadata, tensors, data_start, memory)


class _Reader:
    def __init__(self, buf: memoryview, pos: int):
        self.buf, self.pos = buf, pos

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def u32(self) -> int:
        return self.unpack("<I")[0]

    def string(self) -> str:
        (n,) = self.unpack("<Q")
        text = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return text

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.unpack("<IQ")
            if item_kind == _STRING:
                return [self.string() for _ in range(count)]
            if item_kind == _ARRAY:
                return [self.value(_ARRAY) for _ in range(count)]
            dtype = np.dtype(_SCALARS[item_kind])
            values = np.frombuffer(self.buf, dtype, count, self.pos)
            self.pos += count * dtype.itemsize
            return values.tolist()
        dtype = np.dtype(_SCALARS[kind])
        value = np.frombuffer(self.buf, dtype, 1, self.pos)[0].item()
        self.pos += dtype.itemsize
        return value
