from __future__ import annotations

import asyncio

import pytest

import tines


@tines.program
def story(s, topic):
    s += tines.user("Write about " + topic)
    s += tines.assistant(tines.gen("story", max_tokens=40))
    s += "Title: " + tines.gen("title", stop="\n")


def _mock() -> tines.MockBackend:
    return tines.MockBackend(["Once upon a time a cat slept all day.", "The Cat\n"], chunk_size=5)


def test_streamed_pieces_make_the_same_text_as_a_plain_run():
    plain = story.run("cats", backend=_mock()).text()
    state = story.run("cats", backend=_mock(), stream=True)
    assert "".join(state.text_iter()) == plain
    assert state.text() == plain


def test_stream_sends_streaming_requests():
    mock = _mock()
    state = story.run("cats", backend=mock, stream=True)
    list(state.text_iter())
    assert [r.kind for r in mock.requests] == ["stream", "stream"]


def test_text_iter_of_a_variable_yields_its_pieces():
    state = story.run("cats", backend=_mock(), stream=True)
    pieces = list(state.text_iter("story"))
    assert "".join(pieces) == "Once upon a time a cat slept all day."
    assert state["title"] == "The Cat"


def test_a_variable_stream_yields_pieces_as_they_come():
    gate_open = asyncio.Event()

    class SlowMock(tines.MockBackend):
        async def astream(self, text, params):
            async for delta in super().astream(text, params):
                yield delta
                if not gate_open.is_set():
                    await gate_open.wait()  # hold the stream after the first piece

    async def main():
        state = await story.arun("cats", backend=SlowMock(["abcdefghij", "T\n"], chunk_size=3),
                                 stream=True)
        pieces = state.text_async_iter("story")
        first = await pieces.__anext__()
        gate_open.set()
        rest = [p async for p in pieces]
        return first, rest

    first, rest = asyncio.run(main())
    assert first == "abc"
    assert "".join([first, *rest]) == "abcdefghij"


def test_text_iter_without_streaming_yields_the_final_text_once():
    state = story.run("cats", backend=_mock())
    assert list(state.text_iter()) == [state.text()]
    assert list(state.text_iter("title")) == ["The Cat"]


def test_text_async_iter_matches_a_plain_run():
    plain = story.run("cats", backend=_mock()).text()

    async def main():
        state = await story.arun("cats", backend=_mock(), stream=True)
        return [piece async for piece in state.text_async_iter()]

    pieces = asyncio.run(main())
    assert "".join(pieces) == plain and len(pieces) > 1


def test_a_failure_while_streaming_raises_at_the_end_of_the_iteration():
    def reply(text, params):
        if text.endswith("Title: "):
            raise ConnectionError("dropped")
        return "A story."

    state = story.run("cats", backend=tines.MockBackend(reply), stream=True)
    with pytest.raises(ConnectionError, match="dropped"):
        list(state.text_iter())
    assert state.text().endswith("A story.<|im_end|>\nTitle: ")


def test_reading_a_variable_of_a_streaming_run_waits_for_it():
    state = story.run("cats", backend=_mock(), stream=True)
    assert state["title"] == "The Cat"


def test_streaming_falls_back_to_generate_for_n_above_one():
    @tines.program
    def many(s):
        s += "x" + tines.gen("y", n=2)

    mock = tines.MockBackend([["a", "b"]])
    state = many.run(backend=mock, stream=True)
    assert "".join(state.text_iter()) == "xa"
    assert [r.kind for r in mock.requests] == ["generate"]


def test_an_async_program_streams_under_sync_run():
    @tines.program
    async def prog(s):
        s += "a=" + tines.gen("a")
        s += " b=" + (await s.aget_var("a")).upper()

    state = prog.run(backend=tines.MockBackend(["xyz"], chunk_size=1), stream=True)
    assert "".join(state.text_iter()) == "a=xyz b=XYZ"


def test_reading_the_text_of_a_streaming_async_run_on_its_loop_is_refused():
    async def main():
        state = await story.arun("cats", backend=_mock(), stream=True)
        with pytest.raises(tines.PendingValueError, match="await s.wait"):
            state.text()
        await state.wait()
        return state.text()

    assert asyncio.run(main()).endswith("Title: The Cat")


def test_a_thread_run_stream_can_be_consumed_with_async_for():
    state = story.run("cats", backend=_mock(), stream=True)

    async def main():
        return [piece async for piece in state.text_async_iter()]

    assert "".join(asyncio.run(main())) == story.run("cats", backend=_mock()).text()
