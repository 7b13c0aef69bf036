"""Who runs a state's nodes, and when.

- `InlineExecutor`: at `submit`, in the caller's thread; errors raise right there. The root
  state of `run()` uses it, so a program's `s["x"]` right after `s += gen("x")` needs no wait.
- `ThreadExecutor`: a queue drained by a short-lived worker thread (fork branches under
  `run()`, so branches run concurrently while the program body keeps appending).
- `TaskExecutor`: a queue drained by an asyncio task on the running loop (every state under
  `arun()`): no thread per program or branch.

Queued executors start closed for fork branches (`started=False`): nodes queue up until the
parent's interpreter reaches the fork and `start()`s them. After a node fails, the rest of
the queue is dropped and `error` is set; branches forked by dropped nodes are abandoned with
the same error, so nothing waits forever on a branch that can never start.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable

from tines.frame import Changes
from tines.ir import Expr, Fork


def abandon_forks(nodes: list[Expr], error: BaseException) -> None:
    """Fail the branches of every Fork among `nodes` (they will never be started)."""
    for node in nodes:
        if isinstance(node, Fork):
            for branch in node.branches:
                branch.abandon(error)


class InlineExecutor:
    error: BaseException | None = None

    def __init__(self, run: Callable[[Expr], None], changes: Changes) -> None:
        self._run = run
        self._changes = changes

    def submit(self, node: Expr) -> None:
        try:
            self._run(node)
        except BaseException as e:
            abandon_forks([node], e)
            raise

    def start(self) -> None:
        pass

    def idle(self) -> bool:
        return True

    def abandon(self, error: BaseException) -> None:
        pass


class _QueueExecutor:
    """Shared bookkeeping; subclasses say how a drain is spawned and how a node runs."""

    def __init__(self, changes: Changes, started: bool) -> None:
        self._changes = changes
        self._queue: deque[Expr] = deque()
        self._lock = threading.Lock()
        self._started = started
        self._active = False  # a drain is running
        self.error: BaseException | None = None

    def submit(self, node: Expr) -> None:
        with self._lock:
            if self.error is not None:
                abandon_forks([node], self.error)
                return  # dropped: this state already failed; the error surfaces on join/wait
            self._queue.append(node)
            self._kick()

    def start(self) -> None:
        with self._lock:
            self._started = True
            self._kick()

    def idle(self) -> bool:
        """Started, and no node running or queued (a failed executor has an empty queue)."""
        return self._started and not self._active and not self._queue

    def abandon(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
            dropped, self._queue = list(self._queue), deque()
            self._started = True
        abandon_forks(dropped, error)
        self._changes.notify()

    def _kick(self) -> None:  # holding the lock
        if self._started and not self._active and self._queue:
            self._active = True
            self._spawn()

    def _spawn(self) -> None:
        raise NotImplementedError

    def _next(self) -> Expr | None:
        with self._lock:
            if self._queue and self.error is None:
                return self._queue.popleft()
            self._active = False
        self._changes.notify()
        return None

    def _fail(self, node: Expr, error: BaseException) -> None:
        with self._lock:
            self.error = error
            dropped, self._queue = [node, *self._queue], deque()
        abandon_forks(dropped, error)


class ThreadExecutor(_QueueExecutor):
    def __init__(self, run: Callable[[Expr], None], changes: Changes, started: bool) -> None:
        super().__init__(changes, started)
        self._run = run

    def _spawn(self) -> None:
        threading.Thread(target=self._drain, name="tines-branch", daemon=True).start()

    def _drain(self) -> None:
        while (node := self._next()) is not None:
            try:
                self._run(node)
            except BaseException as e:  # reported on join / wait / end of run
                self._fail(node, e)


class TaskExecutor(_QueueExecutor):
    def __init__(self, run: Callable[[Expr], Awaitable[None]], changes: Changes,
                 started: bool) -> None:
        super().__init__(changes, started)
        self._run = run
        self._task: asyncio.Task | None = None  # held so the task is not garbage-collected

    def _spawn(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._active = False
            raise RuntimeError("a state of an async run (arun) was appended to outside its "
                               "event loop; append from the program or an async task") from None
        self._task = loop.create_task(self._drain())

    async def _drain(self) -> None:
        while (node := self._next()) is not None:
            try:
                await self._run(node)
            except asyncio.CancelledError as e:
                self._fail(node, e)
                self._next()  # marks the drain inactive and wakes waiters
                raise
            except Exception as e:
                self._fail(node, e)
