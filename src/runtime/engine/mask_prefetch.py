"""Grammar masks computed while the step's forward runs.

The mask a constrained sequence samples under depends only on its matcher's state and on its
remaining token budget, and both are fixed once the step is scheduled: nothing changes them
until the step's tokens are sampled. So the engine thread gives those sequences to one worker
thread just before the forward and collects their bitmask rows when it samples. A cold mask (a
grammar state seen for the first time: the vocabulary walk, new automaton rows, milliseconds)
is then computed beside the forward instead of after it; warm masks cost the worker ~1 µs.

Where it pays: a forward that leaves the GIL free while it runs (a GPU step waiting on its
stream). A CPU forward takes the GIL back after each kernel, and a worker running Python (a
cold mask builds automaton rows in Python) makes each of those waits up to the interpreter's
switch interval: measured on the default model, the forward ran ~10x slower (57 s vs 5.5 s for
the same 114 steps, bench/grammar_batch.py). So `EngineConfig.overlap_grammar_masks` is on
only for GPU forwards unless set; on the CPU the masks are computed after the forward.

Invariant: between `start` and `collect` only the worker reads or writes the matchers it was
given; the engine thread runs the forward in between and calls `collect` (also when the
forward raises) before it touches any matcher again. A mask that raises is handed back as the
exception, so the engine fails that request alone, as if it had computed the mask itself.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from .request import Sequence

FillMask = Callable[[Sequence, np.ndarray, int], None]  # (seq, int32 [rows, W] buffer, row)


class MaskPrefetch:
    def __init__(self, vocab_words: int, fill: FillMask):
        self.vocab_words = vocab_words
        self.fill = fill
        self._worker: ThreadPoolExecutor | None = None
        self._pending: Future[dict[int, torch.Tensor | BaseException]] | None = None

    def start(self, seqs: list[Sequence]) -> None:
        """Begin computing the masks of `seqs` (constrained, about to sample this step)."""
        assert self._pending is None, "collect() the previous step's masks first"
        if not seqs:
            return
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="tines-grammar-masks")
        self._pending = self._worker.submit(self._compute, list(seqs))

    def collect(self) -> dict[int, torch.Tensor | BaseException]:
        """`id(seq)` -> its bitmask row (int32 [W]) or the exception its matcher raised;
        empty when nothing was started. Waits for the worker."""
        pending, self._pending = self._pending, None
        return {} if pending is None else pending.result()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None

    def _compute(self, seqs: list[Sequence]) -> dict[int, torch.Tensor | BaseException]:
        bitmask = torch.zeros(len(seqs), self.vocab_words, dtype=torch.int32)
        buf = bitmask.numpy()
        out: dict[int, torch.Tensor | BaseException] = {}
        for row, seq in enumerate(seqs):
            try:
                self.fill(seq, buf, row)
                out[id(seq)] = bitmask[row]
            except Exception as e:  # the request's own failure, raised on the engine thread
                out[id(seq)] = e
        return out


def reraise(error: BaseException) -> None:
    """Raise a failure caught elsewhere, inside the engine's per-request isolation."""
    raise error
