"""From SGLang-style keyword arguments to the one `SamplingParams`, and back from decoded text
to typed values.

The names a user may pass are the fields of `SamplingParams` plus SGLang's spellings in
`ALIASES`; both `gen(...)` and `run(...)` go through `normalize`, so the list of sampling
parameters is written down once (in `SamplingParams`).
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any, Callable

from tines.runtime import sampling_params
from tines.runtime.sampling_params import SamplingParams

ALIASES = {
    "max_tokens": "max_new_tokens",
    "min_tokens": "min_new_tokens",
    "return_logprob": "logprobs",
    "top_logprobs_num": "top_logprobs",
}
FIELDS = frozenset(f.name for f in fields(SamplingParams))
# Where the DSL's defaults differ from SamplingParams' (those the HTTP APIs use): a program's
# text ends wherever its author typed, so gen heals the boundary token (as guidance does).
GEN_DEFAULTS = {"token_healing": True}
CONSTRAINTS = frozenset(sampling_params.CONSTRAINTS)  # regex, json_schema, choices, ...

# SGLang-compatible spellings; `bool` reads Python's True/False, as SGLang's REGEX_BOOL does.
REGEX_INT = r"[-+]?[0-9]+"
REGEX_FLOAT = r"[-+]?[0-9]*\.?[0-9]+"
REGEX_BOOL = r"(True|False)"
REGEX_STR = r'"[^"\\\x00-\x1f]*"'  # a JSON string without escapes: json.loads reads it back

_DTYPES: dict[str, tuple[type, str]] = {
    "int": (int, REGEX_INT),
    "float": (float, REGEX_FLOAT),
    "bool": (bool, REGEX_BOOL),
    "str": (str, REGEX_STR),
}


def is_sampling_name(name: str) -> bool:
    return name in FIELDS or name in ALIASES


def normalize(kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """Map SGLang spellings onto SamplingParams fields and drop None values.

    Raises TypeError naming an unknown parameter and ValueError when a field is given twice
    (e.g. max_tokens and max_new_tokens)."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        name = ALIASES.get(key, key)
        if name not in FIELDS:
            raise TypeError(f"{where}: unknown sampling parameter {key!r}")
        if name in out:
            raise ValueError(f"{where}: {name!r} given twice (as {key!r} and another spelling)")
        out[name] = value
    return out


def resolve(defaults: dict[str, Any], overrides: dict[str, Any]) -> SamplingParams:
    """The request's parameters: SamplingParams' defaults <- GEN_DEFAULTS <- run defaults <-
    gen overrides.
    Validation errors name the field (SamplingParams raises ValueError)."""
    merged = {**GEN_DEFAULTS, **defaults, **overrides}
    if isinstance(merged.get("stop"), tuple):
        merged["stop"] = list(merged["stop"])
    return SamplingParams(**merged)


def dtype_spec(dtype: type | str) -> tuple[type, str]:
    """(python type, regex) for gen's `dtype=` (a type or its name)."""
    key = dtype if isinstance(dtype, str) else getattr(dtype, "__name__", "")
    if key not in _DTYPES or (not isinstance(dtype, str) and dtype is not _DTYPES[key][0]):
        raise TypeError(f"gen: dtype must be one of int, float, bool, str (or their names), "
                        f"got {dtype!r}")
    return _DTYPES[key]


def is_model_class(schema: object) -> bool:
    """A pydantic model class (duck-typed, so importing tines does not import pydantic)."""
    return isinstance(schema, type) and callable(getattr(schema, "model_json_schema", None))


def schema_spec(schema: object) -> tuple[dict | str, type | None]:
    """(schema for SamplingParams, pydantic class or None) for gen's `json_schema=`."""
    if is_model_class(schema):
        return schema.model_json_schema(), schema  # type: ignore[union-attr]
    if isinstance(schema, (dict, str)):
        return schema, None
    raise TypeError(f"gen: json_schema must be a dict, a JSON string or a pydantic model class, "
                    f"got {type(schema).__name__}")


def converter(name: str | None, dtype: type | None, model: type | None) -> Callable[[str], Any]:
    """Text -> the variable's value; a text that does not parse raises ValueError naming the
    variable and showing the text."""
    if dtype is None and model is None:
        return lambda text: text

    def convert(text: str) -> Any:
        try:
            if model is not None:
                return model.model_validate_json(text)  # type: ignore[attr-defined]
            if dtype is bool:
                if text.strip() not in ("True", "False", "true", "false"):
                    raise ValueError("not a boolean")
                return text.strip() in ("True", "true")
            if dtype is str:
                return json.loads(text, strict=False)
            return dtype(text.strip())  # type: ignore[misc]
        except ValueError as e:  # pydantic's ValidationError and JSONDecodeError included
            what = model.__name__ if model is not None else dtype.__name__  # type: ignore
            raise ValueError(f"gen {name!r}: the model's text {text!r} is not a valid "
                             f"{what} ({e})") from e

    return convert
