"""Token healing at prompt boundaries (issue 23 §3), greedy, default model.

Each prompt is continued once in one piece; then the prompt plus the start of that
continuation, cut inside its first word or right after it (with the space that follows), is
continued again. The pair agrees when the cut run writes the rest of the first run's text
(compared over the next `--compare` characters). Printed with healing off and on:

    python -m bench.token_healing [--max-tokens 16] [--compare 12] [--quick]
"""

from __future__ import annotations

import argparse
import re
import time

from tines.runtime.engine.engine import Engine
from tines.runtime.sampling_params import SamplingParams

PROMPTS = [
    "The capital of France is", "Water boils at a temperature of", "The largest planet in the solar system is",
    "My favourite programming language is", "To make a cup of tea, first", "The opposite of hot is",
    "Visit our website at", "The first president of the United States was", "Photosynthesis is the process by which",
    "In 1969, Neil Armstrong", "The recipe calls for two cups of", "She opened the door and saw",
    "The stock market closed today with", "A triangle has three", "The chemical symbol for gold is",
    "Once upon a time, there was a", "The meeting is scheduled for", "He plays the guitar in a",
    "The quick brown fox jumps over the", "Python is a programming language that", "The Eiffel Tower is located in",
    "To install the package, run", "The weather forecast for tomorrow says", "The human heart has four",
    "Shakespeare wrote the play", "The speed of light is approximately", "Our company was founded in",
    "The best way to learn a language is", "The train to London leaves at", "Dear Sir or Madam, I am writing to",
]


def cut_point(continuation: str, i: int) -> int | None:
    """Where to cut the continuation: inside its first word of two or more characters (even
    i) or right after it, with the space that follows (odd i). None when it has no word."""
    m = re.search(r"\w{2,}", continuation)
    if m is None:
        return None
    if i % 2 == 0:
        return m.start() + len(m.group()) // 2
    return m.end() + (continuation[m.end():m.end() + 1] == " ")


def agreement(engine: Engine, healing: bool, max_tokens: int, compare: int,
              prompts: list[str]) -> tuple[int, int, list[tuple[str, str, str]]]:
    params = SamplingParams(temperature=0, max_new_tokens=max_tokens, token_healing=healing)
    whole = [o.outputs[0].text for o in engine.generate(prompts, params)]
    cuts = [(i, p, w, cut_point(w, i)) for i, (p, w) in enumerate(zip(prompts, whole))]
    cuts = [(i, p, w, c) for i, p, w, c in cuts if c is not None]
    again = engine.generate([p + w[:c] for _, p, w, c in cuts], params)
    agree, rows = 0, []
    for (_, p, w, c), out in zip(cuts, again):
        expected, got = w[c:c + compare], out.outputs[0].text[:compare]
        n = min(len(expected), len(got))
        ok = n > 0 and expected[:n] == got[:n]
        agree += ok
        rows.append((p + w[:c], expected, got))
    return agree, len(cuts), rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--compare", type=int, default=12)
    ap.add_argument("--quick", action="store_true", help="the first 10 prompts only")
    ap.add_argument("--show", action="store_true", help="print each pair that disagrees")
    args = ap.parse_args()
    prompts = PROMPTS[:10] if args.quick else PROMPTS
    engine = Engine(kv_tokens=16384)
    try:
        for healing in (False, True):
            t0 = time.perf_counter()
            agree, total, rows = agreement(engine, healing, args.max_tokens, args.compare, prompts)
            print(f"token_healing={healing!s:5}  agree {agree}/{total} = {agree / total:.0%}  "
                  f"({time.perf_counter() - t0:.0f} s)")
            if args.show:
                for prompt, expected, got in rows:
                    if expected[:len(got)] != got[:len(expected)]:
                        print(f"    {prompt!r}: expected {expected!r}, got {got!r}")
    finally:
        engine.shutdown()


if __name__ == "__main__":
    main()
