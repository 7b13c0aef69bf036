"""Every GGML type the installed `gguf` package can dequantize loads: a tiny Llama written
as a GGUF with all its matrices in that type gives the logits of the same model built from
the package's own dequantized weights. Types the package can quantize are quantized from
random floats; for the others (K-quants, IQ types) the test writes random valid blocks.
Q4_K maps onto the int4 path exactly; a type that cannot be read fails with its name."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

from tests.forward import full_logits
from tines.runtime.models.config import ModelConfig
from tines.runtime.models.gguf_file import can_dequantize
from tines.runtime.models.llama import LlamaModel
from tines.runtime.models.loader import gguf_to_hf_name, load_model, unpermute_index
from tines.runtime.models.quantize import Int4Weight

TYPES = [t.name for t in GGMLQuantizationType if can_dequantize(t.name)]
VOCAB, HIDDEN, FFN, HEADS, KV_HEADS, HEAD_DIM = 320, 256, 512, 4, 2, 64  # rows of 256 for K/IQ
MATRICES = {"token_embd": (VOCAB, HIDDEN), "attn_q": (HEADS * HEAD_DIM, HIDDEN),
            "attn_k": (KV_HEADS * HEAD_DIM, HIDDEN), "attn_v": (KV_HEADS * HEAD_DIM, HIDDEN),
            "attn_output": (HIDDEN, HEADS * HEAD_DIM), "ffn_gate": (FFN, HIDDEN),
            "ffn_up": (FFN, HIDDEN), "ffn_down": (HIDDEN, FFN)}


def encode(w: np.ndarray, qtype: GGMLQuantizationType, rng: np.random.Generator) -> np.ndarray:
    """w in `qtype`: quantized when the package can, else random valid blocks."""
    if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        return w.astype(np.float32 if qtype == GGMLQuantizationType.F32 else np.float16)
    try:
        return quants.quantize(w, qtype)
    except NotImplementedError:
        return random_blocks(qtype, *w.shape, rng)


@np.errstate(invalid="ignore", over="ignore")  # random scales may decode to inf / nan: redrawn
def random_blocks(qtype: GGMLQuantizationType, rows: int, cols: int,
                  rng: np.random.Generator) -> np.ndarray:
    """(rows, bytes per row) of random blocks, each redrawn until its values are finite and of
    a modest size (random bytes make random float16 scales)."""
    block, size = GGML_QUANT_SIZES[qtype]

    def draw(n: int) -> np.ndarray:
        blocks = rng.integers(0, 256, (n, size), dtype=np.uint8)
        if qtype.name == "NVFP4":  # four E4M3 scales first: small exponents, or all are huge
            blocks[:, :4] = rng.integers(0x08, 0x30, (n, 4), dtype=np.uint8)
        return blocks

    raw = draw(rows * cols // block)
    for _ in range(500):
        peak = np.abs(quants.dequantize(raw, qtype)).max(-1)  # (blocks,)
        bad = ~np.isfinite(peak) | (peak > 1.0) | (peak < 1e-2)
        if not bad.any():
            return raw.reshape(rows, -1)
        raw[bad] = draw(int(bad.sum()))
    raise AssertionError(f"could not draw valid {qtype.name} blocks")


def write_tiny_gguf(path: Path, kind: str, seed: int = 0) -> Path:
    """A 2-layer Llama (tied output) whose matrices are all `kind`; norms stay F32."""
    rng = np.random.default_rng(seed)
    qtype = GGMLQuantizationType[kind]
    w = gguf.GGUFWriter(str(path), "llama")
    for key, value in (("context_length", 256), ("embedding_length", HIDDEN),
                       ("feed_forward_length", FFN), ("block_count", 2),
                       ("attention.head_count", HEADS), ("attention.head_count_kv", KV_HEADS),
                       ("vocab_size", VOCAB)):
        w.add_uint32(f"llama.{key}", value)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32("llama.rope.freq_base", 10000.0)

    def add(name: str, values: np.ndarray) -> None:
        if values.dtype in (np.float32, np.float16):
            w.add_tensor(name, values)
        else:
            w.add_tensor(name, values, raw_dtype=qtype)

    add("token_embd.weight", encode(rng.standard_normal(MATRICES["token_embd"]).astype(np.float32), qtype, rng))
    add("output_norm.weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
    for i in range(2):
        for name, shape in MATRICES.items():
            if name != "token_embd":
                values = (0.2 * rng.standard_normal(shape)).astype(np.float32)
                add(f"blk.{i}.{name}.weight", encode(values, qtype, rng))
        for norm in ("attn_norm", "ffn_norm"):
            add(f"blk.{i}.{norm}.weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def reference_model(path: Path) -> LlamaModel:
    """The same model, its weights dequantized by the gguf package itself."""
    reader = gguf.GGUFReader(str(path))
    metadata = {f.name: f.contents() for f in reader.fields.values()}
    cfg = ModelConfig.from_gguf(metadata, {t.name for t in reader.tensors})
    weights = []
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        values = torch.from_numpy(np.array(quants.dequantize(t.data, t.tensor_type),
                                           dtype=np.float32).reshape(shape))
        if t.name.endswith("attn_q.weight"):
            values = values[unpermute_index(shape[0], HEADS)]
        elif t.name.endswith("attn_k.weight"):
            values = values[unpermute_index(shape[0], KV_HEADS)]
        weights.append((gguf_to_hf_name(t.name), values))
    model = LlamaModel(cfg, "fp32")
    model.load_weights(weights)
    return model


PROMPT = [5, 17, 42, 99, 3, 250, 7, 7, 120, 64, 1, 319]


@pytest.mark.parametrize("kind", TYPES)
def test_type_loads_with_the_packages_dequantized_logits(kind, tmp_path):
    path = write_tiny_gguf(tmp_path / f"{kind}.gguf", kind)
    assert gguf.GGUFReader(str(path)).tensors[0].tensor_type.name == kind
    got = full_logits(load_model(path, "fp32").model, PROMPT)
    expected = full_logits(reference_model(path), PROMPT)
    assert torch.isfinite(expected).all()
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_q4_k_blocks_map_onto_int4_exactly():
    raw = random_blocks(GGMLQuantizationType.Q4_K, 8, 512, np.random.default_rng(1))
    expected = torch.from_numpy(quants.dequantize(raw, GGMLQuantizationType.Q4_K).reshape(8, 512))
    got = Int4Weight.from_gguf_blocks("Q4_K", raw, (8, 512)).dequantize()
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_q4_k_model_on_the_int4_path_stays_close_to_float32(tmp_path):
    """int4 keeps the Q4_K values (scales rounded to bf16) and runs bf16 activations."""
    path = write_tiny_gguf(tmp_path / "q4k.gguf", "Q4_K")
    ref = full_logits(reference_model(path), PROMPT)
    got = full_logits(load_model(path, "int4").model, PROMPT)
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean().item() >= 0.9
    assert (got - ref).abs().max().item() < 0.05 * ref.abs().max().item()


def test_a_type_that_cannot_be_read_is_named(tmp_path):
    kind = next(t.name for t in GGMLQuantizationType
                if not can_dequantize(t.name) and t.name.startswith("Q"))
    path = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    for key, value in (("embedding_length", 256), ("feed_forward_length", 512), ("block_count", 1),
                       ("attention.head_count", 4), ("vocab_size", 8)):
        w.add_uint32(f"llama.{key}", value)
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[kind]]
    w.add_tensor("token_embd.weight", np.zeros((8, 256 // block * size), dtype=np.uint8),
                 raw_dtype=GGMLQuantizationType[kind])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match=kind):
        load_model(path, "fp32")
