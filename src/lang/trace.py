"""Tracing: run a program's body against a recording state to get its request graph,
without a model.

Arguments not given to `trace` are `Symbol`s, and so is every variable read: they can be
appended (`s += "Q: " + question`) but not looked at — an f-string, `str()`, a comparison
or an `if` on them raises `TracingError`, since their value exists only in a real run.
`static_prefix` traces with every (unbound) argument symbolic and stops at the first node
that is not static text: what remains is the text all runs share.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, NoReturn

from tines.backend import Backend
from tines.errors import TracingError
from tines.graph import TraceGraph, _short
from tines.ir import (Expr, Gen, RoleBegin, RoleEnd, Select, Seq, Text, VarScopeBegin,
                      VarScopeEnd)
from tines.roles import close_role, open_role
from tines.state_base import ProgramStateGroup, StateBase

if TYPE_CHECKING:
    from tines.program import Program


class Symbol(Expr):
    """A value known only at run time: `kind` is "arg" (a program argument) or "var"."""

    __slots__ = ("kind", "name")

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name

    def __repr__(self) -> str:
        return f"<traced {'argument' if self.kind == 'arg' else 'variable'} {self.name!r}>"

    def _refuse(self, action: str) -> NoReturn:
        if self.kind == "arg":
            raise TracingError(
                f"argument {self.name!r} has no value while tracing, so {action} cannot run. "
                f"Compose text with + (s += \"Q: \" + {self.name}) instead of an f-string, "
                f"str() or %-formatting, or give the argument a value: prog.trace({self.name}=...)")
        raise TracingError(f"variable {self.name!r} is generated at run time, so {action} "
                           f"cannot run while tracing (a trace cannot follow control flow "
                           f"that depends on generated values)")

    def __format__(self, spec: str) -> str:
        self._refuse("an f-string or str.format over it")

    def __str__(self) -> str:
        self._refuse("str() of it")

    def __bool__(self) -> bool:
        self._refuse("a truth test on it")

    def __eq__(self, other: object) -> bool:
        self._refuse("a comparison with it")

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__

    def __hash__(self) -> int:  # a dict lookup (TOOLS[s["action"]]) would be a bare KeyError
        self._refuse("using it as a dict key or set member")

    def __len__(self) -> int:
        self._refuse("len() of it")

    def __iter__(self) -> Any:
        self._refuse("iterating over it")

    def __getitem__(self, key: Any) -> Any:
        self._refuse("indexing it")

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        self._refuse(f".{attr}")


class _NoMarkers:
    """Role markers when tracing without a backend: roles become `role` nodes."""

    default_system_prompt = None

    def role_markers(self, role: str) -> tuple[str, str]:
        return "", ""


class _StopTrace(Exception):
    """The first node that is not static text, in prefix-only tracing."""


class TraceState(StateBase):
    """Records what a program would do into `graph` (one chain of nodes per state)."""

    def __init__(self, graph: TraceGraph, backend: Backend | None, *, prefix_only: bool = False,
                 tail: int | None = None, parent: TraceState | None = None) -> None:
        self.graph, self.backend, self.prefix_only = graph, backend, prefix_only
        self._tail, self._tail_is_text = tail, False
        self._role = parent._role if parent else None
        self._num_messages = parent._num_messages if parent else 0
        self._variables: set[str] = set(parent._variables) if parent else set()
        self._assigned: list[str] = []
        self._joined = False

    def _add(self, kind: str, label: str, after: list[int | None] | None = None,
             **data: Any) -> int:
        if self.prefix_only:
            raise _StopTrace
        self._tail = self.graph.add(kind, label, [self._tail] if after is None else after, **data)
        self._tail_is_text = False
        return self._tail

    def _text(self, value: str) -> None:
        if not value:
            return
        if self._tail_is_text and self._tail is not None:
            self.graph.extend_text(self._tail, value)
            return
        self._tail = self.graph.add("text", _short(value), [self._tail], text=value)
        self._tail_is_text = True

    def _marker(self, text: str, label: str) -> None:
        """A role marker: its text with a backend to render it, else a `role` node."""
        if self.backend is not None:
            self._text(text)
        else:
            self._add("role", label)

    def _declare(self, name: str | None) -> None:
        if name is not None:
            self._variables.add(name)
            self._assigned.append(name)

    def _submit(self, node: Expr) -> None:
        if self._joined:
            raise ValueError("cannot append to a fork branch after join(); append to the "
                             "parent state instead")
        markers = self.backend or _NoMarkers()
        match node:
            case Seq(items):
                for item in items:
                    self._submit(item)
            case Text(value):
                self._text(value)
            case Symbol(kind=kind, name=name):
                self._add(kind, name, name=name)
            case Gen(name=name, dtype=dtype, model=model):
                params = node.overrides()
                shown = ", ".join(f"{k}={v!r}" for k, v in params.items() if k != "json_schema")
                typed = model.__name__ if model else dtype.__name__ if dtype else ""
                label = " ".join(x for x in (name or "(unnamed)", typed, shown) if x)
                self._add("gen", _short(label), name=name, params=params)
                self._declare(name)
            case Select(name=name, choices=choices):
                label = f"{name or '(unnamed)'} [{' | '.join(choices)}]"
                self._add("select", _short(label), name=name, choices=choices,
                          method=node.method.name)
                self._declare(name)
            case RoleBegin(role):
                opening = open_role(markers, role, self._role, self._num_messages)
                self._num_messages += opening.system_message is not None
                self._role = role
                self._marker(opening.text, f"{role} begin")
            case RoleEnd(role):
                end = close_role(markers, role, self._role)
                self._role, self._num_messages = None, self._num_messages + 1
                self._marker(end, f"{role} end")
            case VarScopeBegin():
                pass
            case VarScopeEnd(name):
                self._declare(name)
            case _:
                raise TypeError(f"cannot trace {node!r}")

    def fork(self, size: int = 1) -> ProgramStateGroup:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"fork: size must be a positive integer, got {size!r}")
        fork_id = self._add("fork", f"{size} branches", size=size)
        branches = [TraceState(self.graph, self.backend, tail=fork_id, parent=self)
                    for _ in range(size)]
        return ProgramStateGroup(branches, self)

    def _join(self, branches: tuple[Any, ...], mode: str) -> None:
        for branch in branches:
            branch._joined = True
        after = [b._tail for b in branches]
        if self._tail is not None and self.graph.nodes[self._tail].kind != "fork":
            after.append(self._tail)  # the parent appended after forking
        self._add("join", mode, after=after, mode=mode)
        if mode == "gather_variable":
            for branch in branches:
                for name in branch._assigned:
                    self._declare(name)

    def get_var(self, name: str) -> Symbol:
        if name not in self._variables:
            raise KeyError(f"no variable {name!r} is set before this point of the program")
        return Symbol("var", name)

    __getitem__ = get_var

    async def aget_var(self, name: str) -> Symbol:
        return self.get_var(name)

    def set_var(self, name: str, value: Any) -> None:
        self._declare(name)

    __setitem__ = set_var

    def __contains__(self, name: str) -> bool:
        return name in self._variables

    def sync(self) -> None:
        pass

    async def wait(self) -> None:
        pass

    def _no_value(self, what: str) -> NoReturn:
        raise TracingError(f"s.{what}() has no value while tracing: a trace records the "
                           f"requests a run would make without making them")

    def text(self) -> str:
        self._no_value("text")

    def messages(self) -> list[dict[str, str]]:
        self._no_value("messages")

    def get_meta_info(self, name: str) -> Any:
        self._no_value("get_meta_info")


def _call(program: Program, state: TraceState, args: tuple, kwargs: dict[str, Any],
          symbolic_defaults: bool) -> None:
    try:
        bound = program.signature.bind_partial(state, *args, **{**program.bound, **kwargs})
    except TypeError as e:
        raise TypeError(f"{program.name}.trace(): {e}") from None
    for param in list(program.signature.parameters.values())[1:]:
        if param.name in bound.arguments or param.kind in (param.VAR_POSITIONAL,
                                                           param.VAR_KEYWORD):
            continue
        has_default = param.default is not param.empty
        bound.arguments[param.name] = param.default if has_default and not symbolic_defaults \
            else Symbol("arg", param.name)
    result = program.func(*bound.args, **bound.kwargs)
    if inspect.iscoroutine(result):
        try:
            result.send(None)
        except StopIteration:
            return
        result.close()
        raise TracingError(f"{program.name} awaited something other than the state's own "
                           f"methods; a trace cannot run it")


def trace_program(program: Program, args: tuple, kwargs: dict[str, Any],
                  backend: Backend | None) -> TraceGraph:
    """The request graph of `program(*args, **kwargs)`, missing arguments symbolic."""
    graph = TraceGraph()
    _call(program, TraceState(graph, backend), args, kwargs, symbolic_defaults=False)
    return graph


def static_prefix(program: Program, backend: Backend) -> str:
    """The text every run of `program` starts with (bound arguments are static, the rest
    symbolic), rendered through `backend`'s chat template. "" when there is none."""
    graph = TraceGraph()
    try:
        _call(program, TraceState(graph, backend, prefix_only=True), (), {},
              symbolic_defaults=True)
    except Exception:  # _StopTrace, or code a trace cannot follow: the prefix so far stands
        pass
    return graph.static_prefix()
