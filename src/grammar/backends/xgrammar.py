"""xgrammar as a grammar backend: regexes, choices, JSON schemas and GBNF-style EBNF (kind
"ebnf"; xgrammar's EBNF is llama.cpp's dialect with a `root` rule). No Lark."""

from __future__ import annotations

import numpy as np

from ..errors import GrammarError
from ..vocabulary import TokenVocabulary
from .base import ForeignMatcher, choices_regex


def make_compiler(vocab: TokenVocabulary):
    import xgrammar as xg

    # xgrammar treats an empty token as special (never allowed); any other text would be
    # allowed wherever its bytes fit, a special token inside a JSON string included.
    tokens = [b if b is not None else b"" for b in vocab.token_bytes]
    info = xg.TokenizerInfo(tokens, xg.VocabType.RAW, vocab_size=vocab.vocab_size,
                            stop_token_ids=sorted(vocab.eos_token_ids))
    return xg.GrammarCompiler(info, cache_enabled=False)


class XgrammarGrammar:
    def __init__(self, spec, vocab: TokenVocabulary, compiler):
        self.spec, self.vocab = spec, vocab
        try:
            self.compiled = _compile(compiler, spec)
        except GrammarError:
            raise
        except Exception as e:  # noqa: BLE001 - xgrammar raises RuntimeError and its own types
            raise GrammarError(f"xgrammar cannot compile this {spec.kind}: {e}") from None

    def matcher(self) -> XgrammarMatcher:
        return XgrammarMatcher(self)


def _compile(compiler, spec):
    if spec.kind == "regex":
        return compiler.compile_regex(spec.value)
    if spec.kind == "choices":
        return compiler.compile_regex(choices_regex(spec.value))
    if spec.kind == "json_schema":
        ws = spec.json.whitespace
        if ws is None:
            return compiler.compile_json_schema(spec.value, any_whitespace=False,
                                                separators=spec.json.separators or (",", ":"))
        return compiler.compile_json_schema(spec.value, any_whitespace=True)
    if spec.kind == "ebnf":
        return compiler.compile_grammar(spec.value)
    raise GrammarError(f"the xgrammar grammar backend does not support {spec.kind!r} "
                       "constraints (regex, choices, json_schema, ebnf)")


class XgrammarMatcher(ForeignMatcher):
    def __init__(self, grammar: XgrammarGrammar):
        import xgrammar as xg

        super().__init__(grammar.vocab)
        self.grammar = grammar
        self.m = xg.GrammarMatcher(grammar.compiled)  # rollback is unlimited

    def _mask_into(self, out: np.ndarray) -> None:
        self.m.fill_next_token_bitmask(out[None, :], 0)

    def _advance(self, token_id: int) -> bool:
        return self.m.accept_token(token_id)

    def _rollback(self, num_tokens: int) -> None:
        self.m.rollback(num_tokens)

    def _accepting(self) -> bool:
        return self.m.is_completed()

    def _fresh(self) -> XgrammarMatcher:
        return XgrammarMatcher(self.grammar)
