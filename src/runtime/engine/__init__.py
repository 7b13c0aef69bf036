"""tines.runtime.engine: the engine core, one step at a time on one thread.

`Engine` (engine.py) is the thread-safe facade callers use: it submits requests, hands back
results and streams, aborts, and reads stats. Everything else here runs on the engine thread
and is owned by it: `EngineCore` (core.py) runs one step — the `Scheduler` picks chunks and owns
their KV memory (through tines.runtime.cache), the `ModelRunner` turns them into tensors and
runs the model, the `Sampler` picks tokens under the grammar's masks — and delivers each
request's events to its `RequestHandle`.
"""

from .config import EngineConfig
from .engine import Engine, QueueFullError

__all__ = ["Engine", "EngineConfig", "QueueFullError"]
