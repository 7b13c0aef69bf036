"""What `s.get_meta_info(name)` returns: the accounting and logprobs behind a variable.

Both records also answer `meta["key"]` for SGLang-style reads (`meta["prompt_tokens"]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tines.runtime.outputs import RequestOutput, TokenLogprob


class _ByKey:
    __slots__ = ()
    KEYS: ClassVar[frozenset[str]] = frozenset()

    def __getitem__(self, key: str) -> Any:
        if key not in self.KEYS:
            raise KeyError(f"{type(self).__name__} has no {key!r}; keys: {sorted(self.KEYS)}")
        return getattr(self, key)

    def keys(self) -> list[str]:
        return sorted(self.KEYS)


@dataclass(frozen=True, slots=True)
class GenMeta(_ByKey):
    """Meta of a `gen`: the backend's RequestOutput plus its headline numbers.
    For n > 1, `finish_reason` and `logprobs` are completion 0's; `completions` has all."""

    output: RequestOutput

    KEYS: ClassVar[frozenset[str]] = frozenset({
        "prompt_tokens", "cached_tokens", "completion_tokens", "finish_reason",
        "finish_reasons", "matched_stop", "logprobs"})

    @property
    def prompt_tokens(self) -> int:
        return self.output.num_prompt_tokens

    @property
    def cached_tokens(self) -> int:
        return self.output.num_cached_tokens

    @property
    def completion_tokens(self) -> int:
        return self.output.num_completion_tokens

    @property
    def finish_reason(self) -> str:
        return self.output.outputs[0].finish_reason

    @property
    def finish_reasons(self) -> list[str]:
        return [c.finish_reason for c in self.output.outputs]

    @property
    def matched_stop(self) -> str | int | None:
        return self.output.outputs[0].matched_stop

    @property
    def logprobs(self) -> list[TokenLogprob] | None:
        return self.output.outputs[0].logprobs

    @property
    def completions(self) -> list:
        return list(self.output.outputs)


@dataclass(frozen=True, slots=True)
class SelectMeta(_ByKey):
    """Meta of a `select`: every choice's score under `method`, and the token logprobs the
    scores came from (`unconditional` only for methods that need it)."""

    method: str
    choices: tuple[str, ...]
    scores: list[float]
    index: int
    logprobs: list[list[TokenLogprob]]
    unconditional: list[list[TokenLogprob]] | None
    detail: dict[str, Any]
    prompt_tokens: int
    cached_tokens: int

    KEYS: ClassVar[frozenset[str]] = frozenset({
        "method", "choices", "scores", "index", "logprobs", "unconditional", "prompt_tokens",
        "cached_tokens", "normalized_prompt_logprobs"})

    @property
    def normalized_prompt_logprobs(self) -> list[float]:  # SGLang's name for the scores
        return self.scores

    @property
    def decision(self) -> str:
        return self.choices[self.index]
