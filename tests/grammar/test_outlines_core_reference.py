"""outlines-core 0.2.14 as a reference: where it is right our masks equal its masks; where
it is wrong (valid continuations refused) we are not. This is why tines builds its own
token index (see grammar/token_index.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tines.grammar import GrammarSpec

pytest.importorskip("outlines_core")
from tines.grammar.outlines_backend import OutlinesCoreIndex  # noqa: E402


@pytest.fixture(scope="module")
def ovocab(real_vocab):
    from tines.grammar.outlines_backend import outlines_vocabulary

    return outlines_vocabulary(real_vocab)


@pytest.mark.parametrize("regex,text", [
    (r"[a-z]+(\.[a-z]+)?", "mail.com"),
    (r"[a-z]+(\.[a-z]+)*\.[a-z]{2,6}", "mail.example.com"),
    (r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}", "first.last@sub.domain.co.uk"),
])
def test_outlines_core_refuses_valid_text_that_tines_accepts(real_vocab, real_compiler, ovocab,
                                                             encode, regex, text):
    ids = encode(text)
    assert not OutlinesCoreIndex(regex, real_vocab, ovocab).accepts_tokens(ids)
    assert real_compiler.compile(GrammarSpec.regex(regex)).accepts_tokens([*ids, 2])


@pytest.mark.parametrize("regex", [r"[0-9]{3}-[0-9]{4}", r"(cat|dog|bird)s", r"[A-Z][a-z]{2,5}",
                                   r'\{"ok": (true|false)\}', r"(ab|cd){1,3}x"])
def test_masks_equal_outlines_core_where_it_is_right(real_vocab, real_compiler, ovocab, regex):
    # (ASCII classes only: for \d outlines-core's Rust tables know Unicode 16 digits such as
    # U+1CCF0 that Python 3.11's `re` -- our reference -- does not.)
    ref = OutlinesCoreIndex(regex, real_vocab, ovocab)
    g = real_compiler.compile(GrammarSpec.regex(regex))
    rng = np.random.default_rng(0)
    for _ in range(5):
        m, s = g.matcher(), ref.start
        while True:
            ours = set(m.allowed_token_ids().tolist())
            theirs = set(ref.allowed_token_ids(s).tolist())
            assert ours == theirs, (regex, m.num_tokens, sorted(ours ^ theirs)[:10])
            t = int(rng.choice(sorted(ours)))
            if t == 2:
                break
            m.accept_token(t)
            s = ref.next_state(s, t)
