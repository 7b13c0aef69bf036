"""A context-free grammar compiled for one vocabulary, behind the engine's matcher protocol.

`CfgGrammar` is an `AutomatonGrammar`, as `CompiledGrammar` is: it has the attributes
`GrammarMatcher`, `jump_forward` and the closing index read (`vocab`, `pool`, `automaton`,
`index`, `closing`, `eos_only_mask`), so a CFG runs through the same per-sequence
`GrammarMatcher`:
`fill_bitmask`, `accept_token`, `is_terminated`, `copy`, `forced_bytes`,
`min_tokens_to_accept`, `closing_bytes`, `fill_budget_bitmask`.

The automaton's states are parser stacks (see `pool.py`); masks come from walking the
vocabulary trie through them (`trie.py`), shared between stacks with the same top entries
and cached per state (`index.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..automaton import Automaton
from ..automaton_grammar import AutomatonGrammar
from ..closing import ClosingIndex
from ..lengths import known_min_lens
from ..token_index import TokenIndex
from .index import CfgTokenIndex
from ..vocabulary import TokenVocabulary
from .build import build
from .gbnf_syntax import parse_gbnf
from .ir import CfgError, Grammar
from .lark_syntax import parse_lark
from .pool import CfgPool

SYNTAXES = ("lark", "gbnf")


def parse_grammar(text: str, syntax: str = "lark", start: str | None = None) -> Grammar:
    """Grammar text → IR. `syntax`: "lark" (start rule `start`) or "gbnf" (alias "ebnf";
    start rule `root`)."""
    if not isinstance(text, str):
        raise CfgError("a grammar must be a string")
    if syntax == "ebnf":
        syntax = "gbnf"
    if syntax == "lark":
        return parse_lark(text, start or "start")
    if syntax == "gbnf":
        return parse_gbnf(text, start or "root")
    raise CfgError(f"unknown grammar syntax {syntax!r} (lark | gbnf)")


class CfgClosingIndex(ClosingIndex):
    """The closing index with each rule reference's exact shortest length seeded, so the
    A* heuristic stays exact through `REF` nodes (the base class knows only regex kinds)."""

    def __init__(self, automaton: Automaton, index: TokenIndex, pool: CfgPool):
        super().__init__(automaton, index)
        known_min_lens(pool).update(pool.rule_min_lens())


class CfgGrammar(AutomatonGrammar):
    """A grammar compiled for one vocabulary; shared by every sequence that uses it.
    `build_root(pool)` builds the whole expression in a fresh `CfgPool`: one grammar's text
    (`compile_cfg`), or a structural tag with grammar bodies (`structural_tag.py`)."""

    def __init__(self, vocab: TokenVocabulary, build_root: Callable[[CfgPool], int]):
        t0 = time.perf_counter()
        self.vocab = vocab
        self.pool = CfgPool(vocab.single_byte_mask)
        self.automaton = Automaton(self.pool, build_root(self.pool))
        self.index = CfgTokenIndex(self.automaton, vocab)
        self.closing = CfgClosingIndex(self.automaton, self.index, self.pool)
        self._ready(t0)

    def stats(self) -> dict:
        return {**super().stats(), "rules": len(self.pool.rule_names)}


def compile_cfg(text: str, vocab: TokenVocabulary, syntax: str = "lark",
                start: str | None = None) -> CfgGrammar:
    """Compile grammar text for `vocab`. Raises `CfgError` (a `GrammarError`, a
    `ValueError`) naming the rule at fault."""
    ir = parse_grammar(text, syntax, start)
    return CfgGrammar(vocab, lambda pool: build(ir, pool))
