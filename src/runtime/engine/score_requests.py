"""The engine's scoring entry points: token logprobs of continuations of a prefix (what
`select` runs on), echo-only prompt logprobs, and the unconditional scores `select`'s
normalisation subtracts. Continuations that share leading tokens are one branched request
(branches.py); otherwise one prefill-only request each.

`ScoringEntryPoints` is `Engine`'s base class: its methods run on the caller's thread and use
the engine's intake, admission and inbox (`encode_prompt`, `submit_batch`, `_intake`,
`_admission`, `_send`, `_ids`, `_fatal`), as `submit` does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from ..outputs import TokenLogprob
from ..sampling_params import SamplingParams
from .branches import BranchPlan, branch_chunk_len, branch_scores, plan_branches
from .handle import RequestError, RequestHandle
from .request import Request
from .scoring import (ContinuationScore, Prompt, continuation_requests, score_of,
                      unconditional_requests)


class ScoringEntryPoints:
    def score(self, prefix: Prompt, continuations: Sequence[Prompt]) -> list[ContinuationScore]:
        """Each continuation's token logprobs given the prefix, as one request (branches.py):
        the tokens they share are computed once and each one's own tokens extend them in the
        same step."""
        reqs = self._continuations(prefix, continuations)
        plan = plan_branches(reqs)
        if plan is None:
            handles = self._submit_scoring(reqs)
            return [score_of(h.result(), start) for h, (_, start) in zip(handles, reqs)]
        return branch_scores(self._submit_branched(plan, reqs).result(), plan)

    async def ascore(self, prefix: Prompt, continuations: Sequence[Prompt]) -> list[ContinuationScore]:
        """`score` for asyncio callers: tokenizing and submitting run on a worker thread, so
        a long prompt never stalls the caller's event loop."""
        loop = asyncio.get_running_loop()
        reqs = await asyncio.to_thread(self._continuations, prefix, continuations)
        plan = plan_branches(reqs)
        if plan is None:
            handles = await asyncio.to_thread(self._submit_scoring, reqs, loop)
            outs = await asyncio.gather(*(h.aresult() for h in handles))
            return [score_of(o, start) for o, (_, start) in zip(outs, reqs)]
        handle = await asyncio.to_thread(self._submit_branched, plan, reqs, loop)
        return branch_scores(await handle.aresult(), plan)

    async def aprompt_logprobs(self, prompts: Sequence[list[int]], top_logprobs: int = 0
                               ) -> list[list[TokenLogprob | None]]:
        """Every prompt token's logprob (None for the first), each with its `top_logprobs`
        best alternatives: what echo + logprobs asks for. Prompts that share leading tokens
        (a context with several continuations) are one request: the shared tokens computed
        once, the rest as branches of one step (branches.py)."""
        loop = asyncio.get_running_loop()
        reqs = [(list(ids), 1) for ids in prompts]
        plan = plan_branches(reqs) if len(reqs) > 1 else None
        if plan is None:
            params = SamplingParams(max_new_tokens=1, top_logprobs=top_logprobs)
            handles = await asyncio.to_thread(self._submit_scoring, reqs, loop, params)
            outs = await asyncio.gather(*(h.aresult() for h in handles))
            return [list(o.prompt_logprobs or [None] * o.num_prompt_tokens) for o in outs]
        handle = await asyncio.to_thread(self._submit_branched, plan, reqs, loop, top_logprobs)
        out = await handle.aresult()
        trunk = list(out.prompt_logprobs or [None] * out.num_prompt_tokens)
        return [trunk + own for own in out.branch_logprobs]

    def score_unconditional(self, scores: Sequence[ContinuationScore]) -> list[ContinuationScore]:
        """Each scored continuation's own tokens after only the start-of-document token: rows
        that line up token for token with `scores` (what `select`'s unconditional method
        subtracts)."""
        return self.score(*unconditional_requests(self.tokenizer, scores))

    async def ascore_unconditional(self, scores: Sequence[ContinuationScore]) -> list[ContinuationScore]:
        return await self.ascore(*unconditional_requests(self.tokenizer, scores))

    def _continuations(self, prefix: Prompt, continuations: Sequence[Prompt]) -> list[tuple[list[int], int]]:
        prefix_ids = self.encode_prompt(prefix) if (prefix or not isinstance(prefix, str)) else []
        return continuation_requests(self.tokenizer, prefix, prefix_ids, continuations)

    def _submit_scoring(self, reqs: list[tuple[list[int], int]],
                        loop: asyncio.AbstractEventLoop | None = None,
                        params: SamplingParams | None = None) -> list[RequestHandle]:
        """Prefill-only requests (ids, first scored position), submitted together."""
        return self.submit_batch([ids for ids, _ in reqs], params or SamplingParams(max_new_tokens=1),
                                 prefill_only=True, logprob_starts=[s for _, s in reqs], loop=loop)

    def _submit_branched(self, plan: BranchPlan, reqs: list[tuple[list[int], int]],
                         loop: asyncio.AbstractEventLoop | None = None,
                         top_logprobs: int = 0) -> RequestHandle:
        """One prefill-only request: the plan's trunk, with its branches."""
        if self._fatal is not None:
            raise RequestError(f"engine stopped: {self._fatal}")
        params = SamplingParams(max_new_tokens=1, top_logprobs=top_logprobs)
        self._intake.validate(max((ids for ids, _ in reqs), key=len), params)
        self._intake.validate_pool_fit(len(plan.trunk) + sum(map(branch_chunk_len, plan.branches)))
        handle = RequestHandle(f"score-{next(self._ids)}-{uuid.uuid4().hex[:8]}", loop)
        req = Request(handle.request_id, list(plan.trunk), params, handle.push, prefill_only=True,
                      logprob_start=plan.logprob_start, branches=plan.branches)
        self._admission.enter(1)
        self._send([req])
        return handle
