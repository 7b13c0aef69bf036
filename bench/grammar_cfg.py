"""Context-free grammar benchmark on the default model's vocabulary: tines vs llguidance.

For four Lark grammars (arithmetic, a SQL SELECT subset, nested lists, recursive function
calls), in one run:
- compile time (ms): a fresh compile, first mask included (the vocabulary's layout and
  trie, and the process-wide regex tables, are built once beforehand, as at start-up);
- per-token mask time (µs, p50 / p99) along real texts tokenized by the model's tokenizer:
  "cold" is the first text on a fresh grammar (parser states built on the way), "warm" the
  held-out last text after the others have run on the same compiled grammar (the engine
  keeps compiled grammars and their masks in its cache across requests);
- llguidance's Lark front end on the same grammar text, vocabulary and token sequences.

    python -m bench.grammar_cfg [--quick] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from tines.grammar.cfg import compile_cfg
from tines.grammar.cfg.examples import BENCH
from tines.grammar.cfg.trie import VocabTrie

CASES = [  # (name, grammar, texts: the last one is held out for the warm numbers)
    ("arithmetic", BENCH["arithmetic"], ["(12 + 3.5) * -4 / (7 - (2 * 9)) + 100",
                           "1 + 2 * 3 - (4 / (5 + 6)) * 7",
                           "((((1 + 2) * 3) - 4) / 5) + -(6 * (7 - 8.25))"]),
    ("sql select", BENCH["sql"], ["SELECT name, COUNT(*) AS n FROM users u JOIN orders o ON u.id = o.uid "
                         "WHERE age > 30 AND city = 'Paris' ORDER BY n DESC LIMIT 10",
                         "SELECT * FROM items WHERE price <= 9.5 OR (stock = 0 AND NOT "
                         "discontinued = 1) LIMIT 5",
                         "SELECT p.title, AVG(r.score) AS avg_score FROM posts p JOIN ratings r "
                         "ON p.id = r.post_id WHERE p.year >= 2020 ORDER BY avg_score ASC"]),
    ("nested lists", BENCH["nested_lists"], ['[[1, 2], [3, [4, 5, []]], 6, [[[7]]]]',
                             '["a", ["b", ["c", ["d"]]], [], [[1], [2, [3]]]]',
                             '[[[1, 2, 3], ["x", "y"]], [[4], [5, [6, [7, [8]]]]], "end"]']),
    ("function calls", BENCH["calls"], ['plot(x, y=range(10, stop=20), title="hi there", f(g(h(1))))',
                               'send(to="bob", body=fmt("hello {}", name), retries=3)',
                               'apply(map(f, [1, 2, [3, 4]]), key=sort(reverse=True, by=len(x)),'
                               ' out=write(path="a.txt", data=join(",", parts)))']),
]


def _p(us: list[float]) -> tuple[float, float]:
    return statistics.median(us), float(np.percentile(us, 99))


def tines_masks(grammar, ids: list[int], vocab) -> list[float]:
    buf = np.zeros((1, vocab.num_words), dtype=np.int32)
    m = grammar.matcher()
    us = []
    for t in ids:
        t0 = time.perf_counter()
        m.fill_bitmask(buf, 0)
        us.append(1e6 * (time.perf_counter() - t0))
        if not m.accept_token(t):
            raise RuntimeError(f"tines refused token {t} of a valid text")
    if not m.is_accepting():
        raise RuntimeError("tines does not accept a valid text")
    return us


def bench_tines(vocab, text: str, all_ids: list[list[int]], repeat: int) -> dict:
    compile_ms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        g = compile_cfg(text, vocab)
        compile_ms.append(1e3 * (time.perf_counter() - t0))
    cold = tines_masks(g, all_ids[0], vocab)
    for ids in all_ids[1:-1]:
        tines_masks(g, ids, vocab)
    warm = tines_masks(g, all_ids[-1], vocab)
    return {"compile": min(compile_ms), "cold": _p(cold), "warm": _p(warm),
            "states": g.automaton.num_states}


def bench_llguidance(lltok, vocab, text: str, all_ids: list[list[int]], repeat: int) -> dict:
    import llguidance
    import llguidance.numpy

    grammar = llguidance.LLMatcher.grammar_from_lark(text)
    compile_ms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        m = llguidance.LLMatcher(lltok, grammar)
        compile_ms.append(1e3 * (time.perf_counter() - t0))
    if m.is_error():
        raise RuntimeError(m.get_error())
    bitmask = np.zeros((1, vocab.num_words), dtype=np.int32)
    runs = []
    for ids in all_ids:
        m = llguidance.LLMatcher(lltok, grammar)
        us = []
        for t in ids:
            t0 = time.perf_counter()
            llguidance.numpy.fill_next_token_bitmask(m, bitmask, 0)
            us.append(1e6 * (time.perf_counter() - t0))
            if not m.consume_token(t):
                raise RuntimeError(f"llguidance refused token {t}: {m.get_error()}")
        runs.append(us)
    return {"compile": min(compile_ms), "cold": _p(runs[0]), "warm": _p(runs[-1])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one compile per grammar")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    repeat = 1 if args.quick else args.repeat
    from bench.grammar import load_default_model

    vocab, encode, _ = load_default_model()
    vocab.layout  # noqa: B018 - built once per vocabulary, like an engine at start-up
    vocab.derived(VocabTrie)
    compile_cfg('start: "a"\n', vocab)  # process-wide one-time set-up (regex classes)
    try:
        from tines.grammar.backends.llguidance import make_tokenizer

        lltok = make_tokenizer(vocab, encode)
    except ImportError as e:
        lltok = None
        print(f"llguidance skipped: {e}")
    print(f"vocabulary: {vocab.vocab_size} tokens; goals: compile <= 20 ms, mask p99 <= 150 us")
    hdr = (f"{'grammar':<15} {'engine':<10} {'compile ms':>10} {'cold p50/p99 us':>17} "
           f"{'warm p50/p99 us':>17}")
    print(hdr)
    print("-" * len(hdr))
    for name, text, samples in CASES:
        all_ids = [encode(s) for s in samples]
        rows = [("tines", bench_tines(vocab, text, all_ids, repeat))]
        if lltok is not None:
            try:
                rows.append(("llguidance", bench_llguidance(lltok, vocab, text, all_ids, repeat)))
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"{name:<15} llguidance failed: {e}")
        for engine, r in rows:
            print(f"{name:<15} {engine:<10} {r['compile']:>10.1f} "
                  f"{r['cold'][0]:>8.0f}/{r['cold'][1]:<8.0f} {r['warm'][0]:>8.0f}/"
                  f"{r['warm'][1]:<8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
