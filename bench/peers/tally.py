"""`Tally`: the token counts a system reports for one workload."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Tally:
    """`prompt_tokens`: tokens of every prompt the system was handed (the logical work);
    `computed_tokens`: prompt tokens it actually ran through the model (the rest came from
    a cache); `output_tokens`: tokens it decoded."""

    prompt_tokens: int = 0
    computed_tokens: int = 0
    output_tokens: int = 0

    @property
    def hit_rate(self) -> float:
        """Share of prompt tokens not computed (found in a cache)."""
        if not self.prompt_tokens:
            return 0.0
        return max(0.0, 1.0 - self.computed_tokens / self.prompt_tokens)
