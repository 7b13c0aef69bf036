"""RequestIntake: what a submit does on the caller's thread before anything is queued: encode
the prompt, check it and the sampling parameters against the model, start the grammar's
compilation. Reads only facts fixed at build, so any thread may call it; bad input raises
ValueError naming the field, at once.
"""

from __future__ import annotations

import operator
import threading
from concurrent.futures import Future

from ..sampling_params import SamplingParams
from ..tokenizer.tokenizer import Tokenizer
from .scoring import Prompt


class RequestIntake:
    def __init__(self, tokenizer: Tokenizer, vocab: EngineVocabulary, max_model_len: int,
                 num_kv_slots: int, grammar_backend: str = "tines"):
        self.tokenizer, self.vocab, self.vocab_size = tokenizer, vocab, vocab.vocab_size
        self.max_model_len, self.num_kv_slots = max_model_len, num_kv_slots
        self.grammar_backend = grammar_backend
        self._grammars = None  # a GrammarBridge, made on first use
        self._grammars_lock = threading.Lock()
        self._last = threading.local()  # per thread: (text, ids) of the last text encoded

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt. A program's prompts grow by appending text: when a text
        extends the one this thread encoded last, only its new end is encoded
        (`Tokenizer.encode_continued`), not the whole prompt again."""
        if isinstance(prompt, str):
            try:
                prompt.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("prompt: contains a lone surrogate (not encodable as UTF-8)") from None
            last = getattr(self._last, "encoded", None)
            if last is not None and prompt.startswith(last[0]) and last[0]:
                ids = self.tokenizer.encode_continued(last[1], last[0], prompt[len(last[0]):])
            else:
                ids = self.tokenizer.encode(prompt, add_special_tokens=True)
            self._last.encoded = (prompt, ids)
            return list(ids)
        try:
            ids = [operator.index(t) for t in prompt]
        except TypeError:
            raise ValueError("input_ids: must be a list of integer token ids") from None
        bad = [t for t in ids if not 0 <= t < self.vocab_size]
        if bad:
            raise ValueError(f"input_ids: token id {bad[0]} is outside the vocabulary "
                             f"[0, {self.vocab_size})")
        return ids

    def validate(self, ids: list[int], params: SamplingParams) -> None:
        params.validate()  # again: fields may have been changed since construction
        params.check_for_model(self.vocab_size)
        if not ids:
            raise ValueError("prompt: empty (at least one token is needed)")
        if len(ids) >= self.max_model_len:
            raise ValueError(f"prompt: {len(ids)} tokens does not fit the context of "
                             f"{self.max_model_len} tokens")
        if len(ids) + params.max_new_tokens > self.num_kv_slots:
            raise ValueError(f"prompt ({len(ids)} tokens) + max_new_tokens "
                             f"({params.max_new_tokens}) can never fit the KV pool of "
                             f"{self.num_kv_slots} tokens")

    def validate_pool_fit(self, num_tokens: int) -> None:
        """A scoring request's trunk and branches must fit the KV pool together."""
        if num_tokens > self.num_kv_slots:
            raise ValueError(f"continuations: the prefix and every continuation's own tokens "
                             f"({num_tokens} tokens) can never fit the KV pool of "
                             f"{self.num_kv_slots} tokens")

    def compile_grammar(self, params: SamplingParams) -> Future | None:
        """The constraint's compilation (None when decoding is free); a spec found invalid
        within the bridge's short wait raises ValueError here."""
        if params.constraint is None:
            return None
        from .grammar_bridge import GrammarBridge  # grammar support loads on first use

        with self._grammars_lock:  # one bridge, whichever thread asks first
            if self._grammars is None:
                self._grammars = GrammarBridge(self.tokenizer, self.vocab.get(),
                                               self.grammar_backend)
        try:
            return self._grammars.compile_async(params)
        except RecursionError:
            raise ValueError(f"{params.constraint[0]}: nested too deeply to compile") from None
