"""tines.grammar: constraints (regex, JSON schema, pydantic, choices) as token-mask FSMs.

Imports neither `tines.runtime` nor `tines` (lang), and no torch: it sees a vocabulary,
not a model. How the engine uses it:

    vocab = TokenVocabulary.from_token_strings(tok.token_strings(), tok.kind,
                                               tok.special_token_ids, tok.eos_token_ids,
                                               vocab_size=model_vocab_size)
    compiler = GrammarCompiler(vocab)                       # one per vocabulary; LRU cache
    spec = GrammarSpec.from_sampling_params(params)          # or .regex / .json_schema / .choices
    future = compiler.compile_async(spec)                    # off the step loop; errors are
    grammar = future.result()                                #   GrammarError (a ValueError)
    matcher = grammar.matcher()                              # per sequence (copy() for n > 1)
    # each step, for the batch:
    matcher.fill_bitmask(bitmask, row)                       # int32 [B, ceil(V/32)]
    # or, with a token budget: fill_bitmask_within(bitmask, row, remaining), which holds
    # the sequence to outputs that still close in time (see matcher.py)
    tines.kernels.apply_token_bitmask(logits, bitmask)       # one op for the batch
    matcher.accept_token(token_id)
    if matcher.is_terminated(): ...                          # only the end can follow
    jf = jump_forward(matcher, output_ids, encode)           # optional: append forced text
    if jf: drop jf.num_retract tokens, append jf.append_ids; apply_jump_forward(matcher, jf)

Pipeline: constraint → byte-level expression (`expr.py`, built by `regex.py`,
`json_schema.py`, `choices.py`) → lazy DFA whose states are derivatives (`automaton.py`)
→ per-state token masks (`token_index.py`) → per-sequence `GrammarMatcher`; shortest
completions for budget-aware closing in `closing.py`.
"""

from .bitmask import (allocate_token_bitmask, apply_token_bitmask_numpy, bitmask_to_bool,
                      bool_to_bitmask, ids_to_bitmask)
from .choices import dtype_regex
from .compiler import CompiledGrammar, GrammarCompiler, GrammarSpec, allowed_token_ids
from .errors import EmptyLanguageError, GrammarError, UnsupportedSchemaError
from .json_options import JsonOptions
from .jump_forward import JumpForward, apply_jump_forward, jump_forward
from .matcher import GrammarMatcher
from .vocabulary import TokenVocabulary

__all__ = [
    "CompiledGrammar", "EmptyLanguageError", "GrammarCompiler", "GrammarError",
    "GrammarMatcher", "GrammarSpec", "JsonOptions", "JumpForward", "TokenVocabulary",
    "UnsupportedSchemaError", "allocate_token_bitmask", "allowed_token_ids",
    "apply_jump_forward", "apply_token_bitmask_numpy", "bitmask_to_bool", "bool_to_bitmask",
    "dtype_regex", "ids_to_bitmask", "jump_forward",
]
