"""The program-facing half of a state, shared by running states and tracing states.

A program body only composes: `s += expr`, roles, var scopes and forks. Both
`ProgramState` (its run's `Branch` runs the nodes) and `TraceState` (records them) implement
`_submit`, `fork` and `_join`; everything here is written once on top of those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tines.ir import (JOIN_MODES, Expr, RoleBegin, RoleEnd, Seq, VarScopeBegin, VarScopeEnd,
                      as_expr)


class StateBase:
    __slots__ = ()

    def _submit(self, node: Expr) -> None:
        raise NotImplementedError

    def fork(self, size: int = 1) -> ProgramStateGroup:
        raise NotImplementedError

    def _join(self, branches: tuple[Any, ...], mode: str) -> None:
        raise NotImplementedError

    def __iadd__(self, other: object) -> StateBase:
        self._submit(as_expr(other))
        return self

    def _role(self, role: str, expr: object) -> Any:
        if expr is None:
            return self._role_scope(role)
        self._submit(Seq.of(RoleBegin(role), expr, RoleEnd(role)))
        return None

    @contextmanager
    def _role_scope(self, role: str) -> Iterator[None]:
        self._submit(RoleBegin(role))
        yield
        self._submit(RoleEnd(role))

    def system(self, expr: object = None) -> Any:
        """`s.system("text")` appends a system message; `with s.system(): ...` opens one."""
        return self._role("system", expr)

    def user(self, expr: object = None) -> Any:
        """`s.user("text")` appends a user message; `with s.user(): ...` opens one."""
        return self._role("user", expr)

    def assistant(self, expr: object = None) -> Any:
        """`s.assistant(gen("a"))` appends an assistant message; `with s.assistant(): ...`."""
        return self._role("assistant", expr)

    @contextmanager
    def var_scope(self, name: str) -> Iterator[None]:
        """Everything appended inside the block becomes variable `name` (as text)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"var_scope: name must be a non-empty string, got {name!r}")
        self._submit(VarScopeBegin(name))
        yield
        self._submit(VarScopeEnd(name))


class ProgramStateGroup:
    """The branches made by `s.fork(n)`: index them, append to all with `+=`, then `join`.

    `forks += expr` appends `expr` to every branch; `forks += lambda i: expr_i` appends the
    callable's result for branch `i`; `forks += [e0, e1, ...]` one item per branch.
    """

    def __init__(self, states: Sequence[Any], parent: StateBase) -> None:
        self.states = list(states)
        self.parent = parent
        self._joined = False

    def __len__(self) -> int:
        return len(self.states)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.states)

    def __getitem__(self, i: int) -> Any:
        return self.states[i]

    def __setitem__(self, i: int, value: Any) -> None:
        # `forks[i] += x` rebinds forks[i] to the same state after its __iadd__.
        if value is not self.states[i]:
            raise TypeError("fork branches cannot be replaced; append with forks[i] += ...")

    def __iadd__(self, other: object) -> ProgramStateGroup:
        if isinstance(other, (str, Expr)):
            for state in self.states:
                state += other
        elif isinstance(other, (list, tuple)):
            if len(other) != len(self.states):
                raise ValueError(f"forks += list: got {len(other)} items for "
                                 f"{len(self.states)} branches")
            for state, item in zip(self.states, other):
                state += item
        elif callable(other):
            make: Callable[[int], object] = other
            for i, state in enumerate(self.states):
                state += make(i)
        else:
            raise TypeError(f"forks += expects an expression, a list with one per branch, "
                            f"or a function of the branch index; got {type(other).__name__}")
        return self

    def join(self, mode: str = "gather_variable") -> None:
        """End the branches. `gather_variable`: every variable a branch set becomes a list on
        the parent (one item per branch, None where a branch did not set it).
        `concate_and_append`: the parent's text gets each branch's new text, in order."""
        if mode not in JOIN_MODES:
            raise ValueError(f"join: mode must be 'gather_variable' or 'concate_and_append', "
                             f"got {mode!r}")
        if self._joined:
            raise ValueError("join: these branches were already joined")
        self._joined = True
        self.parent._join(tuple(self.states), mode)
