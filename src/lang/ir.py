"""The intermediate representation: what `s += ...` appends.

Every node is a frozen dataclass; the interpreter (`interpreter.py`) dispatches on the node's
type and the tracer (`trace.py`) records it. Nodes compose with `+` into a `Seq`, and plain
strings become `Text`, so `"Q: " + q + gen("a")` is one expression. A node never holds
results: variables and text live in the program state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tines.choices import ChoicesMethod


class Expr:
    """Base of every node; `a + b` builds a flat `Seq`."""

    __slots__ = ()

    def __add__(self, other: object) -> Seq:
        return Seq.of(self, other)

    def __radd__(self, other: object) -> Seq:
        return Seq.of(other, self)


@dataclass(frozen=True, slots=True)
class Text(Expr):
    value: str


@dataclass(frozen=True, slots=True)
class Gen(Expr):
    """Decode from the model. `params` are SamplingParams overrides as sorted (field, value)
    pairs (the run's defaults fill the rest); `dtype` (int/float/bool/str) or `model` (a
    pydantic class) converts the decoded text into the variable's value."""

    name: str | None
    params: tuple[tuple[str, Any], ...]
    dtype: type | None = None
    model: type | None = None

    def overrides(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True, slots=True)
class Select(Expr):
    """Pick one of `choices` by scoring each continuation of the text with `method`."""

    name: str | None
    choices: tuple[str, ...]
    method: ChoicesMethod
    temperature: float = 0.0


@dataclass(frozen=True, slots=True)
class RoleBegin(Expr):
    role: str


@dataclass(frozen=True, slots=True)
class RoleEnd(Expr):
    role: str


@dataclass(frozen=True, slots=True)
class VarScopeBegin(Expr):
    name: str


@dataclass(frozen=True, slots=True)
class VarScopeEnd(Expr):
    name: str


@dataclass(frozen=True, slots=True)
class Fork(Expr):
    """Start `branches` (the `Branch`es behind the states `s.fork` made) from the state's
    current content. Internal: made by `ProgramState.fork`, never by user code."""

    branches: tuple[Any, ...]


JOIN_MODES = ("gather_variable", "concate_and_append")


@dataclass(frozen=True, slots=True)
class Join(Expr):
    """Wait for `branches`, then gather their variables (`gather_variable`) or append their
    new text (`concate_and_append`). Internal: made by `ProgramStateGroup.join`."""

    branches: tuple[Any, ...]
    mode: str


@dataclass(frozen=True, slots=True)
class Seq(Expr):
    """Nodes run in order. Never nested: `Seq.of` flattens."""

    items: tuple[Expr, ...]

    @staticmethod
    def of(*parts: object) -> Seq:
        items: list[Expr] = []
        for part in parts:
            node = as_expr(part)
            items.extend(node.items if isinstance(node, Seq) else (node,))
        return Seq(tuple(items))


def as_expr(value: object) -> Expr:
    """A string becomes `Text`; an `Expr` stays; anything else is a TypeError."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, str):
        return Text(value)
    if value is None:
        raise TypeError("cannot append None to a program state (s.user(...) and friends "
                        "already append; write `s.user(x)` or `s += tines.user(x)`)")
    raise TypeError(f"cannot append a {type(value).__name__} to a program state: append "
                    f"str(value), or a node made by tines.gen/select/user/...")


def assigned_names(node: Expr) -> list[str]:
    """The variables running `node` will set (a gathering Join's are known only later)."""
    if isinstance(node, Seq):
        return [name for item in node.items for name in assigned_names(item)]
    if isinstance(node, (Gen, Select)) and node.name is not None:
        return [node.name]
    if isinstance(node, VarScopeEnd):
        return [node.name]
    return []
