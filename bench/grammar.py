"""Grammar benchmark on the default model's vocabulary (49,152 tokens), one run, ratios.

For schemas from simple to deeply nested:
- compile time (ms): a fresh compile, first mask included;
- per-token mask time (µs, median / p99) along a real instance tokenized by the model's
  tokenizer: "cold" is the first request (states built lazily on the way), "warm" a second
  request on the cached grammar;
- forward passes with jump-forward vs without (grammar-only simulation: the "model" writes
  the instance; jump-forward appends what the grammar forces);
- the same compile/mask numbers for outlines-core, xgrammar and llguidance where installed
  (each skipped with a printed reason otherwise), and tines' ratio to each.
- on the engine with the default model: output tokens/s of JSON-schema-constrained decoding
  vs unconstrained decoding of as many tokens, and constrained with jump-forward on vs off
  (8 requests at once per schema, greedy; every constrained answer validated).

    python -m bench.grammar [--repeat 3] [--no-engine]
    python -m bench.grammar --corpus .../jsonschemabench/maskbench/data [--sample 500]
        (tines, then llguidance and xgrammar where installed, on the same schemas)
    python -m bench.grammar --corpus DIR --sample 150 --dump-masks masks.json

`--dump-masks` also writes a hash of every mask along every valid instance (and each test's
accept verdict): run it on two versions of tines (PYTHONPATH pointing at
a copy of the old one) and compare the files to check a change keeps masks token for token.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.workloads.common import text_validates
from tines.grammar import CompiledGrammar, GrammarSpec, TokenVocabulary
from tines.grammar.jump_forward import apply_jump_forward, jump_forward

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
PRODUCT = {"type": "object", "properties": {
    "id": {"type": "integer", "minimum": 1, "maximum": 999999},
    "title": {"type": "string", "minLength": 1, "maxLength": 80},
    "price": {"type": "number", "minimum": 0, "exclusiveMaximum": 10000},
    "currency": {"enum": ["USD", "EUR", "GBP"]},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 5}},
    "required": ["id", "title", "price", "currency"], "additionalProperties": False}
ORDER = {"$defs": {
    "address": {"type": "object", "properties": {
        "street": {"type": "string"}, "city": {"type": "string"},
        "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
        "required": ["street", "city", "zip"], "additionalProperties": False},
    "line": {"type": "object", "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "qty": {"type": "integer", "minimum": 1, "maximum": 100}},
        "required": ["sku", "qty"], "additionalProperties": False}},
    "type": "object", "properties": {
        "order_id": {"type": "string", "format": "uuid"},
        "placed_at": {"type": "string", "format": "date-time"},
        "email": {"type": "string", "format": "email"},
        "ship_to": {"$ref": "#/$defs/address"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}, "minItems": 1},
        "gift": {"anyOf": [{"type": "string", "maxLength": 100}, {"type": "null"}]}},
    "required": ["order_id", "placed_at", "email", "ship_to", "lines"],
    "additionalProperties": False}
TREE = {"$defs": {"node": {"type": "object", "properties": {
    "name": {"type": "string"}, "value": {"type": "number"},
    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
    "required": ["name"], "additionalProperties": False}}, "$ref": "#/$defs/node"}
WIDE = {"type": "object", "properties": {
    f"field_{i}": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"},
                   {"type": ["number", "null"]}][i % 4] for i in range(24)},
    "required": [f"field_{i}" for i in range(0, 24, 2)], "additionalProperties": False}

CASES = [
    ("person", PERSON, {"name": "John Smith", "age": 42}),
    ("product (bounds, enum)", PRODUCT, {"id": 1234, "title": "Trail running shoes",
                                         "price": 129.99, "currency": "EUR",
                                         "tags": ["sport", "outdoor"]}),
    ("order (refs, formats)", ORDER, {
        "order_id": "123e4567-e89b-12d3-a456-426614174000",
        "placed_at": "2024-05-01T12:30:00Z", "email": "ann.lee@example.com",
        "ship_to": {"street": "1 Main St", "city": "Springfield", "zip": "12345"},
        "lines": [{"sku": "ABC-1234", "qty": 2}, {"sku": "XYZ-0001", "qty": 1}],
        "gift": None}),
    ("tree (recursive, depth 3)", TREE, {"name": "root", "value": 1.5, "children": [
        {"name": "a", "children": [{"name": "a1", "value": -2}]}, {"name": "b"}]}),
    ("wide (24 properties)", WIDE, {f"field_{i}": ["text", 7, True, None][i % 4]
                                    for i in range(24)}),
]


def load_default_model():
    """(TokenVocabulary, encode, token strings, path) for the default model."""
    from tines.runtime.models.gguf_file import GGUFFile
    from tines.runtime.models.registry import cached_path

    path = cached_path()
    md = GGUFFile(path).metadata
    special = {i for i, t in enumerate(md["tokenizer.ggml.token_type"]) if t == 3}
    vocab = TokenVocabulary.from_token_strings(md["tokenizer.ggml.tokens"], "byte_level",
                                               special, {int(md["tokenizer.ggml.eos_token_id"])})
    return vocab, _load_encoder(path), path


def _load_encoder(path: Path):
    from tokenizers import Tokenizer

    cache = Path(__file__).resolve().parent / "results" / "smollm2-tokenizer.json"
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        script = ("import sys\nfrom transformers import AutoTokenizer\n"
                  "AutoTokenizer.from_pretrained(sys.argv[1], gguf_file=sys.argv[2])"
                  ".backend_tokenizer.save(sys.argv[3])\n")
        subprocess.run([sys.executable, "-c", script, str(path.parent), path.name, str(cache)],
                       cwd=tempfile.gettempdir(), check=True, capture_output=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    tok = Tokenizer.from_file(str(cache))
    return lambda text: tok.encode(text, add_special_tokens=False).ids


def _stats(us: list[float]) -> tuple[float, float]:
    return statistics.median(us), float(np.percentile(us, 99))


# ---- tines -------------------------------------------------------------------------------

def bench_tines(vocab, schema, ids, repeat):
    compile_ms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        g = CompiledGrammar(GrammarSpec.json_schema(schema), vocab)
        compile_ms.append(1e3 * (time.perf_counter() - t0))
    buf = np.zeros((1, vocab.num_words), dtype=np.int32)
    runs = []
    for _ in range(2):  # cold (fresh states), then warm (same grammar)
        m, us = g.matcher(), []
        for t in ids:
            t0 = time.perf_counter()
            m.fill_bitmask(buf, 0)
            us.append(1e6 * (time.perf_counter() - t0))
            if not m.accept_token(t):
                raise AssertionError("tines refused a valid instance")
        runs.append(us)
    return min(compile_ms), runs[0], runs[1]


def jump_forward_steps(vocab, schema, text, encode) -> tuple[int, int]:
    """(decode steps without jump-forward, with it) for writing `text`."""
    g = CompiledGrammar(GrammarSpec.json_schema(schema), vocab)
    target = text.encode()
    plain = len(encode(text))
    m, seq, steps = g.matcher(), [], 0
    while len(done := b"".join(vocab.token_bytes[t] for t in seq)) < len(target):
        jf = jump_forward(m, seq, encode)
        if jf is not None and target.startswith(b"".join(
                vocab.token_bytes[t] for t in seq[:len(seq) - jf.num_retract] + jf.append_ids)):
            apply_jump_forward(m, jf)
            seq = seq[:len(seq) - jf.num_retract] + jf.append_ids
            continue
        rest = target[len(done):]
        nxt = encode(rest.decode("utf-8", errors="ignore"))[0]
        if not m.accept_token(nxt):  # boundary split differs: longest allowed prefix token
            cands = [t for t in m.allowed_token_ids().tolist()
                     if vocab.token_bytes[t] and rest.startswith(vocab.token_bytes[t])]
            nxt = max(cands, key=lambda t: len(vocab.token_bytes[t]))
            m.accept_token(nxt)
        seq.append(nxt)
        steps += 1
    return plain, steps


# ---- peers -------------------------------------------------------------------------------

def bench_outlines(vocab, schema, ids, repeat):
    from outlines_core import Guide, Index
    from outlines_core.json_schema import build_regex_from_schema

    from tines.grammar.outlines_backend import outlines_vocabulary

    ovocab = outlines_vocabulary(vocab)
    regex = build_regex_from_schema(json.dumps(schema))
    compile_ms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        index = Index(regex, ovocab)
        compile_ms.append(1e3 * (time.perf_counter() - t0))
    guide = Guide(index)
    buf = np.zeros(vocab.num_words, dtype=np.int32)
    us, refused = [], False
    for t in ids:
        t0 = time.perf_counter()
        guide.write_mask_into(buf.ctypes.data, buf.size, 4)
        us.append(1e6 * (time.perf_counter() - t0))
        if not (buf[t >> 5] >> (t & 31)) & 1:
            refused = True
            break
        if t not in vocab.eos_token_ids:  # Guide.advance(eos) raises
            guide.advance(t)
    return min(compile_ms), us, refused


def bench_xgrammar(vocab, schema, ids, repeat):
    import xgrammar as xg

    tokens = [b if b is not None else b"<special>" for b in vocab.token_bytes]
    info = xg.TokenizerInfo(tokens, xg.VocabType.RAW, vocab_size=vocab.vocab_size,
                            stop_token_ids=sorted(vocab.eos_token_ids))
    compile_ms = []
    for _ in range(repeat):
        comp = xg.GrammarCompiler(info, cache_enabled=False)
        t0 = time.perf_counter()
        cg = comp.compile_json_schema(json.dumps(schema), any_whitespace=False,
                                      separators=(",", ":"))
        compile_ms.append(1e3 * (time.perf_counter() - t0))
    m = xg.GrammarMatcher(cg)
    bitmask = xg.allocate_token_bitmask(1, vocab.vocab_size)
    us, refused = [], False
    for t in ids:
        t0 = time.perf_counter()
        m.fill_next_token_bitmask(bitmask)
        us.append(1e6 * (time.perf_counter() - t0))
        if not m.accept_token(t):
            refused = True
            break
    return min(compile_ms), us, refused


def bench_llguidance(vocab, schema, ids, repeat, encode):
    import llguidance
    import llguidance.numpy

    from tines.grammar.backends.llguidance import make_tokenizer

    lltok = make_tokenizer(vocab, encode)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        json.dumps(schema), defaults={"whitespace_flexible": False})
    compile_ms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        m = llguidance.LLMatcher(lltok, grammar)
        compile_ms.append(1e3 * (time.perf_counter() - t0))
    bitmask = np.zeros((1, vocab.num_words), dtype=np.int32)
    us, refused = [], False
    for t in ids:
        t0 = time.perf_counter()
        llguidance.numpy.fill_next_token_bitmask(m, bitmask, 0)
        us.append(1e6 * (time.perf_counter() - t0))
        if not m.consume_token(t):
            refused = True
            break
    return min(compile_ms), us, refused


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-engine", action="store_true", help="skip the engine decoding section")
    ap.add_argument("--corpus", type=Path, help="instead: refusals and tail latency on a "
                    "JSONSchemaBench maskbench/data folder (see bench/schemas/corpus.py)")
    ap.add_argument("--sample", type=int, default=500, help="schemas sampled with --corpus")
    ap.add_argument("--dump-masks", type=Path, help="with --corpus: write mask hashes here")
    args = ap.parse_args()
    if args.corpus is not None:
        from bench.schemas.corpus import available_backends, report, run, sample_files

        vocab, encode, _ = load_default_model()
        vocab.prepare()  # the mask layouts, built at start-up as the engine's compiler does
        files = sample_files(args.corpus, args.sample, 0)
        r = run(files, vocab, encode, hash_masks=args.dump_masks is not None)
        report(r)
        if args.dump_masks is not None:
            args.dump_masks.write_text(json.dumps(r["mask_hashes"]))
            print(f"{sum(map(len, r['mask_hashes'].values()))} entries for "
                  f"{len(r['mask_hashes'])} schemas")
            return 0
        for peer in available_backends()[1:]:  # the peers in the same run
            report(run(files, vocab, encode, backend=peer))
        return 0
    try:
        vocab, encode, _ = load_default_model()
    except Exception as e:  # noqa: BLE001
        print(f"skipped: default model or tokenizer unavailable ({e})")
        return 0
    print(f"vocabulary: {vocab.vocab_size} tokens\n")
    peers = {"outlines-core": bench_outlines, "xgrammar": bench_xgrammar,
             "llguidance": lambda v, s, i, r: bench_llguidance(v, s, i, r, encode)}
    header = (f"{'schema':28s} {'engine':14s} {'compile ms':>10s} {'mask µs cold med/p99':>22s} "
              f"{'warm med/p99':>16s}  note")
    print(header)
    print("-" * len(header))
    totals: dict[str, list] = {}
    for name, schema, instance in CASES:
        text = json.dumps(instance, separators=(",", ":"), ensure_ascii=False)
        ids = encode(text) + sorted(vocab.eos_token_ids)[:1]
        c_ms, cold, warm = bench_tines(vocab, schema, ids, args.repeat)
        totals.setdefault("tines", []).append((c_ms, _stats(cold)[0], _stats(warm)[0]))
        print(f"{name:28s} {'tines':14s} {c_ms:10.2f} {'%8.1f / %-8.1f' % _stats(cold):>22s} "
              f"{'%6.1f / %-7.1f' % _stats(warm):>16s}")
        for peer, fn in peers.items():
            try:
                p_ms, us, refused = fn(vocab, schema, ids, args.repeat)
            except ImportError as e:
                print(f"{'':28s} {peer:14s} skipped: not installed ({e.name})")
                continue
            except Exception as e:  # noqa: BLE001 - a peer's failure is a result, not a crash
                print(f"{'':28s} {peer:14s} failed: {type(e).__name__}: {str(e)[:80]}")
                continue
            note = "refused the valid instance" if refused else ""
            totals.setdefault(peer, []).append((p_ms, _stats(us)[0], _stats(us)[0]))
            print(f"{'':28s} {peer:14s} {p_ms:10.2f} {'%8.1f / %-8.1f' % _stats(us):>22s} "
                  f"{'':>16s}  {note}")
    print("\nratios (peer / tines, geometric mean over schemas; > 1 means tines is faster)")
    ours = totals["tines"]
    for peer, rows in totals.items():
        if peer == "tines" or len(rows) != len(ours):
            continue
        def gm(i: int) -> float:
            return float(np.exp(np.mean([np.log(p[i] / o[i]) for p, o in zip(rows, ours)])))
        print(f"  {peer:14s} compile ×{gm(0):.2f}   mask median vs tines cold ×{gm(1):.2f}, "
              f"vs tines warm ×{gm(2):.2f}")
    print("\njump-forward (grammar-only): decode steps to write each instance")
    for name, schema, instance in CASES:
        text = json.dumps(instance, separators=(",", ":"), ensure_ascii=False)
        plain, with_jf = jump_forward_steps(vocab, schema, text, encode)
        print(f"  {name:28s} {plain:4d} → {with_jf:4d} steps  (×{plain / with_jf:.2f} fewer "
              "forward passes)")
    if not args.no_engine:
        bench_engine_decoding()
    return 0


def bench_engine_decoding(batch: int = 8, max_tokens: int = 512) -> None:
    """Output tokens/s on the engine: constrained (jump-forward on, off) vs unconstrained."""
    from tines.runtime.engine.engine import Engine
    from tines.runtime.sampling_params import SamplingParams

    print(f"\nengine decoding, default model, {batch} requests at once per schema, greedy "
          "(output tok/s; forced tokens count as output)")
    # (schema, mode) -> (tok/s, answers finished, finished answers that validate)
    measured: dict[tuple[str, str], tuple[float, int, int]] = {}
    for jump_forward in (True, False):
        engine = Engine(jump_forward=jump_forward, compile=True)
        try:
            def prompts(name: str) -> list[str]:
                return [engine.chat_template.render([{"role": "user", "content":
                        f"Write a JSON object for a {name}, example number {i + 1}."}])
                        for i in range(batch)]

            engine.generate(prompts("warm-up"), SamplingParams(max_new_tokens=16, ignore_eos=True))
            for name, schema, _ in CASES:
                params = SamplingParams(temperature=0, max_new_tokens=max_tokens, json_schema=schema)
                engine.generate(prompts(name)[:1], params)  # the grammar's compile: timed above
                engine.flush_cache()
                t = time.perf_counter()
                outs = engine.generate(prompts(name), params)
                seconds = time.perf_counter() - t
                tokens = sum(o.num_completion_tokens for o in outs)
                done = [o.outputs[0].text for o in outs if o.outputs[0].finish_reason != "length"]
                valid = sum(text_validates(text, schema) for text in done)
                mode = "jump-forward on" if jump_forward else "jump-forward off"
                measured[(name, mode)] = (tokens / seconds, len(done), valid)
                if jump_forward:  # the same prompts, as many tokens each, no grammar
                    free = SamplingParams(temperature=0, max_new_tokens=max(1, tokens // batch),
                                          ignore_eos=True)
                    engine.flush_cache()
                    t = time.perf_counter()
                    outs = engine.generate(prompts(name), free)
                    measured[(name, "free")] = (sum(o.num_completion_tokens for o in outs)
                                                / (time.perf_counter() - t), batch, batch)
        finally:
            engine.shutdown()
    print(f"{'schema':28s} {'free':>8s} {'JF off':>8s} {'JF on':>8s} {'JF on/free':>11s} "
          f"{'JF on/off':>10s}  valid/finished (on; off)")
    for name, _, _ in CASES:
        free, off, on = (measured[(name, m)] for m in ("free", "jump-forward off", "jump-forward on"))
        print(f"{name:28s} {free[0]:8.1f} {off[0]:8.1f} {on[0]:8.1f} {on[0] / free[0]:10.2f}x "
              f"{on[0] / off[0]:9.2f}x  {on[2]}/{on[1]}; {off[2]}/{off[1]}")
    print(f"(an answer not finished in {max_tokens} tokens is the model repeating array items "
          "where the schema sets no maxItems; it is cut, not invalid)")


if __name__ == "__main__":
    raise SystemExit(main())
