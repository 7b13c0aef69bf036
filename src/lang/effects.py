"""Requests the interpreter asks for, and the two drivers that perform them.

The interpreter's node handlers are generators that `yield` an effect and receive its
result (sans-IO): the same handler runs under `drive` (blocking backend calls, used by
`run` and thread-driven fork branches) and under `adrive` (awaits, used by `arun`). Only
this file knows the difference between the two paths. An effect that raises is raised in
the handler, at its `yield`, so the handler may say which node asked for it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tines.backend import Backend
from tines.runtime.outputs import RequestOutput, StreamDelta
from tines.runtime.sampling_params import SamplingParams

if TYPE_CHECKING:
    from tines.branch import Branch


@dataclass(frozen=True, slots=True)
class Generate:
    text: str
    params: SamplingParams


@dataclass(frozen=True, slots=True)
class Stream:
    """Generate with `on_delta` called for every text piece; results in the RequestOutput."""

    text: str
    params: SamplingParams
    on_delta: Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Score:
    text: str
    choices: tuple[str, ...]
    unconditional: bool


@dataclass(frozen=True, slots=True)
class Warm:
    text: str


@dataclass(frozen=True, slots=True)
class ConcatAndAppend:
    trunk: str
    branches: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AwaitBranches:
    """Wait until every `Branch` has run all its queued nodes."""

    branches: tuple[Branch, ...]


Steps = Generator[Any, Any, None]
_DONE = object()


def _resume(steps: Steps, result: Any, error: Exception | None) -> Any:
    """The handler's next effect given the last one's result (or error, raised in the
    handler); `_DONE` once it returned."""
    try:
        return steps.send(result) if error is None else steps.throw(error)
    except StopIteration:
        return _DONE


def drive(steps: Steps, backend: Backend) -> None:
    """Run a handler to completion, performing its effects with blocking calls."""
    result, error = None, None
    while (effect := _resume(steps, result, error)) is not _DONE:
        try:
            result, error = _perform(effect, backend), None
        except Exception as e:
            result, error = None, e


async def adrive(steps: Steps, backend: Backend) -> None:
    """Run a handler to completion on the event loop, awaiting its effects."""
    result, error = None, None
    while (effect := _resume(steps, result, error)) is not _DONE:
        try:
            result, error = await _aperform(effect, backend), None
        except Exception as e:
            result, error = None, e


def _perform(effect: Any, backend: Backend) -> Any:
    match effect:
        case Generate(text, params):
            return backend.generate(text, params)
        case Stream(text, params, on_delta):
            final = None
            for delta in backend.stream(text, params):
                final = _forward(delta, on_delta, final)
            return _final(final)
        case Score(text, choices, unconditional):
            return backend.score(text, list(choices), unconditional)
        case Warm(text):
            return backend.warm(text)
        case ConcatAndAppend(trunk, branches):
            return backend.concat_and_append(trunk, list(branches))
        case AwaitBranches(branches):
            for branch in branches:  # idle is enough: join came after their last append
                branch.wait_idle()
            return None
    raise TypeError(f"unknown effect {effect!r}")


async def _aperform(effect: Any, backend: Backend) -> Any:
    match effect:
        case Generate(text, params):
            return await backend.agenerate(text, params)
        case Stream(text, params, on_delta):
            final = None
            async for delta in backend.astream(text, params):
                final = _forward(delta, on_delta, final)
            return _final(final)
        case Score(text, choices, unconditional):
            return await backend.ascore(text, list(choices), unconditional)
        case Warm(text):
            return await backend.awarm(text)
        case ConcatAndAppend(trunk, branches):
            return await backend.aconcat_and_append(trunk, list(branches))
        case AwaitBranches(branches):
            for branch in branches:
                await branch.await_idle()
            return None
    raise TypeError(f"unknown effect {effect!r}")


def _forward(delta: StreamDelta, on_delta: Callable[[str], None],
             final: RequestOutput | None) -> RequestOutput | None:
    """Pass the first completion's new text on; keep the last full output seen."""
    if delta.index == 0 and delta.text:
        on_delta(delta.text)
    return delta.output or final


def _final(output: RequestOutput | None) -> RequestOutput:
    if output is None:
        raise RuntimeError("the backend's stream ended without a final output")
    return output
