"""How `select` picks a choice from per-token logprobs.

Every method works on plain numbers: `logprobs[c][t]` is the logprob of choice `c`'s `t`-th
token given the text so far, and `unconditional[c][t]` the same token's logprob given no
text (only for methods that ask for it). The backend computes these once per select (the
prefix is prefilled once, each choice extends it), so every backend supports every method.
Ties go to the earliest choice.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Protocol


class ChoicesDecision(NamedTuple):
    index: int  # the chosen choice
    scores: list[float]  # one per choice, higher is better
    detail: dict[str, Any]  # method-specific numbers, copied into the select's meta


class ChoicesMethod(Protocol):
    """A scoring rule for `select`. Stateless; `requires_unconditional` asks the backend for
    the choices' logprobs without the prompt as well."""

    name: str
    requires_unconditional: bool

    def __call__(self, logprobs: list[list[float]],
                 unconditional: list[list[float]] | None = None) -> ChoicesDecision: ...


ChoicesSamplingMethod = ChoicesMethod  # SGLang's name


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else -math.inf


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


class TokenLengthNormalized:
    """Score = mean logprob over the choice's tokens (the default)."""

    name = "token_length_normalized"
    requires_unconditional = False

    def __call__(self, logprobs: list[list[float]],
                 unconditional: list[list[float]] | None = None) -> ChoicesDecision:
        scores = [_mean(row) for row in logprobs]
        return ChoicesDecision(_argmax(scores), scores, {})


class GreedyTokenSelection:
    """Walk the tokens left to right, keeping the choices whose token has the highest logprob
    at each position, until one is left. A shorter choice is padded with its own mean
    logprob so it can be compared past its end. Scores are the mean logprobs (for the meta);
    the elimination decides."""

    name = "greedy_token_selection"
    requires_unconditional = False

    def __call__(self, logprobs: list[list[float]],
                 unconditional: list[list[float]] | None = None) -> ChoicesDecision:
        width = max(len(row) for row in logprobs)
        matrix = [row + [_mean(row)] * (width - len(row)) for row in logprobs]
        alive = list(range(len(matrix)))
        for t in range(width):
            best = max(matrix[i][t] for i in alive)
            alive = [i for i in alive if matrix[i][t] == best]
            if len(alive) == 1:
                break
        scores = [_mean(row) for row in logprobs]
        return ChoicesDecision(alive[0], scores, {"greedy_logprob_matrix": matrix})


class UnconditionalLikelihoodNormalized:
    """Score = mean over tokens of (logprob given the text - logprob given no text): how much
    the text raised each token's likelihood. Favors choices that fit this prompt over
    choices that are merely common."""

    name = "unconditional_likelihood_normalized"
    requires_unconditional = True

    def __call__(self, logprobs: list[list[float]],
                 unconditional: list[list[float]] | None = None) -> ChoicesDecision:
        if unconditional is None:
            raise ValueError(f"{self.name} needs unconditional logprobs from the backend")
        scores = []
        for c, (cond, uncond) in enumerate(zip(logprobs, unconditional, strict=True)):
            if len(cond) != len(uncond):
                raise ValueError(f"choice {c}: {len(cond)} conditional but {len(uncond)} "
                                 f"unconditional token logprobs")
            scores.append(_mean([a - b for a, b in zip(cond, uncond)]))
        return ChoicesDecision(_argmax(scores), scores, {})


token_length_normalized = TokenLengthNormalized()
greedy_token_selection = GreedyTokenSelection()
unconditional_likelihood_normalized = UnconditionalLikelihoodNormalized()
