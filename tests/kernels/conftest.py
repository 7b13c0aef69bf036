"""Kernel tests run the Triton kernels on CPU tensors under the Triton interpreter.

TRITON_INTERPRET is read when a kernel is decorated, i.e. when `tines.kernels.triton_*` is
first imported; those modules are imported lazily, so setting it here (before any test in
this folder runs) is enough. Nothing outside tines.kernels uses triton on this machine, so
the variable does not change other test folders.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
