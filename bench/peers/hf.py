"""`HFPeer`: Hugging Face transformers on the same GGUF, one call at a time.

This is the "frontend over HF" baseline: every `gen` is one `model.generate` call on the whole
prompt so far, every `select` one forward pass (lm-eval-harness style: one forward of the
context when every choice is a single token, else one padded batch of context + choice
rows). Nothing is cached between calls, so every prompt token is computed: `computed_tokens`
equals the tokens fed to the model. JSON is constrained by Outlines where it is installed,
otherwise generated freely and checked afterwards (`json_mode` says which).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tines.runtime.engine.scoring import common_prefix_len

from bench.peers.tally import Tally

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def fastest_dtype() -> str:
    """transformers' fastest dtype on this CPU: bfloat16 where the CPU multiplies bf16 in
    hardware (AVX512-BF16, AMX), else float32 (emulated bf16 matmuls run ~80x slower than
    fp32 on an AVX2-only CPU)."""
    from tines.runtime.models import onednn

    return "bfloat16" if onednn.available() else "float32"


class HFPeer:
    """transformers `AutoModelForCausalLM` in `dtype` (default: `fastest_dtype()`)."""

    name = "transformers"

    def __init__(self, gguf: Path, dtype: str | None = None) -> None:
        import torch
        import transformers

        transformers.utils.logging.disable_progress_bar()  # keep the bench's output a table
        self.torch = torch
        self.tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=getattr(torch, dtype or fastest_dtype())).eval()
        self.eos_id = self.tok.eos_token_id
        self.tally = Tally()
        self._outlines, self.json_mode = _outlines_model(self.model, self.tok)
        self._json_generators: dict[str, Any] = {}

    def reset_tally(self) -> Tally:
        """Start counting afresh; returns the counts so far."""
        done, self.tally = self.tally, Tally()
        return done

    # ---- prompts -------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def chat_text(self, messages: list[dict[str, str]]) -> str:
        """The prompt for the next assistant turn, through the model's chat template."""
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    # ---- requests ------------------------------------------------------------------------

    def generate(self, text: str, max_new_tokens: int, stop: list[str] | None = None) -> str:
        """Greedy completion of `text`, cut before the first stop string (as tines does)."""
        torch = self.torch
        ids = torch.tensor([self.encode(text)])
        kwargs: dict[str, Any] = {}
        if stop:
            kwargs = {"stop_strings": stop, "tokenizer": self.tok}
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                do_sample=False, temperature=None, top_p=None, top_k=None,
                pad_token_id=self.eos_id, eos_token_id=self.eos_id, **kwargs)
        new = out[0, ids.shape[1]:].tolist()
        self._count(ids.shape[1], len(new))
        if new and new[-1] == self.eos_id:
            new = new[:-1]
        return _cut(self.tok.decode(new, skip_special_tokens=True), stop)

    def generate_json(self, text: str, schema: dict, max_new_tokens: int,
                      stop: list[str] | None = None) -> str:
        """A JSON completion: held to `schema` by Outlines when installed, else free up to
        `stop` (the caller's check then says whether it happens to validate)."""
        if self._outlines is None:
            return self.generate(text, max_new_tokens, stop)
        import outlines

        key = json.dumps(schema, sort_keys=True)
        if key not in self._json_generators:  # compiled once per schema, as tines caches it
            self._json_generators[key] = outlines.Generator(self._outlines,
                                                            outlines.json_schema(schema))
        n_prompt = len(self.encode(text))
        with self.torch.inference_mode():
            out = self._json_generators[key](text, max_new_tokens=max_new_tokens, do_sample=False)
        self._count(n_prompt, len(self.encode(out)))
        return out

    def score(self, prefix: str, choices: list[str]) -> list[list[float]]:
        """Token logprobs of each choice after `prefix` (tokenized together, as tines does)."""
        torch = self.torch
        prefix_ids = self.encode(prefix)
        rows = [self.encode(prefix + c) for c in choices]
        starts = [common_prefix_len(prefix_ids, r) for r in rows]
        with torch.inference_mode():
            if all(s == len(prefix_ids) and len(r) == s + 1 for r, s in zip(rows, starts)):
                logits = self.model(torch.tensor([prefix_ids])).logits[0, -1].float()
                lps = torch.log_softmax(logits, -1)
                self._count(len(prefix_ids), 0)
                return [[float(lps[r[-1]])] for r in rows]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), self.eos_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):  # right padding: positions stay 0..len-1
                ids[i, :len(r)] = torch.tensor(r)
                mask[i, :len(r)] = 1
            lps = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
        self._count(sum(len(r) for r in rows), 0)
        return [[float(lps[i, t - 1, r[t]]) for t in range(s, len(r))]
                for i, (r, s) in enumerate(zip(rows, starts))]

    def _count(self, prompt: int, output: int) -> None:
        self.tally.prompt_tokens += prompt
        self.tally.computed_tokens += prompt
        self.tally.output_tokens += output


def _cut(text: str, stop: list[str] | None) -> str:
    for s in stop or ():
        i = text.find(s)
        if i >= 0:
            text = text[:i]
    return text


def _outlines_model(model: Any, tok: Any) -> tuple[Any, str]:
    """(Outlines model or None, how JSON is produced)."""
    try:
        import outlines
    except ImportError:
        return None, "free generation + post-hoc check (Outlines not installed)"
    from importlib.metadata import version
    padding_side = tok.padding_side
    wrapped = outlines.from_transformers(model, tok)
    tok.padding_side = padding_side  # Outlines sets "left"; our own batches pad right
    return wrapped, f"Outlines {version('outlines')}"
