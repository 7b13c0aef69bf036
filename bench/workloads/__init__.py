"""The structured-generation workloads, each written once as a tines program and once in
each peer's own idiom.

Every module exposes:
  NAME, TITLE              its key and a one-line description
  make_inputs(n, seed)     n deterministic inputs (dicts of the program's arguments)
  run_tines(backend, xs)   the tines program over xs (run_batch), one answer per input
  run_transformers(hf, xs) the same work through `peers.hf.HFPeer`, one call at a time
  run_llama_cpp(llm, xs)   the same work through `peers.llamacpp.LlamaPeer`
  check(answer) -> bool    the answer is valid (a listed choice, schema-valid JSON, every
                           fork completed); None (a failed program) is never valid
  LLAMA_SETTINGS           keyword arguments for the workload's `LlamaPeer`
Token budgets are module constants, so every system gets the same ones. Answers are plain
JSON values, so greedy runs can be compared for equality.
"""

from __future__ import annotations

from types import ModuleType

from bench.workloads import (hellaswag, json_extraction, mmlu, multi_turn_chat, react_agent,
                       tree_of_thought)

WORKLOADS: dict[str, ModuleType] = {m.NAME: m for m in (
    mmlu, hellaswag, json_extraction, multi_turn_chat, tree_of_thought, react_agent)}
