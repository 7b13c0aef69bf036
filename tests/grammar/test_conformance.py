"""The official JSON Schema Test Suite (draft 2020-12): for every group, either the schema
compiles and every case agrees (valid accepted, invalid rejected), or compilation raises
UnsupportedSchemaError. Prints the per-keyword table with -s."""

from __future__ import annotations

import pytest

from pathlib import Path

from tines.grammar.conformance import (format_table, full_byte_vocabulary, run_suite,
                                       serializations)

SUITE_DIR = (Path(__file__).resolve().parents[2].parent / "shared" / "data"
             / "json-schema-test-suite" / "draft2020-12")


def test_serializations_try_every_key_order():
    texts = serializations({"a": 1, "b": {"c": 2, "d": 3}})
    assert len(texts) == 4 and '{"b":{"d":3,"c":2},"a":1}' in texts


@pytest.mark.skipif(not SUITE_DIR.is_dir(), reason="../shared JSON Schema Test Suite absent")
def test_official_suite_has_no_disagreement():
    report = run_suite(SUITE_DIR, full_byte_vocabulary())
    print("\n" + format_table(report))
    bad = [f"{g.file}: {g.description}: {g.detail}" for g in report.disagreements()]
    assert not bad, "\n".join(bad)
    compiled = sum(g.outcome == "compiled" for g in report.groups)
    assert compiled >= 250, f"only {compiled} groups compile"
