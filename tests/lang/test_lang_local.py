"""`LocalBackend`: lazy, the default, and its scoring contract on the real engine."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tines
from tines.local import LocalBackend
from tines.runtime.sampling_params import SamplingParams


def test_the_default_backend_is_a_lazy_local_backend():
    code = ("import sys, tines; b = tines.get_default_backend(); "
            "assert type(b).__name__ == 'LocalBackend', b; "
            "assert 'torch' not in sys.modules, 'made the engine too early'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_engine_or_settings_not_both(default_engine):
    with pytest.raises(ValueError, match="either an engine or model"):
        LocalBackend(default_engine, kv_tokens=64)


@pytest.mark.model
def test_unconditional_rows_score_the_same_tokens_after_only_bos(local_backend, default_engine):
    # "Paris" after "is " merges with the space: the choice's tokens differ from "Paris" alone.
    text, choices = "The capital of France is ", ["Paris", "London"]
    result = local_backend.score(text, choices, unconditional=True)
    for row, plain in zip(result.logprobs, result.unconditional):
        assert [t.token_id for t in plain] == [t.token_id for t in row]
    bos = default_engine.tokenizer.bos_token_id
    (alone,) = default_engine.score([bos], [[t.token_id for t in result.logprobs[0]]])
    assert [t.logprob for t in result.unconditional[0]] == pytest.approx(alone.logprobs)
    # The prompt is what precedes the choices' tokens: the trailing space went to " Paris".
    assert result.num_prompt_tokens == len(default_engine.tokenizer.encode(text.rstrip()))


@pytest.mark.model
def test_an_empty_text_starts_from_the_start_of_document_token(local_backend):
    out = local_backend.generate("", SamplingParams(max_new_tokens=2, temperature=0))
    assert out.num_prompt_tokens == 1 and out.num_completion_tokens >= 1
