"""`ProgramState`: what a program sees of its run — text, variables, messages — and how to
read them while the run goes on.

A state is a view onto one branch of a `Run` (run.py): the root state onto the trunk, each
fork branch's state onto its branch. The run owns the lifecycle (body, error, branches,
settle); this class is the read/write API only. Reads wait for values still being computed
when waiting is safe (a thread), and raise `PendingValueError` on the event loop that drives
the state (await `aget_var` / `wait` there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from tines.ir import Expr, Fork
from tines.state_base import ProgramStateGroup, StateBase

if TYPE_CHECKING:
    from tines.branch import Branch


class ProgramState(StateBase):
    """A program run's state (made by `Program.run`/`arun`/`run_batch` and by `fork`, not
    by user code). `ret_value` is what the program body returned (root states only)."""

    def __init__(self, branch: Branch) -> None:
        self._branch = branch
        self.backend = branch.run.backend
        self.ret_value: Any = None

    # ---- appending -----------------------------------------------------------------------

    def _submit(self, node: Expr) -> None:
        self._branch.submit(node)

    def fork(self, size: int = 1) -> ProgramStateGroup:
        """`size` branches starting from this state's content once it is computed. The
        trunk is prefilled once (one backend `warm`) before the branches' requests."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"fork: size must be a positive integer, got {size!r}")
        states = self._branch.run.fork(size)
        self._submit(Fork(tuple(state._branch for state in states)))
        return ProgramStateGroup(states, self)

    def _join(self, states: tuple[Any, ...], mode: str) -> None:
        self._branch.join(tuple(state._branch for state in states), mode)

    # ---- waiting -------------------------------------------------------------------------

    def sync(self) -> None:
        """Block until every appended node has run (SGLang's `sync`)."""
        self._branch.block_until(self._branch.quiet, "the state", "use `await s.wait()`")

    async def wait(self) -> None:
        """Await until every appended node has run."""
        await self._branch.await_until(self._branch.quiet)

    # ---- reading -------------------------------------------------------------------------

    def get_var(self, name: str) -> Any:
        """The variable's value (see `tines.gen` for its type); waits for it if needed."""
        branch = self._branch
        branch.block_until(lambda: branch.has(name) or branch.quiet(), f"variable {name!r}",
                           f"write the program as `async def` and use "
                           f"`await s.aget_var({name!r})`")
        return self._lookup(name)

    async def aget_var(self, name: str) -> Any:
        branch = self._branch
        await branch.await_until(lambda: branch.has(name) or branch.quiet())
        return self._lookup(name)

    def get_meta_info(self, name: str) -> Any:
        """GenMeta / SelectMeta of a variable (a list of them after a gathering join)."""
        self.get_var(name)
        return self._branch.frame.meta.get(name)

    async def aget_meta_info(self, name: str) -> Any:
        await self.aget_var(name)
        return self._branch.frame.meta.get(name)

    def _lookup(self, name: str) -> Any:
        table, error = self._branch.frame.variables, self.error()
        if name in table and not (error is not None and
                                  self._branch.interpreter.is_pending(name)):
            return table[name]
        if error is not None:
            raise KeyError(f"no variable {name!r}: the program failed ({error})") from error
        known = ", ".join(sorted(table)) or "none"
        raise KeyError(f"no variable {name!r} (variables: {known})")

    def set_var(self, name: str, value: Any) -> None:
        self._branch.frame.set_var(name, value)
        self._branch.run.changes.notify()

    __getitem__ = get_var
    __setitem__ = set_var

    def __contains__(self, name: str) -> bool:
        return name in self._branch.frame.variables

    def text(self) -> str:
        """The whole text so far, once every appended node has run."""
        self.sync()
        return self._branch.frame.text

    def messages(self) -> list[dict[str, str]]:
        """Chat messages ({"role", "content"}) of the roles closed so far."""
        self.sync()
        return [dict(m) for m in self._branch.frame.messages]

    def variables(self) -> dict[str, Any]:
        self.sync()
        return dict(self._branch.frame.variables)

    def error(self) -> BaseException | None:
        """The exception that stopped this state (its program body or one of its nodes)."""
        return self._branch.error()

    def text_iter(self, var_name: str | None = None) -> Iterator[str]:
        """Pieces of the text (or of one variable) as they are decoded; they concatenate to
        the final text. Without streaming, one piece at the end."""
        from tines.stream import iter_text
        return iter_text(self._branch, var_name)

    def text_async_iter(self, var_name: str | None = None) -> AsyncIterator[str]:
        """`text_iter` for `async for`, without a thread."""
        from tines.stream import aiter_text
        return aiter_text(self._branch, var_name)

    def __repr__(self) -> str:
        text = self._branch.frame.text
        return f"ProgramState({text[-60:]!r})" if len(text) <= 60 else \
            f"ProgramState(...{text[-60:]!r})"
