"""Errors raised while compiling a constraint. Both are `ValueError`s, so a server can turn
them into HTTP 400 without knowing about grammars."""

from __future__ import annotations


class GrammarError(ValueError):
    """The constraint is malformed (a regex that does not parse, a schema that is not a JSON
    object, a grammar that admits no string this vocabulary can spell)."""


class UnsupportedSchemaError(GrammarError):
    """The schema uses a keyword (or a form of one) that the compiler cannot enforce exactly.

    Raised instead of compiling a looser grammar. `keyword` names the JSON Schema keyword,
    `pointer` is the JSON pointer of the schema object that holds it ("" for the root).
    """

    def __init__(self, keyword: str, pointer: str, detail: str = ""):
        self.keyword = keyword
        self.pointer = pointer
        self.detail = detail
        where = pointer or "#"
        msg = f"unsupported JSON Schema keyword {keyword!r} at {where}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class EmptyLanguageError(GrammarError):
    """The constraint admits no output at all (e.g. the schema `false`, or bounds that
    cannot be met by any string this vocabulary can spell)."""
