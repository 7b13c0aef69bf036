"""Admission: how many submitted requests are still queued, counted where the limit holds.

Callers' threads count a request in when they submit it; the engine thread counts it out when
it leaves the waiting queue (admitted, finished, aborted or failed). So a burst of submits sees
every earlier one at once, before the engine has drained its inbox.
"""

from __future__ import annotations

import threading


class QueueFullError(RuntimeError):
    """The waiting queue is at `max_queue`; try again later."""


class Admission:
    def __init__(self, max_queue: int):
        self.max_queue = max_queue
        self._num_queued = 0
        self._lock = threading.Lock()

    @property
    def num_queued(self) -> int:
        return self._num_queued

    def enter(self, num_requests: int) -> None:
        """Count requests in (any thread); QueueFullError when the queue is already full. A
        batch is taken whole when there is room for its first request, so one batch larger
        than the limit still runs (it is scheduled by policy, not refused)."""
        with self._lock:
            if self._num_queued >= self.max_queue:
                raise QueueFullError(f"the queue is full ({self.max_queue} waiting requests)")
            self._num_queued += num_requests

    def leave(self, num_requests: int = 1) -> None:
        """Count requests out (the engine thread, or a caller whose submit failed)."""
        with self._lock:
            self._num_queued -= num_requests
