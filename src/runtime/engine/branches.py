"""Scoring k continuations of one prompt as one request: a trunk and its branches.

`select`, `/score` and echo+logprobs ask for the logprobs of k continuations of one prefix.
As one request, the trunk (the token ids all k share) is computed once, and in the step that
computes its last token each branch's own tokens extend it in the same forward pass: a branch
chunk attends to the trunk's slots plus its own (an explicit slot list, `Chunk.context`, not a
row of the slot table), so k branches cost their own tokens and no extra step. The trunk's last
position predicts every branch's first token, so a single-token choice is read from that one
distribution and computes nothing of its own.

Positions, for a branch b with full ids `trunk + b` and scores wanted from `start`:

    | trunk (computed once; its prompt logprobs cover [start, T)) | b[0] | b[1] ... b[-1] |
    0                                                      T-1    T      T+1 ...
    the trunk's last row (T-1) predicts b[0]; the branch chunk computes b[0..-2] at T..,
    each row predicting the next token of b; b[-1] is predicted, never computed.

Branch K/V lives for that step only: its own slots are freed when the trunk finishes (a
branch is at most a few tokens; the next `gen` after a `select` extends the cached trunk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..outputs import RequestOutput, TokenLogprob
from .scoring import ContinuationScore, common_prefix_len

if TYPE_CHECKING:
    from .model_runner import StepLogits
    from .request import Request, Sequence
    from .sampler import Sampler
    from .scheduler import Chunk


@dataclass(slots=True)
class BranchPlan:
    """k continuations as one request: `trunk` computed once, `branches[i]` = full_i[T:]."""

    trunk: list[int]
    branches: list[list[int]]
    starts: list[int]  # per continuation: its first scored position in its full ids

    @property
    def logprob_start(self) -> int:
        """Where the trunk's prompt logprobs start (T when every score starts past it)."""
        return min(min(self.starts), len(self.trunk))


def plan_branches(continuations: list[tuple[list[int], int]]) -> BranchPlan | None:
    """The plan for (full ids, first scored position) pairs, or None when they share no
    token to branch from (then each is its own request)."""
    fulls = [full for full, _ in continuations]
    trunk_len = len(fulls[0])
    for full in fulls[1:]:
        trunk_len = min(trunk_len, common_prefix_len(fulls[0], full))
    if trunk_len == 0:
        return None
    return BranchPlan(fulls[0][:trunk_len], [full[trunk_len:] for full in fulls],
                      [start for _, start in continuations])


def branch_scores(output: RequestOutput, plan: BranchPlan) -> list[ContinuationScore]:
    """Each continuation's score from the trunk's prompt logprobs and its branch's."""
    trunk = len(plan.trunk)
    prompt = output.prompt_logprobs or []
    scores = []
    for branch, start, own in zip(plan.branches, plan.starts, output.branch_logprobs or []):
        values = [prompt[i].logprob for i in range(start, trunk)]
        values += [lp.logprob for lp in own[max(0, start - trunk):]]
        full = plan.trunk + branch
        scores.append(ContinuationScore(full[start:], values, len(full), output.num_cached_tokens))
    return scores


def branch_chunk_len(branch: list[int]) -> int:
    """Tokens a branch computes: all but its last (which is only predicted)."""
    return max(0, len(branch) - 1)


def record_branch_logprobs(req: Request, trunk: Sequence, out: StepLogits, chunks: list[Chunk],
                           sampler: Sampler) -> None:
    """Fill `req.branch_logprobs`: each branch's first token from the trunk's last row, the
    rest from its own chunk's rows."""
    top = req.params.top_logprobs
    last = torch.log_softmax(out.logits[out.sample_row[id(trunk)]], dim=-1)
    own_rows = {c.seq.index: out.prompt_rows.get(id(c.seq)) for c in chunks if c.seq.request is req}
    result: list[list[TokenLogprob]] = []
    for i, branch in enumerate(req.branches):
        lps = [sampler.token_logprob(last, branch[0], top)] if branch else []
        rows = own_rows.get(i)
        if rows is not None:
            first, count, _ = rows
            lps += sampler.prompt_logprobs(out.logits[first:first + count], branch[1:], top)
        result.append(lps)
    req.branch_logprobs = result
