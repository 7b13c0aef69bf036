"""`Program`: a Python function over a state, made runnable (`@tines.program`).

`run` executes the body in the caller's thread (fork branches on their own threads);
`arun` executes it on the running event loop, every node an awaited backend call. A body
may be `def` (SGLang style) or `async def` (it can then `await s.aget_var(...)`); both run
under both. Keyword arguments of `run`/`run_batch`/`arun` that are not the program's own
parameters are run-wide sampling defaults (`temperature=0`, `max_new_tokens=64`, ...).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from tines.backend import Backend
from tines.defaults import get_default_backend
from tines.params import CONSTRAINTS, is_sampling_name, normalize, resolve
from tines.run import Body, Run
from tines.state import ProgramState
from tines.state_base import StateBase


class Program:
    """A program: `func(s, *args, **kwargs)` with `s` the state it appends to."""

    def __init__(self, func: Callable[..., Any], bound: dict[str, Any] | None = None) -> None:
        if not callable(func):
            raise TypeError(f"program: expected a function, got {type(func).__name__}")
        self.func = func
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY,
                                                params[0].POSITIONAL_OR_KEYWORD):
            raise TypeError(f"program {func.__name__!r}: the first parameter must be the state "
                            f"(def {func.__name__}(s, ...))")
        named = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        self.arg_names = [p.name for p in params[1:] if p.kind not in named]
        self._var_keyword = any(p.kind == p.VAR_KEYWORD for p in params)
        self.bound = dict(bound or {})
        self.is_async = inspect.iscoroutinefunction(func)
        self.name: str = getattr(func, "__name__", "program")
        functools.update_wrapper(self, func)

    def __repr__(self) -> str:
        return f"<tines.program {self.name}>"

    def bind(self, **kwargs: Any) -> Program:
        """A copy with some arguments fixed (they count as static when tracing)."""
        unknown = [k for k in kwargs if k not in self.arg_names and not self._var_keyword]
        if unknown:
            raise TypeError(f"{self.name}.bind: unknown argument(s) {', '.join(unknown)}")
        return Program(self.func, {**self.bound, **kwargs})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """With a state first: run the body on that state (a nested program). Otherwise
        `run(*args, **kwargs)`."""
        if args and isinstance(args[0], StateBase):
            return self.func(args[0], *args[1:], **{**self.bound, **kwargs})
        return self.run(*args, **kwargs)

    # ---- arguments -----------------------------------------------------------------------

    def split_kwargs(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(program arguments, sampling defaults as SamplingParams fields)."""
        own, sampling = {}, {}
        for key, value in kwargs.items():
            if key in self.arg_names or (self._var_keyword and not is_sampling_name(key)):
                own[key] = value
            elif is_sampling_name(key):
                sampling[key] = value
            else:
                raise TypeError(f"{self.name}() got an unexpected argument {key!r}: neither a "
                                f"parameter of the program nor a sampling parameter")
        return own, sampling_defaults(sampling, f"{self.name}.run")

    def bind_args(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[tuple, dict]:
        """Check `args`/`kwargs` against the signature; TypeError names the problem."""
        merged = {**self.bound, **kwargs}
        try:
            self.signature.bind(None, *args, **merged)
        except TypeError as e:
            raise TypeError(f"{self.name}(): {e}") from None
        return tuple(args), merged

    # ---- running -------------------------------------------------------------------------

    def run(self, *args: Any, backend: Backend | None = None, stream: bool = False,
            **kwargs: Any) -> ProgramState:
        """Run to completion (or, with `stream=True`, start it in the background and return
        the state for `text_iter`). Errors of the program raise here (or at the end of the
        stream)."""
        own, defaults = self.split_kwargs(kwargs)
        args, own = self.bind_args(args, own)
        backend = backend or get_default_backend()
        if self.is_async and not stream:
            _require_no_loop(self.name)
        run = Run(backend, on_loop=self.is_async, stream=stream, defaults=defaults)
        run.execute(self.body(args, own), is_async=self.is_async, background=stream,
                    name=f"tines-{self.name}")
        return run.root if stream else run.result()

    async def arun(self, *args: Any, backend: Backend | None = None, stream: bool = False,
                   **kwargs: Any) -> ProgramState:
        """`run` on the running event loop: every request is awaited; no threads."""
        own, defaults = self.split_kwargs(kwargs)
        args, own = self.bind_args(args, own)
        run = Run(backend or get_default_backend(), on_loop=True, stream=stream,
                  defaults=defaults)
        await run.aexecute(self.body(args, own), is_async=self.is_async, background=stream)
        return run.root if stream else run.result()

    def body(self, args: tuple, kwargs: dict[str, Any]) -> Body:
        """The program applied to checked arguments: a function of the state (for a `Run`)."""
        return lambda state: self.func(state, *args, **kwargs)

    def run_batch(self, batch: Sequence[dict[str, Any] | Sequence[Any]], *,
                  backend: Backend | None = None, num_threads: int | str = "auto",
                  progress_bar: bool = True, **sampling: Any) -> list[ProgramState]:
        """Run once per item (a dict of keyword arguments or a list of positional ones),
        concurrently. The traced static prefix is prefilled once first. A failing item
        does not stop the others: its state's `error()` says what happened."""
        from tines.batch import run_batch
        return run_batch(self, batch, backend=backend, num_threads=num_threads,
                         progress_bar=progress_bar, defaults=sampling_defaults(
                             sampling, f"{self.name}.run_batch"))

    async def arun_batch(self, batch: Sequence[dict[str, Any] | Sequence[Any]], *,
                         backend: Backend | None = None, max_concurrency: int | None = None,
                         progress_bar: bool = True, **sampling: Any) -> list[ProgramState]:
        """`run_batch` on the running event loop (tasks, no threads)."""
        from tines.batch import arun_batch
        return await arun_batch(self, batch, backend=backend, max_concurrency=max_concurrency,
                                progress_bar=progress_bar, defaults=sampling_defaults(
                                    sampling, f"{self.name}.arun_batch"))

    def trace(self, *args: Any, backend: Backend | None = None, **kwargs: Any) -> Any:
        """The program's request graph, built without a model. Arguments not given are
        symbolic; with a `backend`, roles render through its chat template."""
        from tines.trace import trace_program
        return trace_program(self, args, kwargs, backend)


def sampling_defaults(sampling: dict[str, Any], where: str) -> dict[str, Any]:
    """Run-wide sampling defaults, validated; constraints belong to a single gen."""
    defaults = normalize(sampling, where)
    constrained = sorted(CONSTRAINTS & defaults.keys())
    if constrained:
        raise ValueError(f"{where}: {', '.join(constrained)} constrains one gen; pass it to "
                         f"tines.gen(...) instead of the run")
    resolve(defaults, {})  # ValueError naming a bad field, before anything runs
    return defaults


def _require_no_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"{name} is an async program and an event loop is running here: use "
                       f"`await {name}.arun(...)`")


def program(func: Callable[..., Any] | None = None) -> Any:
    """Decorator: `@tines.program` (or `@tines.program()`) makes a `Program`."""
    if func is None:
        return Program
    return Program(func)


function = program  # SGLang's name
