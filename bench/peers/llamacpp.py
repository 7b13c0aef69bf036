"""`LlamaPeer`: llama-cpp-python on the same GGUF file, its prompt cache on.

llama.cpp runs one sequence at a time. Between calls it keeps the last prompt's KV and reuses
the longest common prefix (`Llama.generate`), and with `set_cache(LlamaRAMCache())` it also
restores saved states whose tokens prefix a new prompt. Generation goes through
`create_completion` / `create_chat_completion` (JSON through its JSON-schema grammar);
`select` is scored in its low-level idiom: `eval` the context once (reusing what the context
already holds), read the logits (`logits_all=True` when a choice has several tokens).
Computed prompt tokens come from llama.cpp's own counter (`llama_perf_context().n_p_eval`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from tines.runtime.engine.scoring import common_prefix_len

from bench.peers.tally import Tally

N_CTX = 4096
N_THREADS = 2  # the machine's cores, as torch uses for tines and transformers

_PROBE = """
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=128, n_threads=1, verbose=False)
llm.eval(llm.tokenize(b"A probe of batched matrix products in llama.cpp.", add_bos=False))
"""


def extra_buffers_work(gguf: Path) -> bool:
    """Whether llama.cpp's extra weight buffers (AMX / repacked matmuls) run here. On some
    VMs its AMX matmul faults (a general protection fault in ggml_backend_amx_mul_mat) as
    soon as a batch has more than one token; probed in a child process so a fault costs
    nothing but the answer."""
    run = subprocess.run([sys.executable, "-c", _PROBE, str(gguf)], capture_output=True,
                         timeout=300)
    return run.returncode == 0


@contextmanager
def _without_extra_buffers() -> Iterator[None]:
    """Load models with `use_extra_bufts = False` (llama.cpp's `--no-repack`): the plain
    AVX-512 CPU matmuls. llama-cpp-python has no argument for it, so the default params are
    wrapped while a model loads."""
    import llama_cpp.llama_cpp as lib

    default = lib.llama_model_default_params

    def params() -> Any:
        p = default()
        p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params
    try:
        yield
    finally:
        lib.llama_model_default_params = default


class LlamaPeer:
    """One `Llama` for one workload (loading takes under a second: the file is mmapped)."""

    name = "llama.cpp"

    def __init__(self, gguf: Path, *, logits_all: bool = False, prompt_cache: bool = True,
                 extra_buffers: bool = True) -> None:
        import llama_cpp
        from llama_cpp import Llama, LlamaRAMCache

        self.lib = llama_cpp
        with nullcontext() if extra_buffers else _without_extra_buffers():
            self.llm = Llama(model_path=str(gguf), n_ctx=N_CTX, n_threads=N_THREADS,
                             n_threads_batch=N_THREADS, logits_all=logits_all, verbose=False)
        if prompt_cache:
            self.llm.set_cache(LlamaRAMCache())
        self.logits_all = logits_all
        self.tally = Tally()
        self._p_eval0 = self._p_eval()

    def warm_up(self) -> None:
        """One small evaluation (first-call costs are a load cost), then a clean slate."""
        self.llm.eval(self.encode("Hello there, a warm-up."))
        self.llm.reset()
        self.tally, self._p_eval0 = Tally(), self._p_eval()

    def close(self) -> None:
        self.llm.close()

    def finish_tally(self) -> Tally:
        """The counts so far, computed tokens read from llama.cpp's counter."""
        self.tally.computed_tokens = self._p_eval() - self._p_eval0
        return self.tally

    def _p_eval(self) -> int:
        return int(self.lib.llama_perf_context(self.llm.ctx).n_p_eval)

    # ---- requests ------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def complete(self, prompt: str, max_tokens: int, stop: list[str] | None = None,
                 grammar: Any = None) -> str:
        """Greedy `create_completion` (stop strings excluded from the text)."""
        r = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0,
                                       stop=stop or [], grammar=grammar)
        self._usage(r)
        return r["choices"][0]["text"]

    def chat(self, messages: list[dict[str, str]], max_tokens: int,
             response_format: dict | None = None) -> str:
        """Greedy `create_chat_completion` through the GGUF's chat template."""
        r = self.llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=0.0,
                                            response_format=response_format)
        self._usage(r)
        return r["choices"][0]["message"]["content"] or ""

    def score(self, prefix: str, choices: list[str]) -> list[list[float]]:
        """Token logprobs of each choice after `prefix` (tokenized together, as tines does)."""
        prefix_ids = self.encode(prefix)
        rows = [self.encode(prefix + c) for c in choices]
        starts = [common_prefix_len(prefix_ids, r) for r in rows]
        if all(s == len(prefix_ids) and len(r) == s + 1 for r, s in zip(rows, starts)):
            self._eval(prefix_ids)  # one context, single-token choices: its last logits
            n_vocab = self.llm.n_vocab()
            last = np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.llm.ctx, -1),
                                         shape=(n_vocab,))
            lps = _log_softmax(last[None, :])[0]
            return [[float(lps[r[-1]])] for r in rows]
        if not self.logits_all:
            raise ValueError("multi-token choices need LlamaPeer(logits_all=True)")
        out = []
        for r, s in zip(rows, starts):
            self._eval(r)  # the context stays in the KV; only the choice's tokens are run
            lps = _log_softmax(self.llm.scores[s - 1:len(r) - 1])
            out.append([float(lps[i, r[s + i]]) for i in range(len(r) - s)])
        return out

    def _eval(self, ids: list[int]) -> None:
        """Evaluate `ids`, reusing the KV of the longest prefix the context already holds
        (as `Llama.generate` does); the last token always runs, so its logits are fresh."""
        llm = self.llm
        keep = common_prefix_len(llm.input_ids[:llm.n_tokens].tolist(), ids)
        llm.n_tokens = min(keep, len(ids) - 1)
        llm.eval(ids[llm.n_tokens:])
        self.tally.prompt_tokens += len(ids)

    def _usage(self, response: dict) -> None:
        self.tally.prompt_tokens += response["usage"]["prompt_tokens"]
        self.tally.output_tokens += response["usage"]["completion_tokens"]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
