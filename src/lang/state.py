"""`ProgramState`: one run of a program — its text, variables, messages — and how to read
them while the run goes on.

Reads wait for values still being computed when waiting is safe (a thread), and raise
`PendingValueError` on the event loop that drives the state (await `aget_var` / `wait`
there). A run's states (the root and every fork branch) share one `Changes` signal.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from tines.backend import Backend
from tines.effects import adrive, drive
from tines.errors import PendingValueError
from tines.executor import InlineExecutor, TaskExecutor, ThreadExecutor
from tines.frame import Changes, Frame
from tines.interpreter import Interpreter
from tines.ir import Expr, Fork, Join
from tines.state_base import ProgramStateGroup, StateBase


class ProgramState(StateBase):
    """A program run. `executor` is "inline" (root of `run`), "thread" (branches under
    `run`) or "task" (everything under `arun`)."""

    def __init__(self, backend: Backend, *, executor: str = "inline", stream: bool = False,
                 defaults: dict[str, Any] | None = None, root: ProgramState | None = None,
                 started: bool = True) -> None:
        self.backend = backend
        self.ret_value: Any = None  # what the program body returned
        self._root = root or self
        self._changes: Changes = root._changes if root else Changes()
        self._interp = Interpreter(backend, self._changes, dict(defaults or {}), stream)
        self._async = executor == "task"
        if executor == "inline":
            self._exec: Any = InlineExecutor(self._run_node, self._changes)
        elif executor == "thread":
            self._exec = ThreadExecutor(self._run_node, self._changes, started)
        elif executor == "task":
            self._exec = TaskExecutor(self._arun_node, self._changes, started)
        else:
            raise ValueError(f"executor must be inline, thread or task, got {executor!r}")
        self._joined = False  # a branch whose join was submitted: nothing more comes
        self._error_reported = False
        # Root only: every branch of the run, the body's thread or task while it runs, and
        # its outcome.
        self._branches: list[ProgramState] = []
        self._body: threading.Thread | asyncio.Task | None = None
        self._done = False
        self._body_error: BaseException | None = None

    # ---- running nodes -------------------------------------------------------------------

    def _run_node(self, node: Expr) -> None:
        drive(self._interp.steps(node), self.backend)

    async def _arun_node(self, node: Expr) -> None:
        await adrive(self._interp.steps(node), self.backend)

    def _has(self, name: str) -> bool:
        """`name` is set and no queued node is about to set it again."""
        return name in self._interp.frame.variables and not self._interp.is_pending(name)

    def _submit(self, node: Expr) -> None:
        if self._joined:
            raise ValueError("cannot append to a fork branch after join(); append to the "
                             "parent state instead")
        self._interp.expect(node)
        self._exec.submit(node)

    def fork(self, size: int = 1) -> ProgramStateGroup:
        """`size` branches starting from this state's content once it is computed. The
        trunk is prefilled once (one backend `warm`) before the branches' requests."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"fork: size must be a positive integer, got {size!r}")
        kind = "task" if self._async else "thread"
        branches = [ProgramState(self.backend, executor=kind, stream=self._interp.stream,
                                 defaults=self._interp.defaults, root=self._root, started=False)
                    for _ in range(size)]
        self._root._branches.extend(branches)
        self._submit(Fork(tuple(branches)))
        return ProgramStateGroup(branches, self)

    def _join(self, branches: tuple[Any, ...], mode: str) -> None:
        for branch in branches:
            branch._joined = True
        self._submit(Join(branches, mode))

    def _start(self, frame: Frame) -> None:
        self._interp.frame = frame
        self._exec.start()

    def _abandon(self, error: BaseException) -> None:
        self._error_reported = True  # its cause is reported where it happened
        self._exec.abandon(error)

    def _take_error(self) -> BaseException | None:
        self._error_reported = True
        return self._exec.error

    # ---- waiting -------------------------------------------------------------------------

    def _body_elsewhere(self) -> bool:
        """The program body is still running, in another thread or task than the caller."""
        body = self._root._body
        if body is None:
            return False
        if isinstance(body, threading.Thread):
            return body is not threading.current_thread()
        try:
            return body is not asyncio.current_task()
        except RuntimeError:  # no loop in this thread
            return True

    def _quiet(self) -> bool:
        """Nothing queued or running, and no program body elsewhere that may add more."""
        return self._exec.idle() and not self._body_elsewhere()

    def _finished(self) -> bool:
        """Complete: the body can append nothing more, and every node has run."""
        return (self._joined or self._root._done) and self._exec.idle()

    def _block_until(self, ready: Callable[[], bool], what: str, hint: str) -> None:
        if ready():
            return
        if self._async:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass  # another thread than the loop's: blocking is safe
            else:
                raise PendingValueError(f"{what} is not computed yet, and this state runs on "
                                        f"the event loop, where waiting would freeze it; {hint}")
        self._changes.wait_until(ready)

    def _wait_idle(self) -> None:
        self._changes.wait_until(self._exec.idle)

    async def _await_idle(self) -> None:
        await self._changes.await_until(self._exec.idle)

    def sync(self) -> None:
        """Block until every appended node has run (SGLang's `sync`)."""
        self._block_until(self._quiet, "the state", "use `await s.wait()`")

    async def wait(self) -> None:
        """Await until every appended node has run."""
        await self._changes.await_until(self._quiet)

    # ---- reading -------------------------------------------------------------------------

    def get_var(self, name: str) -> Any:
        """The variable's value (see `tines.gen` for its type); waits for it if needed."""
        self._block_until(lambda: self._has(name) or self._quiet(), f"variable {name!r}",
                          f"write the program as `async def` and use "
                          f"`await s.aget_var({name!r})`")
        return self._lookup(self._interp.frame.variables, name)

    async def aget_var(self, name: str) -> Any:
        await self._changes.await_until(lambda: self._has(name) or self._quiet())
        return self._lookup(self._interp.frame.variables, name)

    def get_meta_info(self, name: str) -> Any:
        """GenMeta / SelectMeta of a variable (a list of them after a gathering join)."""
        self.get_var(name)
        return self._interp.frame.meta.get(name)

    async def aget_meta_info(self, name: str) -> Any:
        await self.aget_var(name)
        return self._interp.frame.meta.get(name)

    def _lookup(self, table: dict[str, Any], name: str) -> Any:
        error = self.error()
        if name in table and not (error is not None and self._interp.is_pending(name)):
            return table[name]
        if error is not None:
            raise KeyError(f"no variable {name!r}: the program failed ({error})") from error
        known = ", ".join(sorted(table)) or "none"
        raise KeyError(f"no variable {name!r} (variables: {known})")

    def set_var(self, name: str, value: Any) -> None:
        self._interp.frame.set_var(name, value)
        self._changes.notify()

    __getitem__ = get_var
    __setitem__ = set_var

    def __contains__(self, name: str) -> bool:
        return name in self._interp.frame.variables

    def text(self) -> str:
        """The whole text so far, once every appended node has run."""
        self.sync()
        return self._interp.frame.text

    def messages(self) -> list[dict[str, str]]:
        """Chat messages ({"role", "content"}) of the roles closed so far."""
        self.sync()
        return [dict(m) for m in self._interp.frame.messages]

    def variables(self) -> dict[str, Any]:
        self.sync()
        return dict(self._interp.frame.variables)

    def error(self) -> BaseException | None:
        """The exception that stopped this state (its program body or one of its nodes)."""
        return self._exec.error or (self._body_error if self._root is self else None)

    def text_iter(self, var_name: str | None = None) -> Iterator[str]:
        """Pieces of the text (or of one variable) as they are decoded; they concatenate to
        the final text. Without streaming, one piece at the end."""
        from tines.stream import iter_text
        return iter_text(self, var_name)

    def text_async_iter(self, var_name: str | None = None) -> AsyncIterator[str]:
        """`text_iter` for `async for`, without a thread."""
        from tines.stream import aiter_text
        return aiter_text(self, var_name)

    def __repr__(self) -> str:
        text = self._interp.frame.text
        return f"ProgramState({text[-60:]!r})" if len(text) <= 60 else \
            f"ProgramState(...{text[-60:]!r})"

    # ---- end of a run (root only) --------------------------------------------------------

    def _settle(self) -> None:
        """After the body returned: wait for every branch, surface unjoined failures."""
        for state in (self, *self._branches):
            state._wait_idle()
        self._conclude()

    async def _asettle(self) -> None:
        for state in (self, *self._branches):
            await state._await_idle()
        self._conclude()

    def _conclude(self) -> None:
        for branch in self._branches:
            error = branch._exec.error
            if error is not None and not branch._error_reported:
                branch._error_reported = True
                if self._body_error is None and self._exec.error is None:
                    self._body_error = RuntimeError(f"fork branch failed: {error}")
                    self._body_error.__cause__ = error
        if self._body_error is None and self._exec.error is not None:
            self._body_error = self._exec.error
        self._done, self._body = True, None
        self._changes.notify()
