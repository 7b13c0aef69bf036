"""The content of one program state, and how waiters learn it changed.

`Frame` is plain data mutated only by the state's interpreter (one node at a time).
Invariant: `text` only grows (roles, gens, joins all append), so a reader that remembers an
offset can stream it. `Changes` wakes blocking waiters (threads) and async waiters (tasks,
possibly on another thread's loop) after every mutation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Frame:
    text: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    role: str | None = None  # the open role, if any (roles do not nest)
    role_start: int = 0  # where the open role's content starts in `text`
    scopes: dict[str, int] = field(default_factory=dict)  # var_scope name -> start in `text`
    fork_start: int = 0  # len(text) when this branch was forked (0 for a root)
    assigned: list[str] = field(default_factory=list)  # names set since the fork, in order
    streaming: dict[str, str] = field(default_factory=dict)  # raw text of streamed variables

    def branch(self) -> Frame:
        """A copy for a fork branch: same text, variables, messages and role state."""
        return Frame(text=self.text, variables=dict(self.variables), meta=dict(self.meta),
                     messages=[dict(m) for m in self.messages], role=self.role,
                     role_start=self.role_start, scopes=dict(self.scopes),
                     fork_start=len(self.text))

    def set_var(self, name: str, value: Any, meta: Any = None) -> None:
        self.variables[name] = value
        if meta is not None:
            self.meta[name] = meta
        if name not in self.assigned:
            self.assigned.append(name)


class Changes:
    """A thread-safe 'something changed' signal with predicate waits for threads and tasks."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, event in waiters:
            if loop is here:
                event.set()
                continue
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    async def await_until(self, predicate: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            event = asyncio.Event()
            with self._cond:
                if predicate():
                    return
                self._async_waiters.append((loop, event))
            await event.wait()
