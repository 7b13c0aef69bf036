"""`LocalBackend`: programs run on the in-process engine (the default backend).

The engine is made on first use, not at construction: `LocalBackend()` is free, and the
first request (or role lookup) pulls the default model if needed and loads it. This is the
only file of the language that imports the runtime's engine (and so torch), always inside
functions, so `import tines` stays torch-free.

What each request becomes:
  generate / stream -> `Engine.generate` / `Engine.stream`: the text is tokenized once and
    its longest cached prefix reused; `n > 1` shares one prefill.
  score -> `Engine.score(text, choices)`: the text is computed once (or found cached), each
    choice extends it. Unconditional logprobs (for `unconditional_likelihood_normalized`)
    score the *same token ids* the choice got after the text, after only the model's
    start-of-document token (BOS; EOS for a model without one), as SGLang does by feeding
    the choice's ids as a new prompt: the rows line up token for token with the
    conditional ones, which the method subtracts.
  warm -> `Engine.warm`: the text is prefilled into the radix cache and kept there.
  concat_and_append -> `Engine.warm(trunk + "".join(branches))`: see below.

KV sharing of `join("concate_and_append")`: the joined text is prefilled once, now, so the
next request on it finds it whole in the radix cache. The trunk and the first branch are
reused from the cache by prefix match (that branch was computed after the trunk at the same
positions). Later branches were computed at positions right after the trunk too, but in the
joined text they sit further on; their K carries rotary position, so splicing their KV in
would be wrong. They are recomputed once, in that one prefill, never once per later request.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tines.backend import ScoreResult
from tines.runtime.outputs import RequestOutput, StreamDelta, TokenLogprob
from tines.runtime.sampling_params import SamplingParams

if TYPE_CHECKING:
    from tines.runtime.engine.engine import Engine
    from tines.runtime.engine.scoring import ContinuationScore


class LocalBackend:
    """The Backend protocol over an in-process `Engine`.

    `LocalBackend(engine)` uses that engine (shared, never shut down by this backend);
    `LocalBackend(model=..., **engine_kwargs)` makes its own on first use, from a model path
    or known name (None: the default model) and any `EngineConfig` field (`kv_tokens=...`).
    Thread-safe: the engine is made once under a lock; the engine itself takes requests from
    any thread or event loop.
    """

    def __init__(self, engine: Engine | None = None, model: str | None = None,
                 **engine_kwargs: Any) -> None:
        if engine is not None and (model is not None or engine_kwargs):
            raise ValueError("LocalBackend: pass either an engine or model/engine settings, "
                             "not both")
        self._engine = engine
        self._owns_engine = engine is None
        self._model = model
        self._engine_kwargs = engine_kwargs
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The engine, made (and the model pulled and loaded) on first access."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    from tines.runtime.engine.engine import Engine
                    self._engine = Engine(self._model, **self._engine_kwargs)
        return self._engine

    def shutdown(self) -> None:
        """Stop the engine if this backend made it (a shared engine is left running)."""
        if self._owns_engine and self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    def __repr__(self) -> str:
        state = "not loaded" if self._engine is None else str(self._engine.model_path)
        return f"LocalBackend({state})"

    # ---- chat ----------------------------------------------------------------------------

    @property
    def default_system_prompt(self) -> str | None:
        return self.engine.chat_template.default_system_prompt

    def role_markers(self, role: str) -> tuple[str, str]:
        return self.engine.chat_template.role_markers(role)

    # ---- requests ------------------------------------------------------------------------

    def generate(self, text: str, params: SamplingParams) -> RequestOutput:
        return self.engine.generate(self._prompt(text), params)

    async def agenerate(self, text: str, params: SamplingParams) -> RequestOutput:
        return await self.engine.agenerate(self._prompt(text), params)

    def stream(self, text: str, params: SamplingParams) -> Iterator[StreamDelta]:
        return self.engine.stream(self._prompt(text), params)

    def astream(self, text: str, params: SamplingParams) -> AsyncIterator[StreamDelta]:
        return self.engine.astream(self._prompt(text), params)

    def score(self, text: str, choices: list[str], unconditional: bool = False) -> ScoreResult:
        scores = self.engine.score(text, choices)
        uncond = self.engine.score_unconditional(scores) if unconditional else None
        return self._result(scores, uncond)

    async def ascore(self, text: str, choices: list[str],
                     unconditional: bool = False) -> ScoreResult:
        scores = await self.engine.ascore(text, choices)
        uncond = await self.engine.ascore_unconditional(scores) if unconditional else None
        return self._result(scores, uncond)

    def warm(self, text: str) -> None:
        if text:
            self.engine.warm(text)

    async def awarm(self, text: str) -> None:
        if text:
            await self.engine.awarm(text)

    def concat_and_append(self, trunk: str, branches: list[str]) -> None:
        self.warm(trunk + "".join(branches))

    async def aconcat_and_append(self, trunk: str, branches: list[str]) -> None:
        await self.awarm(trunk + "".join(branches))

    # ---- internals -----------------------------------------------------------------------

    def _prompt(self, text: str) -> str | list[int]:
        """An empty text becomes the start-of-document token: the model needs one input."""
        return text or [self.engine.start_token_id]

    def _tokens(self, ids: Sequence[int], logprobs: Sequence[float]) -> list[TokenLogprob]:
        decode = self.engine.tokenizer.decode
        return [TokenLogprob(i, decode([i]), float(lp)) for i, lp in zip(ids, logprobs)]

    def _result(self, scores: Sequence[ContinuationScore],
                uncond: Sequence[ContinuationScore] | None) -> ScoreResult:
        first = scores[0]
        rows = None if uncond is None else [self._tokens(u.token_ids, u.logprobs) for u in uncond]
        return ScoreResult([self._tokens(s.token_ids, s.logprobs) for s in scores], rows,
                           num_prompt_tokens=first.num_prompt_tokens - len(first.token_ids),
                           num_cached_tokens=first.num_cached_tokens)
