"""`choices=[...]` and the `dtype` helpers (int, float, bool) as small grammars."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import GrammarError
from .expr import ExprPool

INT_REGEX = r"-?(?:0|[1-9][0-9]*)"
FLOAT_REGEX = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
BOOL_REGEX = r"(?:True|False)"

_DTYPES = {int: INT_REGEX, float: FLOAT_REGEX, bool: BOOL_REGEX,
           "int": INT_REGEX, "float": FLOAT_REGEX, "bool": BOOL_REGEX}


def dtype_regex(dtype) -> str:
    """The regex for `gen(dtype=...)`: text Python's `int()`, `float()` parse, or
    `True`/`False` for bool."""
    try:
        return _DTYPES[dtype]
    except (KeyError, TypeError):
        raise ValueError(f"unsupported dtype {dtype!r}; use int, float or bool") from None


def choices_expr(pool: ExprPool, choices: Sequence[str]) -> int:
    """Exactly one of the strings (a trie, so shared prefixes stay forced)."""
    if not choices or not all(isinstance(c, str) for c in choices):
        raise GrammarError("choices must be a non-empty list of strings")
    return pool.literal_set(c.encode("utf-8") for c in choices)
