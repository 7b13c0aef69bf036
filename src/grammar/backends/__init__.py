"""Grammar backends behind the one matcher protocol the engine drives (`base.Matcher`).

`tines` (the default) is this package's own compiler, with budget-aware closing and
jump-forward. `outlines` (outlines-core), `llguidance` and `xgrammar` are adapters to those
engines, each optional: `make_compiler` raises a clear ValueError naming the missing package.
What each accepts: tines everything; llguidance regex, choices, json_schema, grammar (Lark),
ebnf (GBNF); xgrammar regex, choices, json_schema, ebnf; outlines regex, choices, json_schema.
"""

from __future__ import annotations

from collections.abc import Callable

from ..vocabulary import TokenVocabulary

BACKENDS = ("tines", "outlines", "llguidance", "xgrammar")
_PACKAGES = {"outlines": "outlines_core", "llguidance": "llguidance", "xgrammar": "xgrammar"}


def check_backend(name: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"grammar_backend must be one of {BACKENDS}, got {name!r}")


def backend_available(name: str) -> bool:
    import importlib.util

    check_backend(name)
    return name == "tines" or importlib.util.find_spec(_PACKAGES[name]) is not None


def make_compiler(name: str, vocab: TokenVocabulary, encode: Callable[[str], list[int]]):
    """A compiler (`compile(spec)`, `compile_async(spec)`, `close()`) for `vocab` whose
    grammars' `matcher()`s follow `base.Matcher`. `encode` tokenizes text without special
    tokens (llguidance needs it)."""
    check_backend(name)
    if name == "tines":
        from ..compiler import GrammarCompiler

        return GrammarCompiler(vocab)
    if not backend_available(name):
        raise ValueError(f"grammar backend {name!r} needs the {_PACKAGES[name]!r} package, "
                         "which is not installed")
    from .compiler import ForeignCompiler

    if name == "outlines":
        from .outlines import OutlinesGrammar, make_vocabulary

        ovocab = make_vocabulary(vocab)
        return ForeignCompiler(lambda spec: OutlinesGrammar(spec, vocab, ovocab))
    if name == "llguidance":
        from .llguidance import LlguidanceGrammar, make_tokenizer

        tokenizer = make_tokenizer(vocab, encode)
        return ForeignCompiler(lambda spec: LlguidanceGrammar(spec, vocab, tokenizer))
    from .xgrammar import XgrammarGrammar
    from .xgrammar import make_compiler as xgrammar_compiler

    xc = xgrammar_compiler(vocab)
    return ForeignCompiler(lambda spec: XgrammarGrammar(spec, vocab, xc))
