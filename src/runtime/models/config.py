"""Model configuration for the decoders we run (the Llama family, Phi-3, Gemma 3), read from
GGUF metadata or a HF config.json."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Architectures we run, by the name GGUF / HF give them. Phi-3 is the Llama block with fused
# qkv and gate|up projections (split on load); Gemma 3 has its own model file (gemma3.py).
GGUF_ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3")
HF_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3_text")
# Gemma 3 GGUFs do not store these; llama.cpp fixes them for the architecture too.
GEMMA3_SLIDING_PATTERN = 6  # every 6th layer global, the others sliding-window
GEMMA3_LOCAL_ROPE_THETA = 10000.0


@dataclass(frozen=True, slots=True)
class RopeScaling:
    """How rotary frequencies are stretched for long contexts. `kind` is "linear" or "llama3";
    `freq_factors` (a GGUF's `rope_freqs.weight`) divides the frequencies directly."""

    kind: str
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_positions: int = 8192


@dataclass(frozen=True, slots=True)
class ModelConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # Qwen2
    qk_norm: bool = False  # Qwen3, Gemma 3
    # Gemma 3: which layers attend only to the last `sliding_window` positions (q - k < window),
    # their rope base, the attention scale, and tanh soft-capping (cap * tanh(x / cap)).
    sliding_window: int | None = None
    sliding_layers: tuple[bool, ...] = ()
    rope_local_theta: float | None = None
    attn_scale: float | None = None  # default head_dim ** -0.5
    attn_softcap: float | None = None
    final_softcap: float | None = None

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be a multiple of "
                             f"num_kv_heads ({self.num_kv_heads})")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings, got {self.head_dim}")

    @property
    def is_gemma3(self) -> bool:
        return self.architecture in ("gemma3", "gemma3_text")

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    @classmethod
    def from_gguf(cls, metadata: dict[str, Any], tensor_names: set[str]) -> ModelConfig:
        arch = str(metadata.get("general.architecture", "llama"))
        if arch not in GGUF_ARCHITECTURES:
            raise ValueError(f"GGUF architecture {arch!r} is not supported "
                             f"(supported: {', '.join(GGUF_ARCHITECTURES)})")

        def get(key: str, default: Any = None) -> Any:
            value = metadata.get(f"{arch}.{key}", default)
            if value is None:
                raise ValueError(f"GGUF metadata is missing {arch}.{key}")
            return value

        hidden = int(get("embedding_length"))
        num_heads = int(get("attention.head_count"))
        num_kv = get("attention.head_count_kv", num_heads)
        num_kv = int(num_kv[0] if isinstance(num_kv, list) else num_kv)
        head_dim = int(metadata.get(f"{arch}.attention.key_length", hidden // num_heads))
        vocab = metadata.get(f"{arch}.vocab_size") or len(metadata["tokenizer.ggml.tokens"])
        scaling = None
        kind = metadata.get(f"{arch}.rope.scaling.type")
        if kind == "linear":
            scaling = RopeScaling("linear", float(metadata[f"{arch}.rope.scaling.factor"]))
        elif kind not in (None, "none"):
            raise ValueError(f"rope scaling type {kind!r} is not supported (linear, or llama3 "
                             "via rope_freqs.weight)")
        if arch == "phi3" and "rope_factors_long.weight" in tensor_names:
            raise ValueError("Phi-3 LongRoPE (rope_factors_long/short) is not supported")
        rotary_dims = metadata.get(f"{arch}.rope.dimension_count")
        if rotary_dims is not None and int(rotary_dims) != head_dim:
            raise ValueError(f"partial rotary embeddings ({rotary_dims} of {head_dim} dims) "
                             "are not supported")
        num_layers = int(get("block_count"))
        extra: dict[str, Any] = {}
        if arch == "gemma3":
            extra = _gemma3_gguf_extras(metadata, num_layers, hidden, num_heads, head_dim)
        elif arch == "phi3" and metadata.get("phi3.attention.sliding_window"):
            extra = {"sliding_window": int(metadata["phi3.attention.sliding_window"])}
        return cls(
            architecture=arch,
            vocab_size=int(vocab),
            hidden_size=hidden,
            intermediate_size=int(get("feed_forward_length")),
            num_layers=num_layers,
            num_heads=num_heads,
            num_kv_heads=num_kv,
            head_dim=head_dim,
            rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)),
            rope_theta=float(get("rope.freq_base", 10000.0)),
            rope_scaling=scaling,
            max_position_embeddings=int(get("context_length", 4096)),
            tie_word_embeddings="output.weight" not in tensor_names,
            qkv_bias="blk.0.attn_q.bias" in tensor_names,
            qk_norm="blk.0.attn_q_norm.weight" in tensor_names,
            **extra,
        )

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> ModelConfig:
        model_type = config.get("model_type", "llama")
        if model_type not in HF_MODEL_TYPES:
            raise ValueError(f"model_type {model_type!r} is not supported "
                             f"(supported: {', '.join(HF_MODEL_TYPES)})")
        num_heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        # transformers >= 5 nests rope settings under rope_parameters (per layer type for Gemma 3).
        rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
        extra: dict[str, Any] = {}
        if model_type == "gemma3_text":
            extra, rope = _gemma3_hf_extras(config, rope)
        elif model_type == "phi3":
            extra = _phi3_hf_extras(config, rope)
        theta = float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
        return cls(
            architecture=model_type,
            vocab_size=int(config["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(config["intermediate_size"]),
            num_layers=int(config["num_hidden_layers"]),
            num_heads=num_heads,
            num_kv_heads=int(config.get("num_key_value_heads") or num_heads),
            head_dim=int(config.get("head_dim") or hidden // num_heads),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_scaling=_hf_rope_scaling(rope),
            max_position_embeddings=int(config.get("max_position_embeddings", 4096)),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=bool(config.get("attention_bias", model_type == "qwen2")),
            qk_norm=model_type in ("qwen3", "gemma3_text"),
            **extra,
        )


def _gemma3_gguf_extras(metadata: dict[str, Any], num_layers: int, hidden: int, num_heads: int,
                        head_dim: int) -> dict[str, Any]:
    window = metadata.get("gemma3.attention.sliding_window")
    # llama.cpp scales queries by 1/sqrt(head_dim), except Gemma 3 27B (62 layers), whose
    # query_pre_attn_scalar is hidden / heads.
    scalar = hidden / num_heads if num_layers == 62 else head_dim
    return dict(
        sliding_window=int(window) if window else None,
        sliding_layers=tuple((i + 1) % GEMMA3_SLIDING_PATTERN != 0 for i in range(num_layers)),
        rope_local_theta=GEMMA3_LOCAL_ROPE_THETA,
        attn_scale=scalar ** -0.5,
        attn_softcap=None,  # not applied by Gemma 3 (see _gemma3_hf_extras)
        final_softcap=metadata.get("gemma3.final_logit_softcapping"),
    )


def _gemma3_hf_extras(config: dict[str, Any], rope: dict[str, Any]
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Gemma 3 settings, and the global layers' rope parameters."""
    num_layers = int(config["num_hidden_layers"])
    pattern = int(config.get("sliding_window_pattern", GEMMA3_SLIDING_PATTERN))
    types = config.get("layer_types") or [
        "full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(num_layers)]
    full = dict(rope.get("full_attention") or {})
    local = dict(rope.get("sliding_attention") or {})
    if "full_attention" not in rope:  # older configs: flat rope_theta / rope_local_base_freq
        full = dict(rope, rope_theta=config.get("rope_theta", 1_000_000.0))
    if _hf_rope_scaling(local) is not None:
        raise ValueError("rope scaling on Gemma 3 sliding-window layers is not supported")
    extra = dict(
        sliding_window=config.get("sliding_window"),
        sliding_layers=tuple(t == "sliding_attention" for t in types),
        rope_local_theta=float(local.get("rope_theta", config.get("rope_local_base_freq",
                                                                  GEMMA3_LOCAL_ROPE_THETA))),
        attn_scale=float(config.get("query_pre_attn_scalar", 256)) ** -0.5,
        # Gemma 3 keeps attn_logit_softcapping in its config but never applies it (its q/k
        # norms replaced Gemma 2's capping): transformers and llama.cpp both ignore it.
        attn_softcap=None,
        final_softcap=config.get("final_logit_softcapping"),
    )
    if config.get("use_bidirectional_attention"):
        raise ValueError("Gemma 3 with bidirectional attention is not supported")
    return extra, full


def _phi3_hf_extras(config: dict[str, Any], rope: dict[str, Any]) -> dict[str, Any]:
    if float(rope.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0))) != 1.0:
        raise ValueError("Phi-3 with partial rotary embeddings is not supported")
    window = config.get("sliding_window")
    return {"sliding_window": int(window)} if window else {}


def _hf_rope_scaling(rope: dict[str, Any]) -> RopeScaling | None:
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind in ("default", None):
        return None
    if kind == "longrope":
        raise ValueError("LongRoPE scaling (Phi-3 128k) is not supported")
    if kind == "linear":
        return RopeScaling("linear", float(rope["factor"]))
    if kind == "llama3":
        return RopeScaling("llama3", float(rope["factor"]), float(rope["low_freq_factor"]),
                           float(rope["high_freq_factor"]),
                           int(rope["original_max_position_embeddings"]))
    raise ValueError(f"rope scaling type {kind!r} is not supported (linear, llama3)")
