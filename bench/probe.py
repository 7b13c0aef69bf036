"""Raw model speed of each system, measured in the same run as the workloads: prefill of a
512-token prompt and greedy decode of 64 tokens (32 with --quick; batch 1; tines also batch 8, since batching
is how it runs programs). These explain the workload table: a workload is prefill-bound,
decode-bound, or saved by the cache."""

from __future__ import annotations

import random
import time
from typing import Any

from bench.workloads.synth import paragraph

PREFILL_TOKENS = 512
DECODE_TOKENS = 64
BATCH = 8


def _text(tokens: int, encode: Any, seed: int = 7) -> str:
    """Synthetic text of at least `tokens` tokens under `encode`."""
    rng, text = random.Random(seed), ""
    while len(encode(text)) < tokens:
        text += paragraph(rng, 4) + "\n"
    return text


def probe_tines(engine: Any, decode_tokens: int = DECODE_TOKENS) -> dict[str, float]:
    from tines.runtime.sampling_params import SamplingParams

    encode = engine.tokenizer.encode
    ids = encode(_text(PREFILL_TOKENS, encode))[:PREFILL_TOKENS]
    engine.flush_cache()
    t0 = time.perf_counter()
    engine.generate(ids, SamplingParams(max_new_tokens=1, temperature=0))
    prefill = PREFILL_TOKENS / (time.perf_counter() - t0)
    decode = {}
    for batch in (1, BATCH):
        prompts = [encode(f"Story {i}: once upon a time") for i in range(batch)]
        params = SamplingParams(max_new_tokens=decode_tokens, temperature=0, ignore_eos=True)
        t0 = time.perf_counter()
        engine.generate(prompts, params)
        decode[batch] = batch * decode_tokens / (time.perf_counter() - t0)
    engine.flush_cache()
    return {"prefill_tok_s": prefill, "decode_tok_s": decode[1], f"decode_b{BATCH}_tok_s": decode[BATCH]}


def probe_llama(peer: Any, decode_tokens: int = DECODE_TOKENS) -> dict[str, float]:
    llm = peer.llm
    ids = peer.encode(_text(PREFILL_TOKENS, peer.encode))[:PREFILL_TOKENS]
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    prefill = PREFILL_TOKENS / (time.perf_counter() - t0)
    llm.reset()
    t0 = time.perf_counter()
    llm.create_completion("Story 0: once upon a time", max_tokens=decode_tokens, temperature=0.0,
                          logit_bias={llm.token_eos(): -1e9})  # no early stop
    decode = decode_tokens / (time.perf_counter() - t0)
    llm.reset()
    return {"prefill_tok_s": prefill, "decode_tok_s": decode}


def probe_hf(hf: Any, decode_tokens: int = DECODE_TOKENS) -> dict[str, float]:
    torch = hf.torch
    ids = torch.tensor([hf.encode(_text(PREFILL_TOKENS, hf.encode))[:PREFILL_TOKENS]])
    with torch.inference_mode():
        t0 = time.perf_counter()
        hf.model(ids)
        prefill = PREFILL_TOKENS / (time.perf_counter() - t0)
        short = torch.tensor([hf.encode("Story 0: once upon a time")])
        t0 = time.perf_counter()
        hf.model.generate(input_ids=short, attention_mask=torch.ones_like(short),
                          max_new_tokens=decode_tokens, min_new_tokens=decode_tokens,
                          do_sample=False, temperature=None, top_p=None, top_k=None,
                          pad_token_id=hf.eos_id)
        decode = decode_tokens / (time.perf_counter() - t0)
    return {"prefill_tok_s": prefill, "decode_tok_s": decode}
