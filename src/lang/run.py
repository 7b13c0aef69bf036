"""`Run`: one run of a program — its body, its outcome, and every branch it forked.

`Program.run`, `Program.arun` and the batch runners each make one `Run` per program call
and hand it the body; the `ProgramState`s a program sees (the root and every fork branch)
are views onto this run's branches. Where the body runs:

    execute(call)                    the caller's thread (def body, or async on its own loop)
    execute(call, background=True)   a daemon thread (run(stream=True)); returns at once
    await aexecute(call)             the running event loop (arun)
    aexecute(call, background=True)  a task on the running loop (arun(stream=True))

After the body returns, the run settles: it waits until the trunk and every branch are idle,
then concludes the run's error and marks it done.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from tines.backend import Backend
from tines.branch import Branch
from tines.frame import Changes
from tines.state import ProgramState

Body = Callable[[ProgramState], Any]  # the program applied to its arguments


class Run:
    """Owns a program run's lifecycle. Invariants:

    - `trunk` is the root state's branch; `branches` lists every fork branch, in fork
      order; all of them belong to this run and share its `changes` signal.
    - `on_loop` runs every node as a task on the body's event loop (the trunk included);
      otherwise the trunk runs inline in the body's thread and branches on threads.
    - `body` is the thread or task running the program body, None before and once `done`.
    - `done` is set once, after the body returned and every branch was idle. From then on
      `error` is final: the body's exception, else the trunk's node failure, else the
      first failure of a branch that no join reported.
    """

    def __init__(self, backend: Backend, *, on_loop: bool, stream: bool = False,
                 defaults: dict[str, Any] | None = None) -> None:
        self.backend = backend
        self.on_loop = on_loop
        self.stream = stream
        self.defaults = dict(defaults or {})  # run-wide sampling defaults, shared read-only
        self.changes = Changes()
        self.trunk = Branch(self, trunk=True)
        self.root = ProgramState(self.trunk)
        self.branches: list[Branch] = []
        self.body: threading.Thread | asyncio.Task | None = None
        self.error: BaseException | None = None
        self.done = False

    def fork(self, size: int) -> list[ProgramState]:
        """`size` new branches, not started, as states for the program."""
        branches = [Branch(self, trunk=False) for _ in range(size)]
        self.branches.extend(branches)
        return [ProgramState(branch) for branch in branches]

    # ---- running the body ----------------------------------------------------------------

    def execute(self, call: Body, *, is_async: bool = False, background: bool = False,
                name: str = "tines-program") -> None:
        """Run `call(root)` in this thread, or with `background` in a new daemon thread
        `name`. An async body (`is_async`: `call` returns an awaitable) runs on its own
        event loop in that thread. Errors are recorded on the run, never raised here."""
        def target() -> None:
            if is_async:
                asyncio.run(self._arun_body(call, is_async))
            else:
                self._run_body(call)

        if background:
            self.body = threading.Thread(target=target, name=name, daemon=True)
            self.body.start()
            return
        self.body = threading.current_thread()
        target()

    async def aexecute(self, call: Body, *, is_async: bool, background: bool = False) -> None:
        """Run `call(root)` on the running loop: awaited here, or with `background` as a
        task of its own. Errors are recorded on the run, never raised here."""
        if background:
            self.body = asyncio.get_running_loop().create_task(self._arun_body(call, is_async))
            return
        self.body = asyncio.current_task()
        await self._arun_body(call, is_async)

    def fail(self, error: BaseException) -> None:
        """End a run whose body never started (its arguments did not fit)."""
        self.error, self.done = error, True
        self.changes.notify()

    def result(self) -> ProgramState:
        """The root state of a finished run; raises the run's error if it failed."""
        if self.error is not None:
            raise self.error
        return self.root

    def _run_body(self, call: Body) -> None:
        try:
            self.root.ret_value = call(self.root)
        except Exception as e:
            self.error = e
        self._settle()

    async def _arun_body(self, call: Body, is_async: bool) -> None:
        try:
            result = call(self.root)
            self.root.ret_value = await result if is_async else result
        except Exception as e:
            self.error = e
        await self._asettle()

    def body_elsewhere(self) -> bool:
        """The program body is still running, in another thread or task than the caller."""
        body = self.body
        if body is None:
            return False
        if isinstance(body, threading.Thread):
            return body is not threading.current_thread()
        try:
            return body is not asyncio.current_task()
        except RuntimeError:  # no loop in this thread
            return True

    # ---- settling ------------------------------------------------------------------------

    def _settle(self) -> None:
        """After the body returned: wait for every branch, surface unjoined failures."""
        for branch in (self.trunk, *self.branches):
            branch.wait_idle()
        self._conclude()

    async def _asettle(self) -> None:
        for branch in (self.trunk, *self.branches):
            await branch.await_idle()
        self._conclude()

    def _conclude(self) -> None:
        trunk_error = self.trunk.node_error
        for branch in self.branches:
            error = branch.node_error
            if error is not None and not branch.error_reported:
                branch.error_reported = True
                if self.error is None and trunk_error is None:
                    self.error = RuntimeError(f"fork branch failed: {error}")
                    self.error.__cause__ = error
        if self.error is None and trunk_error is not None:
            self.error = trunk_error
        self.done, self.body = True, None
        self.changes.notify()

    def check(self) -> None:
        """Raise `RuntimeError` where a structural invariant does not hold (tests, debug)."""
        if self.trunk in self.branches:
            raise RuntimeError("the trunk is listed as a fork branch")
        if len(set(map(id, self.branches))) != len(self.branches):
            raise RuntimeError("a fork branch is listed twice")
        if any(branch.run is not self for branch in (self.trunk, *self.branches)):
            raise RuntimeError("a branch belongs to another run")
        if self.done and self.body is not None:
            raise RuntimeError("a done run still names its body")
