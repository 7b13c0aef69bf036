"""Helpers the workloads share: reading answers off program states, picking a choice from
logprobs the way `tines.select` does, and checking JSON against a schema."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import tines

GREEDY = {"temperature": 0.0}  # every system decodes greedily, so answers are comparable


def answers(states: Sequence[tines.ProgramState],
            extract: Callable[[tines.ProgramState], Any]) -> list[Any]:
    """One answer per state; None where the program failed (it then fails `check`)."""
    out = []
    for state in states:
        try:
            out.append(None if state.error() is not None else extract(state))
        except Exception:  # noqa: BLE001 (a missing variable is an invalid output)
            out.append(None)
    return out


def pick(logprobs: Sequence[Sequence[float]]) -> int:
    """The choice with the highest mean token logprob, ties to the earliest: the rule of
    `tines.token_length_normalized`, the default of `select`."""
    means = [sum(row) / len(row) if row else float("-inf") for row in logprobs]
    return max(range(len(means)), key=means.__getitem__)


def parse_json(text: str | None) -> Any:
    """The parsed value, or None when `text` is not JSON."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def text_validates(text: str, schema: dict) -> bool:
    """`text` is one JSON value, valid for `schema` (what a constrained answer must be)."""
    import jsonschema

    try:
        jsonschema.validate(json.loads(text), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def validates(value: Any, schema: dict) -> bool:
    """`value` (already parsed) is valid for `schema`."""
    import jsonschema

    if value is None:
        return False
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True
