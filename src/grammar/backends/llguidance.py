"""llguidance as a grammar backend: regexes, choices, JSON schemas, Lark grammars (kind
"grammar") and GBNF (kind "ebnf", through llguidance's own GBNF-to-Lark translation). Its
tokenizer is built from the vocabulary's token bytes and the engine tokenizer's `encode`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import GrammarError
from ..vocabulary import TokenVocabulary
from .base import ForeignMatcher, choices_regex


def make_tokenizer(vocab: TokenVocabulary, encode: Callable[[str], list[int]]):
    import llguidance

    class _Tok:  # the duck-typed tokenizer llguidance.TokenizerWrapper reads
        eos_token_id = min(vocab.eos_token_ids)
        bos_token_id = None
        tokens = [b if b is not None else b"<special>" for b in vocab.token_bytes]
        special_token_ids = [i for i, b in enumerate(vocab.token_bytes) if b is None]

        def __call__(self, text):
            return encode(text)

    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Tok()))


def grammar_text(spec) -> str:
    """The spec as llguidance's grammar (JSON text of its grammar format)."""
    from llguidance import LLMatcher, gbnf_to_lark

    if spec.kind == "regex":
        return LLMatcher.grammar_from_regex(spec.value)
    if spec.kind == "choices":
        return LLMatcher.grammar_from_regex(choices_regex(spec.value))
    if spec.kind == "json_schema":
        ws = spec.json.whitespace
        options = {"whitespace_flexible": ws is not None}
        if ws is None:
            options["item_separator"], options["key_separator"] = spec.json.separators or (",", ":")
        return LLMatcher.grammar_from_json_schema(spec.value, defaults=options)
    if spec.kind == "grammar":
        return LLMatcher.grammar_from_lark(spec.value)
    if spec.kind == "ebnf":
        try:
            return LLMatcher.grammar_from_lark(gbnf_to_lark(spec.value))
        except Exception as e:  # noqa: BLE001 - its translator raises plain exceptions
            raise GrammarError(f"llguidance cannot read this GBNF grammar: {e}") from None
    raise GrammarError(f"the llguidance grammar backend does not support {spec.kind!r} "
                       "constraints (regex, choices, json_schema, grammar, ebnf)")


class LlguidanceGrammar:
    def __init__(self, spec, vocab: TokenVocabulary, tokenizer):
        from llguidance import LLMatcher

        self.spec, self.vocab, self.tokenizer = spec, vocab, tokenizer
        self.grammar = grammar_text(spec)
        is_error, messages = LLMatcher.validate_grammar_with_warnings(self.grammar, tokenizer)
        if is_error:
            raise GrammarError(f"llguidance refuses this {spec.kind}: {messages[0]}")
        self.warnings = list(messages)

    def matcher(self) -> LlguidanceMatcher:
        return LlguidanceMatcher(self)


class LlguidanceMatcher(ForeignMatcher):
    def __init__(self, grammar: LlguidanceGrammar):
        from llguidance import LLMatcher

        super().__init__(grammar.vocab)
        self.grammar = grammar
        self.m = LLMatcher(grammar.tokenizer, grammar.grammar)
        if self.m.is_error():
            raise GrammarError(f"llguidance: {self.m.get_error()}")

    def _mask_into(self, out: np.ndarray) -> None:
        self.m.unsafe_compute_mask_ptr(out.ctypes.data, out.size * out.itemsize)

    def _advance(self, token_id: int) -> bool:
        if not self.m.validate_tokens([token_id]):
            return False
        return self.m.consume_token(token_id)

    def _rollback(self, num_tokens: int) -> None:
        self.m.rollback(num_tokens)

    def _accepting(self) -> bool:
        return self.m.is_accepting()

    def _fresh(self) -> LlguidanceMatcher:
        return LlguidanceMatcher(self.grammar)
