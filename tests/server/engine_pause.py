"""Hold a live engine between two steps, so a test can see requests live without racing
the model's speed: what is submitted meanwhile stays queued until the block ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tines.runtime.engine.engine import Engine


@contextmanager
def paused(engine: Engine) -> Iterator[None]:
    """The engine thread waits inside `engine.call` until the block exits."""
    entered, release = threading.Event(), threading.Event()

    def hold(core: object) -> None:
        entered.set()
        release.wait(120)

    holder = threading.Thread(target=engine.call, args=(hold,), daemon=True)
    holder.start()
    assert entered.wait(60), "the engine did not reach a step boundary"
    try:
        yield
    finally:
        release.set()
        holder.join(60)


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll `condition` until it holds (a test helper's deadline, never an assertion on speed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)
