"""EngineConfig: every knob of the engine, validated once at construction."""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULE_POLICIES = ("lpm", "fcfs")
WEIGHT_FORMATS = ("fp32", "bf16", "int8", "int4", "auto")
GRAMMAR_BACKENDS = ("tines", "outlines", "llguidance", "xgrammar")  # grammar/backends/
DEVICES = ("cpu", "cuda", "auto")
KERNELS = ("torch", "triton", "auto")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """`kv_tokens` sizes the KV pool in tokens; when None, `kv_memory_fraction` of the
    machine's available memory (after weights) is used, capped at `max_kv_tokens`. On the
    CPU that size is a cap, not a reservation: the pool's memory grows with the most tokens
    held at once (running plus radix-cached), up to the cap, and is given back when the cache
    is flushed (runtime/cache/kv_pool.py). With the default model (bf16 KV, 22.5 KB a token)
    the default cap of 65,536 tokens is 1.4 GB."""

    model: str | None = None  # a path, a known name, or None for the default model
    # fp32 / bf16 dense; int8 / int4 weight-only; auto: int4 for decode-sized steps, dense for
    # prefill-sized ones (all but fp32 run bf16 activations and KV cache, except auto on a CPU
    # without bf16 arithmetic, which runs fp32 ones: models/linear.py)
    weights: str = "auto"
    kv_tokens: int | None = None
    kv_memory_fraction: float = 0.25
    max_kv_tokens: int = 65536
    max_running: int = 64  # sequences decoding at once
    max_queue: int = 4096  # waiting requests before submit refuses
    chunked_prefill_size: int = 512  # prompt tokens computed per step, over all sequences
    schedule_policy: str = "lpm"
    disable_radix_cache: bool = False
    max_model_len: int | None = None  # defaults to the model's context length
    num_threads: int | None = None  # torch intra-op threads; None = all cores
    seed: int = 0  # for requests without their own seed
    # A waiting request sharing more than this many uncached prompt tokens with a prompt being
    # computed waits a step, then reuses that prompt's KV instead of computing it again.
    share_wait_threshold: int = 32
    jump_forward: bool = True  # append grammar-forced text without sampling it
    # Compute the grammar masks a step samples under on a worker thread while its forward
    # runs (mask_prefetch.py), or after the forward (False). None: only where the forward runs
    # on a GPU. On the CPU the worker's Python holds the GIL that the forward needs between
    # its kernels, and measured the forward ~10x slower (bench/grammar_batch.py).
    overlap_grammar_masks: bool | None = None
    # torch.compile (inductor) the decode step and the other steps' dense halves, warmed up at
    # start-up; off runs eager
    compile: bool = False
    # Which grammar engine compiles constraints: "tines" (the default; budget-aware closing
    # and jump-forward), or "outlines" / "llguidance" / "xgrammar" when installed
    # (`grammar/backends/`).
    grammar_backend: str = "tines"
    # Where the model, KV pool, slot table and logits live; the host keeps scheduling and the
    # radix tree. auto: cuda when torch sees a GPU. On cuda, `compile` captures CUDA graphs of
    # decode steps instead (runtime/engine/device.py has the weight formats per device).
    device: str = "cpu"
    # Which kernels the model calls through tines.kernels: torch references or the Triton
    # twins (on the CPU only under TRITON_INTERPRET=1, for tests). auto: triton on cuda.
    kernels: str = "auto"
    # Tensor parallelism: the model split over this many ranks (processes, torch.distributed;
    # runtime/parallel/). Dense fp32 weights, eager steps.
    tp_size: int = 1
    # Prompt-lookup (n-gram) speculative decoding for greedy sequences (speculation.py): a
    # draft copied from earlier in the sequence is verified in one step, and each sequence's
    # draft length follows its acceptance (0 where drafting does not pay). Only while at most
    # `speculation_max_batch` sequences decode: in a bigger batch a step is compute-bound and
    # drafted rows cost as much as the tokens they might save.
    speculation: bool = True
    speculation_max_batch: int = 4
    # LoRA adapters loaded at start, (name, PEFT adapter folder) pairs; requests choose one by
    # name (`SamplingParams.lora`); more can be loaded later (`Engine.load_lora`).
    lora_adapters: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_FORMATS:
            raise ValueError(f"weights must be one of {WEIGHT_FORMATS}, got {self.weights!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {KERNELS}, got {self.kernels!r}")
        if self.schedule_policy not in SCHEDULE_POLICIES:
            raise ValueError(f"schedule_policy must be one of {SCHEDULE_POLICIES}, "
                             f"got {self.schedule_policy!r}")
        for name in ("max_running", "max_queue", "chunked_prefill_size", "max_kv_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.tp_size < 1:
            raise ValueError(f"tp_size must be >= 1, got {self.tp_size}")
        if self.tp_size > 1 and (self.weights != "fp32" or self.compile):
            raise ValueError(f"tp_size > 1 runs weights='fp32' without compile for now, got "
                             f"weights={self.weights!r}, compile={self.compile}")
        if self.lora_adapters and self.tp_size > 1:
            raise ValueError("lora_adapters: not supported with tp_size > 1 yet")
        if self.grammar_backend not in GRAMMAR_BACKENDS:
            raise ValueError(f"grammar_backend must be one of {GRAMMAR_BACKENDS}, "
                             f"got {self.grammar_backend!r}")
        if self.kv_tokens is not None and self.kv_tokens < 16:
            raise ValueError(f"kv_tokens must be >= 16, got {self.kv_tokens}")
        if not 0 < self.kv_memory_fraction <= 0.9:
            raise ValueError(f"kv_memory_fraction must be in (0, 0.9], got {self.kv_memory_fraction}")
