from __future__ import annotations

import asyncio

import pytest

import tines
from tests.lang.lang_scripts import by_suffix

TRUNK = "Question: how to sleep better?\n"
TIPS = {f"Tip {i}: ": f"tip{i}" for i in range(4)}


@tines.program
def four_tips(s):
    s += TRUNK
    forks = s.fork(4)
    forks += lambda i: f"Tip {i}: " + tines.gen("tip", stop="\n")
    forks.join()
    s += "Summary: " + tines.gen("summary")


def _mock(**kw) -> tines.MockBackend:
    return tines.MockBackend(by_suffix({**TIPS, "Summary: ": "rest"}), **kw)


def test_trunk_is_warmed_once_before_any_branch_request():
    mock = _mock()
    four_tips.run(backend=mock)
    kinds = [r.kind for r in mock.requests]
    assert kinds == ["warm"] + ["generate"] * 5
    assert mock.requests[0].text == TRUNK


def test_branch_requests_extend_the_cached_trunk():
    mock = _mock()
    four_tips.run(backend=mock)
    branch_requests = mock.requests[1:5]
    assert sorted(r.text for r in branch_requests) == sorted(TRUNK + t for t in TIPS)


def test_branches_run_concurrently():
    mock = _mock(latency=0.2)  # long enough for four threads to start even on a busy machine
    four_tips.run(backend=mock)
    assert mock.max_in_flight == 4


def test_gathering_join_makes_lists_in_branch_order():
    state = four_tips.run(backend=_mock())
    assert state["tip"] == ["tip0", "tip1", "tip2", "tip3"]
    assert state["summary"] == "rest"
    assert state.text() == TRUNK + "Summary: rest"  # gathering leaves the text alone


def test_gathered_meta_is_a_list_too():
    state = four_tips.run(backend=_mock())
    metas = state.get_meta_info("tip")
    assert len(metas) == 4 and all(m.prompt_tokens > len(TRUNK) for m in metas)


def test_concate_and_append_appends_each_branch_text_in_order():
    @tines.program
    def parallel_encoding(s):
        s += "Docs:\n"
        forks = s.fork(3)
        forks += [f"doc {i}\n" for i in range(3)]
        forks.join("concate_and_append")
        s += "Answer: " + tines.gen("a")

    mock = tines.MockBackend(["ok"])
    state = parallel_encoding.run(backend=mock)
    assert state.text() == "Docs:\ndoc 0\ndoc 1\ndoc 2\nAnswer: ok"
    (hint,) = mock.requests_of("concat_and_append")
    assert (hint.text, hint.branches) == ("Docs:\n", ("doc 0\n", "doc 1\n", "doc 2\n"))


def test_branches_copy_text_variables_and_role_state():
    @tines.program
    def inside_assistant(s):
        s += tines.user("Name two colors.")
        s += tines.assistant_begin() + tines.gen("first", stop=",")
        forks = s.fork(2)
        forks += lambda i: f" (v{i}) " + tines.gen("more")
        forks += tines.assistant_end()
        seen = [(f["first"], f.messages()[-1]) for f in forks]
        forks.join()
        return seen

    mock = tines.MockBackend(by_suffix({"(v0) ": "blue", "(v1) ": "green"}, default="red,"))
    state = inside_assistant.run(backend=mock)
    assert state.ret_value == [("red", {"role": "assistant", "content": "red (v0) blue"}),
                               ("red", {"role": "assistant", "content": "red (v1) green"})]


def test_fork_of_one_does_not_warm():
    @tines.program
    def single(s):
        s += "x"
        forks = s.fork(1)
        forks += tines.gen("y")
        forks.join()

    mock = tines.MockBackend(["1"])
    assert single.run(backend=mock)["y"] == ["1"]
    assert mock.requests_of("warm") == []


def test_appending_to_a_branch_after_join_is_an_error():
    @tines.program
    def late(s):
        forks = s.fork(2)
        forks.join()
        forks[0] += "late"

    with pytest.raises(ValueError, match="after join"):
        late.run(backend=tines.MockBackend())


def test_joining_twice_is_an_error():
    @tines.program
    def twice(s):
        forks = s.fork(2)
        forks.join()
        forks.join()

    with pytest.raises(ValueError, match="already joined"):
        twice.run(backend=tines.MockBackend())


def test_a_failing_branch_fails_the_join_naming_the_branch():
    def reply(text, params):
        if text.endswith("Tip 2: "):
            raise ConnectionError("backend down")
        return "ok"

    with pytest.raises(RuntimeError, match="fork branch 2 failed: backend down"):
        four_tips.run(backend=tines.MockBackend(reply))


def test_an_unjoined_failing_branch_still_fails_the_run():
    @tines.program
    def unjoined(s):
        forks = s.fork(2)
        forks += tines.gen("x")

    def reply(text, params):
        raise ConnectionError("nope")

    with pytest.raises(RuntimeError, match="fork branch failed: nope"):
        unjoined.run(backend=tines.MockBackend(reply))


def test_forks_inside_branches_nest():
    @tines.program
    def tree(s):
        s += "root "
        outer = s.fork(2)
        for i, branch in enumerate(outer):
            branch += f"b{i} "
            inner = branch.fork(2)
            inner += lambda j: f"l{j} " + tines.gen("leaf")
            inner.join()
        outer.join()

    mock = tines.MockBackend(lambda text, params: text.replace(" ", "").upper())
    state = tree.run(backend=mock)
    assert state["leaf"] == [["ROOTB0L0", "ROOTB0L1"], ["ROOTB1L0", "ROOTB1L1"]]
    assert sorted(r.text for r in mock.requests_of("warm")) == ["root ", "root b0 ", "root b1 "]


def test_reading_a_branch_variable_waits_for_it():
    @tines.program
    def read_branches(s):
        forks = s.fork(3)
        forks += lambda i: f"{i}:" + tines.gen("v")
        values = [f["v"] for f in forks]
        forks.join()
        return values

    mock = tines.MockBackend(lambda text, params: "v" + text[0], latency=0.02)
    assert read_branches.run(backend=mock).ret_value == ["v0", "v1", "v2"]


def test_fork_size_must_be_positive():
    @tines.program
    def bad(s):
        s.fork(0)

    with pytest.raises(ValueError, match="positive integer"):
        bad.run(backend=tines.MockBackend())


def test_async_fork_runs_branches_concurrently_and_joins():
    mock = _mock(latency=0.05)
    state = asyncio.run(four_tips.arun(backend=mock))
    assert state["tip"] == ["tip0", "tip1", "tip2", "tip3"]
    assert mock.max_in_flight == 4
    assert [r.kind for r in mock.requests][0] == "warm"


def test_reading_a_branch_variable_that_is_being_regenerated_waits_for_the_new_value():
    @tines.program
    def regen(s):
        s += tines.gen("v")
        forks = s.fork(1)
        forks += "again " + tines.gen("v")
        fresh = forks[0]["v"]
        forks.join()
        return fresh

    mock = tines.MockBackend(["old", "new"], latency=0.02)
    assert regen.run(backend=mock).ret_value == "new"
