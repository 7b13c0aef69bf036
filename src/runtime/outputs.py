"""What the engine returns. Torch-free, so the frontend and the server can import it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenLogprob:
    """One sampled (or prompt) token with its logprob and the top alternatives."""

    token_id: int
    token: str
    logprob: float
    top: list[tuple[int, str, float]] = field(default_factory=list)  # (id, text, logprob)


@dataclass(slots=True)
class Completion:
    """One of the `n` sequences decoded for a request."""

    index: int
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" | "length" | "abort"
    matched_stop: str | int | None = None  # the stop string or token id that ended it
    logprobs: list[TokenLogprob] | None = None


@dataclass(slots=True)
class RequestOutput:
    """The result of one request: its prompt accounting and `n` completions."""

    request_id: str
    prompt_token_ids: list[int]
    outputs: list[Completion]
    num_cached_tokens: int = 0  # prompt tokens found in the radix cache
    prompt_logprobs: list[TokenLogprob | None] | None = None  # None for the first token
    # A scoring request's branches (engine/branches.py): each one's token logprobs
    branch_logprobs: list[list[TokenLogprob]] | None = None

    @property
    def text(self) -> str:
        return self.outputs[0].text

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_completion_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.outputs)


@dataclass(slots=True)
class StreamDelta:
    """A piece of a streamed completion. `finish_reason` is set on the last delta of a
    sequence; `output` on the very last delta of the request."""

    request_id: str
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None
    output: RequestOutput | None = None
