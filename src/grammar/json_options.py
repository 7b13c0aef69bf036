"""`JsonOptions`: how a JSON schema is written out (whitespace, closing of objects,
recursion and nesting bounds, formats) and how much compiling it may cost."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JsonOptions:
    whitespace: str | None = None  # regex placed wherever JSON allows whitespace
    strict: bool = False  # close objects that do not set additionalProperties
    max_recursion: int = 3  # times one $ref target may be entered on a path
    any_depth: int = 8  # array/object nesting of unconstrained values
    separators: tuple[str, str] | None = None  # exact (item, key) separators, e.g. (", ", ": ")
    assert_formats: bool = True  # False: `format` is an annotation (the 2020-12 default)
    refuse_unknown_formats: bool = False  # True: a format we cannot enforce raises
    max_subschemas: int = 4000  # subschema compilations (unrolled $refs) before refusing
    # True: integers are written without a fraction and a number in const/enum only as
    # json.dumps writes it (what a generator should write: the engine sets it, as xgrammar
    # and llguidance do). False: every spelling JSON Schema counts as that value (1, 1.0,
    # 1.00), to check instances written by others.
    canonical_numbers: bool = False

    def __post_init__(self) -> None:
        if self.max_recursion < 1 or self.any_depth < 0:
            raise ValueError("max_recursion must be >= 1 and any_depth >= 0")
        if self.separators is not None and self.whitespace is not None:
            raise ValueError("set either whitespace or separators, not both")
