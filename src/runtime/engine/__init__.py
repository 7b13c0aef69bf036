"""tines.runtime.engine: the engine core, one step at a time on one thread.

`Engine` (engine.py) is the thread-safe facade callers use: it validates and submits requests
(counted in by `Admission`), hands back results and streams, aborts, and returns the stats
snapshot the engine thread last published (stats.py). Everything else here runs on the engine
thread and is owned by it: `build_core` (build.py) loads the model, sizes the pool and warms up;
`EngineCore` (core.py) runs one step, isolating each request's failures — the `Scheduler` picks
chunks and owns all KV memory (through tines.runtime.cache: allocation, truncation, forks,
eviction), the `ModelRunner` turns them into tensors and runs the model (eager or compiled
decode), the `Sampler` picks tokens under the grammar's masks — and queues each request's
events for its `RequestHandle`, delivered after the stats are published.
"""

from .config import EngineConfig
from .engine import Engine, QueueFullError

__all__ = ["Engine", "EngineConfig", "QueueFullError"]
