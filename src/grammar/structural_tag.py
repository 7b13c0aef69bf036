"""Structural tags: tagged JSON segments inside free text (the shape of tool calls).

    {"triggers": ["<tool_call>"],
     "structures": [{"begin": "<tool_call>{\\"name\\": \\"f\\", \\"arguments\\": ",
                     "schema": {...}, "end": "}</tool_call>"}],
     "mode": "auto"}

- "auto" (default): free text that contains no trigger; where a trigger starts, the text
  must be one of the structures (`begin`, a JSON value valid for `schema`, `end`), after
  which free text resumes. Every `begin` must start with a trigger.
  Grammar: (F S)* F, with F = valid UTF-8 text containing no trigger (an AND with the
  complement of "contains a trigger"), S = the alternation of the structures.
- "required": one or more structures and nothing else: S+.
The JSON inside follows the spec's `JsonOptions` (compact by default).

A structure's body is a JSON value (`"schema"`), or text in a grammar:
`"grammar": {"syntax": "lark" | "gbnf" | "ebnf" | "regex", "definition": "..."}`, written
raw or, with `"json_string": true`, as the contents of a JSON string (how a custom tool's
input sits inside a call's `{"input": "..."}`). A context-free body needs a `CfgPool`
(`needs_cfg`; `compiler.compile_spec` picks it).
"""

from __future__ import annotations

from typing import Any

from . import charset as cs
from .errors import GrammarError
from .expr import ExprPool
from .json_options import JsonOptions
from .json_schema import SchemaCompiler
from .json_strings import json_chars
from .regex import char_expr, regex_expr

GRAMMAR_SYNTAXES = ("lark", "gbnf", "ebnf", "regex")


def needs_cfg(tag: Any) -> bool:
    """Whether a structure of this tag has a context-free body (Lark or GBNF)."""
    structures = tag.get("structures") if isinstance(tag, dict) else None
    return isinstance(structures, list) and any(
        isinstance(s, dict) and isinstance(s.get("grammar"), dict)
        and s["grammar"].get("syntax") != "regex" for s in structures)


def structural_tag_expr(pool: ExprPool, tag, options: JsonOptions = JsonOptions()) -> int:
    if not isinstance(tag, dict):
        raise GrammarError("structural_tag must be an object")
    mode = tag.get("mode", "auto")
    if mode not in ("auto", "required"):
        raise GrammarError(f"structural_tag mode must be 'auto' or 'required', got {mode!r}")
    structures = tag.get("structures")
    triggers = tag.get("triggers", [])
    if not isinstance(structures, list) or not structures:
        raise GrammarError("structural_tag needs a non-empty 'structures' list")
    if not isinstance(triggers, list) or not all(isinstance(t, str) and t for t in triggers):
        raise GrammarError("structural_tag 'triggers' must be a list of non-empty strings")
    parts = []
    for i, s in enumerate(structures):
        if not isinstance(s, dict) or not isinstance(s.get("begin"), str) \
                or not isinstance(s.get("end"), str) or ("schema" in s) == ("grammar" in s):
            raise GrammarError(f"structural_tag structure {i} needs 'begin', 'end' and one "
                               "of 'schema' or 'grammar'")
        if mode == "auto" and not any(s["begin"].startswith(t) for t in triggers):
            raise GrammarError(f"structural_tag structure {i}: begin {s['begin']!r} does not "
                               "start with a trigger")
        if "schema" in s:
            body = SchemaCompiler(pool, s["schema"], options).compile()
        else:
            body = _grammar_body(pool, s["grammar"], bool(s.get("json_string")), i)
        parts.append(pool.cat_all([pool.literal(s["begin"].encode()), body,
                                   pool.literal(s["end"].encode())]))
    structure = pool.alt(parts)
    if mode == "required":
        return pool.rep(structure, 1, None)
    text = pool.rep(char_expr(pool, cs.ALL), 0, None)
    has_trigger = pool.cat_all([pool.anything, pool.literal_set(t.encode() for t in triggers),
                                pool.anything])
    free = pool.and_([text, pool.not_(has_trigger)])
    return pool.cat(pool.rep(pool.cat(free, structure), 0, None), free)


def _grammar_body(pool: ExprPool, grammar: Any, json_string: bool, i: int) -> int:
    where = f"structural_tag structure {i}"
    if not isinstance(grammar, dict) or grammar.get("syntax") not in GRAMMAR_SYNTAXES \
            or not isinstance(grammar.get("definition"), str) or not grammar["definition"]:
        raise GrammarError(f"{where}: 'grammar' needs 'syntax' (one of "
                           f"{', '.join(GRAMMAR_SYNTAXES)}) and a non-empty 'definition'")
    syntax, text = grammar["syntax"], grammar["definition"]
    if syntax == "regex":
        chars = (lambda r: json_chars(pool, r)) if json_string else None
        return regex_expr(pool, text, chars=chars)
    from .cfg import CfgError, parse_grammar
    from .cfg.build import build
    from .cfg.pool import CfgPool

    if not isinstance(pool, CfgPool):
        raise GrammarError(f"{where}: a {syntax} grammar body needs a context-free compile "
                           "(compiler.compile_spec chooses one)")
    try:
        return build(parse_grammar(text, syntax), pool, json_string)
    except CfgError as e:
        raise GrammarError(f"{where}: {e}") from None
