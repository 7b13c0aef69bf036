"""Runs IR nodes against one state's `Frame`, asking for backend work through effects.

`Interpreter.steps(node)` is a generator: it mutates the frame and yields an effect (see
effects.py) wherever it needs the backend. One node runs at a time per state, so the frame
needs no lock; every mutation is followed by `changes.notify()` for streaming readers.
"""

from __future__ import annotations

import math
import random
import threading
from typing import TYPE_CHECKING, Any

from tines.backend import Backend
from tines.effects import AwaitBranches, ConcatAndAppend, Generate, Score, Steps, Stream, Warm
from tines.frame import Changes, Frame
from tines.ir import (Expr, Fork, Gen, Join, RoleBegin, RoleEnd, Select, Seq, Text, VarScopeBegin,
                      VarScopeEnd, assigned_names)
from tines.meta import GenMeta, SelectMeta
from tines.params import converter, resolve
from tines.roles import close_role, open_role

if TYPE_CHECKING:
    from tines.branch import Branch


class Interpreter:
    """Owns a state's frame. Invariants: nodes run one at a time and in append order; the
    text only grows; a variable is set only after its node's backend work succeeded."""

    def __init__(self, backend: Backend, changes: Changes, defaults: dict[str, Any],
                 stream: bool) -> None:
        self.frame = Frame()
        self.backend = backend
        self.changes = changes
        self.defaults = defaults  # run-level sampling defaults, SamplingParams field names
        self.stream = stream
        # Variables that appended-but-unrun nodes will (re)set: an older value is stale.
        self._pending: dict[str, int] = {}
        self._pending_lock = threading.Lock()

    def expect(self, node: Expr) -> None:
        """Called when `node` is appended (before it runs): its variables become pending."""
        with self._pending_lock:
            for name in assigned_names(node):
                self._pending[name] = self._pending.get(name, 0) + 1

    def is_pending(self, name: str) -> bool:
        return self._pending.get(name, 0) > 0

    def steps(self, node: Expr) -> Steps:
        match node:
            case Text(value):
                self._append(value)
            case Seq(items):
                for item in items:
                    yield from self.steps(item)
            case Gen():
                yield from self._gen(node)
            case Select():
                yield from self._select(node)
            case RoleBegin(role):
                self._role_begin(role)
            case RoleEnd(role):
                self._role_end(role)
            case VarScopeBegin(name):
                self.frame.scopes[name] = len(self.frame.text)
            case VarScopeEnd(name):
                self._var_scope_end(name)
            case Fork(branches):
                yield from self._fork(branches)
            case Join(branches, mode):
                yield from self._join(branches, mode)
            case _:
                raise TypeError(f"the interpreter cannot run {node!r}")

    def _append(self, text: str) -> None:
        if text:
            self.frame.text += text
            self.changes.notify()

    def _set(self, name: str | None, value: Any, meta: Any) -> None:
        if name is not None:
            self.frame.set_var(name, value, meta)
            with self._pending_lock:
                if self._pending.get(name, 0) > 0:
                    self._pending[name] -= 1
            self.changes.notify()

    def _gen(self, node: Gen) -> Steps:
        frame, name = self.frame, node.name
        try:
            params = resolve(self.defaults, node.overrides())
        except ValueError as e:
            raise ValueError(f"gen {name!r}: {e}") from None
        if self.stream and params.n == 1:
            pieces: list[str] = []
            if name is not None:  # a regenerated variable is pending until its stream ends
                frame.variables.pop(name, None)
                frame.streaming[name] = ""

            def on_delta(piece: str) -> None:
                pieces.append(piece)
                frame.text += piece
                if name is not None:
                    frame.streaming[name] += piece
                self.changes.notify()

            out = yield from _named(name, Stream(frame.text, params, on_delta))
            texts = ["".join(pieces)]
        else:
            out = yield from _named(name, Generate(frame.text, params))
            texts = [c.text for c in out.outputs]
            if len(texts) != params.n:
                raise RuntimeError(f"gen {name!r}: asked for n={params.n} completions, the "
                                   f"backend returned {len(texts)}")
            if name is not None:
                frame.streaming[name] = texts[0]
            self._append(texts[0])
        convert = converter(name, node.dtype, node.model)
        values = [convert(t) for t in texts]
        self._set(name, values if params.n > 1 else values[0], GenMeta(out))

    def _select(self, node: Select) -> Steps:
        method = node.method
        result = yield Score(self.frame.text, node.choices, method.requires_unconditional)
        if len(result.logprobs) != len(node.choices):
            raise RuntimeError(f"select {node.name!r}: the backend scored "
                               f"{len(result.logprobs)} of {len(node.choices)} choices")
        logprobs = [[t.logprob for t in row] for row in result.logprobs]
        uncond = None if result.unconditional is None else \
            [[t.logprob for t in row] for row in result.unconditional]
        decision = method(logprobs, uncond)
        index = decision.index if node.temperature == 0 else \
            _sample(decision.scores, node.temperature)
        choice = node.choices[index]
        self._append(choice)
        self._set(node.name, choice, SelectMeta(
            method=method.name, choices=node.choices, scores=decision.scores, index=index,
            logprobs=result.logprobs, unconditional=result.unconditional,
            detail=decision.detail, prompt_tokens=result.num_prompt_tokens,
            cached_tokens=result.num_cached_tokens))

    def _role_begin(self, role: str) -> None:
        frame = self.frame
        opening = open_role(self.backend, role, frame.role, len(frame.messages))
        if opening.system_message is not None:
            frame.messages.append({"role": "system", "content": opening.system_message})
        self._append(opening.text)
        frame.role, frame.role_start = role, len(frame.text)

    def _role_end(self, role: str) -> None:
        frame = self.frame
        end = close_role(self.backend, role, frame.role)
        content = frame.text[frame.role_start:].lstrip()
        self._append(end)
        frame.messages.append({"role": role, "content": content})
        frame.role = None

    def _var_scope_end(self, name: str) -> None:
        if name not in self.frame.scopes:
            raise ValueError(f"var_scope {name!r} ended but never began")
        start = self.frame.scopes.pop(name)
        self._set(name, self.frame.text[start:], None)

    def _fork(self, branches: tuple[Branch, ...]) -> Steps:
        # The trunk is prefilled once, before any branch sends a request that extends it.
        if len(branches) > 1 and self.frame.text:
            yield Warm(self.frame.text)
        for branch in branches:
            branch.start(self.frame.branch())

    def _join(self, branches: tuple[Branch, ...], mode: str) -> Steps:
        yield AwaitBranches(branches)
        for i, branch in enumerate(branches):
            if (error := branch.take_error()) is not None:
                raise RuntimeError(f"fork branch {i} failed: {error}") from error
        frames: list[Frame] = [b.frame for b in branches]
        if mode == "gather_variable":
            names = list(dict.fromkeys(n for f in frames for n in f.assigned))
            for name in names:
                self._set(name, [f.variables.get(name) for f in frames],
                          [f.meta.get(name) for f in frames])
            return
        trunk = self.frame.text
        pieces = tuple(f.text[f.fork_start:] for f in frames)
        self._append("".join(pieces))
        if all(f.fork_start == len(trunk) for f in frames):
            yield ConcatAndAppend(trunk, pieces)


def _sample(scores: list[float], temperature: float) -> int:
    """Draw a choice from softmax(scores / temperature)."""
    top = max(scores)
    weights = [math.exp((s - top) / temperature) for s in scores]
    return random.choices(range(len(scores)), weights=weights)[0]


def _named(name: str | None, effect: Any) -> Steps:
    """Perform a gen's request; a refusal of it (a constraint the backend cannot compile,
    a bad value) is re-raised, same type, with a message that names the gen."""
    try:
        return (yield effect)
    except ValueError as e:
        prefix = f"gen {name!r}: "
        if e.args and isinstance(e.args[0], str) and not e.args[0].startswith(prefix):
            e.args = (prefix + e.args[0], *e.args[1:])
        raise
