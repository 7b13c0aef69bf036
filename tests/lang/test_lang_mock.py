"""The scripted backend itself: tests elsewhere rely on what it records and refuses."""

from __future__ import annotations

import asyncio

import pytest

import tines
from tines.runtime.sampling_params import SamplingParams


def test_mock_implements_the_backend_protocol():
    assert isinstance(tines.MockBackend(), tines.Backend)


def test_replies_are_consumed_in_order_and_requests_recorded():
    mock = tines.MockBackend(["a", "b"])
    p = SamplingParams(temperature=0)
    assert [mock.generate("x", p).text, mock.generate("xy", p).text] == ["a", "b"]
    assert [(r.kind, r.text, r.params) for r in mock.requests] == [("generate", "x", p),
                                                                   ("generate", "xy", p)]


def test_running_out_of_replies_is_a_lookup_error():
    with pytest.raises(LookupError, match="nothing scripted"):
        tines.MockBackend().generate("x", SamplingParams())


def test_a_reply_that_breaks_the_regex_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        tines.MockBackend(["abc"]).generate("x", SamplingParams(regex="[0-9]+"))


def test_cached_tokens_model_a_prefix_cache():
    mock = tines.MockBackend(["1", "2"])
    mock.warm("hello world")
    out = mock.generate("hello world, again", SamplingParams())
    assert out.num_cached_tokens == len("hello world")


def test_stream_pieces_join_to_the_reply_and_end_with_the_output():
    deltas = list(tines.MockBackend(["abcdefg"], chunk_size=3).stream("x", SamplingParams()))
    assert [d.text for d in deltas] == ["abc", "def", "g"]
    assert deltas[-1].output.text == "abcdefg" and deltas[-1].finish_reason == "stop"
    assert all(d.output is None for d in deltas[:-1])


def test_async_methods_record_like_the_blocking_ones():
    mock = tines.MockBackend(["a"], scores=[{"x": [-1.0]}])

    async def main():
        await mock.agenerate("p", SamplingParams())
        await mock.ascore("p", ["x"])
        await mock.awarm("p")

    asyncio.run(main())
    assert [r.kind for r in mock.requests] == ["generate", "score", "warm"]


def test_unconditional_scores_must_be_scripted_when_asked():
    mock = tines.MockBackend(scores=[{"x": [-1.0]}])
    with pytest.raises(LookupError, match="unconditional"):
        mock.score("p", ["x"], unconditional=True)


def test_role_markers_default_to_chatml_and_can_be_replaced():
    assert tines.MockBackend().role_markers("user") == ("<|im_start|>user\n", "<|im_end|>\n")
    custom = tines.MockBackend(markers={"user": ("[U]", "[/U]")})
    assert custom.role_markers("user") == ("[U]", "[/U]")
    with pytest.raises(ValueError, match="assistant"):
        custom.role_markers("assistant")
