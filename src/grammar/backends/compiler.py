"""A compiler for a foreign grammar backend with the surface of `GrammarCompiler`
(`compile`, `compile_async`, `close`): an LRU of compiled grammars keyed by spec, built on
one worker thread; errors are `GrammarError`s (ValueErrors, so a server answers 400)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class ForeignCompiler:
    def __init__(self, build: Callable[[Any], Any], max_cached: int = 128):
        self._build = build  # spec -> grammar with .matcher()
        self.max_cached = max_cached
        self._cache: OrderedDict[Any, Future] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tines-grammar-backend")

    def compile(self, spec) -> Any:
        fut, owner = self._lookup(spec)
        if owner:
            self._run(spec, fut)
        return fut.result()

    def compile_async(self, spec) -> Future:
        fut, owner = self._lookup(spec)
        if owner:
            self._executor.submit(self._run, spec, fut)
        return fut

    def _lookup(self, spec) -> tuple[Future, bool]:
        with self._lock:
            fut = self._cache.get(spec)
            if fut is not None:
                self._cache.move_to_end(spec)
                return fut, False
            fut = Future()
            fut.set_running_or_notify_cancel()
            self._cache[spec] = fut
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
            return fut, True

    def _run(self, spec, fut: Future) -> None:
        try:
            fut.set_result(self._build(spec))
        except Exception as e:  # noqa: BLE001 - delivered to every waiter
            fut.set_exception(e)
            if not isinstance(e, ValueError):
                with self._lock:
                    self._cache.pop(spec, None)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
