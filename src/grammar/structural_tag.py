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
"""

from __future__ import annotations

from . import charset as cs
from .errors import GrammarError
from .expr import ExprPool
from .json_schema import JsonOptions, SchemaCompiler
from .regex import char_expr


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
                or not isinstance(s.get("end"), str) or "schema" not in s:
            raise GrammarError(f"structural_tag structure {i} needs 'begin', 'schema', 'end'")
        if mode == "auto" and not any(s["begin"].startswith(t) for t in triggers):
            raise GrammarError(f"structural_tag structure {i}: begin {s['begin']!r} does not "
                               "start with a trigger")
        body = SchemaCompiler(pool, s["schema"], options).compile()
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
