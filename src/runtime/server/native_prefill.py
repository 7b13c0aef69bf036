"""Prefill-only native endpoints: `POST /score` (what `select` ranks by) and `POST /warm`.

`/score` {"text" | "input_ids", "choices", "unconditional"} answers each choice's token ids,
texts and logprobs given the prefix (one engine request: the prefix is computed once and
every choice extends it in the same step, engine/branches.py), their sums and means, the best choice by mean logprob, and with
`unconditional` the same token ids scored after only the start-of-document token. `/warm` {"text" | "input_ids"} computes a
prompt into the radix cache (a fork's trunk, a batch's shared prefix) and answers how much of
it was cached already.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ..engine.scoring import unconditional_requests
from .errors import APIError, engine_errors
from .guard import GuardedRoute
from .state import ServerState, require_api_key, state_of

router = APIRouter(route_class=GuardedRoute, dependencies=[Depends(require_api_key)])
log = logging.getLogger("tines.server")


class _Prefix(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    input_ids: list[int] | None = None
    model: str | None = None  # this server's model (404 otherwise); a model set routes on it

    def prompt(self, st: ServerState) -> str | list[int]:
        """The prompt, after checking that the body names this server's model (if any)."""
        if self.model is not None and st.check_model(self.model) is not None:
            raise APIError(400, "model: scoring and warming run on the base model, not a LoRA "
                           "adapter", "model")
        if (self.text is None) == (self.input_ids is None):
            raise APIError(400, "text: give exactly one of `text` and `input_ids`", "text")
        return self.text if self.text is not None else list(self.input_ids)


class ScoreRequest(_Prefix):
    choices: list[str] = Field(min_length=1)
    unconditional: bool = False  # also score each choice without the prefix


class WarmRequest(_Prefix):
    pass


@router.post("/score")
async def score(body: ScoreRequest, request: Request) -> dict[str, Any]:
    t0 = time.perf_counter()
    st = state_of(request)
    st.limits.check_batch(len(body.choices), 1, "choices")
    prefix = body.prompt(st)
    with engine_errors("choices"):
        scores = await st.engine.ascore(prefix, body.choices)
        plain = await st.engine.ascore(*unconditional_requests(st.engine.tokenizer, scores)) \
            if body.unconditional else None
    tok = st.engine.tokenizer

    def listing(items: list[Any]) -> list[dict[str, Any]]:
        return [{"choice": ch, "token_ids": s.token_ids, "tokens": [tok.decode([t]) for t in s.token_ids],
                 "logprobs": s.logprobs, "sum_logprob": s.sum_logprob, "mean_logprob": s.mean_logprob}
                for ch, s in zip(body.choices, items)]

    best = max(range(len(scores)), key=lambda i: scores[i].mean_logprob)
    log.info("score choices=%d in=%d cached=%d time=%.3fs", len(scores), scores[0].num_prompt_tokens,
             scores[0].num_cached_tokens, time.perf_counter() - t0)
    return {"choices": listing(scores), "best": best, "best_choice": body.choices[best],
            "unconditional": listing(plain) if plain is not None else None,
            "meta_info": {"prompt_tokens": scores[0].num_prompt_tokens,
                          "cached_tokens": min(s.num_cached_tokens for s in scores)}}


@router.post("/warm")
async def warm(body: WarmRequest, request: Request) -> dict[str, Any]:
    t0 = time.perf_counter()
    st = state_of(request)
    field = "text" if body.text is not None else "input_ids"
    ids = await asyncio.to_thread(st.dispatcher.encode, body.prompt(st), field)
    with engine_errors(field):
        cached = await st.engine.awarm(ids)
    log.info("warm in=%d cached=%d time=%.3fs", len(ids), cached, time.perf_counter() - t0)
    return {"prompt_tokens": len(ids), "cached_tokens": cached}
