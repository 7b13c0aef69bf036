"""glibc malloc settings for running torch on the CPU, set once per process by the engine.

By default glibc serves each large block (from 128 KB, a limit it raises as the process frees
bigger blocks, so it depends on what ran before) with its own mmap and unmaps it on free: each
activation tensor of a step then lands on fresh pages, and the op that first writes it pays a
page fault per 4 KB. Measured on the default model, a 512-token prefill ran at 1,550–1,720
tok/s or at 2,330–2,570 depending only on whether `argparse` was imported before torch; with
the settings below it runs at the fast rate either way. Blocks above 32 MB (the KV pool) are
still mmapped, so they stay unmapped until written.

Kept memory is given back once the engine is built (what loading freed) and whenever it goes
idle (`release_freed_heap`, glibc's malloc_trim): a busy engine reuses its step buffers, an
idle one does not hold them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GB of freed memory for reuse

_done = False


def keep_step_memory_in_heap() -> bool:
    """Serve blocks up to 32 MB from the heap and keep freed ones for reuse. True when set
    (glibc on Linux); elsewhere a no-op."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done


def release_freed_heap() -> None:
    """Return freed heap memory to the OS (glibc); a no-op elsewhere. Costs about a
    millisecond, so the engine calls it once per busy-to-idle transition."""
    if not _done:
        return
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
