"""Check the schema compiler against the official JSON Schema Test Suite.

For every test group: either the schema compiles and, for every case, the grammar accepts
the valid instance and rejects the invalid one, or compilation raises
`UnsupportedSchemaError`. A schema whose grammar is empty (`EmptyLanguageError`) agrees
when every case is invalid.

Instances are serialized compactly (`json.dumps(..., separators=(",", ":"),
ensure_ascii=False)`). Because the grammar fixes property order, an object instance counts
as accepted when some order of its keys is accepted (all orders of every nested object are
tried, up to `MAX_ORDERS` serializations), and as rejected when no order is. `format` is
compiled as an annotation (`assert_formats=False`), as draft 2020-12 specifies by default.

    python -m tines.grammar.conformance [SUITE_DIR]    # prints the per-keyword table
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .compiler import CompiledGrammar, GrammarSpec
from .errors import EmptyLanguageError, GrammarError, UnsupportedSchemaError
from .vocabulary import TokenVocabulary

MAX_ORDERS = 256
DEFAULT_SUITE = (Path(__file__).resolve().parents[3]
                 / "shared/data/json-schema-test-suite/draft2020-12")


@dataclass(slots=True)
class GroupResult:
    file: str
    description: str
    outcome: str  # "compiled" | "unsupported" | "disagree"
    detail: str = ""


@dataclass(slots=True)
class SuiteReport:
    groups: list[GroupResult] = field(default_factory=list)

    def table(self) -> dict[str, Counter]:
        out: dict[str, Counter] = {}
        for g in self.groups:
            out.setdefault(g.file, Counter())[g.outcome] += 1
        return out

    def disagreements(self) -> list[GroupResult]:
        return [g for g in self.groups if g.outcome == "disagree"]


def serializations(value, limit: int = MAX_ORDERS) -> list[str]:
    """Compact JSON texts of `value` with the keys of its objects in every order."""
    return list(itertools.islice(_texts(value), limit))


def _texts(value):
    if isinstance(value, dict):
        keys = list(value)
        for order in itertools.permutations(keys):
            for parts in itertools.product(*[list(itertools.islice(_texts(value[k]), 24))
                                             for k in order]):
                body = ",".join(f"{json.dumps(k, ensure_ascii=False)}:{p}"
                                for k, p in zip(order, parts))
                yield "{" + body + "}"
    elif isinstance(value, list):
        for parts in itertools.product(*[list(itertools.islice(_texts(v), 24)) for v in value]):
            yield "[" + ",".join(parts) + "]"
    else:
        yield json.dumps(value, ensure_ascii=False)


def check_group(group: dict, vocab: TokenVocabulary, file: str = "") -> GroupResult:
    desc = group["description"]
    try:
        spec = GrammarSpec.json_schema(group["schema"], assert_formats=False)
        grammar = CompiledGrammar(spec, vocab)
    except UnsupportedSchemaError as e:
        return GroupResult(file, desc, "unsupported", str(e))
    except EmptyLanguageError:
        grammar = None
    except GrammarError as e:
        return GroupResult(file, desc, "disagree", f"compile error: {e}")
    for case in group["tests"]:
        texts = serializations(case["data"])
        accepted = grammar is not None and any(grammar.accepts_text(t) for t in texts)
        if accepted != case["valid"]:
            what = "rejects valid" if case["valid"] else "accepts invalid"
            return GroupResult(file, desc, "disagree", f"{what}: {case['description']} "
                                                       f"({texts[0][:80]})")
    return GroupResult(file, desc, "compiled")


def run_suite(suite_dir: Path, vocab: TokenVocabulary) -> SuiteReport:
    report = SuiteReport()
    for path in sorted(Path(suite_dir).glob("*.json")):
        for group in json.loads(path.read_text()):
            report.groups.append(check_group(group, vocab, path.stem))
    return report


def format_table(report: SuiteReport) -> str:
    rows = [("keyword", "compiled", "unsupported", "disagree")]
    total = Counter()
    for name, c in sorted(report.table().items()):
        rows.append((name, str(c["compiled"]), str(c["unsupported"]), str(c["disagree"])))
        total.update(c)
    rows.append(("TOTAL", str(total["compiled"]), str(total["unsupported"]),
                 str(total["disagree"])))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [" | ".join(r[i].ljust(w[i]) if i == 0 else r[i].rjust(w[i]) for i in range(4))
             for r in rows]
    lines.insert(1, "-|-".join("-" * x for x in w))
    return "\n".join(lines)


def full_byte_vocabulary() -> TokenVocabulary:
    """256 single-byte tokens plus EOS: every byte string is spellable."""
    return TokenVocabulary([bytes([b]) for b in range(256)] + [None], eos_token_ids=[256])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    suite = Path(argv[0]) if argv else DEFAULT_SUITE
    if not suite.is_dir():
        print(f"JSON Schema Test Suite not found at {suite}")
        return 0
    report = run_suite(suite, full_byte_vocabulary())
    print(format_table(report))
    for g in report.disagreements():
        print(f"DISAGREE {g.file}: {g.description}: {g.detail}")
    return 1 if report.disagreements() else 0


if __name__ == "__main__":
    raise SystemExit(main())
