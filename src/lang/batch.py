"""`run_batch` and `arun_batch`: one program over many argument sets, concurrently.

Before the items start, the program is traced with symbolic arguments and the text every
item shares (the static prefix: system prompt, few-shot examples, ...) is prefilled once
with `backend.warm`, so the items' requests all hit the cache. Each item's errors stay on
its own state (`state.error()`); the batch always returns one state per item, in order.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from tines.backend import Backend
from tines.defaults import get_default_backend
from tines.run import Body, Run
from tines.state import ProgramState
from tines.trace import static_prefix

if TYPE_CHECKING:
    from tines.program import Program


def _item(program: Program, item: Any) -> tuple[tuple, dict[str, Any]]:
    if isinstance(item, dict):
        return program.bind_args((), item)
    if isinstance(item, (list, tuple)):
        return program.bind_args(tuple(item), {})
    raise TypeError(f"{program.name}.run_batch: each item must be a dict of keyword arguments "
                    f"or a list of positional ones, got {type(item).__name__}")


def _body(program: Program, item: Any, run: Run) -> Body | None:
    """The program applied to `item`; None, with `run` failed, if the item does not fit."""
    try:
        args, kwargs = _item(program, item)
    except TypeError as e:
        run.fail(e)
        return None
    return program.body(args, kwargs)


def _check_batch(batch: Any) -> list[Any]:
    if not isinstance(batch, Sequence) or isinstance(batch, (str, bytes)):
        raise TypeError(f"run_batch: expected a list of argument sets, got {type(batch).__name__}")
    return list(batch)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()  # not even a disabled tqdm: it would start its monitor thread
    from tqdm.auto import tqdm
    return tqdm(total=total)


def _num_threads(num_threads: int | str, num_items: int) -> int:
    if num_threads == "auto":
        return max(1, min(num_items, max(32, 8 * (os.cpu_count() or 1))))
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"run_batch: num_threads must be a positive integer or 'auto', "
                         f"got {num_threads!r}")
    return min(num_threads, max(1, num_items))


def run_batch(program: Program, batch: Sequence[Any], *, backend: Backend | None,
              num_threads: int | str, progress_bar: bool,
              defaults: dict[str, Any]) -> list[ProgramState]:
    items = _check_batch(batch)
    workers = _num_threads(num_threads, len(items))
    backend = backend or get_default_backend()
    if program.is_async:
        return asyncio.run(arun_batch(program, items, backend=backend, max_concurrency=workers,
                                      progress_bar=progress_bar, defaults=defaults))
    if len(items) > 1 and (prefix := static_prefix(program, backend)):
        backend.warm(prefix)

    def run_one(item: Any) -> ProgramState:
        run = Run(backend, on_loop=False, defaults=defaults)
        if (body := _body(program, item, run)) is not None:
            run.execute(body)
        return run.root

    with _progress(len(items), progress_bar) as bar, ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(run_one, item) for item in items]
        for future in futures:
            future.add_done_callback(lambda _: bar.update())
        return [future.result() for future in futures]


async def arun_batch(program: Program, batch: Sequence[Any], *, backend: Backend | None,
                     max_concurrency: int | None, progress_bar: bool,
                     defaults: dict[str, Any]) -> list[ProgramState]:
    items = _check_batch(batch)
    if max_concurrency is not None and (not isinstance(max_concurrency, int)
                                        or max_concurrency < 1):
        raise ValueError(f"arun_batch: max_concurrency must be a positive integer or None, "
                         f"got {max_concurrency!r}")
    backend = backend or get_default_backend()
    if len(items) > 1 and (prefix := static_prefix(program, backend)):
        await backend.awarm(prefix)
    limit = asyncio.Semaphore(max_concurrency or len(items) or 1)

    async def run_one(item: Any, bar: Any) -> ProgramState:
        run = Run(backend, on_loop=True, defaults=defaults)
        async with limit:
            if (body := _body(program, item, run)) is not None:
                await run.aexecute(body, is_async=program.is_async)
        bar.update()
        return run.root

    with _progress(len(items), progress_bar) as bar:
        return list(await asyncio.gather(*(run_one(item, bar) for item in items)))
