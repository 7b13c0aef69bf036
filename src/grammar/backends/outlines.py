"""outlines-core as a grammar backend: regexes, choices and JSON schemas (through its own
schema-to-regex translation); no structural tags or context-free grammars.

Known completeness bug (0.2.14, documented in `grammar/outlines_backend.py` and tested in
tests/runtime/test_grammar_backends.py): its index forbids some valid continuations, e.g.
after `mail` it refuses `.` in `[a-z]+(\\.[a-z]+)?`. Outputs stay valid; some valid outputs
can never be produced. The index is built eagerly at compile time.

A second difference, found by the same tests: its schema translation writes `\\d` for the
digits of `format: date`, which its Rust regex reads as any Unicode digit, so `"١٢٣٤-..."` (Arabic-Indic digits) passes where tines, like JSON Schema's RFC 3339
dates, allows only ASCII digits.
"""

from __future__ import annotations

import numpy as np

from ..errors import GrammarError
from ..outlines_backend import outlines_vocabulary
from ..vocabulary import TokenVocabulary
from .base import ForeignMatcher, choices_regex


class OutlinesGrammar:
    def __init__(self, spec, vocab: TokenVocabulary, ovocab):
        from outlines_core import Index

        self.spec, self.vocab = spec, vocab
        try:
            self.index = Index(_regex_of(spec), ovocab)
        except (ValueError, RuntimeError) as e:
            raise GrammarError(f"outlines-core cannot compile this {spec.kind}: {e}") from None

    def matcher(self) -> OutlinesMatcher:
        return OutlinesMatcher(self)


class OutlinesMatcher(ForeignMatcher):
    def __init__(self, grammar: OutlinesGrammar):
        from outlines_core import Guide

        super().__init__(grammar.vocab)
        self.grammar = grammar
        self.guide = Guide(grammar.index, max_rollback=1 << 16)

    def _mask_into(self, out: np.ndarray) -> None:
        self.guide.write_mask_into(out.ctypes.data, out.size, 4)

    def _advance(self, token_id: int) -> bool:
        if token_id not in self.guide.get_tokens():
            return False
        self.guide.advance(token_id)
        return True

    def _rollback(self, num_tokens: int) -> None:
        self.guide.rollback_state(num_tokens)

    def _accepting(self) -> bool:
        return self.guide.is_finished()

    def _fresh(self) -> OutlinesMatcher:
        return OutlinesMatcher(self.grammar)


def _regex_of(spec) -> str:
    from outlines_core.json_schema import build_regex_from_schema

    if spec.kind == "regex":
        return spec.value
    if spec.kind == "choices":
        return choices_regex(spec.value)
    if spec.kind == "json_schema":
        ws = spec.json.whitespace
        try:
            return build_regex_from_schema(spec.value, whitespace_pattern=ws if ws is not None else "")
        except (ValueError, RuntimeError, TypeError) as e:
            raise GrammarError(f"outlines-core cannot translate this schema: {e}") from None
    raise GrammarError(f"the outlines grammar backend does not support {spec.kind!r} constraints "
                       "(regex, choices and json_schema only)")


def make_vocabulary(vocab: TokenVocabulary):
    return outlines_vocabulary(vocab)
