"""Requests and their sequences: the state the scheduler moves around.

A request asks for `n` completions of one prompt. It starts as one sequence; when that
sequence's prompt is computed, the other n-1 are forked from it and share its prompt KV.

A sequence's tokens are prompt + output. Of them, the first `num_computed` have K/V in the
pool; the first `cached_len` of those are slots owned by the radix tree (locked through
`last_node`), the rest are owned by the sequence itself:

    token_ids: | cached (tree) | computed (own slots) | pending (no K/V yet) |
               0           cached_len           num_computed        len(token_ids)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from ..outputs import StreamDelta, TokenLogprob
from ..sampling_params import SamplingParams

if TYPE_CHECKING:
    from ..cache.radix_cache import TreeNode
    from .text_output import TextOutput


class SeqStatus(Enum):
    WAITING = "waiting"  # in the queue: holds no row, no own slots, no lock
    RUNNING = "running"  # admitted: holds a row in the slot table, its slots and its lock
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    request: Request
    index: int  # which of the request's n completions
    token_ids: list[int]
    prompt_len: int
    output: TextOutput
    grammar: Any = None  # a grammar matcher while decoding is constrained
    seed: int | None = None
    status: SeqStatus = SeqStatus.WAITING
    num_computed: int = 0
    cached_len: int = 0
    last_node: TreeNode | None = None
    row: int = -1  # row in the slot table while RUNNING
    finish_reason: str | None = None
    matched_stop: str | int | None = None
    logprobs: list[TokenLogprob] | None = None
    num_forced_tokens: int = 0  # forward passes jump-forward saved this sequence
    num_sampled: int = 0  # tokens drawn by the sampler (forced ones excluded)
    num_streamed: int = 0  # output tokens already sent in stream deltas
    num_streamed_logprobs: int = 0
    # Speculation (speculation.py): this step's draft, the sequence's n-gram index and its
    # draft-length policy, made on its first drafted step.
    draft: list[int] = field(default_factory=list)
    ngram: Any = None
    draft_length: Any = None
    _np_prompt: np.ndarray | None = None

    @property
    def num_output(self) -> int:
        return len(self.token_ids) - self.prompt_len

    @property
    def num_pending(self) -> int:
        return len(self.token_ids) - self.num_computed

    @property
    def in_prefill(self) -> bool:
        return self.num_computed < self.prompt_len

    @property
    def is_finished(self) -> bool:
        return self.status is SeqStatus.FINISHED

    @property
    def max_total_tokens(self) -> int:
        """The most slots this sequence can ever hold."""
        return self.prompt_len + self.request.params.max_new_tokens

    def tokens_array(self) -> np.ndarray:
        """The prompt as an int64 array (cached), for fast common-prefix checks."""
        if self._np_prompt is None or len(self._np_prompt) != len(self.token_ids):
            self._np_prompt = np.asarray(self.token_ids, dtype=np.int64)
        return self._np_prompt


@dataclass(eq=False)
class Request:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    # Called on the engine thread with each StreamDelta (the last one carries the output),
    # or with the exception that failed the request.
    sink: Callable[[StreamDelta | BaseException], None]
    stream: bool = False  # deliver text deltas while decoding, not only the final output
    prefill_only: bool = False  # compute the prompt (and its logprobs), generate nothing
    logprob_start: int | None = None  # prompt logprobs wanted from this position on
    # Scoring continuations (branches.py): each branch's tokens after the prompt (the trunk),
    # computed in the trunk's last step; their logprobs land in branch_logprobs.
    branches: list[list[int]] | None = None
    branch_logprobs: list[list[TokenLogprob]] | None = None
    grammar_future: Future | None = None
    lora_id: int = 0  # the LoRA adapter's id in the model runner's LoraSet (0: none)
    arrival: float = field(default_factory=time.monotonic)
    first_token_time: float | None = None
    seqs: list[Sequence] = field(default_factory=list)
    prompt_logprobs: list[TokenLogprob | None] | None = None
    num_cached_tokens: int = 0
    admitted: bool = False  # its prompt has been matched against the cache once
    queued: bool = True  # counted by Admission until it first leaves the waiting queue
    aborted: bool = False
    error: str | None = None

    @property
    def all_finished(self) -> bool:
        """Every sequence is done (n of them, unless the request was aborted first)."""
        expected = 1 if (self.prefill_only or self.aborted) else self.params.n
        return len(self.seqs) >= expected and all(s.is_finished for s in self.seqs)
