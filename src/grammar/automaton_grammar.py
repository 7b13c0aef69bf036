"""What every grammar compiled to a byte automaton offers, whatever its front end: regexes,
choices, JSON schemas and structural tags (`compiler.CompiledGrammar`) or context-free
grammars (`cfg.compiled.CfgGrammar`). A subclass builds `vocab`, `pool`, `automaton`, `index`
and `closing`, then calls `_ready(t0)`; per-sequence state lives in `GrammarMatcher`.
"""

from __future__ import annotations

import time
from typing import Any

from .bitmask import ids_to_bitmask
from .matcher import GrammarMatcher


class AutomatonGrammar:
    vocab: Any
    pool: Any
    automaton: Any
    index: Any
    closing: Any

    def _ready(self, t0: float) -> None:
        """Finish compiling: the EOS-only mask and the start state's mask (so the first
        step never waits on it), and the compile time since `t0`."""
        self.eos_only_mask = ids_to_bitmask(sorted(self.vocab.eos_token_ids), self.vocab.vocab_size)
        self.index.mask(self.automaton.start)
        self.compile_seconds = time.perf_counter() - t0

    def matcher(self) -> GrammarMatcher:
        return GrammarMatcher(self)

    def accepts_bytes(self, data: bytes) -> bool:
        """Whether the grammar accepts this exact output (byte level)."""
        return self.automaton.accepts(data)

    def accepts_text(self, text: str) -> bool:
        return self.accepts_bytes(text.encode("utf-8"))

    def accepts_tokens(self, token_ids) -> bool:
        """Whether these tokens are allowed one by one and end in an accepting state."""
        m = self.matcher()
        return m.accept_tokens(token_ids) and m.is_accepting()

    def stats(self) -> dict:
        return {"states": self.automaton.num_states, "masks": self.index.num_computed,
                "expr_nodes": len(self.pool), "compile_ms": 1e3 * self.compile_seconds}
