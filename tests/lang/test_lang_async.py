from __future__ import annotations

import asyncio
import threading

import pytest

import tines


@tines.program
def qa(s, question):
    s += "Q: " + question + "\nA: " + tines.gen("answer", stop="\n")


def test_arun_runs_a_def_program():
    state = asyncio.run(qa.arun("2+2?", backend=tines.MockBackend(["4"])))
    assert (state["answer"], state.text()) == ("4", "Q: 2+2?\nA: 4")


def test_the_async_path_starts_no_thread(monkeypatch):
    def no_threads(self):
        raise AssertionError("the async path started a thread")

    @tines.program
    def forked(s):
        s += "trunk "
        forks = s.fork(3)
        forks += lambda i: str(i) + tines.gen("x")
        forks.join()

    async def main():
        monkeypatch.setattr(threading.Thread, "start", no_threads)
        a = await qa.arun("1?", backend=tines.MockBackend(["1"]))
        b = await forked.arun(backend=tines.MockBackend(["a", "b", "c"]))
        c = await qa.arun_batch([{"question": "q"}] * 4, backend=tines.MockBackend(["z"] * 4),
                                progress_bar=False)
        return a, b, c

    a, b, c = asyncio.run(main())
    assert a["answer"] == "1" and sorted(b["x"]) == ["a", "b", "c"]
    assert [s["answer"] for s in c] == ["z"] * 4


def test_async_def_program_awaits_variables():
    @tines.program
    async def route(s, question):
        s += "Q: " + question + "\nKind: " + tines.gen("kind", stop="\n")
        if await s.aget_var("kind") == "math":
            s += "\nMath answer: " + tines.gen("answer")
        else:
            s += "\nOther answer: " + tines.gen("answer")

    mock = tines.MockBackend(["math", "4"])
    state = asyncio.run(route.arun("2+2?", backend=mock))
    assert state["answer"] == "4" and "Math answer: 4" in state.text()


def test_a_def_program_reading_a_pending_variable_on_the_loop_gets_a_clear_error():
    @tines.program
    def route(s):
        s += tines.gen("kind")
        if s["kind"] == "math":
            s += "!"

    with pytest.raises(tines.PendingValueError, match=r"await s.aget_var\('kind'\)"):
        asyncio.run(route.arun(backend=tines.MockBackend(["math"])))


def test_async_def_program_runs_under_sync_run():
    @tines.program
    async def prog(s):
        s += "a=" + tines.gen("a")
        value = await s.aget_var("a")
        s += " twice=" + value * 2

    state = prog.run(backend=tines.MockBackend(["x"]))
    assert state.text() == "a=x twice=xx"


def test_async_def_program_refuses_sync_run_inside_a_loop():
    @tines.program
    async def prog(s):
        s += "x"

    async def main():
        prog.run(backend=tines.MockBackend())

    with pytest.raises(RuntimeError, match="await prog.arun"):
        asyncio.run(main())


def test_arun_uses_the_async_backend_methods():
    class AsyncOnly(tines.MockBackend):
        def generate(self, text, params):
            raise AssertionError("blocking generate called from the async path")

    state = asyncio.run(qa.arun("2+2?", backend=AsyncOnly(["4"])))
    assert state["answer"] == "4"


def test_arun_raises_the_programs_error():
    def reply(text, params):
        raise ConnectionError("down")

    with pytest.raises(ConnectionError, match="down"):
        asyncio.run(qa.arun("x", backend=tines.MockBackend(reply)))


def test_wait_then_read_inside_an_async_program():
    @tines.program
    async def prog(s):
        s += tines.gen("a") + tines.gen("b")
        await s.wait()
        return s.text()

    state = asyncio.run(prog.arun(backend=tines.MockBackend(["1", "2"])))
    assert state.ret_value == "12"


def test_many_programs_share_one_loop_concurrently():
    mock = tines.MockBackend(["x"] * 10, latency=0.03)

    async def main():
        return await asyncio.gather(*(qa.arun(str(i), backend=mock) for i in range(10)))

    states = asyncio.run(main())
    assert len(states) == 10 and mock.max_in_flight == 10


def test_an_async_loop_reads_each_new_value_of_a_regenerated_variable():
    @tines.program
    async def react(s):
        actions = []
        for _ in range(3):
            s += "Action: " + tines.select("action", choices=["search", "finish"]) + "\n"
            action = await s.aget_var("action")
            actions.append(action)
            if action == "finish":
                break
            s += "Observation: " + tines.gen("obs", stop="\n") + "\n"
        return actions

    scores = [{"search": [-0.1], "finish": [-1.0]}, {"search": [-0.1], "finish": [-1.0]},
              {"search": [-1.0], "finish": [-0.1]}]
    mock = tines.MockBackend(["found a", "found b"], scores=scores)
    state = asyncio.run(react.arun(backend=mock))
    assert state.ret_value == ["search", "search", "finish"]
    assert state.text().count("Observation: found") == 2
