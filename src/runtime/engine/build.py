"""Building an engine core on the engine thread: pick the device and kernels (device.py), load
the model, size the KV pool, make the parts, warm them up (and on a GPU capture CUDA graphs of
decode steps). `Engine` calls `build_core` from its own thread and keeps only the immutable
facts (`BuiltCore` minus the core) for callers' threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from ... import kernels
from ..cache import make_cache
from ..cache.kv_pool import KVPool
from ..cache.slot_table import SlotTable
from ..models.config import ModelConfig
from ..models.linear import activation_dtype, auto_int4_max_tokens
from ..models.loader import load_model
from ..sampling_params import SamplingParams
from ..tokenizer.chat_template import ChatTemplate
from ..tokenizer.tokenizer import Tokenizer
from .admission import Admission
from .config import EngineConfig
from .core import EngineCore
from .token_vocab import EngineVocabulary
from .device import device_memory_available, place_model, resolve_placement
from .malloc_tuning import keep_step_memory_in_heap, release_freed_heap
from .model_runner import ModelRunner
from .scheduler import Scheduler


class KVPoolInfo(NamedTuple):
    """What callers may know about the pool: fixed at build."""

    num_slots: int
    nbytes: int


class BuiltCore(NamedTuple):
    core: EngineCore  # the engine thread's alone
    tokenizer: Tokenizer
    chat_template: ChatTemplate
    model_config: ModelConfig
    max_model_len: int
    pool: KVPoolInfo
    vocab: EngineVocabulary  # shared by the core's token healing and request intake
    tp_group: Any = None  # TensorParallelGroup when tp_size > 1 (its workers, for operators)


def build_core(cfg: EngineConfig, model_path: Path, admission: Admission) -> BuiltCore:
    """Load, size, assemble and warm up (call on the thread that will run the core)."""
    keep_step_memory_in_heap()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    placement = resolve_placement(cfg)
    # Every kernel call on this thread (the engine's, from here on) follows cfg.kernels.
    kernels.set_thread_backend(placement.kernels)
    loaded = load_model(model_path, placement.load_format, cfg.max_model_len)
    place_model(loaded.model, placement)
    on_gpu = placement.device.type == "cuda"
    max_model_len = loaded.model.max_positions
    if loaded.gguf is not None:
        tokenizer = Tokenizer.from_gguf_metadata(loaded.gguf.metadata)
        chat_template = ChatTemplate.from_gguf_metadata(loaded.gguf.metadata, tokenizer)
    else:
        tokenizer = Tokenizer.from_hf_folder(model_path)
        chat_template = ChatTemplate.from_hf_folder(model_path)
    mc = loaded.config
    tp_group = None
    if cfg.tp_size > 1:
        from ..parallel.group import start_tensor_parallel

        pool, tp_group = start_tensor_parallel(cfg, model_path, loaded.model, pool_tokens(cfg, mc))
    else:
        pool = KVPool(pool_tokens(cfg, mc, placement.device), mc.num_layers, mc.num_kv_heads,
                      mc.head_dim, loaded.model.dtype, placement.device, padding_slot=on_gpu)
    table = SlotTable(2 * cfg.max_running + 1, max_model_len + 1, placement.device)
    scheduler = Scheduler(cfg, pool, make_cache(pool, radix=not cfg.disable_radix_cache), table)
    vocab = EngineVocabulary(tokenizer, mc.vocab_size)
    core = EngineCore(cfg, tokenizer, ModelRunner(loaded.model, pool, table, tp_group), scheduler,
                      max_model_len, vocab, admission)
    for name, path in cfg.lora_adapters:
        core.runner.load_lora(name, path)
    if cfg.compile and on_gpu:
        warm_up(core)
        core.runner.capture_decode_graphs(cfg.max_running)
    elif cfg.compile and placement.kernels == "torch":
        warm_up_compiled(core)
    else:
        warm_up(core)
    release_freed_heap()  # what loading and the warm-up freed (the heap keeps freed blocks)
    return BuiltCore(core, tokenizer, chat_template, mc, max_model_len,
                     KVPoolInfo(pool.num_slots, pool.nbytes), vocab, tp_group)


def warm_up(core: EngineCore) -> None:
    """One short request at start: the first forward pass pays the libraries' one-time
    set-up (1.6 s for the default model here), which belongs to loading, not to the first
    user request."""
    vocab = core.vocab_size
    # a prefill past auto's int4 limit (the dense matmuls), then decodes (the 4-bit ones);
    # never more than the pool holds, or the request could not be scheduled
    length = min(auto_int4_max_tokens() + 1, core.runner.pool.num_slots - 2)
    prompt = [1 + i % (vocab - 1) for i in range(length)]
    core.run_now([prompt], SamplingParams(temperature=0, max_new_tokens=2, ignore_eos=True))
    core.reset_stats()


def warm_up_compiled(core: EngineCore) -> None:
    """Compile now, not on the first user request, then forget the warm-up: prompts of one
    token and of several, alone and batched (which makes token count, batch size and context
    length dynamic), decoded."""
    core.runner.compile_steps()
    greedy = SamplingParams(temperature=0, max_new_tokens=4, ignore_eos=True)
    core.run_now([[1]], greedy)
    core.run_now([[1, 2, 3]], greedy)
    core.run_now([[1, 2, 3, 4], [5, 6], [7, 8, 9, 10, 11, 12]], greedy)
    # A batch past the auto format's int4 limit: the dense branch gets its graph too.
    core.run_now([[i, i + 1] for i in range(1, auto_int4_max_tokens() + 3)], greedy)
    core.reset_stats()
    core.runner.decode_warm = True


def pool_tokens(cfg: EngineConfig, mc: ModelConfig, device: torch.device | None = None) -> int:
    """KV pool size in tokens: `kv_tokens`, or `kv_memory_fraction` of available memory (the
    GPU's free memory, after the weights, for a CUDA pool), at least 1024 and at most
    `max_kv_tokens`. A CUDA pool takes all of it at start; a CPU pool takes address space
    only and grows into memory as slots are first written (cache/kv_pool.py), so there the
    size is a cap: on what the radix cache may keep before it evicts, and on the pool's
    resident memory."""
    if cfg.kv_tokens:
        return cfg.kv_tokens
    per_token = KVPool.bytes_per_token(mc.num_layers, mc.num_kv_heads, mc.head_dim,
                                       activation_dtype(cfg.weights))
    available = (device is not None and device_memory_available(device)) or _available_memory()
    return max(1024, min(cfg.max_kv_tokens, int(available * cfg.kv_memory_fraction) // per_token))


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30
