"""`Run` (tines.run): one program run's body, outcome, branches and settle, driven directly
against `MockBackend`; `Program.run`/`arun`/`run_batch` are thin users of this protocol."""

from __future__ import annotations

import asyncio

import pytest

import tines
from tests.lang.lang_scripts import by_suffix
from tines.run import Run


def _mock() -> tines.MockBackend:
    return tines.MockBackend(by_suffix({"A: ": "a", "B: ": "b", "End: ": "end"}))


def _two_branches(s) -> str:
    s += "Q\n"
    forks = s.fork(2)
    forks[0] += "A: " + tines.gen("x")
    forks[1] += "B: " + tines.gen("x")
    forks.join()
    return "returned"


def test_execute_runs_the_body_in_this_thread_and_settles():
    run = Run(_mock(), on_loop=False)
    run.execute(_two_branches)
    assert run.done and run.body is None and run.error is None
    assert run.root.ret_value == "returned" and run.root["x"] == ["a", "b"]
    run.check()


def test_fork_lists_every_branch_on_the_run_in_fork_order():
    run = Run(_mock(), on_loop=False)
    run.execute(_two_branches)
    assert len(run.branches) == 2
    assert [b.frame.text for b in run.branches] == ["Q\nA: a", "Q\nB: b"]
    assert all(b.joined and b.idle() and b.run is run for b in run.branches)


def test_a_body_exception_is_recorded_not_raised_until_result():
    def body(s):
        s += "x"
        raise ValueError("boom")

    run = Run(_mock(), on_loop=False)
    run.execute(body)
    assert isinstance(run.error, ValueError) and run.root.error() is run.error
    with pytest.raises(ValueError, match="boom"):
        run.result()


def test_an_unjoined_branch_failure_becomes_the_runs_error():
    def body(s):
        forks = s.fork(1)
        forks[0] += "unscripted: " + tines.gen("x")  # by_suffix has no reply: the gen fails

    run = Run(_mock(), on_loop=False)
    run.execute(body)
    assert isinstance(run.error, RuntimeError) and "fork branch failed" in str(run.error)
    assert isinstance(run.error.__cause__, LookupError)
    assert run.branches[0].error_reported


def test_a_joined_branch_failure_is_reported_by_the_join_only():
    def body(s):
        forks = s.fork(1)
        forks[0] += "unscripted: " + tines.gen("x")
        forks.join()

    run = Run(_mock(), on_loop=False)
    run.execute(body)
    assert "fork branch 0 failed" in str(run.error)  # raised by join() in the body
    assert run.branches[0].error_reported


def test_fail_ends_a_run_whose_body_never_started():
    run = Run(_mock(), on_loop=False)
    run.fail(TypeError("bad arguments"))
    assert run.done and run.root.error() is run.error and run.branches == []


def test_background_execute_returns_before_the_body_ends_and_streams_to_the_end():
    run = Run(_mock(), on_loop=False, stream=True)
    run.execute(lambda s: s.__iadd__("End: " + tines.gen("x")), background=True)
    assert "".join(run.root.text_iter()) == "End: end"
    assert run.done and run.error is None


def test_aexecute_runs_the_body_as_the_current_task():
    seen = []

    async def body(s):
        seen.append(run.body is asyncio.current_task() and not run.body_elsewhere())
        s += "End: " + tines.gen("x")
        return await s.aget_var("x")

    async def main() -> None:
        await run.aexecute(body, is_async=True)

    run = Run(_mock(), on_loop=True)
    asyncio.run(main())
    assert seen == [True] and run.root.ret_value == "end" and run.done


def test_check_rejects_a_trunk_listed_as_a_branch():
    run = Run(_mock(), on_loop=False)
    run.branches.append(run.trunk)
    with pytest.raises(RuntimeError, match="trunk"):
        run.check()
