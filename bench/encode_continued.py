"""Encoding a growing prompt: the whole text again (`encode`) against only its new end
(`Tokenizer.encode_continued`), on the mmlu prompt (~1.2k tokens) plus each choice, as `select`
and a program's next `gen` do. Prints ms per call and the ratio; the ids are checked equal.

    .venv/bin/python -m bench.encode_continued
"""

from __future__ import annotations

import time

from bench.workloads import mmlu
from tines.runtime.models.registry import resolve_model
from tines.runtime.tokenizer.tokenizer import Tokenizer


def per_call(fn, n: int = 50) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    tok = Tokenizer.from_file(resolve_model(None))
    text = mmlu.FEW_SHOT + mmlu.make_inputs(1)[0]["question"] + "Answer:"
    ids = tok.encode(text)
    for choice in mmlu.CHOICES:
        assert tok.encode_continued(ids, text, choice) == tok.encode(text + choice)
    whole = per_call(lambda: [tok.encode(text + c) for c in mmlu.CHOICES]) / len(mmlu.CHOICES)
    tail = per_call(lambda: [tok.encode_continued(ids, text, c) for c in mmlu.CHOICES]) / len(mmlu.CHOICES)
    print(f"prompt {len(ids)} tokens: encode {whole * 1e3:.3f} ms, encode_continued "
          f"{tail * 1e3:.3f} ms ({whole / tail:.0f}x)")


if __name__ == "__main__":
    main()
