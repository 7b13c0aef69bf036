"""The one definition of sampling parameters, shared by the frontend, engine and server.

Torch-free on purpose: the frontend (`tines`) imports this module and must not pull in torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

CONSTRAINTS = ("regex", "json_schema", "choices", "structural_tag")


@dataclass(slots=True)
class SamplingParams:
    """How to decode one request.

    At most one constraint (`regex`, `json_schema`, `choices`, `structural_tag`) may be set.
    `json_schema` is a dict or a JSON string (the frontend turns a pydantic class into its
    schema dict). `structural_tag` holds tagged JSON segments inside free text, the shape of
    tool calls:

        {"triggers": ["<tool_call>"],
         "structures": [{"begin": "<tool_call>{\"name\": \"f\", \"arguments\": ",
                         "schema": {...}, "end": "}</tool_call>"}],
         "mode": "auto"}

    In "auto" mode decoding is free until a trigger appears; from there the text must be one
    of the structures (begin, a JSON value valid for its schema, end), then it is free again.
    In "required" mode the output is one or more structures and nothing else.
    `temperature == 0` means greedy. `stop` strings are matched across token boundaries and
    excluded from the output text.
    """

    max_new_tokens: int = 128
    min_new_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1  # -1: all tokens
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    seed: int | None = None
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    prompt_logprobs: bool = False
    skip_special_tokens: bool = True
    regex: str | None = None
    json_schema: dict | str | None = None
    choices: list[str] | None = None
    structural_tag: dict | None = None
    # Whitespace allowed between JSON tokens: None is compact JSON; otherwise a regex such as
    # r"[ \n]{0,2}" that the grammar places where JSON allows whitespace.
    json_whitespace: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field that is out of range."""
        _check(isinstance(self.max_new_tokens, int) and self.max_new_tokens > 0,
               "max_new_tokens", f"must be a positive integer, got {self.max_new_tokens!r}")
        _check(0 <= self.min_new_tokens <= self.max_new_tokens, "min_new_tokens",
               f"must be in [0, max_new_tokens], got {self.min_new_tokens!r}")
        _check(self.temperature >= 0, "temperature", f"must be >= 0, got {self.temperature!r}")
        _check(0 < self.top_p <= 1, "top_p", f"must be in (0, 1], got {self.top_p!r}")
        _check(self.top_k == -1 or self.top_k >= 1, "top_k",
               f"must be -1 (off) or >= 1, got {self.top_k!r}")
        _check(0 <= self.min_p <= 1, "min_p", f"must be in [0, 1], got {self.min_p!r}")
        _check(self.repetition_penalty > 0, "repetition_penalty",
               f"must be > 0, got {self.repetition_penalty!r}")
        _check(-2 <= self.frequency_penalty <= 2, "frequency_penalty",
               f"must be in [-2, 2], got {self.frequency_penalty!r}")
        _check(-2 <= self.presence_penalty <= 2, "presence_penalty",
               f"must be in [-2, 2], got {self.presence_penalty!r}")
        _check(isinstance(self.n, int) and self.n >= 1, "n", f"must be >= 1, got {self.n!r}")
        _check(0 <= self.top_logprobs <= 20, "top_logprobs",
               f"must be in [0, 20], got {self.top_logprobs!r}")
        _check(all(isinstance(s, str) and s for s in self.stop), "stop",
               "must be a list of non-empty strings")
        _check(all(isinstance(t, int) and t >= 0 for t in self.stop_token_ids), "stop_token_ids",
               "must be a list of non-negative integers")
        constraints = [name for name in CONSTRAINTS if getattr(self, name) is not None]
        _check(len(constraints) <= 1, constraints[-1] if constraints else "regex",
               f"only one constraint may be set, got {constraints}")
        if self.choices is not None:
            _check(len(self.choices) > 0 and all(isinstance(c, str) for c in self.choices),
                   "choices", "must be a non-empty list of strings")
        if self.structural_tag is not None:
            _check_structural_tag(self.structural_tag)
        if isinstance(self.json_schema, str):
            try:
                json.loads(self.json_schema)
            except json.JSONDecodeError as e:
                raise ValueError(f"json_schema: not valid JSON ({e})") from None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def constraint(self) -> tuple[str, Any] | None:
        """(one of CONSTRAINTS, value), or None when decoding is free."""
        for name in CONSTRAINTS:
            value = getattr(self, name)
            if value is not None:
                return name, value
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingParams:
        """Build from a JSON-like dict; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sampling parameter(s): {', '.join(unknown)}")
        return cls(**data)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{name}: {message}")


def _check_structural_tag(tag: Any) -> None:
    _check(isinstance(tag, dict), "structural_tag", "must be an object")
    triggers, structures = tag.get("triggers"), tag.get("structures")
    _check(isinstance(triggers, list) and triggers and all(isinstance(t, str) and t for t in triggers),
           "structural_tag.triggers", "must be a non-empty list of non-empty strings")
    _check(isinstance(structures, list) and bool(structures), "structural_tag.structures",
           "must be a non-empty list")
    for i, st in enumerate(structures):
        ok = isinstance(st, dict) and isinstance(st.get("begin"), str) and \
            isinstance(st.get("end"), str) and isinstance(st.get("schema"), (dict, bool))
        _check(ok, f"structural_tag.structures[{i}]", "needs string begin/end and a schema object")
        _check(any(st["begin"].startswith(t) for t in triggers), f"structural_tag.structures[{i}].begin",
               "must start with one of the triggers")
    _check(tag.get("mode", "auto") in ("auto", "required"), "structural_tag.mode",
           "must be 'auto' or 'required'")
