"""Print tines' conformance with the official JSON Schema Test Suite (draft 2020-12):
per keyword file, how many test groups compile (and agree on every case), are rejected as
unsupported (UnsupportedSchemaError), or disagree (a bug: the test suite fails on any).

    python -m bench.json_schema_suite [SUITE_DIR]   # default: ../shared/data/.../draft2020-12
"""

from __future__ import annotations

import sys

from tines.grammar.conformance import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
