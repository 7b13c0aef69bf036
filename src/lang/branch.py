"""`Branch`: one line of execution inside a program run — the run's trunk (the root state)
or one fork branch. It owns the state's interpreter (hence its frame) and the executor that
runs its nodes, and answers the waits that reads need.

Its protocol towards forks and joins (used by the interpreter, the executors and the
effect drivers, never by program code):

- `start(frame)`: the parent's interpreter reached the fork; run the queued nodes from
  `frame` (a copy of the parent's).
- `abandon(error)`: the fork node was dropped because the parent failed; the branch never
  starts and fails with `error`.
- `take_error()`: the join reads the branch's failure, which counts as reported.
- `wait_idle()` / `await_idle()`: every node submitted so far has run.
- `frame`: the branch's content, read by the join once the branch is idle.

Invariants: nodes run one at a time, in submit order; nothing is submitted after `joined`;
a node failure is reported once (by the join, or by the run's settle).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from tines.effects import adrive, drive
from tines.errors import PendingValueError
from tines.executor import InlineExecutor, TaskExecutor, ThreadExecutor
from tines.frame import Frame
from tines.interpreter import Interpreter
from tines.ir import Expr, Join

if TYPE_CHECKING:
    from tines.run import Run


class Branch:
    """The trunk runs inline in the body's thread (or as tasks for a run on an event loop);
    fork branches run on a thread or task of their own and start closed."""

    def __init__(self, run: Run, *, trunk: bool) -> None:
        self.run = run
        self.interpreter = Interpreter(run.backend, run.changes, run.defaults, run.stream)
        self.executor: InlineExecutor | ThreadExecutor | TaskExecutor
        if run.on_loop:
            self.executor = TaskExecutor(self._arun_node, run.changes, started=trunk)
        elif trunk:
            self.executor = InlineExecutor(self._run_node, run.changes)
        else:
            self.executor = ThreadExecutor(self._run_node, run.changes, started=False)
        self.joined = False  # its join was submitted: nothing more comes
        self.error_reported = False

    def _run_node(self, node: Expr) -> None:
        drive(self.interpreter.steps(node), self.run.backend)

    async def _arun_node(self, node: Expr) -> None:
        await adrive(self.interpreter.steps(node), self.run.backend)

    @property
    def frame(self) -> Frame:
        return self.interpreter.frame

    @property
    def node_error(self) -> BaseException | None:
        """The failure of one of this branch's nodes (or of its parent, if abandoned)."""
        return self.executor.error

    # ---- submitting ----------------------------------------------------------------------

    def submit(self, node: Expr) -> None:
        if self.joined:
            raise ValueError("cannot append to a fork branch after join(); append to the "
                             "parent state instead")
        self.interpreter.expect(node)
        self.executor.submit(node)

    def join(self, branches: tuple[Branch, ...], mode: str) -> None:
        """Close `branches` to appends and queue their join on this branch."""
        for branch in branches:
            branch.joined = True
        self.submit(Join(branches, mode))

    # ---- the fork/join protocol ----------------------------------------------------------

    def start(self, frame: Frame) -> None:
        self.interpreter.frame = frame
        self.executor.start()

    def abandon(self, error: BaseException) -> None:
        self.error_reported = True  # its cause is reported where it happened
        self.executor.abandon(error)

    def take_error(self) -> BaseException | None:
        self.error_reported = True
        return self.executor.error

    def idle(self) -> bool:
        return self.executor.idle()

    def wait_idle(self) -> None:
        self.run.changes.wait_until(self.executor.idle)

    async def await_idle(self) -> None:
        await self.run.changes.await_until(self.executor.idle)

    # ---- what reads wait for -------------------------------------------------------------

    def error(self) -> BaseException | None:
        """What stopped this branch: a node's failure, or for the trunk the run's error."""
        run_error = self.run.error if self is self.run.trunk else None
        return self.executor.error or run_error

    def has(self, name: str) -> bool:
        """`name` is set and no queued node is about to set it again."""
        return name in self.frame.variables and not self.interpreter.is_pending(name)

    def quiet(self) -> bool:
        """Nothing queued or running, and no program body elsewhere that may add more."""
        return self.executor.idle() and not self.run.body_elsewhere()

    def finished(self) -> bool:
        """Complete: the body can append nothing more, and every node has run."""
        return (self.joined or self.run.done) and self.executor.idle()

    def block_until(self, ready: Callable[[], bool], what: str, hint: str) -> None:
        """Wait in this thread until `ready()`; on the run's own event loop, where waiting
        would freeze it, raise `PendingValueError` (mentioning `hint`) instead."""
        if ready():
            return
        if self.run.on_loop:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass  # another thread than the loop's: blocking is safe
            else:
                raise PendingValueError(f"{what} is not computed yet, and this state runs on "
                                        f"the event loop, where waiting would freeze it; {hint}")
        self.run.changes.wait_until(ready)

    async def await_until(self, ready: Callable[[], bool]) -> None:
        await self.run.changes.await_until(ready)
