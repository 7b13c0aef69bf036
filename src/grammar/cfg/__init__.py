"""tines.grammar.cfg: context-free grammars (Lark and GBNF syntax) behind the same token-mask
protocol as regex and JSON constraints.

    grammar = compile_cfg(lark_text, vocab)                 # or syntax="gbnf" / "ebnf"
    matcher = grammar.matcher()                             # a GrammarMatcher
    matcher.fill_bitmask(buf, row); matcher.accept_token(t); matcher.is_terminated()

Pipeline: text → IR (`lark_syntax.py`, `gbnf_syntax.py`, `ir.py`) → checks and left-recursion
rewrite (`analysis.py`) → one expression with rule references (`build.py`, `pool.py`) →
the shared lazy automaton, closing index and matcher, with masks from a vocabulary-trie walk
shared across stack depths (`trie.py`, `index.py`). Example grammars: `examples.py`.
"""

from .compiled import SYNTAXES, CfgGrammar, compile_cfg, parse_grammar
from .ir import CfgError, Grammar

__all__ = ["SYNTAXES", "CfgError", "CfgGrammar", "Grammar", "compile_cfg", "parse_grammar"]
