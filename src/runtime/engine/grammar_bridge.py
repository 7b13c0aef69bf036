"""The engine's link to `tines.grammar`: one compiler per engine vocabulary, specs from
SamplingParams, and errors surfaced at submit time where they can be."""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from ...grammar import GrammarSpec, TokenVocabulary
from ...grammar.backends import make_compiler
from ..sampling_params import SamplingParams
from ..tokenizer.tokenizer import Tokenizer

# How long submit waits for a compilation before handing it to the engine loop: long enough
# that a bad regex or schema fails the submit call itself (a 400 at the server), short enough
# that a slow schema never holds the caller.
SUBMIT_WAIT_SECONDS = 0.05


class GrammarBridge:
    """`backend` picks the grammar engine (`grammar/backends/`: "tines", "outlines",
    "llguidance", "xgrammar"); every one compiles to matchers the engine drives alike."""

    def __init__(self, tokenizer: Tokenizer, vocab: TokenVocabulary, backend: str = "tines"):
        self.vocab = vocab
        self.backend = backend
        self.compiler = make_compiler(
            backend, self.vocab, lambda text: tokenizer.encode(text, add_special_tokens=False))

    def compile_async(self, params: SamplingParams) -> Future:
        """A Future of the CompiledGrammar. Raises ValueError (GrammarError,
        UnsupportedSchemaError) at once for a spec found invalid within the short wait."""
        spec = GrammarSpec.from_sampling_params(params)
        future = self.compiler.compile_async(spec)
        try:
            future.result(timeout=SUBMIT_WAIT_SECONDS)
        except FutureTimeout:
            pass  # still compiling: the engine loop waits for it without blocking others
        return future

    def close(self) -> None:
        self.compiler.close()
