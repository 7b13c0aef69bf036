"""Grammar masks computed while the forward runs (engine/mask_prefetch.py): the same tokens as
masks computed after it, on the worker for every constrained sequence that samples, a mask that
raises there handed back to fail its own request, and on the CPU (by default) no worker."""

from __future__ import annotations

import numpy as np
import pytest

from tines.runtime.engine.mask_prefetch import MaskPrefetch
from tines.runtime.sampling_params import SamplingParams

PROMPTS = ["The rivers of the north run", "Name a colour:", "A list of numbers:",
           "Answer yes or no.", "Free text follows"]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def _params(max_new_tokens: int) -> list[SamplingParams]:
    """Four constraints of different kinds and one free request, greedy, some cut by the
    budget (so budget-aware closing masks are prefetched too)."""
    greedy = dict(temperature=0, max_new_tokens=max_new_tokens)
    return [SamplingParams(regex=r"[a-z]+( [a-z]+){2,5}\.", **greedy),
            SamplingParams(json_schema=SCHEMA, **greedy),
            SamplingParams(regex=r"\[(\d{1,3}, ){3,9}\d{1,3}\]", **greedy),
            SamplingParams(choices=["yes", "no", "not sure"], **greedy),
            SamplingParams(**greedy)]


def _run(engine, max_new_tokens: int) -> list[list[int]]:
    handles = [engine.submit(p, sp) for p, sp in zip(PROMPTS, _params(max_new_tokens))]
    return [h.result().outputs[0].token_ids for h in handles]


@pytest.mark.parametrize("max_new_tokens", [6, 40])
def test_overlapped_masks_give_the_tokens_of_masks_computed_after_the_forward(engine_factory,
                                                                            max_new_tokens):
    overlapped = engine_factory(overlap_grammar_masks=True)
    after = engine_factory(overlap_grammar_masks=False)
    assert _run(overlapped, max_new_tokens) == _run(after, max_new_tokens)


def test_every_sampling_constrained_sequence_gets_its_mask_from_the_worker(engine_factory):
    engine = engine_factory(overlap_grammar_masks=True, speculation=False, jump_forward=False)
    outputs = _run(engine, 12)
    # without jump-forward or drafts, each constrained output token was sampled under one mask
    assert engine.stats()["grammar_masks_overlapped"] == sum(map(len, outputs[:4]))
    engine.call(lambda core: core.scheduler.check_idle())


@pytest.mark.parametrize("overlap", [False, None])  # None: the CPU default
def test_masks_after_the_forward_use_no_worker(engine_factory, overlap):
    engine = engine_factory(overlap_grammar_masks=overlap)
    _run(engine, 12)
    assert engine.stats()["grammar_masks_overlapped"] == 0
    assert engine.call(lambda core: core.mask_prefetch._worker) is None


class _Seq:
    def __init__(self, allowed: int | None):
        self.allowed = allowed  # the one allowed token id; None: the matcher raises


def _fill(seq: _Seq, buf: np.ndarray, row: int) -> None:
    if seq.allowed is None:
        raise RuntimeError("matcher broke")
    buf[row, seq.allowed // 32] |= 1 << (seq.allowed % 32)


def test_a_mask_that_raises_on_the_worker_is_handed_back_and_the_others_are_rows():
    prefetch = MaskPrefetch(vocab_words=4, fill=_fill)
    good, bad, other = _Seq(5), _Seq(None), _Seq(70)
    try:
        prefetch.start([good, bad, other])
        rows = prefetch.collect()
    finally:
        prefetch.close()
    assert isinstance(rows[id(bad)], RuntimeError)
    assert rows[id(good)].tolist() == [1 << 5, 0, 0, 0]
    assert rows[id(other)].tolist() == [0, 0, 1 << 6, 0]


def test_collect_without_start_is_empty_and_starts_no_thread():
    prefetch = MaskPrefetch(vocab_words=4, fill=_fill)
    prefetch.start([])
    assert prefetch.collect() == {}
    assert prefetch._worker is None


def test_a_second_start_before_collect_is_refused():
    prefetch = MaskPrefetch(vocab_words=4, fill=_fill)
    try:
        prefetch.start([_Seq(1)])
        with pytest.raises(AssertionError):
            prefetch.start([_Seq(2)])
        assert list(prefetch.collect().values())[0].tolist() == [2, 0, 0, 0]
    finally:
        prefetch.close()
