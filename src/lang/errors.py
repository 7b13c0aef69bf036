"""Errors the language raises beyond ValueError/TypeError."""

from __future__ import annotations


class PendingValueError(RuntimeError):
    """A value was read on an event loop before it was computed; a blocking wait there would
    freeze the loop. Await it instead (`await s.aget_var(name)`, `await s.wait()`)."""


class TracingError(TypeError):
    """The program did something a trace cannot follow without running the model, such as
    formatting a traced argument in an f-string or branching on a generated value."""
