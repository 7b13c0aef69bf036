"""The one interface between the language and whatever runs the model.

The interpreter only ever calls the methods of `Backend`; a program runs unchanged against
the in-process engine, a remote tines server, an OpenAI-compatible server, or `MockBackend`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import NamedTuple, Protocol, runtime_checkable

from tines.runtime.outputs import RequestOutput, StreamDelta, TokenLogprob
from tines.runtime.sampling_params import SamplingParams


class ScoreResult(NamedTuple):
    """What `Backend.score` returns for `text` and `choices`.

    `logprobs[c]` holds one TokenLogprob per token of `choices[c]` (tokenized as it follows
    `text`), each the logprob of that token given `text` and the choice's earlier tokens.
    `unconditional[c]` is the same tokens scored without `text` (only when asked for): after
    only the model's start-of-document token (BOS, or EOS for a model without one), so its
    first token is scored with no context but the start of a document.
    """

    logprobs: list[list[TokenLogprob]]
    unconditional: list[list[TokenLogprob]] | None = None
    num_prompt_tokens: int = 0
    num_cached_tokens: int = 0  # prompt tokens found in the backend's prefix cache


@runtime_checkable
class Backend(Protocol):
    """Runs requests for programs. Every text argument is the whole prompt so far: the
    backend (its radix cache), not the frontend, finds what is already computed.

    Chat rendering
      `role_markers(role)` -> (begin, end): the text before and after a message of `role`
      ("system" | "user" | "assistant") in the model's chat template, e.g. ChatML gives
      ("<|im_start|>user\\n", "<|im_end|>\\n"). `default_system_prompt` is the template's
      system message used when a chat starts without one (None if it has none). Both are
      cheap and synchronous (fetched once by remote backends).

    Requests (each has a blocking and an `async` form; the async form must not block the
    event loop nor need a thread per call)
      generate(text, params) -> RequestOutput: `params.n` completions of `text`, with prompt
        / cached / completion token counts, finish reasons and, when `params.logprobs`, the
        sampled tokens' logprobs. Constraints (regex / json_schema / choices) in `params`
        are honoured exactly or raise ValueError naming the unsupported feature.
      stream(text, params) -> iterator of StreamDelta: the text of completion 0 in pieces;
        the last delta carries `output` (the full RequestOutput). Asked only when n == 1.
      score(text, choices, unconditional) -> ScoreResult: per-token logprobs of each choice
        continuing `text`; `text` is prefilled once and every choice extends it. A backend
        that cannot score raises NotImplementedError with a message saying why.
      warm(text) -> None: prefill `text` into the cache and keep it (a fork's trunk, a
        batch's shared prefix); returns when done. Backends without a cache do nothing.
      concat_and_append(trunk, branches) -> None: a hint sent by
        `join("concate_and_append")` after the frontend appended the branches' texts: the
        request `trunk + "".join(branches)` may reuse each branch's KV (computed after
        `trunk`) instead of recomputing it. Backends that cannot do nothing.

    Thread safety: the blocking methods may be called from many threads at once (fork
    branches and `run_batch` items run concurrently); the async ones from many tasks.
    """

    @property
    def default_system_prompt(self) -> str | None: ...

    def role_markers(self, role: str) -> tuple[str, str]: ...

    def generate(self, text: str, params: SamplingParams) -> RequestOutput: ...

    async def agenerate(self, text: str, params: SamplingParams) -> RequestOutput: ...

    def stream(self, text: str, params: SamplingParams) -> Iterator[StreamDelta]: ...

    def astream(self, text: str, params: SamplingParams) -> AsyncIterator[StreamDelta]: ...

    def score(self, text: str, choices: list[str], unconditional: bool = False) -> ScoreResult: ...

    async def ascore(self, text: str, choices: list[str],
                     unconditional: bool = False) -> ScoreResult: ...

    def warm(self, text: str) -> None: ...

    async def awarm(self, text: str) -> None: ...

    def concat_and_append(self, trunk: str, branches: list[str]) -> None: ...

    async def aconcat_and_append(self, trunk: str, branches: list[str]) -> None: ...
