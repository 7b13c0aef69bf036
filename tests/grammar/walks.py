"""Random walks over a byte-vocabulary grammar: outputs a grammar accepts, for checking that
each one validates against the schema it was compiled from."""

from __future__ import annotations

import random
from typing import Any


def random_output(grammar: Any, rng: random.Random, max_steps: int, preferred: str) -> str:
    """Up to `max_steps` random allowed bytes (those in `preferred`, or non-ASCII, when the
    grammar allows any, so walks reach members instead of writing long keys), then the
    grammar's closing path: the text of one complete output."""
    m = grammar.matcher()
    out: list[int] = []
    for _ in range(rng.randrange(0, max_steps)):
        ids = [t for t in m.allowed_token_ids().tolist() if t not in grammar.vocab.eos_token_ids]
        if not ids:
            break
        nice = [t for t in ids if chr(t) in preferred or t > 127]
        out.append(rng.choice(nice or ids))
        assert m.accept_token(out[-1])
    closing = m.closing_token_ids()
    assert m.accept_tokens(closing) and m.is_accepting()
    return bytes(out + closing).decode()
