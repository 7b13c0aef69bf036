"""Budget-aware closing, grammar only: the 34 tool schemas × 5 samples, each token drawn
uniformly from the allowed ones (harsher than a model at temperature 1.0), cut at
max_tokens; how many outputs fail to parse and validate with closing off and on.

    python -m bench.schemas.closing_sim [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from bench.workloads.common import text_validates
from tines.grammar import GrammarCompiler, GrammarSpec, allocate_token_bitmask, bitmask_to_bool

SCHEMAS = json.loads((Path(__file__).parent / "tool_schemas.json").read_text())


def main() -> int:
    from bench.grammar import load_default_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--samples", type=int, default=5)
    args = ap.parse_args()
    vocab, _, _ = load_default_model()
    compiler = GrammarCompiler(vocab)
    buf = allocate_token_bitmask(1, vocab.vocab_size)
    for closing in (False, True):
        bad: list[str] = []
        for name, schema in SCHEMAS.items():
            g = compiler.compile(GrammarSpec.json_schema(schema))
            for k in range(args.samples):
                rng, m, out = random.Random(f"{name}{k}"), g.matcher(), []
                for remaining in range(args.max_tokens, 0, -1):
                    if closing:
                        m.fill_bitmask_within(buf, 0, remaining)
                    else:
                        m.fill_bitmask(buf, 0)
                    t = int(rng.choice(np.flatnonzero(bitmask_to_bool(buf, vocab.vocab_size)[0])))
                    m.accept_token(t)
                    if t in vocab.eos_token_ids:
                        break
                    out.append(t)
                text = b"".join(vocab.token_bytes[t] for t in out).decode("utf-8", "replace")
                if not text_validates(text, schema):
                    bad.append(name)
        n = len(SCHEMAS) * args.samples
        print(f"closing {'on ' if closing else 'off'}: {len(bad)}/{n} invalid at max_tokens "
              f"{args.max_tokens} (schemas: {', '.join(sorted(set(bad))) or '-'})"[:300])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
