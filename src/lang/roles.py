"""Chat roles rendered through the backend's template; shared by the interpreter and tracer.

Rules (SGLang's): roles do not nest; the first message that is not a system message, in a
chat without one, is preceded by the template's default system message if it has one.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class ChatMarkers(Protocol):
    """The part of `Backend` that renders roles."""

    @property
    def default_system_prompt(self) -> str | None: ...

    def role_markers(self, role: str) -> tuple[str, str]: ...


class Opening(NamedTuple):
    text: str  # what to append: [default system message] + the role's begin marker
    system_message: str | None  # the default system prompt, when one was inserted


def open_role(markers: ChatMarkers, role: str, current: str | None,
              num_messages: int) -> Opening:
    """Text that begins a `role` message; ValueError if a role is already open."""
    if current is not None:
        raise ValueError(f"nested roles: {role!r} begun inside the open {current!r} message "
                         f"(end it first)")
    prefix, system = "", None
    default = markers.default_system_prompt
    if num_messages == 0 and role != "system" and default:
        begin, end = markers.role_markers("system")
        prefix, system = begin + default + end, default
    return Opening(prefix + markers.role_markers(role)[0], system)


def close_role(markers: ChatMarkers, role: str, current: str | None) -> str:
    """Text that ends the open `role` message; ValueError if it is not the open one."""
    if current != role:
        opened = f"the open role is {current!r}" if current else "no role is open"
        raise ValueError(f"{role}_end without a matching {role}_begin ({opened})")
    return markers.role_markers(role)[1]
